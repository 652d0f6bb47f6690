"""The CPU floor of the Dilation benchmark's data path on this machine (bench/dilation.py).

Measures, for N bytes (1 GiB by default), the CPU seconds that the pieces every ours -> ours run
must pay cost here, with nothing else in them:

    tcp     a loopback TCP stream: sender (sendall of 1 MiB) and receiver (recv_into 1 MiB)
    unix    a Unix stream socket, the same way (a run has two: app -> daemon, daemon -> app)
    sha256  hashlib.sha256 over N bytes (the benchmark's receiving app checks every byte)

and, given the one-core seal/open rates of `protocol/examples/chacha_rate` (`--chacha-bin`), the
cipher. Prints a table and the bound it implies for two cores: N / (floor CPU s / cores).

Each process measures its own os.times() (user + system); loopback only; every child is waited
for. Usage: .venv/bin/python bench/floor.py [--size MIB] [--chacha-bin target/release/examples/chacha_rate]
"""

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile

BUF = 1 << 20


def cpu():
    t = os.times()
    return t.user + t.system


def stream(family, size):
    """(sender CPU s, receiver CPU s) for `size` bytes through one stream socket."""
    with tempfile.TemporaryDirectory() as tmp:
        if family == socket.AF_INET:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
        else:
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(os.path.join(tmp, "floor.sock"))
        listener.listen(1)
        address = listener.getsockname()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                client = socket.socket(family)
                client.connect(address)
                data = b"\x5a" * BUF
                start = cpu()
                for _ in range(size // BUF):
                    client.sendall(data)
                client.close()
                os.write(write_end, f"{cpu() - start}".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        conn, _ = listener.accept()
        buf = memoryview(bytearray(BUF))
        start = cpu()
        while conn.recv_into(buf):
            pass
        received = cpu() - start
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as f:
            sent = float(f.read())
        conn.close()
        listener.close()
        return sent, received


def sha256(size):
    h = hashlib.sha256()
    data = b"\x5a" * BUF
    start = cpu()
    for _ in range(size // BUF):
        h.update(data)
    return cpu() - start


def cipher(chacha_bin, size):
    """{impl: (seal CPU s, open CPU s)} for `size` bytes at the example's one-core rates."""
    lines = subprocess.run([chacha_bin, "256"], capture_output=True, text=True, check=True,
                           timeout=600).stdout.splitlines()
    out = {}
    for fields in (line.split() for line in lines):
        if fields:
            out[fields[0]] = (size / (float(fields[2]) * 1e6), size / (float(fields[4]) * 1e6))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--chacha-bin", default="target/release/examples/chacha_rate")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    size = args.size << 20
    tcp = stream(socket.AF_INET, size)
    unix = stream(socket.AF_UNIX, size)
    sha = sha256(size)
    rows = [("loopback TCP, send + receive", sum(tcp), f"{tcp[0]:.2f} + {tcp[1]:.2f}"),
            ("Unix socket, send + receive, twice", 2 * sum(unix),
             f"2 × ({unix[0]:.2f} + {unix[1]:.2f})"),
            ("SHA-256 at the receiving app", sha, f"{sha:.2f}")]
    base = sum(r[1] for r in rows)
    print(f"{args.size} MiB; CPU seconds (user + system)\n")
    print("| piece | CPU s | parts |\n|---|---:|---|")
    for name, total, parts in rows:
        print(f"| {name} | {total:.2f} | {parts} |")
    if os.access(args.chacha_bin, os.X_OK):
        for impl, (seal, opn) in cipher(args.chacha_bin, size).items():
            total = base + seal + opn
            print(f"| seal + open with `{impl}` (one-core rates) | {seal + opn:.2f} | "
                  f"{seal:.2f} + {opn:.2f} |")
            print(f"| **floor with `{impl}`** | **{total:.2f}** | bound on {args.cores} cores: "
                  f"{size / (total / args.cores) / 1e6:.0f} MB/s |")
    else:
        print(f"\n(no {args.chacha_bin}: cipher not measured)", file=sys.stderr)


if __name__ == "__main__":
    main()
