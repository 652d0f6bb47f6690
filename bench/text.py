"""Text benchmark: wall time from the start of `send --text` to the text printed by the receiver.

One run of this script starts ONE reference mailbox server (magic-wormhole-mailbox-server, in
memory) on 127.0.0.1 and two wormholed daemons (A and B) on temporary sockets, then measures, with
the same method for every pair:

    python -> python   reference CLI (tests/python/wormhole_cli.py) on both sides
    ours   -> ours     wormholectl on both sides, ONE daemon (A) shared by sender and receiver
    ours   -> ours/2d  wormholectl on both sides, one daemon each (sender A, receiver B)
    ours   -> python   wormholectl send (daemon A)  -> reference CLI receive
    python -> ours     reference CLI send           -> wormholectl receive (daemon A)

Method of one run: a fresh fixed code `<nameplate>-<word>-<word>` (distinct nameplate per run) is
given to both sides with `--code`/positional code. The clock starts, the receiver process is
spawned, then at once the sender process (no waiting between the two); the clock stops when the
receiver's first stdout line has been read by this script (the line is checked to equal the text
sent; the reference runs with PYTHONUNBUFFERED=1, so its print() is not held back by the pipe). Both processes must then exit 0 within the timeout, or the benchmark fails. The daemons are
started, and announce `wormholed ready`, before any timing: their start is not timed.

Every pair gets one discarded warm-up run, then `--runs` timed runs; the pairs are interleaved
round-robin (run i of every pair, rotated order, then run i+1), so load drift on a shared machine
spreads over all pairs alike. The table gives median, min and max wall time.

CPU: each client process's user+system time from wait4(2) rusage (exact per process); a client's
peak RSS from GNU time (%M) in one extra, untimed run per pair (wait4's ru_maxrss would include the
memory of this script, from which the client is forked); the daemons' CPU from /proc/<pid>/task/*/schedstat (time on CPU in ns, all threads)
before and after each run, summed over the timed runs of each pair and divided by their number;
the mailbox server's CPU the same way (it serves only the run in progress). wormholed memory: VmRSS and VmHWM from
/proc/<pid>/status after startup, after the warm-up, and after all runs.

Floors, same method (median of `--runs`): `wormholectl --version` (process start only),
`wormholectl list` (process start + connect + hello + one request to daemon A), and the reference
CLI's `--version` (interpreter start + imports).

`--profile` adds one extra ours->ours run (not part of the table) against a separate daemon at
WORMHOLED_LOG=debug, both wormholectl sides with `--json`, and prints one timeline: each event line
of either client as this script read it, and the daemon's log lines, relative to the spawn of the
receiver.

Everything is bounded (`--timeout` per wait) and loopback only; every process this script starts
is killed by its PID when it ends, however it ends.

Usage: .venv/bin/python bench/text.py --bin-dir target/release [--runs 10] [--profile]
"""

import argparse
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (process plumbing, World, /proc readings, GNU time)
from _common import (  # noqa: E402
    GNU_TIME, NO_TRANSIT_HELPER, STARTED_DAEMON, Failed, cpu_model, forget, guard_stderr,
    peak_rss, read_line, read_text, reap, spawn)


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def proc_cpu(pid):
    """(CPU seconds on all live threads from schedstat, in ns precision; the set of thread ids)."""
    total, tids = 0, set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            tids.add(tid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9, tids


def kib(value):
    """'1234 kB' -> MiB float."""
    return int(value.split()[0]) / 1024


class World(common.World):
    """The mailbox server, the daemons, and how to make each side's command line."""

    def __init__(self, args):
        super().__init__(args, "text", "wormholectl", "wormholed")
        self.mailbox = self.start_mailbox("mailbox server")
        self.py_env = self.python_home()
        self.daemons = {}

    def home(self, name, **extra):
        """Transit is never needed for text: every side gets the closed port as helper."""
        return super().home(name, WORMHOLE_TRANSIT_HELPER=NO_TRANSIT_HELPER, **extra)

    def start_daemon(self, name, log_level=None):
        log = os.path.join(self.tmp.name, f"daemon-{name}.err")
        proc, env, _ = self.launch_daemon(
            name, f"daemon-{name}", log, **({"WORMHOLED_LOG": log_level} if log_level else {}))
        self.daemons[name] = (proc, env, log)
        return proc

    def ours(self, daemon, *argv):
        proc, env, _ = self.daemons[daemon]
        if proc.poll() is not None:
            raise Failed(f"wormholed {daemon} died (exit {proc.returncode})")
        return [self.ctl, *argv], env

    def python_cli(self, *argv):
        return self.reference_cli(NO_TRANSIT_HELPER, *argv), self.py_env

    # One side's command line: kind is "py" or a daemon name.
    def sender(self, kind, text, code):
        if kind == "py":
            return self.python_cli("send", "--hide-progress", "--code", code, "--text", text)
        return self.ours(kind, "send", "--code", code, "--text", text)

    def receiver(self, kind, code):
        if kind == "py":
            return self.python_cli("receive", "--hide-progress", code)
        return self.ours(kind, "receive", code)


def rss_wrap():
    if os.access(GNU_TIME, os.X_OK):
        return common.RSS_WRAP
    return None


def one_run(world, send_kind, recv_kind, tag, wrap=None):
    """Times one transfer; returns a dict of measurements. With wrap (GNU time), the peak RSS of
    each client is measured too, and the timing is not representative."""
    code = world.next_code()
    text = f"bench text {tag} {code}"
    recv_argv, recv_env = world.receiver(recv_kind, code)
    send_argv, send_env = world.sender(send_kind, text, code)
    if wrap:
        recv_argv, send_argv = [*wrap, *recv_argv], [*wrap, *send_argv]
    errs = [os.path.join(world.tmp.name, f"{tag}.{side}.err") for side in ("recv", "send")]
    t0 = time.perf_counter()
    receiver = spawn(recv_argv, env=recv_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=open(errs[0], "wb"))
    sender = spawn(send_argv, env=send_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=open(errs[1], "wb"))
    try:
        line = read_line(receiver, world.args.timeout, f"{tag} receiver")
        wall = time.perf_counter() - t0
        if line.decode() != text:
            raise Failed(f"{tag}: receiver printed {line!r}, expected {text!r}")
        r_status, r_cpu, _ = reap(receiver, world.args.timeout, f"{tag} receiver")
        s_status, s_cpu, _ = reap(sender, world.args.timeout, f"{tag} sender")
    except Failed as e:
        details = "".join(f"\n--- {p}:\n{read_text(p)}" for p in errs)
        raise Failed(f"{e}{details}") from None
    finally:
        stderr = [guard_stderr(p) for p in errs]
    if r_status or s_status:
        details = "".join(f"\n--- {p}:\n{read_text(p)}" for p in errs)
        raise Failed(f"{tag}: exit status receiver {r_status}, sender {s_status}{details}")
    forget(receiver, sender)
    return {"wall": wall, "cpu": s_cpu + r_cpu, "rss": (peak_rss(stderr[1]), peak_rss(stderr[0]))}


def time_command(argv, env, timeout, what, wrap=None):
    t0 = time.perf_counter()
    proc = spawn([*(wrap or []), *argv], env=env, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status, cpu, _ = reap(proc, timeout, what)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    if STARTED_DAEMON.search(err):
        os.kill(int(STARTED_DAEMON.search(err).group(1)), signal.SIGTERM)
        raise Failed(f"{what} started a daemon of its own")
    if status:
        raise Failed(f"{what}: exit status {status}: {err.decode(errors='replace')}")
    forget(proc)
    return {"wall": wall, "cpu": cpu, "rss": peak_rss(err)}


def ms(seconds):
    return f"{seconds * 1000:.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


def profile(world):
    """One ours->ours run, clients with --json, daemon at debug; prints a merged timeline."""
    from datetime import datetime

    proc = world.start_daemon("P", log_level="debug")
    _, _, log = world.daemons["P"]
    log_start = os.path.getsize(log)
    code = world.next_code()
    text = f"bench text profile {code}"
    recv_argv, env = world.ours("P", "--json", "receive", code)
    send_argv, _ = world.ours("P", "--json", "send", "--code", code, "--text", text)
    errs = [os.path.join(world.tmp.name, f"profile.{side}.err") for side in ("recv", "send")]
    t0 = time.time()
    procs = {
        "receive": spawn(recv_argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=open(errs[0], "wb")),
        "send": spawn(send_argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=open(errs[1], "wb")),
    }
    timeline = []
    bufs = {side: b"" for side in procs}
    deadline = time.monotonic() + world.args.timeout
    with selectors.DefaultSelector() as sel:
        for side, p in procs.items():
            sel.register(p.stdout.fileno(), selectors.EVENT_READ, side)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed("profile run: clients did not finish in time")
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                now = time.time()
                if not chunk:
                    sel.unregister(key.fd)
                    timeline.append((now, key.data, "(stdout closed)"))
                    continue
                bufs[key.data] += chunk
                while b"\n" in bufs[key.data]:
                    line, bufs[key.data] = bufs[key.data].split(b"\n", 1)
                    timeline.append((now, key.data, line.decode(errors="replace")))
    for side, p in procs.items():
        status, _, _ = reap(p, world.args.timeout, f"profile {side}")
        guard_stderr(errs[side == "send"])
        if status:
            raise Failed(f"profile {side}: exit status {status}")
        forget(p)
    proc.terminate()  # also flushes its last log lines
    proc.wait(timeout=world.args.timeout)
    stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s*")
    with open(log, "rb") as f:
        f.seek(log_start)
        for line in f.read().decode(errors="replace").splitlines():
            clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = stamp.match(clean)
            if m:
                t = datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
                timeline.append((t, "daemon", clean[m.end():]))
    print("\n## Profile: one ours -> ours run (shared daemon at WORMHOLED_LOG=debug, clients with "
          "--json)\n")
    print("Milliseconds since the spawn of the receiver (the sender is spawned right after it); "
          "client lines are stamped when this script read them.\n")
    print("```")
    for t, who, line in sorted(timeline, key=lambda x: x[0]):
        print(f"{(t - t0) * 1000:7.1f}  {who:<7}  {line[:160]}")
    print("```")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="folder with wormholed and wormholectl")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per pair (default 10)")
    common.add_timeout(parser, 30.0)
    common.add_python(parser)
    parser.add_argument("--profile", action="store_true",
                        help="also print a debug-log timeline of one ours->ours run")
    args = common.parse_args(parser)

    common.install_cleanup()

    load_before = os.getloadavg()
    world = World(args)
    daemon = world.start_daemon("A")
    world.start_daemon("B")
    mem = {"after startup": proc_status(daemon.pid)}

    pairs = [
        ("python -> python", "py", "py"),
        ("ours -> ours (one shared daemon)", "A", "A"),
        ("ours -> ours (one daemon each)", "A", "B"),
        ("ours -> python", "A", "py"),
        ("python -> ours", "py", "A"),
    ]
    for name, s, r in pairs:
        one_run(world, s, r, f"warmup-{s}-{r}")
    mem["after 1 warm-up run per pair"] = proc_status(daemon.pid)

    results = {name: [] for name, _, _ in pairs}
    daemon_cpu = {name: 0.0 for name, _, _ in pairs}
    lost_threads = False
    mailbox_cpu = {name: 0.0 for name, _, _ in pairs}
    daemon_pids = [daemon.pid, world.daemons["B"][0].pid]
    for i in range(args.runs):
        k = i % len(pairs)
        for name, s, r in pairs[k:] + pairs[:k]:
            before = [proc_cpu(pid) for pid in daemon_pids]
            mailbox_before, _ = proc_cpu(world.mailbox.pid)
            results[name].append(one_run(world, s, r, f"run{i}-{s}-{r}"))
            mailbox_cpu[name] += proc_cpu(world.mailbox.pid)[0] - mailbox_before
            after = [proc_cpu(pid) for pid in daemon_pids]
            for (cpu0, tids0), (cpu1, tids1) in zip(before, after):
                daemon_cpu[name] += cpu1 - cpu0
                lost_threads |= not tids0 <= tids1
    mem[f"after {args.runs * len(pairs)} timed runs"] = proc_status(daemon.pid)

    # Client peak RSS: one more, untimed, run of each pair with both clients under GNU time.
    wrap = rss_wrap()
    client_rss = {}
    for name, s, r in pairs:
        client_rss[name] = one_run(world, s, r, f"rss-{s}-{r}", wrap)["rss"] if wrap else None

    floors = {
        "`wormholectl --version` (process start)": world.ours("A", "--version"),
        "`wormholectl list` (start + connect + hello + request)": world.ours("A", "list"),
        "reference `wormhole --version` (interpreter + imports)": world.python_cli("--version"),
    }
    floor_results = {name: [] for name in floors}
    for i in range(args.runs + 1):
        for name, (argv, env) in floors.items():
            r = time_command(argv, env, args.timeout, name)
            if i:  # the first round is a warm-up
                floor_results[name].append(r)
    floor_rss = {name: time_command(argv, env, args.timeout, name, wrap)["rss"] if wrap else None
                 for name, (argv, env) in floors.items()}
    load_after = os.getloadavg()

    # The table.
    base = statistics.median(r["wall"] for r in results["python -> python"])
    print("| sender -> receiver | median ms | min ms | max ms | vs python -> python "
          "| client CPU ms (send + receive), median | wormholed CPU ms per run (mean) "
          "| mailbox server CPU ms per run (mean) | client peak RSS MiB (send / receive) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s, r in pairs:
        runs = results[name]
        walls = [x["wall"] for x in runs]
        med = statistics.median(walls)
        dcpu = "-" if s == r == "py" else ms(daemon_cpu[name] / len(runs))
        print(f"| {name} | {ms(med)} | {ms(min(walls))} | {ms(max(walls))} | {med / base:.3f} "
              f"| {ms(statistics.median(x['cpu'] for x in runs))} | {dcpu} "
              f"| {ms(mailbox_cpu[name] / len(runs))} "
              f"| {fmt_rss(client_rss[name])} |")
    print()
    print("| floor: one process | median ms | min ms | max ms | CPU ms, median | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in floor_results.items():
        walls = [x["wall"] for x in runs]
        print(f"| {name} | {ms(statistics.median(walls))} | {ms(min(walls))} | {ms(max(walls))} "
              f"| {ms(statistics.median(x['cpu'] for x in runs))} "
              f"| {fmt_rss((floor_rss[name],))} |")
    print()
    print("| wormholed (daemon A) | VmRSS MiB | VmHWM (peak) MiB | threads |")
    print("|---|---:|---:|---:|")
    for when, status in mem.items():
        print(f"| {when} | {kib(status['VmRSS']):.1f} | {kib(status['VmHWM']):.1f} "
              f"| {status['Threads']} |")
    print()
    print(f"- runs: {args.runs} timed per pair after 1 warm-up, pairs interleaved round-robin; "
          f"timeout {args.timeout:g} s per wait")
    print(f"- client peak RSS: one extra untimed run of each pair (and of each floor command) "
          f"with every client under `{GNU_TIME} -f %M`")
    print(f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, Linux {platform.release()}, "
          f"Python {platform.python_version()}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    if lost_threads:
        print("- note: a wormholed thread ended during a run; its CPU time is missing from the "
              "daemon CPU column")
    print("- raw wall ms per pair, in run order:")
    for name, runs in results.items():
        print(f"  - {name}: {' '.join(ms(x['wall']) for x in runs)}")

    if args.profile:
        profile(world)


def fmt_rss(values):
    if not values or None in values:
        return "n/a"
    return " / ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    common.run(main, "bench/text.py")
