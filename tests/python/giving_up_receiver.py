"""A receiver that gives up mid-transfer, as one whose disk filled up: the reference CLI
(magic-wormhole), which accepts the file, and once Transit is connected drops the Transit
connection, then (0.2 s later, as a peer whose reason takes the slower path through the
mailbox server) sends `{"error": REASON}` over the mailbox.

Usage: `python giving_up_receiver.py REASON -- <wormhole CLI arguments>`, with the same
loopback-only guards as `wormhole_cli.py`. Prints `gave up` on stderr once it has.
"""

import os
import sys

os.environ.setdefault("WORMHOLE_RELAY_URL", "ws://127.0.0.1:1/v1")
os.environ.setdefault("WORMHOLE_TRANSIT_HELPER", "tcp:127.0.0.1:1")

from twisted.internet.defer import inlineCallbacks  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402
from wormhole import ipaddrs  # noqa: E402


def _loopback_only():
    return ["127.0.0.1"]


ipaddrs.find_addresses = _loopback_only

from wormhole.cli import cmd_receive  # noqa: E402
from wormhole.cli.cli import wormhole  # noqa: E402
from wormhole.errors import TransferError  # noqa: E402

REASON = ""
_send_permission = cmd_receive.Receiver._send_permission


def _keep_wormhole(self, w):
    self._giving_up_wormhole = w
    return _send_permission(self, w)


@inlineCallbacks
def _give_up(self, record_pipe, f):
    record_pipe.transport.abortConnection()
    yield deferLater(self._reactor, 0.2, lambda: None)
    self._send_data({"error": REASON}, self._giving_up_wormhole)
    print("gave up", file=sys.stderr, flush=True)
    raise TransferError(REASON)


cmd_receive.Receiver._send_permission = _keep_wormhole
cmd_receive.Receiver._transfer_data = _give_up

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: giving_up_receiver.py REASON -- <wormhole arguments>")
    REASON = sys.argv[1]
    sys.exit(wormhole(args=sys.argv[3:], prog_name="wormhole"))
