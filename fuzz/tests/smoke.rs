//! The short seeded pass that CI runs: every target, a few thousand inputs (fewer for the
//! machines, whose inputs mostly run a key agreement or a Noise handshake: see
//! `Target::weight`), seed 1. `bench/fuzz` runs millions. A failure prints, for each panicking
//! input, the seed, the index and the input in hex: `fuzz --target T --seed 1 --index I` replays
//! it.

use wormhole_fuzz::{fuzz, TARGETS};

/// Inputs of a decoder target; a target of weight w runs `INPUTS / w`.
const INPUTS: u64 = 2_000;
const SEED: u64 = 1;

#[test]
fn every_target_survives_a_seeded_pass() {
    let mut replays = String::new();
    for target in TARGETS {
        let report = fuzz(target, SEED, INPUTS / target.weight, None);
        replays.push_str(&report.replay_info());
    }
    assert!(replays.is_empty(), "inputs that panicked:\n{replays}");
}
