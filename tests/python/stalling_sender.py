"""A sender that stalls: the reference CLI (magic-wormhole), which sends only the first BYTES
bytes of the file it offers and then neither sends nor closes anything until it is killed.

Usage: `python stalling_sender.py BYTES -- <wormhole CLI arguments>`. Everything else is the real
CLI (offer, transit), with the same loopback-only guards as `wormhole_cli.py`. Once the bytes
are written it prints `stalled after BYTES bytes` on stderr.
"""

import os
import sys

os.environ.setdefault("WORMHOLE_RELAY_URL", "ws://127.0.0.1:1/v1")
os.environ.setdefault("WORMHOLE_TRANSIT_HELPER", "tcp:127.0.0.1:1")

from twisted.internet import defer  # noqa: E402
from twisted.protocols import basic  # noqa: E402
from wormhole import ipaddrs  # noqa: E402


def _loopback_only():
    return ["127.0.0.1"]


ipaddrs.find_addresses = _loopback_only

from wormhole.cli.cli import wormhole  # noqa: E402

SEND_BYTES = 0


def _stall(self, file, consumer, transform=None):
    """Writes the first SEND_BYTES bytes, then a Deferred that never fires."""
    data = file.read(SEND_BYTES)
    if transform:
        data = transform(data)
    consumer.write(data)
    print(f"stalled after {len(data)} bytes", file=sys.stderr, flush=True)
    return defer.Deferred()


basic.FileSender.beginFileTransfer = _stall

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: stalling_sender.py BYTES -- <wormhole arguments>")
    SEND_BYTES = int(sys.argv[1])
    sys.exit(wormhole(args=sys.argv[3:], prog_name="wormhole"))
