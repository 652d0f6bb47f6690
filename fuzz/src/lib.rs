//! Fuzzing of every wormhole-protocol decoder that takes outside bytes, on the stable toolchain.
//!
//! No `cargo fuzz` (it needs nightly): each [`Target`] has a small structure-aware generator
//! ([`gen::Gen`], seeded ChaCha20, mutations of valid samples plus pure random bytes) and a
//! runner that feeds one input to the decoders or machines. [`fuzz`] runs a target for N inputs
//! and catches every panic with `catch_unwind`, keeping the seed, the index and the input (hex)
//! so that it can be replayed: `fuzz --target T --seed S --index I` regenerates it,
//! `fuzz --target T --replay HEX` runs the bytes.
//!
//! An [`Input`] is a list of chunks: one frame, line or name for the decoders, one socket read
//! for the byte streams, one input (first byte: which) for the machines. The targets are in
//! [`TARGETS`]; `src/main.rs` is the command line, `tests/smoke.rs` the seeded pass CI runs.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub mod gen;
mod targets;

pub use targets::TARGETS;

use gen::Gen;

/// One input: the chunks a target feeds in, in order.
pub type Input = Vec<Vec<u8>>;

/// Panics kept per run (the count goes on).
pub const MAX_KEPT_PANICS: usize = 10;

/// One fuzz target: what it feeds, its generator and its runner.
pub struct Target {
    /// Its name on the command line.
    pub name: &'static str,
    /// The decoders or machines it feeds.
    pub feeds: &'static str,
    /// Makes one input.
    pub generate: fn(&mut Gen) -> Input,
    /// Feeds one input; must not panic.
    pub run: fn(&Input),
    /// What one input costs against a decoder's (1): the machines run a key agreement or a
    /// Noise handshake in most inputs. CI's seeded pass divides its input count by this.
    pub weight: u64,
}

/// One input that panicked.
#[derive(Clone, Debug)]
pub struct Panic {
    /// Its index in the run (with the run's seed, it regenerates the input).
    pub index: u64,
    /// The panic message and location.
    pub message: String,
    /// The input.
    pub input: Input,
}

/// What a run of one target found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target's name.
    pub target: &'static str,
    /// The seed of the run.
    pub seed: u64,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs that panicked.
    pub panic_count: u64,
    /// The first [`MAX_KEPT_PANICS`] of them.
    pub panics: Vec<Panic>,
    /// Wall time of the run (generation included).
    pub elapsed: Duration,
}

impl Report {
    /// Inputs per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// How to replay each kept panic, one paragraph each.
    #[must_use]
    pub fn replay_info(&self) -> String {
        self.panics
            .iter()
            .map(|p| {
                format!(
                    "target {} seed {} index {}: {}\n  replay: fuzz --target {} --seed {} --index {}\n  input: {}\n",
                    self.target,
                    self.seed,
                    p.index,
                    p.message,
                    self.target,
                    self.seed,
                    p.index,
                    to_hex(&p.input)
                )
            })
            .collect()
    }
}

/// The target called `name`.
#[must_use]
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Input `index` of `target` in a run seeded with `seed`.
#[must_use]
pub fn generate(target: &Target, seed: u64, index: u64) -> Input {
    (target.generate)(&mut Gen::new(seed, index))
}

/// Runs inputs `0..inputs` of `target` from `seed`, catching and recording every panic; with a
/// `time_limit`, stops after the first input that ends past it (the report says how many ran).
pub fn fuzz(
    target: &'static Target,
    seed: u64,
    inputs: u64,
    time_limit: Option<Duration>,
) -> Report {
    let started = Instant::now();
    let mut report = Report {
        target: target.name,
        seed,
        inputs: 0,
        panic_count: 0,
        panics: Vec::new(),
        elapsed: Duration::ZERO,
    };
    with_quiet_panics(|| {
        for index in 0..inputs {
            if index % 256 == 0 && time_limit.is_some_and(|limit| started.elapsed() > limit) {
                break;
            }
            report.inputs += 1;
            let input = generate(target, seed, index);
            if let Err(message) = catch(target, &input) {
                report.panic_count += 1;
                if report.panics.len() < MAX_KEPT_PANICS {
                    report.panics.push(Panic {
                        index,
                        message,
                        input,
                    });
                }
            }
        }
    });
    report.elapsed = started.elapsed();
    report
}

thread_local! {
    /// The message of the last panic on this thread, set by the quiet hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn catch(target: &Target, input: &Input) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|_| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "panicked".to_owned())
    })
}

/// Runs `f` with a panic hook that records the message instead of printing it (a run may meet
/// thousands), then restores the previous hook.
fn with_quiet_panics(f: impl FnOnce()) {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let message = match info.location() {
            Some(at) => format!("panicked at {at}: {}", payload_text(info.payload())),
            None => format!("panicked: {}", payload_text(info.payload())),
        };
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(message));
    }));
    f();
    panic::set_hook(previous);
}

fn payload_text(payload: &dyn std::any::Any) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string payload)")
}

/// An input as hex, chunks separated by commas.
#[must_use]
pub fn to_hex(input: &Input) -> String {
    input.iter().map(hex::encode).collect::<Vec<_>>().join(",")
}

/// The input that [`to_hex`] wrote.
pub fn from_hex(text: &str) -> Result<Input, hex::FromHexError> {
    text.trim().split(',').map(hex::decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on inputs whose byte is 0: about 1 in 256.
    static PANICKY: Target = Target {
        name: "panicky",
        feeds: "a test",
        generate: |g| vec![vec![g.byte()]],
        run: |input| assert!(input[0][0] != 0, "zero byte"),
        weight: 1,
    };

    /// The harness catches every panic, keeps its message and input, and the seed and index
    /// regenerate that input.
    #[test]
    fn panics_are_caught_recorded_and_replayable() {
        let report = fuzz(&PANICKY, 5, 4_000, None);
        assert_eq!(report.inputs, 4_000);
        assert!(report.panic_count > 0);
        let panic = &report.panics[0];
        assert!(panic.message.contains("zero byte"), "{}", panic.message);
        assert_eq!(generate(&PANICKY, 5, panic.index), panic.input);
        assert_eq!(
            from_hex(&to_hex(&panic.input)).ok().as_ref(),
            Some(&panic.input)
        );
        assert!(report.replay_info().contains(&format!(
            "fuzz --target panicky --seed 5 --index {}",
            panic.index
        )));
        assert!(fuzz(&PANICKY, 5, 4_000, Some(Duration::ZERO)).inputs < 4_000);
    }
}
