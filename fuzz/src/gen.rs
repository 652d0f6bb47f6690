//! The input generator: a seeded ChaCha20 stream per input, and mutations of valid samples.
//!
//! Every input comes from `Gen::new(seed, index)` alone, so `(seed, index)` replays it. A
//! target hands the generator its valid samples (wire bytes or JSON values) and gets back either
//! pure random bytes (1 in 16) or a sample with 1 to 4 mutations:
//! - bytes: bit flips, interesting bytes (quotes, newlines, invalid UTF-8 lead bytes),
//!   truncation, deleted and duplicated ranges, random insertions, splices with another sample,
//!   inserted tokens (huge or negative numbers in ASCII, extreme big-endian lengths, invalid UTF-8
//!   sequences, deep nesting), long runs, and overwritten 4-byte big-endian lengths;
//! - JSON: a random node replaced by a value of the wrong type (huge numbers, long or odd
//!   strings, deep nesting), a key removed, a key known from any sample added, a string replaced
//!   by another string of the samples (so tagged enums meet each other's fields); then, one time
//!   in four, byte mutations of the text.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Map, Value};

/// Most bytes of one pure random input, and of one random insertion.
const MAX_RANDOM: usize = 512;
/// Longest run or string inserted ("long strings"): past the 64 KiB limits of the codecs.
const MAX_RUN: usize = 70_000;
/// Deepest nesting inserted: past serde_json's recursion limit (128).
const MAX_DEPTH: usize = 300;

/// Tokens spliced into byte inputs: numbers no integer type holds, signs, exponents, invalid
/// UTF-8 (a lone continuation byte, an overlong NUL, a surrogate, a truncated sequence), JSON
/// escapes of lone surrogates, and extreme 4-byte big-endian lengths.
const TOKENS: &[&[u8]] = &[
    b"18446744073709551616",
    b"-9223372036854775809",
    b"4294967296",
    b"-1",
    b"1e999",
    b"-0.0e-999",
    b"NaN",
    b"\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98",
    b"\\ud800",
    b"\\u0000",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x00\x00\xff\xff",
    b"\x00\x01\x00\x00",
    b"\x00\x40\x00\x01",
];

/// Single bytes that matter to the decoders: delimiters, escapes, `-`, digits, UTF-8 edges.
const BYTES: &[u8] = b"\x00\n\r\t \"\\{}[]:,-/.0789\x7f\x80\xbf\xc0\xe0\xf0\xf8\xff";

/// The generator of one input.
pub struct Gen {
    rng: ChaCha20Rng,
}

impl Gen {
    /// The generator of input `index` of a run seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        rng.set_stream(index);
        Self { rng }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            // Inputs are small: the modulo bias of a u64 is irrelevant here.
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.rng.next_u32().to_le_bytes()[0]
    }

    /// Up to `max` random bytes.
    pub fn random_bytes(&mut self, max: usize) -> Vec<u8> {
        let mut out = vec![0; self.below(max + 1)];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// A length for a run: mostly short, sometimes past every 64 KiB limit.
    fn run_len(&mut self) -> usize {
        if self.one_in(8) {
            self.below(MAX_RUN)
        } else {
            self.below(300)
        }
    }

    /// Pure random bytes (1 in 16), else one of `samples` with 1 to 4 byte mutations.
    pub fn bytes(&mut self, samples: &[Vec<u8>]) -> Vec<u8> {
        if samples.is_empty() || self.one_in(16) {
            return self.random_bytes(MAX_RANDOM);
        }
        let mut data = self.pick(samples).clone();
        for _ in 0..=self.below(4) {
            self.mutate_bytes(&mut data, samples);
        }
        data
    }

    /// Pure random bytes (1 in 16), else the text of one of `samples` with 1 to 4 structural
    /// mutations, and one time in four byte mutations on top.
    pub fn json(&mut self, samples: &[Value]) -> Vec<u8> {
        if samples.is_empty() || self.one_in(16) {
            return self.random_bytes(MAX_RANDOM);
        }
        let value = self.pick(samples).clone();
        self.json_from(value, samples)
    }

    /// `chunk` mutated: as JSON like [`Gen::json`] when it parses, else as bytes like
    /// [`Gen::bytes`]; one time in eight, [`Gen::json`] of the samples instead.
    pub fn json_like(&mut self, chunk: &[u8], samples: &[Value]) -> Vec<u8> {
        if self.one_in(8) {
            return self.json(samples);
        }
        match serde_json::from_slice(chunk) {
            Ok(value) => self.json_from(value, samples),
            Err(_) => self.bytes(&[chunk.to_vec()]),
        }
    }

    /// `value` with 1 to 4 structural mutations (keys and strings from `samples`), as text, with
    /// byte mutations on top one time in four.
    fn json_from(&mut self, mut value: Value, samples: &[Value]) -> Vec<u8> {
        for _ in 0..=self.below(4) {
            self.mutate_json(&mut value, samples);
        }
        let mut text = value.to_string().into_bytes();
        if self.one_in(4) {
            let texts: Vec<Vec<u8>> = samples.iter().map(|v| v.to_string().into_bytes()).collect();
            for _ in 0..=self.below(2) {
                self.mutate_bytes(&mut text, &texts);
            }
        }
        text
    }

    /// `stream` cut into 1 to 8 chunks at random places (empty chunks included), as a socket
    /// may deliver it.
    pub fn split(&mut self, stream: &[u8]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = (0..self.below(8))
            .map(|_| self.below(stream.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut chunks = Vec::with_capacity(cuts.len() + 1);
        let mut from = 0;
        for cut in cuts {
            chunks.push(stream[from..cut].to_vec());
            from = cut;
        }
        chunks.push(stream[from..].to_vec());
        chunks
    }

    /// Chunks of a valid sequence, mutated as a sequence: some dropped, repeated or swapped, some
    /// replaced by a mutation of any chunk of the sequence (`mutate`), sometimes with extra ones.
    pub fn sequence(
        &mut self,
        valid: &[Vec<u8>],
        mut mutate: impl FnMut(&mut Self, &[u8]) -> Vec<u8>,
    ) -> Vec<Vec<u8>> {
        let mut chunks = valid.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(chunks.len());
            match self.below(5) {
                0 if !chunks.is_empty() => {
                    chunks.remove(at);
                }
                1 if !chunks.is_empty() => chunks.insert(at, chunks[at].clone()),
                2 if chunks.len() > 1 => {
                    let other = self.below(chunks.len());
                    chunks.swap(at, other);
                }
                3 if !valid.is_empty() => {
                    let base = self.pick(valid).clone();
                    let extra = mutate(self, &base);
                    chunks.insert(at, extra);
                }
                _ if !chunks.is_empty() => chunks[at] = mutate(self, &chunks[at]),
                _ => chunks.push(mutate(self, &[])),
            }
        }
        chunks
    }

    /// One byte-level mutation of `data`; `samples` are the splice partners.
    pub fn mutate_bytes(&mut self, data: &mut Vec<u8>, samples: &[Vec<u8>]) {
        let len = data.len();
        let at = self.below(len + 1);
        match self.below(11) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << self.below(8),
            1 if len > 0 => data[at.min(len - 1)] = *self.pick(BYTES),
            2 => data.truncate(at),
            3 => {
                let end = at + self.below(len - at + 1);
                data.drain(at..end);
            }
            4 => {
                let end = at + self.below((len - at).min(64) + 1);
                let copy = data[at..end].to_vec();
                splice(data, at, &copy);
            }
            5 => {
                let max = *self.pick(&[1, 4, 32]);
                let insert = self.random_bytes(max);
                splice(data, at, &insert);
            }
            6 if !samples.is_empty() => {
                let other = self.pick(samples);
                let from = self.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            7 => {
                let token = self.pick(TOKENS);
                splice(data, at, token);
            }
            8 => {
                let run = vec![*self.pick(BYTES); self.run_len()];
                splice(data, at, &run);
            }
            9 if len >= 4 => {
                let at = at.min(len - 4);
                let token = self.pick(&TOKENS[TOKENS.len() - 6..]);
                data[at..at + 4].copy_from_slice(token);
            }
            _ => {
                let depth = self.below(MAX_DEPTH);
                let open = if self.one_in(2) { b'[' } else { b'{' };
                splice(data, at, &vec![open; depth]);
            }
        }
    }

    /// One structural mutation of a random node of `value`; `samples` give the keys and
    /// strings that may be added.
    pub fn mutate_json(&mut self, value: &mut Value, samples: &[Value]) {
        let mut n = self.below(count_nodes(value));
        let Some(node) = nth_node(value, &mut n) else {
            return;
        };
        match self.below(4) {
            0 => *node = self.odd_value(),
            1 => match node {
                Value::Object(map) if !map.is_empty() => {
                    let key = self.pick(&map.keys().cloned().collect::<Vec<_>>()).clone();
                    map.remove(&key);
                }
                Value::Array(items) if !items.is_empty() => {
                    items.remove(self.below(items.len()));
                }
                _ => *node = Value::Null,
            },
            2 => {
                let keys = collect(samples, |v| {
                    v.as_object().map(|m| m.keys().cloned().collect())
                });
                let key = self.pick_or(&keys, "type".to_owned());
                let value = self.sample_value(samples);
                match node {
                    Value::Object(map) => {
                        map.insert(key, value);
                    }
                    Value::Array(items) => items.push(value),
                    _ => *node = Value::Object(Map::from_iter([(key, value)])),
                }
            }
            _ => *node = self.sample_value(samples),
        }
    }

    /// A value of any type that decoders rarely expect.
    fn odd_value(&mut self) -> Value {
        match self.below(12) {
            0 => Value::Null,
            1 => Value::Bool(self.one_in(2)),
            2 => json!(u64::MAX),
            3 => json!(i64::MIN),
            4 => json!(f64::MAX),
            5 => json!(-1),
            6 => json!(0.5),
            7 => json!("x".repeat(self.run_len())),
            8 => json!(*self.pick(&[
                "",
                "\u{0}",
                "\u{feff}",
                "../../etc/passwd",
                "C:\\x",
                "\u{e9}\u{1f600}",
                "0",
                "-",
            ])),
            9 => json!([]),
            10 => json!({}),
            _ => {
                let mut deep = Value::Null;
                for _ in 0..self.below(MAX_DEPTH) {
                    // Not `json!`: it would copy `deep` at every level.
                    deep = if self.one_in(2) {
                        Value::Array(vec![deep])
                    } else {
                        Value::Object(Map::from_iter([("a".to_owned(), deep)]))
                    };
                }
                deep
            }
        }
    }

    /// A node of any sample (a whole sample, an object, a string, a number ...).
    fn sample_value(&mut self, samples: &[Value]) -> Value {
        let Some(sample) = (!samples.is_empty()).then(|| self.pick(samples)) else {
            return Value::Null;
        };
        let mut sample = sample.clone();
        let mut n = self.below(count_nodes(&sample));
        nth_node(&mut sample, &mut n).map_or(Value::Null, Value::take)
    }

    fn pick_or<T: Clone>(&mut self, items: &[T], default: T) -> T {
        if items.is_empty() {
            default
        } else {
            self.pick(items).clone()
        }
    }
}

/// Inserts `insert` into `data` at `at`.
fn splice(data: &mut Vec<u8>, at: usize, insert: &[u8]) {
    data.splice(at..at, insert.iter().copied());
}

/// Every item `f` finds in any node of the samples.
fn collect<T>(samples: &[Value], f: impl Fn(&Value) -> Option<Vec<T>>) -> Vec<T> {
    fn walk<T>(value: &Value, f: &impl Fn(&Value) -> Option<Vec<T>>, out: &mut Vec<T>) {
        out.extend(f(value).unwrap_or_default());
        match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, f, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, f, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    samples.iter().for_each(|v| walk(v, &f, &mut out));
    out
}

/// The number of nodes of `value` (itself included).
fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `n`-th node of `value` in pre-order (0 is `value` itself).
fn nth_node<'a>(value: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(value);
    }
    *n -= 1;
    match value {
        Value::Array(items) => items.iter_mut().find_map(|v| nth_node(v, n)),
        Value::Object(map) => map.values_mut().find_map(|v| nth_node(v, n)),
        _ => None,
    }
}
