//! Wormhole codes: the PGP word lists, random code words, validation and tab completion.
//!
//! A code is `nameplate-word-word…`, e.g. `7-guitarist-revenge`: a numeric nameplate (claimed on
//! the mailbox server) followed by words. The whole string is the SPAKE2 password.
//!
//! Pure functions only, no machine: randomness is passed in as a [`RngCore`].
//!
//! Mirrors `src/wormhole/_wordlist.py` (lists, [`generate_words`], word completion), `_code.py` and
//! `_nameplate.py` ([`validate_code`]) and the completion half of `_input.py` / `_rlcompleter.py`
//! ([`completions`]).

use rand_core::RngCore;

/// The PGP "odd" word list (three syllables), lowercased, indexed by byte value.
///
/// Words 0, 2, 4, … of a generated code come from this list (`adroitness` … `yucatan`).
#[rustfmt::skip]
pub const ODD_WORDS: [&str; 256] = [
    "adroitness", "adviser", "aftermath", "aggregate", // 0x00
    "alkali", "almighty", "amulet", "amusement",
    "antenna", "applicant", "apollo", "armistice", // 0x08
    "article", "asteroid", "atlantic", "atmosphere",
    "autopsy", "babylon", "backwater", "barbecue", // 0x10
    "belowground", "bifocals", "bodyguard", "bookseller",
    "borderline", "bottomless", "bradbury", "bravado", // 0x18
    "brazilian", "breakaway", "burlington", "businessman",
    "butterfat", "camelot", "candidate", "cannonball", // 0x20
    "capricorn", "caravan", "caretaker", "celebrate",
    "cellulose", "certify", "chambermaid", "cherokee", // 0x28
    "chicago", "clergyman", "coherence", "combustion",
    "commando", "company", "component", "concurrent", // 0x30
    "confidence", "conformist", "congregate", "consensus",
    "consulting", "corporate", "corrosion", "councilman", // 0x38
    "crossover", "crucifix", "cumbersome", "customer",
    "dakota", "decadence", "december", "decimal", // 0x40
    "designing", "detector", "detergent", "determine",
    "dictator", "dinosaur", "direction", "disable", // 0x48
    "disbelief", "disruptive", "distortion", "document",
    "embezzle", "enchanting", "enrollment", "enterprise", // 0x50
    "equation", "equipment", "escapade", "eskimo",
    "everyday", "examine", "existence", "exodus", // 0x58
    "fascinate", "filament", "finicky", "forever",
    "fortitude", "frequency", "gadgetry", "galveston", // 0x60
    "getaway", "glossary", "gossamer", "graduate",
    "gravity", "guitarist", "hamburger", "hamilton", // 0x68
    "handiwork", "hazardous", "headwaters", "hemisphere",
    "hesitate", "hideaway", "holiness", "hurricane", // 0x70
    "hydraulic", "impartial", "impetus", "inception",
    "indigo", "inertia", "infancy", "inferno", // 0x78
    "informant", "insincere", "insurgent", "integrate",
    "intention", "inventive", "istanbul", "jamaica", // 0x80
    "jupiter", "leprosy", "letterhead", "liberty",
    "maritime", "matchmaker", "maverick", "medusa", // 0x88
    "megaton", "microscope", "microwave", "midsummer",
    "millionaire", "miracle", "misnomer", "molasses", // 0x90
    "molecule", "montana", "monument", "mosquito",
    "narrative", "nebula", "newsletter", "norwegian", // 0x98
    "october", "ohio", "onlooker", "opulent",
    "orlando", "outfielder", "pacific", "pandemic", // 0xa0
    "pandora", "paperweight", "paragon", "paragraph",
    "paramount", "passenger", "pedigree", "pegasus", // 0xa8
    "penetrate", "perceptive", "performance", "pharmacy",
    "phonetic", "photograph", "pioneer", "pocketful", // 0xb0
    "politeness", "positive", "potato", "processor",
    "provincial", "proximate", "puberty", "publisher", // 0xb8
    "pyramid", "quantity", "racketeer", "rebellion",
    "recipe", "recover", "repellent", "replica", // 0xc0
    "reproduce", "resistor", "responsive", "retraction",
    "retrieval", "retrospect", "revenue", "revival", // 0xc8
    "revolver", "sandalwood", "sardonic", "saturday",
    "savagery", "scavenger", "sensation", "sociable", // 0xd0
    "souvenir", "specialist", "speculate", "stethoscope",
    "stupendous", "supportive", "surrender", "suspicious", // 0xd8
    "sympathy", "tambourine", "telephone", "therapist",
    "tobacco", "tolerance", "tomorrow", "torpedo", // 0xe0
    "tradition", "travesty", "trombonist", "truncated",
    "typewriter", "ultimate", "undaunted", "underfoot", // 0xe8
    "unicorn", "unify", "universe", "unravel",
    "upcoming", "vacancy", "vagabond", "vertigo", // 0xf0
    "virginia", "visitor", "vocalist", "voyager",
    "warranty", "waterloo", "whimsical", "wichita", // 0xf8
    "wilmington", "wyoming", "yesteryear", "yucatan",
];

/// The PGP "even" word list (two syllables), lowercased, indexed by byte value.
///
/// Words 1, 3, 5, … of a generated code come from this list (`aardvark` … `zulu`).
#[rustfmt::skip]
pub const EVEN_WORDS: [&str; 256] = [
    "aardvark", "absurd", "accrue", "acme", // 0x00
    "adrift", "adult", "afflict", "ahead",
    "aimless", "algol", "allow", "alone", // 0x08
    "ammo", "ancient", "apple", "artist",
    "assume", "athens", "atlas", "aztec", // 0x10
    "baboon", "backfield", "backward", "banjo",
    "beaming", "bedlamp", "beehive", "beeswax", // 0x18
    "befriend", "belfast", "berserk", "billiard",
    "bison", "blackjack", "blockade", "blowtorch", // 0x20
    "bluebird", "bombast", "bookshelf", "brackish",
    "breadline", "breakup", "brickyard", "briefcase", // 0x28
    "burbank", "button", "buzzard", "cement",
    "chairlift", "chatter", "checkup", "chisel", // 0x30
    "choking", "chopper", "christmas", "clamshell",
    "classic", "classroom", "cleanup", "clockwork", // 0x38
    "cobra", "commence", "concert", "cowbell",
    "crackdown", "cranky", "crowfoot", "crucial", // 0x40
    "crumpled", "crusade", "cubic", "dashboard",
    "deadbolt", "deckhand", "dogsled", "dragnet", // 0x48
    "drainage", "dreadful", "drifter", "dropper",
    "drumbeat", "drunken", "dupont", "dwelling", // 0x50
    "eating", "edict", "egghead", "eightball",
    "endorse", "endow", "enlist", "erase", // 0x58
    "escape", "exceed", "eyeglass", "eyetooth",
    "facial", "fallout", "flagpole", "flatfoot", // 0x60
    "flytrap", "fracture", "framework", "freedom",
    "frighten", "gazelle", "geiger", "glitter", // 0x68
    "glucose", "goggles", "goldfish", "gremlin",
    "guidance", "hamlet", "highchair", "hockey", // 0x70
    "indoors", "indulge", "inverse", "involve",
    "island", "jawbone", "keyboard", "kickoff", // 0x78
    "kiwi", "klaxon", "locale", "lockup",
    "merit", "minnow", "miser", "mohawk", // 0x80
    "mural", "music", "necklace", "neptune",
    "newborn", "nightbird", "oakland", "obtuse", // 0x88
    "offload", "optic", "orca", "payday",
    "peachy", "pheasant", "physique", "playhouse", // 0x90
    "pluto", "preclude", "prefer", "preshrunk",
    "printer", "prowler", "pupil", "puppy", // 0x98
    "python", "quadrant", "quiver", "quota",
    "ragtime", "ratchet", "rebirth", "reform", // 0xa0
    "regain", "reindeer", "rematch", "repay",
    "retouch", "revenge", "reward", "rhythm", // 0xa8
    "ribcage", "ringbolt", "robust", "rocker",
    "ruffled", "sailboat", "sawdust", "scallion", // 0xb0
    "scenic", "scorecard", "scotland", "seabird",
    "select", "sentence", "shadow", "shamrock", // 0xb8
    "showgirl", "skullcap", "skydive", "slingshot",
    "slowdown", "snapline", "snapshot", "snowcap", // 0xc0
    "snowslide", "solo", "southward", "soybean",
    "spaniel", "spearhead", "spellbind", "spheroid", // 0xc8
    "spigot", "spindle", "spyglass", "stagehand",
    "stagnate", "stairway", "standard", "stapler", // 0xd0
    "steamship", "sterling", "stockman", "stopwatch",
    "stormy", "sugar", "surmount", "suspense", // 0xd8
    "sweatband", "swelter", "tactics", "talon",
    "tapeworm", "tempest", "tiger", "tissue", // 0xe0
    "tonic", "topmost", "tracker", "transit",
    "trauma", "treadmill", "trojan", "trouble", // 0xe8
    "tumor", "tunnel", "tycoon", "uncut",
    "unearth", "unwind", "uproot", "upset", // 0xf0
    "upshot", "vapor", "village", "virus",
    "vulcan", "waffle", "wallet", "watchword", // 0xf8
    "wayside", "willow", "woodlark", "zulu",
];

/// The most words an allocated code may have: the one limit of every request that asks for a
/// code length (`send-text`, `send-file`, `dilate`).
pub const MAX_CODE_WORDS: usize = 16;

/// Picks `count` random words, alternating the odd (3-syllable) and even (2-syllable) PGP lists,
/// starting with the odd list, joined by `-`: e.g. `guitarist-revenge`.
///
/// Each word consumes one random byte from `rng`. `count == 0` gives the empty string.
pub fn generate_words(rng: &mut dyn RngCore, count: usize) -> String {
    let mut words = Vec::with_capacity(count);
    for position in 0..count {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        words.push(word_list(position)[usize::from(byte[0])]);
    }
    words.join("-")
}

/// Why a code is not usable.
///
/// The messages are meant for the user. They never repeat the whole code, which is a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// The code is empty.
    #[error("the wormhole code is empty")]
    Empty,
    /// The code contains a space, tab, newline or other whitespace.
    #[error("the wormhole code contains whitespace")]
    Whitespace,
    /// The part before the first `-` is not all ASCII digits.
    #[error("nameplate '{nameplate}' must be numeric, with no spaces (e.g. 7-guitarist-revenge)")]
    BadNameplate {
        /// The offending part before the first `-`.
        nameplate: String,
    },
    /// There is no `-` after the nameplate, or nothing after it.
    #[error("the wormhole code has no words after the nameplate (e.g. 7-guitarist-revenge)")]
    MissingWords,
    /// A word is empty: two `-` in a row, or a trailing `-`.
    #[error("the wormhole code has an empty word (two '-' in a row, or a '-' at the end)")]
    EmptyWord,
}

/// Checks that `code` has the shape `nameplate-word[-word…]`.
///
/// The nameplate must match `^[0-9]+$` (ASCII digits only; Python's `\d` would also take other
/// Unicode digits, which the mailbox server cannot use anyway), the code must contain no whitespace
/// and every word must be non-empty. The words themselves are free-form: a code chosen with
/// `--code` need not use the PGP lists. The Python reference only checks for spaces and the nameplate.
///
/// Note: this rejects the `-0` "no code" mode's `0-`, which has no words.
pub fn validate_code(code: &str) -> Result<(), CodeError> {
    if code.is_empty() {
        return Err(CodeError::Empty);
    }
    if code.chars().any(char::is_whitespace) {
        return Err(CodeError::Whitespace);
    }
    let (nameplate, words) = match code.split_once('-') {
        Some(parts) => parts,
        None => (code, ""),
    };
    if !is_nameplate(nameplate) {
        return Err(CodeError::BadNameplate {
            nameplate: nameplate.to_owned(),
        });
    }
    if words.is_empty() {
        return Err(CodeError::MissingWords);
    }
    if words.split('-').any(str::is_empty) {
        return Err(CodeError::EmptyWord);
    }
    Ok(())
}

/// The nameplate of `code`: the digits before the first `-`.
///
/// `None` when there is no `-` or the part before it is not a valid nameplate. The words are not
/// checked (use [`validate_code`] for that).
pub fn nameplate_of(code: &str) -> Option<&str> {
    let (nameplate, _) = code.split_once('-')?;
    is_nameplate(nameplate).then_some(nameplate)
}

/// Tab-completion candidates for a partially typed code, as full strings, sorted and de-duplicated.
///
/// - No `-` typed yet: every entry of `nameplates` (the server's list) that starts with `typed`,
///   with `-` appended.
/// - After the nameplate's `-`: the last (partial) word is completed from the list for its
///   position (odd list for words 0, 2, …; even list for 1, 3, …). A trailing `-` is appended
///   while more words are expected, i.e. while the completed word is not the `words`-th one. As in the
///   Python reference, a word beyond `words` is still completed (without a trailing `-`), and the
///   earlier words are not checked.
///
/// Matching ignores the case of the partial word; the completed word is lowercase and the text
/// before it is kept as typed. An invalid nameplate gives no candidates.
pub fn completions(typed: &str, nameplates: &[String], words: usize) -> Vec<String> {
    let mut candidates: Vec<String> = match typed.split_once('-') {
        None => nameplates
            .iter()
            .filter(|nameplate| nameplate.starts_with(typed))
            .map(|nameplate| format!("{nameplate}-"))
            .collect(),
        Some((nameplate, typed_words)) => {
            if !is_nameplate(nameplate) {
                return Vec::new();
            }
            let position = typed_words.matches('-').count();
            let partial = typed_words
                .rsplit_once('-')
                .map_or(typed_words, |(_, last)| last);
            let head = &typed[..typed.len() - partial.len()];
            let partial = partial.to_lowercase();
            let tail = if position + 1 < words { "-" } else { "" };
            word_list(position)
                .iter()
                .filter(|word| word.starts_with(&partial))
                .map(|word| format!("{head}{word}{tail}"))
                .collect()
        }
    };
    candidates.sort();
    candidates.dedup();
    candidates
}

/// The list word number `position` (from 0) is drawn from: odd list first, then alternating.
fn word_list(position: usize) -> &'static [&'static str; 256] {
    if position.is_multiple_of(2) {
        &ODD_WORDS
    } else {
        &EVEN_WORDS
    }
}

/// `^[0-9]+$`.
fn is_nameplate(nameplate: &str) -> bool {
    !nameplate.is_empty() && nameplate.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// An RNG that hands out the given bytes in order, then zeros.
    struct Bytes(Vec<u8>, usize);

    impl RngCore for Bytes {
        fn next_u32(&mut self) -> u32 {
            let mut buf = [0u8; 4];
            self.fill_bytes(&mut buf);
            u32::from_le_bytes(buf)
        }

        fn next_u64(&mut self) -> u64 {
            let mut buf = [0u8; 8];
            self.fill_bytes(&mut buf);
            u64::from_le_bytes(buf)
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = self.0.get(self.1).copied().unwrap_or(0);
                self.1 += 1;
            }
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The lists are the PGP word lists of `_wordlist.py`, lowercased, disjoint.
    #[test]
    fn word_lists() {
        assert_eq!(ODD_WORDS[0], "adroitness");
        assert_eq!(ODD_WORDS[0x0a], "apollo");
        assert_eq!(ODD_WORDS[0xff], "yucatan");
        assert_eq!(EVEN_WORDS[0], "aardvark");
        assert_eq!(EVEN_WORDS[0x09], "algol");
        assert_eq!(EVEN_WORDS[0xff], "zulu");
        for list in [&ODD_WORDS, &EVEN_WORDS] {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 256);
            assert!(list
                .iter()
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
        }
        assert!(ODD_WORDS.iter().all(|w| !EVEN_WORDS.contains(w)));
    }

    /// One byte per word: word 0 from the odd list, word 1 from the even list, and so on.
    #[test]
    fn generate_with_fixed_bytes() {
        let mut rng = Bytes(vec![0x00, 0xff, 0x01, 0x0a], 0);
        assert_eq!(generate_words(&mut rng, 4), "adroitness-zulu-adviser-allow");
        assert_eq!(rng.1, 4, "one byte per word");
        assert_eq!(generate_words(&mut Bytes(vec![0xff], 0), 1), "yucatan");
        assert_eq!(generate_words(&mut Bytes(vec![], 0), 0), "");
    }

    /// With a seeded RNG every word comes from the list for its position and the result is a valid
    /// code once a nameplate is put in front; the same seed gives the same words.
    #[test]
    fn generate_with_seeded_rng() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        for count in 1..6 {
            let words = generate_words(&mut rng, count);
            let parts: Vec<&str> = words.split('-').collect();
            assert_eq!(parts.len(), count);
            for (i, word) in parts.iter().enumerate() {
                let list = if i % 2 == 0 { &ODD_WORDS } else { &EVEN_WORDS };
                assert!(list.contains(word), "{word} at {i}");
            }
            assert_eq!(validate_code(&format!("7-{words}")), Ok(()));
        }
        let again = |seed| generate_words(&mut ChaCha20Rng::from_seed(seed), 3);
        assert_eq!(again([1; 32]), again([1; 32]));
    }

    #[test]
    fn validate_accepts() {
        for code in [
            "7-guitarist-revenge",
            "123-a",
            "4-purple-sausages",
            "0-x-y-z",
            "12-Ünïcode",
        ] {
            assert_eq!(validate_code(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn validate_rejects() {
        let bad = |code: &str, nameplate: &str| {
            assert_eq!(
                validate_code(code),
                Err(CodeError::BadNameplate {
                    nameplate: nameplate.to_owned()
                }),
                "{code}"
            );
        };
        assert_eq!(validate_code(""), Err(CodeError::Empty));
        assert_eq!(validate_code("7-foo bar"), Err(CodeError::Whitespace));
        assert_eq!(validate_code("7-foo\tbar"), Err(CodeError::Whitespace));
        assert_eq!(validate_code(" 7-foo"), Err(CodeError::Whitespace));
        assert_eq!(validate_code("7-foo\n"), Err(CodeError::Whitespace));
        bad("abc-foo", "abc");
        bad("-foo", "");
        bad("7a-foo", "7a");
        bad("٣-foo", "٣");
        bad("foo", "foo");
        assert_eq!(validate_code("7"), Err(CodeError::MissingWords));
        assert_eq!(validate_code("7-"), Err(CodeError::MissingWords));
        assert_eq!(validate_code("0-"), Err(CodeError::MissingWords));
        assert_eq!(validate_code("7--foo"), Err(CodeError::EmptyWord));
        assert_eq!(validate_code("7-foo-"), Err(CodeError::EmptyWord));
        assert_eq!(validate_code("7-foo--bar"), Err(CodeError::EmptyWord));
    }

    /// Error messages are for users and do not leak the words of the code.
    #[test]
    fn error_messages() {
        let msg = |code: &str| validate_code(code).err().map(|e| e.to_string());
        assert_eq!(
            msg("x-secret").as_deref(),
            Some("nameplate 'x' must be numeric, with no spaces (e.g. 7-guitarist-revenge)")
        );
        assert!(msg("7-secret word").is_some_and(|m| !m.contains("secret")));
    }

    #[test]
    fn nameplate() {
        assert_eq!(nameplate_of("7-guitarist-revenge"), Some("7"));
        assert_eq!(nameplate_of("123-"), Some("123"));
        assert_eq!(nameplate_of("123"), None);
        assert_eq!(nameplate_of("x-foo"), None);
        assert_eq!(nameplate_of("-foo"), None);
        assert_eq!(nameplate_of(""), None);
    }

    /// Before any `-`: matching nameplates with `-` appended, sorted as strings like Python.
    #[test]
    fn complete_nameplates() {
        let plates = names(&["12", "1", "2", "10", "1"]);
        assert_eq!(completions("", &plates, 2), ["1-", "10-", "12-", "2-"]);
        assert_eq!(completions("1", &plates, 2), ["1-", "10-", "12-"]);
        assert_eq!(completions("12", &plates, 2), ["12-"]);
        assert!(completions("3", &plates, 2).is_empty());
        assert!(completions("", &[], 2).is_empty());
    }

    /// The cases below were checked against `PGPWordList.get_completions` of magic-wormhole 0.24.0
    /// (the nameplate is prefixed by `_rlcompleter.py`).
    #[test]
    fn complete_words_like_python() {
        let none: &[String] = &[];
        assert_eq!(completions("4-pu", none, 2), ["4-puberty-", "4-publisher-"]);
        assert_eq!(completions("4-pu", none, 3), ["4-puberty-", "4-publisher-"]);
        assert_eq!(completions("4-pu", none, 1), ["4-puberty", "4-publisher"]);
        assert_eq!(completions("4-puberty-z", none, 2), ["4-puberty-zulu"]);
        assert_eq!(completions("4-puberty-ab", none, 3), ["4-puberty-absurd-"]);
        assert_eq!(completions("4-puberty-zulu", none, 2), ["4-puberty-zulu"]);

        let first = completions("4-", none, 2);
        assert_eq!(first.len(), 256);
        assert_eq!(first[0], "4-adroitness-");
        assert!(first.iter().all(|c| c.ends_with('-')));

        let second = completions("4-puberty-", none, 2);
        assert_eq!(second.len(), 256);
        assert_eq!(second[0], "4-puberty-aardvark");
        assert!(second.contains(&"4-puberty-zulu".to_owned()));

        // Beyond the expected number of words Python still completes, without a trailing '-'.
        let third = completions("4-puberty-zulu-", none, 2);
        assert_eq!(third.len(), 256);
        assert_eq!(third[0], "4-puberty-zulu-adroitness");

        // Earlier words are not checked: the position alone picks the list.
        assert_eq!(completions("4-pu-zu", none, 2), ["4-pu-zulu"]);
        // A word from the wrong list does not complete.
        assert!(completions("4-zu", none, 2).is_empty());
    }

    /// Unlike Python (which offers nothing for `4-PU`), the partial word matches in any case.
    #[test]
    fn complete_words_case_insensitive() {
        let none: &[String] = &[];
        assert_eq!(completions("4-PU", none, 2), ["4-puberty-", "4-publisher-"]);
        assert_eq!(completions("4-Puberty-ZU", none, 2), ["4-Puberty-zulu"]);
    }

    #[test]
    fn complete_bad_nameplate() {
        let none: &[String] = &[];
        assert!(completions("x-pu", none, 2).is_empty());
        assert!(completions("-pu", none, 2).is_empty());
    }
}
