"""Fuzz benchmark: millions of seeded, structure-aware inputs per wormhole-protocol decoder.

Builds the `fuzz` binary of the wormhole-fuzz crate with `cargo build --profile fuzz` (the
release profile plus overflow checks and debug assertions: an overflow panics here as it would
in a test), then runs every target (`fuzz --list`), one process at a time, each for `--inputs`
inputs of `--seed` or until its share of the `--budget` runs out: a target gets the budget left
divided by the targets left, so time a fast target does not use goes to the slow ones, and the
machines (weight > 1: a key agreement or a Noise handshake in most inputs) run last. Prints one
Markdown table (target, inputs, panics, inputs/s; the same columns as `fuzz`), the total, and
how to replay each panicking input (seed, index, hex input), which the fuzz binary printed.

Exit status 1 if any input panicked. Not a test: `cargo test -p wormhole-fuzz` is the short
seeded pass CI runs; this is the long one.

Usage: python3 bench/fuzz.py [--inputs 1000000] [--seed 1] [--budget 840] [--target NAME]
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = re.compile(r"^\| (\S+) \| (\d+) \| (\d+) \| (\d+) \|$", re.M)


def build():
    """Builds the fuzz binary; returns its path."""
    subprocess.run(["cargo", "build", "--profile", "fuzz", "-p", "wormhole-fuzz"],
                   cwd=REPO, check=True, stdout=sys.stderr)
    target_dir = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(REPO, target_dir, "fuzz", "fuzz")


def targets(binary):
    """(name, weight) of every target, decoders first, machines last (stable within a weight)."""
    listing = subprocess.run([binary, "--list"], check=True, capture_output=True, text=True)
    found = [(line.split()[0], int(line.split()[1])) for line in listing.stdout.splitlines()]
    return sorted(found, key=lambda t: t[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="per target (1000000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=840.0,
                        help="seconds for the whole run, shared out as it goes (840)")
    parser.add_argument("--target", help="one target only (default: all)")
    args = parser.parse_args()

    binary = build()
    todo = [(name, w) for name, w in targets(binary) if args.target in (None, name)]
    if not todo:
        sys.exit(f"bench/fuzz.py: unknown target {args.target!r}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    print(f"fuzz --inputs {args.inputs} --seed {args.seed}, budget {args.budget:.0f} s; "
          f"commit {commit}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs, {platform.machine()}, load {os.getloadavg()[0]:.1f}\n")
    print("| target | inputs | panics | inputs/s | seconds |")
    print("|---|---:|---:|---:|---:|")
    started = time.monotonic()
    total_inputs = total_panics = 0
    replays = []
    for i, (name, _weight) in enumerate(todo):
        left = args.budget - (time.monotonic() - started)
        share = max(1.0, left / (len(todo) - i))
        t0 = time.monotonic()
        run = subprocess.run([binary, "--target", name, "--inputs", str(args.inputs),
                              "--seed", str(args.seed), "--seconds", f"{share:.1f}"],
                             capture_output=True, text=True)
        seconds = time.monotonic() - t0
        row = ROW.search(run.stdout)
        if row is None:
            sys.exit(f"bench/fuzz.py: {name}: no table row\n{run.stdout}{run.stderr}")
        inputs, panics = int(row.group(2)), int(row.group(3))
        print(f"| {name} | {inputs} | {panics} | {row.group(4)} | {seconds:.1f} |", flush=True)
        total_inputs += inputs
        total_panics += panics
        if run.stderr.strip():
            replays.append(run.stderr.strip())
    elapsed = time.monotonic() - started
    print(f"| **all** | **{total_inputs}** | **{total_panics}** | "
          f"{total_inputs / elapsed:.0f} | {elapsed:.1f} |")
    if replays:
        print("\nPanicking inputs (replay with the command shown):\n")
        print("\n".join(replays))
        sys.exit(1)


if __name__ == "__main__":
    main()
