//! `fuzz`: runs the wormhole-protocol fuzz targets and prints a Markdown table (target, inputs,
//! panics, inputs/s), then how to replay each panic. Exits 1 if any input panicked.
//!
//! ```text
//! fuzz --target all --inputs 1000000 --seed 1     # every target, a million inputs each
//! fuzz --list                                      # the targets, their weights, what they feed
//! fuzz --target codes --seed 1 --index 42          # input 42 of that run: print it, run it
//! fuzz --target codes --replay 372d,02             # run this input (hex chunks, commas)
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use wormhole_fuzz::{fuzz, generate, target, to_hex, Input, Target, TARGETS};

/// Seeded, structure-aware fuzzing of the wormhole-protocol decoders.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A target name, or `all`.
    #[arg(long, default_value = "all")]
    target: String,
    /// Inputs per target.
    #[arg(long, default_value_t = 100_000)]
    inputs: u64,
    /// Seed of the run (input i of seed s is always the same input).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop a target after this many seconds, even short of --inputs (the table says how many
    /// ran).
    #[arg(long)]
    seconds: Option<f64>,
    /// Replay input INDEX of the seed's run: print it, then run it (a panic is not caught).
    #[arg(long, conflicts_with = "replay")]
    index: Option<u64>,
    /// Replay this input: its chunks in hex, separated by commas.
    #[arg(long)]
    replay: Option<String>,
    /// List the targets: name, weight (cost of an input against a decoder's), what it feeds.
    #[arg(long)]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for t in TARGETS {
            println!("{:<20} {:>2}  {}", t.name, t.weight, t.feeds);
        }
        return Ok(());
    }
    let targets: Vec<&'static Target> = if args.target == "all" {
        TARGETS.iter().collect()
    } else {
        vec![target(&args.target).with_context(|| {
            format!(
                "unknown target {:?} (`fuzz --list` names them)",
                args.target
            )
        })?]
    };
    if let Some(index) = args.index {
        let [t] = targets[..] else {
            bail!("--index replays one target: name it with --target");
        };
        return run_one(t, &generate(t, args.seed, index));
    }
    if let Some(hex) = &args.replay {
        let [t] = targets[..] else {
            bail!("--replay replays one target: name it with --target");
        };
        let input = wormhole_fuzz::from_hex(hex).context("--replay takes hex chunks")?;
        return run_one(t, &input);
    }
    let time_limit = args.seconds.map(Duration::from_secs_f64);
    println!("| target | inputs | panics | inputs/s |");
    println!("|---|---:|---:|---:|");
    let mut replays = String::new();
    for t in targets {
        let report = fuzz(t, args.seed, args.inputs, time_limit);
        println!(
            "| {} | {} | {} | {:.0} |",
            report.target,
            report.inputs,
            report.panic_count,
            report.rate()
        );
        replays.push_str(&report.replay_info());
    }
    if !replays.is_empty() {
        eprint!("\n{replays}");
        std::process::exit(1);
    }
    Ok(())
}

/// Runs one input without catching its panic: the default hook prints it (with a backtrace
/// under `RUST_BACKTRACE=1`) and the process fails.
fn run_one(t: &Target, input: &Input) -> anyhow::Result<()> {
    println!("target {}: input {}", t.name, to_hex(input));
    (t.run)(input);
    println!("no panic");
    Ok(())
}
