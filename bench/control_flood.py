"""Control clients that send requests and never read the answers, against one wormholed.

Each of --clients connections says hello and then writes `list` requests (up to --requests
each) without ever reading, until the daemon stops reading it (a write blocks for 2 s). Then one
well-behaved client asks `list` and waits for the answer. The table says how many requests the
daemon took from each flooding client before its backpressure, the daemon's resident memory
before, at the end and at its peak (VmHWM), and how long the well-behaved `list` took meanwhile.

Usage: python bench/control_flood.py [--clients N] [--requests N] [--bin-dir DIR]
(scripts/bench control-flood). Nothing here asserts a figure: read the table.
"""

import argparse
import json
import os
import socket
import time

import _common as c

SCRIPT = "bench/control_flood.py"
HELLO = b'{"id":0,"op":"hello","protocol":1}\n'
REQUEST = b'{"id":1,"op":"list"}\n'


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise c.Failed(f"no {key} for pid {pid}")


def flood(sock_path, limit):
    """A connection that sends hello and up to `limit` requests without reading; returns it and
    the number of requests written before a write blocked for 2 s."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    conn.sendall(HELLO)
    conn.settimeout(2.0)
    batch = REQUEST * 4096
    written = 0
    while written < limit * len(REQUEST):
        try:
            written += conn.send(batch)
        except (socket.timeout, BlockingIOError):
            break
    return conn, written // len(REQUEST)


def one_list(sock_path, timeout):
    """Seconds for a fresh client's hello and list."""
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(sock_path)
        conn.sendall(HELLO + b'{"id":2,"op":"list"}\n')
        reader = conn.makefile("rb")
        for _ in range(2):
            answer = json.loads(reader.readline())
        if answer.get("id") != 2 or "ok" not in answer:
            raise c.Failed(f"list answered {answer}")
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10_000_000,
                        help="most requests a flooding client writes (default 10,000,000)")
    parser.add_argument("--bin-dir", default=os.path.join(c.REPO, "target", "release"))
    c.add_timeout(parser, 60)
    c.add_python(parser)
    args = c.parse_args(parser)
    c.install_cleanup()
    step = c.stepper(SCRIPT)
    world = c.World(args, "control-flood", "wormholed")
    world.url = "ws://127.0.0.1:1/v1"
    log = os.path.join(world.tmp.name, "daemon.err")
    proc, _env, sock = world.launch_daemon("flood", "d", log)
    before = vm_kib(proc.pid, "VmRSS")
    step(f"{args.clients} clients flood up to {args.requests:,} requests each")
    start = time.monotonic()
    floods = [flood(sock, args.requests) for _ in range(args.clients)]
    flood_s = time.monotonic() - start
    list_s = one_list(sock, args.timeout)
    after = vm_kib(proc.pid, "VmRSS")
    peak = vm_kib(proc.pid, "VmHWM")
    taken = [n for _, n in floods]
    for conn, _ in floods:
        conn.close()
    c.stop([proc], args.timeout)
    print("| clients | requests offered each | taken before backpressure (min-max) "
          "| RSS before / after / peak | a `list` meanwhile | flooding took |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.clients} | {args.requests:,} | {min(taken):,}-{max(taken):,} "
          f"| {before / 1024:.1f} / {after / 1024:.1f} / {peak / 1024:.1f} MiB "
          f"| {list_s * 1000:.1f} ms | {flood_s:.1f} s |")


if __name__ == "__main__":
    c.run(main, SCRIPT)
