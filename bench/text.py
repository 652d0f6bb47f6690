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
import atexit
import os
import platform
import re
import selectors
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_DIR = os.path.join(REPO, "tests", "python")
# Transit is never needed for text; a closed port keeps every byte on loopback.
NO_TRANSIT_HELPER = "tcp:127.0.0.1:1"
STARTED_DAEMON = re.compile(rb"started wormholed \(pid (\d+)\)")
# Peak RSS of a client comes from GNU time, in separate untimed runs: wait4's ru_maxrss of a child
# of this script also counts the memory of this Python process it was forked from (exec records
# the old address space's high-water mark), so it cannot tell a small client's peak.
GNU_TIME = "/usr/bin/time"
MAXRSS = re.compile(rb"^bench-maxrss-kib (\d+)$", re.M)

# Every process started here, so that exit kills whatever is still alive, by PID.
_children = []


def _cleanup():
    for proc in reversed(_children):
        if proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in reversed(_children):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def spawn(argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    _children.append(proc)
    return proc


class Failed(Exception):
    pass


def read_line(proc, timeout, what):
    """The first line of proc's stdout (bytes, without newline), or Failed after timeout."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{what}: no stdout line within {timeout} s (got {buf!r})")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise Failed(f"{what}: stdout closed before a line (got {buf!r})")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def reap(proc, timeout, what):
    """Waits for proc with wait4; returns (exit status, cpu seconds, peak RSS KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            raise Failed(f"{what}: did not exit within {timeout} s")
        time.sleep(0.002)


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


class World:
    """The mailbox server, the daemons, and how to make each side's command line."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.TemporaryDirectory(prefix="wormhole-bench-text-")
        self.python = args.python
        self.ctl = os.path.join(args.bin_dir, "wormholectl")
        self.daemon_bin = os.path.join(args.bin_dir, "wormholed")
        for path in (self.ctl, self.daemon_bin):
            if not os.access(path, os.X_OK):
                raise Failed(f"no executable {path} (build with cargo build --release --bins)")
        self.mailbox = spawn(
            [self.python, os.path.join(PY_DIR, "mailbox_server.py"), "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.tmp.name, "mailbox.err"), "wb"),
        )
        line = read_line(self.mailbox, args.timeout, "mailbox server").decode()
        port = int(line.split()[1])
        self.url = f"ws://127.0.0.1:{port}/v1"
        self.py_env = self._home("python")
        # As on a terminal: the reference's print() reaches the pipe when it is called, not at
        # exit (a pipe would otherwise make Python buffer stdout until the process ends).
        self.py_env["PYTHONUNBUFFERED"] = "1"
        self.nameplate = 100
        self.daemons = {}

    def _home(self, name):
        """An environment with its own HOME and XDG folders under the temporary folder."""
        home = os.path.join(self.tmp.name, name)
        os.makedirs(os.path.join(home, "runtime"), mode=0o700)
        env = dict(os.environ)
        for var in ("WORMHOLE_ACCEPT_FILE", "WORMHOLE_APPID", "WORMHOLE_CODE_LENGTH", "WORMHOLED_LOG"):
            env.pop(var, None)
        env.update(
            HOME=home,
            XDG_RUNTIME_DIR=os.path.join(home, "runtime"),
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            XDG_DATA_HOME=os.path.join(home, ".local/share"),
            XDG_STATE_HOME=os.path.join(home, ".local/state"),
            XDG_CACHE_HOME=os.path.join(home, ".cache"),
            WORMHOLE_RELAY_URL=self.url,
            WORMHOLE_TRANSIT_HELPER=NO_TRANSIT_HELPER,
        )
        return env

    def start_daemon(self, name, log_level=None):
        env = self._home(f"daemon-{name}")
        socket = os.path.join(env["HOME"], "control.sock")
        config = os.path.join(env["HOME"], "wormholed.toml")
        open(config, "w").close()
        env.update(
            WORMHOLED_SOCKET=socket,
            WORMHOLED_CONFIG=config,
            WORMHOLED_HINT_ADDRESSES="127.0.0.1",
        )
        if log_level:
            env["WORMHOLED_LOG"] = log_level
        log = os.path.join(self.tmp.name, f"daemon-{name}.err")
        proc = spawn(
            [self.daemon_bin],
            env=env,
            cwd=env["HOME"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),
        )
        line = read_line(proc, self.args.timeout, f"wormholed {name}").decode()
        if line != f"wormholed ready {socket}":
            raise Failed(f"wormholed {name} said {line!r}")
        self.daemons[name] = (proc, env, log)
        return proc

    def next_code(self):
        self.nameplate += 1
        return f"{self.nameplate}-bench-text"

    def ours(self, daemon, *argv):
        proc, env, _ = self.daemons[daemon]
        if proc.poll() is not None:
            raise Failed(f"wormholed {daemon} died (exit {proc.returncode})")
        return [self.ctl, *argv], env

    def python_cli(self, *argv):
        cli = [self.python, os.path.join(PY_DIR, "wormhole_cli.py"),
               "--relay-url", self.url, "--transit-helper", NO_TRANSIT_HELPER]
        return [*cli, *argv], self.py_env

    # One side's command line: kind is "py" or a daemon name.
    def sender(self, kind, text, code):
        if kind == "py":
            return self.python_cli("send", "--hide-progress", "--code", code, "--text", text)
        return self.ours(kind, "send", "--code", code, "--text", text)

    def receiver(self, kind, code):
        if kind == "py":
            return self.python_cli("receive", "--hide-progress", code)
        return self.ours(kind, "receive", code)


def guard_stderr(path):
    """If wormholectl had to start a daemon of its own, kill it (by its PID) and fail."""
    with open(path, "rb") as f:
        data = f.read()
    m = STARTED_DAEMON.search(data)
    if m:
        os.kill(int(m.group(1)), signal.SIGTERM)
        raise Failed(f"wormholectl started a daemon of its own: {data.decode(errors='replace')}")
    return data


def rss_wrap():
    if os.access(GNU_TIME, os.X_OK):
        return [GNU_TIME, "-f", "bench-maxrss-kib %M"]
    return None


def peak_rss(data):
    """The peak RSS in MiB that GNU time reported at the end of data (stderr bytes), or None."""
    found = MAXRSS.findall(data)
    return int(found[-1]) / 1024 if found else None


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
        details = "".join(
            f"\n--- {p}:\n{open(p, 'rb').read().decode(errors='replace')}" for p in errs)
        raise Failed(f"{e}{details}") from None
    finally:
        stderr = [guard_stderr(p) for p in errs]
    if r_status or s_status:
        details = "".join(
            f"\n--- {p}:\n{open(p, 'rb').read().decode(errors='replace')}" for p in errs)
        raise Failed(f"{tag}: exit status receiver {r_status}, sender {s_status}{details}")
    _children.remove(receiver)
    _children.remove(sender)
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
    _children.remove(proc)
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
        _children.remove(p)
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
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="bound in seconds on every single wait (default 30)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the venv with the reference (default: this one)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a debug-log timeline of one ours->ours run")
    args = parser.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)

    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

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


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"bench/text.py: {e}", file=sys.stderr)
        sys.exit(1)
