"""File benchmark: one file of random data over loopback, direct and relayed, per sender/receiver pair.

One run of this script starts ONE reference mailbox server (magic-wormhole-mailbox-server, in
memory) and ONE reference transit relay (magic-wormhole-transit-relay), both on 127.0.0.1, writes
one file of `--size` MiB of random data (os.urandom) into a temporary folder (it stays in the page
cache; its SHA-256 is computed while it is written), then measures, for both modes

    direct    both sides listen on 127.0.0.1 (WORMHOLED_HINT_ADDRESSES / patched find_addresses);
              the transit helper is a closed port on 127.0.0.1, so no relay can be used
    relay     `--no-listen` on both sides and `--transit-helper tcp:127.0.0.1:<relay port>`, so
              the data goes through the local transit relay

and the pairs

    ours   -> ours     wormholectl send (daemon S) -> wormholectl receive (daemon R)
    python -> python   reference CLI (tests/python/wormhole_cli.py) on both sides
    ours   -> python   wormholectl send (daemon S) -> reference CLI receive
    python -> ours     reference CLI send          -> wormholectl receive (daemon R)

Every ours side gets a FRESH wormholed per run (started, and `wormholed ready`, before the clock;
terminated by its PID after the run), so its VmHWM is the peak of that run alone. Daemons are
started with WORMHOLED_LOG=info,wormholed::transit=debug so that their "transit connected" line
names the connection; the benchmark fails unless every side of every run used the expected kind
of connection (relay in relay mode, direct otherwise; Python sides print it in "Sending (..)" /
"Receiving (..)").

One run: a fresh fixed code `<nameplate>-bench-files` (distinct nameplate per run). The clock
starts, the receiver is spawned (`receive --accept-file -o OUT CODE`, ours with `--json`, both
with `--hide-progress`), then at once the sender (`send --hide-progress --code CODE FILE`).
Every client runs under `/usr/bin/time -f %M` (peak RSS; GNU time forks the client itself, so the
figure is not polluted by this script's memory). This script reads the receiver's output as it
comes and stamps each line with time.perf_counter() when it reads it:

    data phase, ours receiver   from the FIRST `progress` event (sent by the daemon when its first
                                record, 256 KiB, has been received) to the `received` event (the
                                file complete under its final name: all records received,
                                decrypted, hashed, written, renamed, ack sent); bytes = total minus
                                the `done` of that first event
    data phase, Python receiver from the "Receiving (<connection>).." line (printed when Transit
                                is connected, just before the first record) to the "Received file
                                written to: .." line (all records received, decrypted, hashed,
                                written, file closed and renamed; the ack follows); bytes = total

So both end when the file is complete under its final name, and both start at the first data
(Python's start is at most the latency of one record earlier, well under 0.1 % of a 1 GiB run).
MB/s = 10^6 bytes per second. Wall time: from the spawn of the receiver until both clients have
exited (code exchange, key agreement and Transit setup included).

CPU seconds per side: an ours side is its wormholed's utime+stime from /proc/<pid>/stat (which
includes threads that have already ended) read before the spawn and after both clients exited,
plus the wormholectl client's user+system time from wait4(2); a Python side is the CLI process's
user+system time from wait4 (on GNU time, which has waited for it). Peak RSS per side: an ours side
is its daemon's VmHWM from /proc/<pid>/status after the run (the client's own peak, from GNU time,
is listed separately); a Python side is GNU time's %M. The transit relay's CPU is read from its
/proc/<pid>/stat around each run. While a run goes on, every wormholed's threads are sampled about
every 0.1 s from /proc/<pid>/task/*/stat, which gives the CPU per thread (a thread that ends loses
at most its last 0.1 s).

The received file's SHA-256 (and size) is checked after every run, then the file is removed.
Every (mode, pair) gets one discarded warm-up run with a 1 MiB file, then `--runs` timed runs;
the (mode, pair) combinations are interleaved round-robin (run i of each, rotated order, then run
i+1), so load drift spreads over all of them alike. The table gives the median and min-max.

Everything is bounded (`--timeout` per wait) and loopback only; every process this script starts
is killed by its PID when it ends, however it ends; the temporary folder is removed.

Usage: .venv/bin/python bench/files.py --bin-dir target/release [--size 1024] [--runs 3]
"""

import argparse
import hashlib
import json
import os
import re
import selectors
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (process plumbing, World, /proc readings, GNU time)
from _common import (  # noqa: E402
    GNU_TIME, NO_TRANSIT_HELPER, Failed, ThreadSampler, f0, f1, f2, fmt_spread, forget,
    read_text, reap, side_name, spawn, stat_cpu, vm_hwm_mib)

WARMUP_BYTES = 1 << 20
DAEMON_LOG = "info,wormholed::transit=debug"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
DESCRIPTION = re.compile(r"description=(\S+)")
PY_CONNECTION = re.compile(r"^(?:Receiving|Sending) \((.*)\)\.\.$", re.M)

PAIRS = [
    ("ours -> ours", "ours", "ours"),
    ("python -> python", "py", "py"),
    ("ours -> python", "ours", "py"),
    ("python -> ours", "py", "ours"),
]
MODES = ["direct", "relay"]


class World(common.World):
    def __init__(self, args):
        super().__init__(args, "files", "wormholectl", "wormholed")
        if not os.access(GNU_TIME, os.X_OK):
            raise Failed(f"{GNU_TIME} (GNU time) is needed for the clients' peak RSS")
        self.mailbox = self.start_mailbox("mailbox")
        self.relay = self.start_server("transit_relay.py", "relay", "relay")
        self.helper = f"tcp:127.0.0.1:{self.relay[1]}"
        self.py_env = self.python_home()

    def make_file(self, name, size):
        """size bytes of random data at tmp/name; returns (path, sha256 hex)."""
        path = os.path.join(self.tmp.name, name)
        h = hashlib.sha256()
        left = size
        with open(path, "wb") as f:
            while left:
                chunk = os.urandom(min(left, 16 << 20))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        return path, h.hexdigest()

    def transit_flags(self, mode):
        """Flags of send/receive (after the subcommand) and the helper for this mode."""
        if mode == "relay":
            return ["--no-listen"], self.helper
        return [], NO_TRANSIT_HELPER

    def sender(self, kind, mode, code, path):
        flags, helper = self.transit_flags(mode)
        if kind == "py":
            return self.reference_cli(helper, "send", "--hide-progress", *flags, "--code", code,
                                      path)
        return [self.ctl, "--transit-helper", helper, "send", "--hide-progress", *flags,
                "--code", code, path]

    def receiver(self, kind, mode, code, out):
        flags, helper = self.transit_flags(mode)
        if kind == "py":
            return self.reference_cli(helper, "receive", "--hide-progress", "--accept-file",
                                      *flags, "-o", out, code)
        return [self.ctl, "--json", "--transit-helper", helper, "receive", "--hide-progress",
                "--accept-file", *flags, "-o", out, code]


def wrap(argv):
    return [*common.RSS_WRAP, *argv]


def one_run(world, mode, s_kind, r_kind, tag, src, src_sha, size):
    """One transfer; returns a dict of measurements."""
    args = world.args
    code = world.next_code()
    out = os.path.join(world.tmp.name, f"{tag}.received")
    daemons = {}
    for side, kind in (("send", s_kind), ("recv", r_kind)):
        if kind == "ours":
            proc, env, _sock, log = world.fresh_daemon(f"{tag}.{side}", DAEMON_LOG)
            daemons[side] = (proc, env, log)
    errs = {side: os.path.join(world.tmp.name, f"{tag}.{side}.err") for side in ("send", "recv")}
    recv_argv = wrap(world.receiver(r_kind, mode, code, out))
    send_argv = wrap(world.sender(s_kind, mode, code, src))
    recv_env = daemons["recv"][1] if r_kind == "ours" else world.py_env
    send_env = daemons["send"][1] if s_kind == "ours" else world.py_env

    samplers = {side: ThreadSampler(d[0].pid) for side, d in daemons.items()}
    for s in samplers.values():
        s.sample()
    base_threads = {side: dict(s.seen) for side, s in samplers.items()}
    daemon_cpu0 = {side: stat_cpu(f"/proc/{d[0].pid}/stat")[0] for side, d in daemons.items()}
    relay_cpu0 = stat_cpu(f"/proc/{world.relay[0].pid}/stat")[0]

    # The receiver's lines worth stamping: ours --json on stdout, Python's messages on stderr.
    t0 = time.perf_counter()
    if r_kind == "ours":
        receiver = spawn(recv_argv, env=recv_env, cwd=world.tmp.name, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=open(errs["recv"], "wb"))
        watched = receiver.stdout
    else:
        receiver = spawn(recv_argv, env=recv_env, cwd=world.tmp.name, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        watched = receiver.stderr
    sender = spawn(send_argv, env=send_env, cwd=world.tmp.name, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=open(errs["send"], "wb"))
    lines = []  # (perf_counter, line)
    raw = b""
    buf = b""
    deadline = time.monotonic() + args.timeout
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(watched.fileno(), selectors.EVENT_READ)
            open_ = True
            while open_:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failed(f"{tag}: the receiver did not finish within {args.timeout} s")
                for _key, _ in sel.select(min(left, 0.1)):
                    chunk = os.read(watched.fileno(), 65536)
                    now = time.perf_counter()
                    if not chunk:
                        open_ = False
                        break
                    raw += chunk
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        lines.append((now, line.decode(errors="replace")))
                for s in samplers.values():
                    s.sample()
        r_status, r_cpu, _ = reap(receiver, args.timeout, f"{tag} receiver")
        s_status, s_cpu, _ = reap(sender, args.timeout, f"{tag} sender")
        wall = time.perf_counter() - t0
        for s in samplers.values():
            s.sample()
        if r_kind == "py":
            with open(errs["recv"], "wb") as f:
                f.write(raw)
        if r_status or s_status:
            raise Failed(f"{tag}: exit status receiver {r_status}, sender {s_status}")
        daemon_cpu = {side: stat_cpu(f"/proc/{d[0].pid}/stat")[0] - daemon_cpu0[side]
                      for side, d in daemons.items()}
        hwm = {side: vm_hwm_mib(d[0].pid) for side, d in daemons.items()}
        relay_cpu = stat_cpu(f"/proc/{world.relay[0].pid}/stat")[0] - relay_cpu0
        threads = {side: s.by_name(base_threads[side]) for side, s in samplers.items()}
    except Failed as e:
        details = "".join(f"\n--- {p}:\n{read_text(p)[-3000:]}" for p in errs.values()
                          if os.path.exists(p))
        details += "".join(f"\n--- daemon {side}:\n{read_text(d[2])[-3000:]}"
                           for side, d in daemons.items())
        if r_kind == "py":
            details += f"\n--- receiver stderr:\n{raw.decode(errors='replace')[-3000:]}"
        raise Failed(f"{e}{details}") from None
    finally:
        common.stop([d[0] for d in daemons.values()], args.timeout)
    forget(receiver, sender)
    stderr = {side: read_text(p) for side, p in errs.items()}
    for side in ("send", "recv"):
        common.guard_stderr(errs[side])

    # The data phase, from the receiver's stamped lines.
    if r_kind == "ours":
        first = end = None
        for t, line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "progress" and first is None:
                first = (t, ev["done"])
                if ev["total"] != size:
                    raise Failed(f"{tag}: progress total {ev['total']}, expected {size}")
            elif ev.get("event") == "received":
                end = t
            elif ev.get("event") == "error":
                raise Failed(f"{tag}: receiver error event {line}")
        if first is None or end is None:
            raise Failed(f"{tag}: no progress/received events: {lines!r}")
        data_s, data_bytes = end - first[0], size - first[1]
    else:
        start = end = None
        for t, line in lines:
            if line.startswith("Receiving (") and start is None:
                start = t
            elif line.startswith("Received file written to"):
                end = t
        if start is None or end is None:
            raise Failed(f"{tag}: no 'Receiving (' / 'Received file written to' lines: {lines!r}")
        data_s, data_bytes = end - start, size

    # The connection each side used must be the mode's kind.
    descriptions = {}
    for side, kind in (("send", s_kind), ("recv", r_kind)):
        if kind == "ours":
            found = [m.group(1) for line in ANSI.sub("", read_text(daemons[side][2])).splitlines()
                     if "transit connected" in line and (m := DESCRIPTION.search(line))]
        else:
            found = PY_CONNECTION.findall(stderr[side])
        if len(found) != 1:
            raise Failed(f"{tag}: {side} side: expected one connection description, got {found}")
        descriptions[side] = found[0]
        if ("relay" in found[0]) != (mode == "relay"):
            raise Failed(f"{tag}: {side} side used {found[0]!r} in {mode} mode")

    # The received file.
    h = hashlib.sha256()
    got = 0
    with open(out, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            got += len(chunk)
    os.remove(out)
    if got != size or h.hexdigest() != src_sha:
        raise Failed(f"{tag}: received {got} bytes with SHA-256 {h.hexdigest()}, "
                     f"expected {size} bytes with {src_sha}")

    cpu = {"send": s_cpu, "recv": r_cpu}
    client_rss = {side: common.peak_rss(stderr[side].encode()) for side in ("send", "recv")}
    rss = dict(client_rss)
    for side in daemons:
        cpu[side] += daemon_cpu[side]
        rss[side] = hwm[side]
    for side, p in errs.items():
        os.remove(p)
    for d in daemons.values():
        os.remove(d[2])
    return {
        "mbps": data_bytes / data_s / 1e6,
        "data_s": data_s,
        "wall": wall,
        "cpu": cpu,
        "rss": rss,
        "client_rss": client_rss,
        "relay_cpu": relay_cpu,
        "threads": threads,
        "descriptions": descriptions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="folder with wormholed and wormholectl")
    parser.add_argument("--size", type=int, default=1024,
                        help="size of the file in MiB (default 1024; 64 for a quick run)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per pair and mode "
                        "(default 3)")
    common.add_timeout(parser, 120.0)
    common.add_python(parser)
    args = common.parse_args(parser)

    common.install_cleanup()

    load_before = os.getloadavg()
    world = World(args)
    size = args.size << 20
    step = common.stepper("bench/files.py")
    step(f"writing {args.size} MiB of random data")
    src, src_sha = world.make_file("source.bin", size)
    small, small_sha = world.make_file("warmup.bin", WARMUP_BYTES)

    combos = [(mode, name, s, r) for mode in MODES for name, s, r in PAIRS]
    for mode, name, s, r in combos:
        step(f"warm-up {mode} {name}")
        one_run(world, mode, s, r, f"warmup-{mode}-{s}-{r}", small, small_sha, WARMUP_BYTES)

    results = {(mode, name): [] for mode, name, _, _ in combos}
    for i in range(args.runs):
        k = (i * 3) % len(combos)
        for mode, name, s, r in combos[k:] + combos[:k]:
            step(f"run {i + 1}/{args.runs} {mode} {name}")
            res = one_run(world, mode, s, r, f"run{i}-{mode}-{s}-{r}", src, src_sha, size)
            step(f"  {res['mbps']:.0f} MB/s, wall {res['wall']:.2f} s, "
                 f"{res['descriptions']['send']} / {res['descriptions']['recv']}")
            results[(mode, name)].append(res)
    load_after = os.getloadavg()

    print(f"File: {args.size} MiB of random data; median of {args.runs} runs, "
          f"(min–max) in brackets.\n")
    print("| mode | sender -> receiver | data phase MB/s | vs python -> python | wall s "
          "| CPU s send / receive | peak RSS MiB send / receive (max) | transit relay CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    verdict = []
    for mode, name, s, r in combos:
        runs = results[(mode, name)]
        mbps = [x["mbps"] for x in runs]
        base = statistics.median(x["mbps"] for x in results[(mode, "python -> python")])
        ratio = statistics.median(mbps) / base
        cpu = " / ".join(f2(statistics.median(x["cpu"][side] for x in runs))
                         for side in ("send", "recv"))
        rss = " / ".join(f1(max(x["rss"][side] for x in runs)) for side in ("send", "recv"))
        relay = f2(statistics.median(x["relay_cpu"] for x in runs)) if mode == "relay" else "-"
        print(f"| {mode} | {name} | {fmt_spread(mbps, f0)} | {ratio:.2f}× "
              f"| {fmt_spread([x['wall'] for x in runs], f2)} | {cpu} | {rss} | {relay} |")
        if name == "ours -> ours":
            verdict.append((mode, ratio, max(max(x["rss"].values()) for x in runs)))
    print()
    print("Ours sides: CPU = wormholed + wormholectl, peak RSS = wormholed's VmHWM (fresh daemon "
          "per side per run). wormholectl's own peak RSS (GNU time %M), max over runs: "
          + ", ".join(
              f"{mode} {name} " + " / ".join(
                  f1(max(x["client_rss"][side] for x in results[(mode, name)]))
                  if kind == "ours" else "-" for side, kind in (("send", s), ("recv", r)))
              for mode, name, s, r in combos if "ours" in (s, r))
          + " MiB.")
    print()
    print("wormholed CPU s per thread (mean per run, threads sampled every 0.1 s; "
          "'tokio-runtime-w' = the async runtime's workers):\n")
    for mode, name, s, r in combos:
        for side, kind in (("send", s), ("recv", r)):
            if kind != "ours":
                continue
            print(f"- {mode}, {name}, {side_name(side)}: "
                  f"{common.thread_cpu(results[(mode, name)], side)}")
    print()
    for mode, ratio, peak in verdict:
        print(f"- goal, {mode}: ours -> ours is {ratio:.2f}× python -> python "
              f"({'met' if ratio >= 3 else 'NOT met'}: ≥ 3×); peak RSS of an ours side "
              f"{peak:.1f} MiB ({'met' if peak < 32 else 'NOT met'}: < 32 MiB)")
    print(f"- runs: {args.runs} timed per pair and mode after 1 warm-up (1 MiB), interleaved "
          f"round-robin; timeout {args.timeout:g} s per wait; SHA-256 of every received file "
          f"checked")
    print(common.machine_line(load_before, load_after))
    print("- raw data-phase MB/s per pair, in run order:")
    for (mode, name), runs in results.items():
        print(f"  - {mode}, {name}: {' '.join(f0(x['mbps']) for x in runs)}")


if __name__ == "__main__":
    common.run(main, "bench/files.py")
