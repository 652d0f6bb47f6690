"""Dilation benchmark: N bytes (1 GiB by default) through ONE subchannel over loopback, direct.

One run of this script starts ONE reference mailbox server (in memory) on 127.0.0.1 and measures
the pairs

    ours   -> ours     wormholed S -> wormholed R (the bench drives each daemon's control socket)
    python -> python   bench/dilation_peer_bench.py wormhole (the reference library, 0.24)
    ours   -> python
    python -> ours

No transit relay is offered to anyone (ours: a closed port as transit helper; Python:
transit_relay_location=None) and both sides advertise only 127.0.0.1, so the Dilation connection
is direct TCP over loopback.

An ours side is a FRESH wormholed per run (started, `wormholed ready`, before anything else;
terminated by its PID after the run), so its VmHWM is the peak of that run alone. This script
speaks the control protocol itself: `hello`, `dilate` with the run's fixed code; the receiver then
`listen`s for subprotocol `bench` and, on `subchannel-opened`, starts the app end; the sender waits
for `dilated`, sends `open-subchannel`, and starts the app end on the returned socket. The app end
of a subchannel socket is `bench/dilation_peer_bench.py socket` (sendall of 1 MiB slices, or
recv_into a 1 MiB buffer + SHA-256). A Python side is `bench/dilation_peer_bench.py wormhole`:
`create(dilation=True)`, `dilate()`, connector_for/listener_for, a streaming producer writing
64 KiB per write while the Dilation outbound is not paused; reading: dataReceived + SHA-256.

The data are a fixed pattern (a 4 MiB block of seeded pseudo-random bytes, repeated, cut at N).

    MB/s      N / (last byte - first byte), both stamped by the receiving app (perf_counter at
              each read / dataReceived); 10^6 bytes per second. SHA-256 and count checked.
    CPU s     ours: the daemon's utime+stime (/proc/<pid>/stat) from `wormholed ready` to when both apps
              are done (Dilation setup included), plus the socket app's own CPU (os.times), shown
              separately too; Python: the peer process's os.times at the end (interpreter start,
              imports, key exchange and Dilation setup included, as a CLI would be counted).
    peak RSS  ours: the daemon's VmHWM (the socket app's is listed separately); Python: the peer
              process's VmHWM.

Each pair gets one discarded warm-up run with 1 MiB, then `--runs` timed runs, interleaved
round-robin (rotated order per round). Before each round the one-core ChaCha20-Poly1305 rate is
measured with `--chacha-bin` (protocol/examples/chacha_rate.rs: the `chacha20poly1305` crate 0.10,
which the goal names, and `ring` 0.17, which wormholed's Dilation transport uses; 64 KiB records,
seal and open, one thread), so the cipher figures come from the same run. bench/floor.py gives the
CPU floor of the data path (socket copies, SHA-256, cipher) on the machine. Daemon threads are sampled every 0.1 s from /proc, which
gives the CPU per thread.

Everything is bounded (`--timeout` per wait) and loopback only; every process this script starts
is killed by its PID when it ends, however it ends; the temporary folder is removed.

Usage: .venv/bin/python bench/dilation.py --bin-dir target/release
           [--chacha-bin target/release/examples/chacha_rate] [--size 1024] [--runs 3]
"""

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (process plumbing, World, /proc readings)
from _common import (  # noqa: E402
    NO_TRANSIT_HELPER, Failed, ThreadSampler, f0, f1, f2, side_name, spawn, stat_cpu,
    vm_hwm_mib)

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(BENCH_DIR, "dilation_peer_bench.py")
WARMUP_BYTES = 1 << 20
SUBPROTOCOL = "bench"
DAEMON_LOG = "info"

PAIRS = [
    ("ours -> ours", "ours", "ours"),
    ("python -> python", "py", "py"),
    ("ours -> python", "ours", "py"),
    ("python -> ours", "py", "ours"),
]


class Lines:
    """Line reader over a file descriptor (a process's stdout or a socket), buffered."""

    def __init__(self, fd, what):
        self.fd = fd
        self.what = what
        self.buf = b""
        self.eof = False

    def take(self):
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            return line.decode()
        return None

    def feed(self):
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.buf += chunk


class Ticker:
    """Samples every daemon's threads about every 0.1 s while this script waits."""

    def __init__(self):
        self.samplers = []

    def tick(self):
        for s in self.samplers:
            s.sample()


def wait_line(lines, timeout, ticker, pred=lambda line: True):
    """The next line of `lines` for which pred holds (others are skipped), bounded."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(lines.fd, selectors.EVENT_READ)
        while True:
            while (line := lines.take()) is not None:
                if pred(line):
                    return line
            if lines.eof:
                raise Failed(f"{lines.what}: closed before the awaited line")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{lines.what}: nothing awaited within {timeout} s")
            ticker.tick()
            if sel.select(min(left, 0.1)):
                lines.feed()


class Control:
    """One control connection to a wormholed."""

    def __init__(self, path, timeout, ticker, what):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.lines = Lines(self.sock.fileno(), what)
        self.timeout = timeout
        self.ticker = ticker
        self.what = what
        self.next_id = 0
        self.events = []
        self.request("hello", protocol=1, client="bench/dilation.py")

    def request(self, op, **fields):
        self.next_id += 1
        rid = self.next_id
        self.sock.sendall(json.dumps({"id": rid, "op": op, **fields}).encode() + b"\n")
        while True:
            msg = json.loads(wait_line(self.lines, self.timeout, self.ticker))
            if msg.get("id") == rid and ("ok" in msg or "error" in msg):
                if "error" in msg:
                    raise Failed(f"{self.what}: {op} -> {msg['error']}")
                return msg["ok"]
            self.events.append(msg)

    def event(self, name):
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("event") == name:
                    return self.events.pop(i)
                if ev.get("event") in ("error", "closed"):
                    raise Failed(f"{self.what}: {ev}")
            self.events.append(json.loads(wait_line(self.lines, self.timeout, self.ticker)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class World(common.World):
    def __init__(self, args):
        super().__init__(args, "dilation", "wormholed")
        self.mailbox = self.start_mailbox("mailbox")
        self.py_env = self.python_home()

    def peer(self, procs, tag, side, *argv):
        """A bench/dilation_peer_bench.py process (also appended to procs); returns (proc, Lines,
        stderr path)."""
        err = os.path.join(self.tmp.name, f"{tag}.{side}.err")
        proc = spawn([self.python, PEER, *argv], env=self.py_env, stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=open(err, "wb"))
        procs.append(proc)
        return proc, Lines(proc.stdout.fileno(), f"{tag} {side} peer"), err


def one_run(world, s_kind, r_kind, tag, size, sha):
    args = world.args
    code = world.next_code()
    ticker = Ticker()
    daemons, ctls, base_cpu, base_threads = {}, {}, {}, {}
    procs = []
    try:
        for side, kind in (("recv", r_kind), ("send", s_kind)):
            if kind == "ours":
                proc, _env, sock, log = world.fresh_daemon(f"{tag}-{side}", DAEMON_LOG)
                procs.append(proc)
                sampler = ThreadSampler(proc.pid)
                sampler.sample()
                base_threads[side] = dict(sampler.seen)
                ticker.samplers.append(sampler)
                daemons[side] = (proc, log, sampler)
                base_cpu[side] = stat_cpu(f"/proc/{proc.pid}/stat")[0]
                ctls[side] = Control(sock, args.timeout, ticker, f"{tag} {side} control")
        apps = {}
        # Receiver first (it only listens), then the sender.
        if r_kind == "ours":
            wid = ctls["recv"].request("dilate", code=code, relay_url=world.url,
                                       transit_helper=NO_TRANSIT_HELPER)["wormhole"]
            ctls["recv"].request("listen", wormhole=wid, subprotocol=SUBPROTOCOL)
        else:
            apps["recv"] = world.peer(procs, tag, "recv", "wormhole", "--relay-url", world.url,
                                      "--code", code, "--subprotocol", SUBPROTOCOL, "--receive")
        if s_kind == "ours":
            wid = ctls["send"].request("dilate", code=code, relay_url=world.url,
                                       transit_helper=NO_TRANSIT_HELPER)["wormhole"]
            ctls["send"].event("dilated")
            path = ctls["send"].request("open-subchannel", wormhole=wid,
                                        subprotocol=SUBPROTOCOL)["socket"]
            apps["send"] = world.peer(procs, tag, "send", "socket", "--socket", path, "--send", str(size),
                                      "--timeout", str(args.timeout))
        else:
            apps["send"] = world.peer(procs, tag, "send", "wormhole", "--relay-url", world.url,
                                      "--code", code, "--subprotocol", SUBPROTOCOL,
                                      "--send", str(size))
        if r_kind == "ours":
            ev = ctls["recv"].event("subchannel-opened")
            if ev.get("subprotocol") != SUBPROTOCOL:
                raise Failed(f"{tag}: subchannel-opened {ev}")
            apps["recv"] = world.peer(procs, tag, "recv", "socket", "--socket", ev["socket"],
                                      "--receive", "--timeout", str(args.timeout))

        got = wait_line(apps["recv"][1], args.timeout, ticker,
                        lambda line: line.startswith("received ")).split()
        stats = {}
        stats["recv"] = wait_line(apps["recv"][1], args.timeout, ticker,
                                  lambda line: line.startswith("stats ")).split()
        wait_line(apps["send"][1], args.timeout, ticker, lambda line: line.startswith("sent "))
        stats["send"] = wait_line(apps["send"][1], args.timeout, ticker,
                                  lambda line: line.startswith("stats ")).split()
        ticker.tick()
        count, got_sha, span = int(got[1]), got[2], float(got[3])
        if count != size or got_sha != sha:
            raise Failed(f"{tag}: received {count} bytes with SHA-256 {got_sha}, expected {size} "
                         f"bytes with {sha}")
        cpu, rss, app_cpu, app_rss, threads = {}, {}, {}, {}, {}
        for side in ("send", "recv"):
            a_cpu, a_rss = float(stats[side][1]), int(stats[side][2]) / 1024
            if side in daemons:
                proc, _log, sampler = daemons[side]
                d_cpu = stat_cpu(f"/proc/{proc.pid}/stat")[0] - base_cpu[side]
                cpu[side] = d_cpu + a_cpu
                rss[side] = vm_hwm_mib(proc.pid)
                app_cpu[side], app_rss[side] = a_cpu, a_rss
                threads[side] = sampler.by_name(base_threads[side])
            else:
                cpu[side], rss[side] = a_cpu, a_rss
        return {"mbps": size / span / 1e6 if span > 0 else float("nan"), "span": span, "cpu": cpu,
                "rss": rss, "app_cpu": app_cpu, "app_rss": app_rss, "threads": threads}
    except Failed:
        for side, (proc, log, _s) in daemons.items():
            try:
                tail = open(log, errors="replace").read()[-2000:]
            except OSError:
                tail = ""
            print(f"bench/dilation.py: {tag} {side} daemon log tail:\n{tail}", file=sys.stderr)
        for side in ("send", "recv"):
            err = os.path.join(world.tmp.name, f"{tag}.{side}.err")
            if os.path.exists(err):
                print(f"bench/dilation.py: {tag} {side} peer stderr:\n"
                      f"{open(err, errors='replace').read()[-2000:]}", file=sys.stderr)
        raise
    finally:
        for c in ctls.values():
            c.close()
        common.stop(procs, 5)


def chacha_rate(args):
    """(seal, open) MB/s of the `chacha20poly1305` crate, then of `ring` (None if not printed)."""
    lines = subprocess.run([args.chacha_bin, str(args.chacha_mib)], capture_output=True,
                           text=True, timeout=args.timeout, check=True).stdout.splitlines()
    # `<impl> seal <MB/s> open <MB/s> MB/s ...`, one line per implementation
    rates = {f[0]: (float(f[2]), float(f[4])) for f in (line.split() for line in lines) if f}
    return rates["chacha20poly1305"] + rates.get("ring", (None, None))


def pattern_sha256(size):
    sys.path.insert(0, BENCH_DIR)
    import dilation_peer_bench
    return dilation_peer_bench.pattern_sha256(size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="folder with wormholed")
    parser.add_argument("--chacha-bin", default=None,
                        help="the chacha_rate example binary (default: BIN_DIR/examples/"
                        "chacha_rate; skipped if absent)")
    parser.add_argument("--chacha-mib", type=int, default=1024,
                        help="MiB sealed and opened per cipher measurement (default 1024)")
    parser.add_argument("--size", type=int, default=1024,
                        help="bytes through the subchannel, in MiB (default 1024; 64 for a quick "
                        "run)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per pair (default 3)")
    common.add_timeout(parser, 300.0)
    parser.add_argument("--only", action="append", default=None, metavar="PAIR",
                        help="run only this pair (e.g. 'ours -> ours'; repeatable), e.g. under "
                        "perf; the goal lines need ours -> ours and python -> python")
    common.add_python(parser)
    args = common.parse_args(parser)
    if args.chacha_bin is None:
        args.chacha_bin = os.path.join(args.bin_dir, "examples", "chacha_rate")
    have_chacha = os.access(args.chacha_bin, os.X_OK)

    common.install_cleanup()

    load_before = os.getloadavg()
    world = World(args)
    size = args.size << 20
    step = common.stepper("bench/dilation.py")
    sha = pattern_sha256(size)
    small_sha = pattern_sha256(WARMUP_BYTES)

    pairs = [p for p in PAIRS if args.only is None or p[0] in args.only]
    if not pairs:
        raise Failed(f"--only {args.only}: known pairs are {[p[0] for p in PAIRS]}")
    warm = {}
    for name, s, r in pairs:
        step(f"warm-up {name}")
        warm[name] = one_run(world, s, r, f"warmup-{s}-{r}", WARMUP_BYTES, small_sha)

    results = {name: [] for name, _, _ in pairs}
    chacha = []
    for i in range(args.runs):
        if have_chacha:
            chacha.append(chacha_rate(args))
            step(f"chacha20poly1305 one core: seal {chacha[-1][0]:.0f} open "
                 f"{chacha[-1][1]:.0f} MB/s; ring: seal {chacha[-1][2]:.0f} open {chacha[-1][3]:.0f}")
        k = i % len(pairs)
        for name, s, r in pairs[k:] + pairs[:k]:
            step(f"run {i + 1}/{args.runs} {name}")
            res = one_run(world, s, r, f"run{i}-{s}-{r}", size, sha)
            step(f"  {res['mbps']:.0f} MB/s ({res['span']:.2f} s), CPU s "
                 f"{res['cpu']['send']:.2f} / {res['cpu']['recv']:.2f}, RSS MiB "
                 f"{res['rss']['send']:.1f} / {res['rss']['recv']:.1f}")
            results[name].append(res)
    load_after = os.getloadavg()

    med = statistics.median
    print(f"{args.size} MiB through one subchannel, direct over 127.0.0.1; median of {args.runs} "
          f"runs, (min–max) in brackets.\n")
    print("| sender -> receiver | MB/s (first to last byte at the receiver) | vs python -> python "
          "| CPU s send / receive | peak RSS MiB send / receive (max) | peak RSS MiB after 1 MiB "
          "(warm-up) |")
    print("|---|---:|---:|---:|---:|---:|")
    py = results.get("python -> python")
    base = med(x["mbps"] for x in py) if py else float("nan")
    for name, s, r in pairs:
        runs = results[name]
        mbps = [x["mbps"] for x in runs]
        cpu = " / ".join(f2(med(x["cpu"][side] for x in runs)) for side in ("send", "recv"))
        rss = " / ".join(f1(max(x["rss"][side] for x in runs)) for side in ("send", "recv"))
        wrss = " / ".join(f1(warm[name]["rss"][side]) for side in ("send", "recv"))
        print(f"| {name} | {common.fmt_spread(mbps, f0)} | {med(mbps) / base:.2f}× | {cpu} "
              f"| {rss} | {wrss} |")
    print()
    print("Ours sides: CPU = wormholed + the socket app (bench/dilation_peer_bench.py socket); "
          "peak RSS = wormholed's VmHWM (fresh daemon per side per run). The socket app alone, "
          "median CPU s / max VmHWM MiB: " + ", ".join(
              f"{name} {side_name(side)} "
              f"{f2(med(x['app_cpu'][side] for x in results[name]))} / "
              f"{f1(max(x['app_rss'][side] for x in results[name]))}"
              for name, s, r in pairs for side, kind in (("send", s), ("recv", r))
              if kind == "ours") + ".")
    print()
    print("wormholed CPU s per thread (mean per run; threads sampled every 0.1 s):\n")
    for name, s, r in pairs:
        for side, kind in (("send", s), ("recv", r)):
            if kind != "ours":
                continue
            print(f"- {name}, {side_name(side)}: {common.thread_cpu(results[name], side)}")
    print()
    if "ours -> ours" not in results:
        return
    ours = results["ours -> ours"]
    ours_mbps = med(x["mbps"] for x in ours)
    if chacha:
        seal, opn = med(c[0] for c in chacha), med(c[1] for c in chacha)
        rate = min(seal, opn)
        print(f"- one-core ChaCha20-Poly1305 (`chacha20poly1305` 0.10, 64 KiB records, "
              f"protocol/examples/chacha_rate.rs, {args.chacha_mib} MiB per measurement, once "
              f"before each round): seal {f0(seal)} MB/s, open {f0(opn)} MB/s (median of "
              f"{len(chacha)}; all: " + ", ".join(f"{f0(c[0])}/{f0(c[1])}" for c in chacha) + ")")
        if all(c[2] is not None for c in chacha):
            print(f"- the same with `ring` 0.17 (the implementation wormholed uses): seal "
                  f"{f0(med(c[2] for c in chacha))} MB/s, open {f0(med(c[3] for c in chacha))} "
                  f"MB/s (median of {len(chacha)})")
        print(f"- goal: ours -> ours ≥ 80 % of the one-core cipher rate (the lower of seal/open, "
              f"{f0(rate)} MB/s): {ours_mbps / rate * 100:.0f} % "
              f"({'met' if ours_mbps >= 0.8 * rate else 'NOT met'})")
    print(f"- goal: ours -> ours ≥ 5× python -> python: {ours_mbps / base:.2f}× "
          f"({'met' if ours_mbps >= 5 * base else 'NOT met'})")
    flat = all(max(x["rss"][side] for x in ours) <= warm["ours -> ours"]["rss"][side] + 16
               for side in ("send", "recv"))
    print(f"- goal: peak RSS flat (an ours daemon's VmHWM after {args.size} MiB within 16 MiB of "
          f"its VmHWM after 1 MiB, ours -> ours): "
          + " / ".join(f"{f1(warm['ours -> ours']['rss'][side])} -> "
                       f"{f1(max(x['rss'][side] for x in ours))} MiB" for side in ("send", "recv"))
          + f" ({'met' if flat else 'NOT met'})")
    print(f"- runs: {args.runs} timed per pair after 1 warm-up (1 MiB), interleaved round-robin; "
          f"timeout {args.timeout:g} s per wait; SHA-256 of every received stream checked")
    print(common.machine_line(load_before, load_after))
    print("- raw MB/s per pair, in run order:")
    for name, runs in results.items():
        print(f"  - {name}: {' '.join(f0(x['mbps']) for x in runs)}")


if __name__ == "__main__":
    common.run(main, "bench/dilation.py")
