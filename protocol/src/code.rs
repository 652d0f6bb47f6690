//! Wormhole codes: the PGP word lists, random code words, parsing and tab completion.
//!
//! Mirrors `src/wormhole/_wordlist.py` and the completion half of `_input.py` / `_rlcompleter.py`.

use rand_core::RngCore;

/// Picks `count` random words, alternating the odd (3-syllable) and even (2-syllable) PGP lists,
/// starting with the odd list, joined by `-`: e.g. `guitarist-revenge`.
pub fn generate_words(_rng: &mut dyn RngCore, _count: usize) -> String {
    todo!()
}
