"""A Dilation peer built on the reference library (magic-wormhole 0.24.0), for tests.

It opens a wormhole (wormhole.create(..., dilation=True)) on --relay-url with --code or an
allocated code (printed on stderr as `Wormhole code is: <code>`), dilates it
(w.dilate(transit_relay_location=--transit-helper, no_listen=--no-listen)), then:

- --send N: opens a subchannel of --subprotocol (connector_for) and writes N pseudo-random bytes
  (seeded, so both sides can name them), then closes it; prints `sent N <sha256 hex>` on stdout;
- --receive: listens for --subprotocol (listener_for) and reads one subchannel to its end;
  prints `received N <sha256 hex>` on stdout;
- --no-dilation: creates the wormhole without dilation (no `can-dilate`), waits for the key;
- --unknown-record T (with --send or --receive): once dilated, first sends one L3 record whose
  type byte is T (e.g. 9, which no version defines) on the live L2 connection, through the
  library's own Noise framing (a test-only monkeypatch of `encode_record`); prints
  `sent unknown record 0x09` on stderr;
- --role leader|follower: takes that Dilation role (its `please` side is set to ffff… or 0000…,
  beyond or below any random side).

Progress goes to stderr (`dilated`, then `role leader` or `role follower`, `subchannel closed`). Then it waits until stdin closes, closes
the wormhole and exits 0. Only 127.0.0.1 is advertised as a direct hint.
"""

import argparse
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
from _harness import say  # noqa: E402

_harness.loopback_only()

CHUNK = 65536


def payload(size, seed=2024):
    return random.Random(seed).randbytes(size)


def send_unknown_record(dw, type_byte):
    """Send one record of type `type_byte` (and a 4-byte body) on the live L2 connection.

    The reference has no way to send such a record, so `encode_record` of
    `wormhole._dilation.connection` (which `_Record.send_record` calls to build the plaintext
    it encrypts and frames) is wrapped to encode a test-only record type as its raw bytes.
    """
    from collections import namedtuple

    from wormhole._dilation import connection

    Unknown = namedtuple("Unknown", ["type_byte", "body"])
    encode = connection.encode_record

    def encode_record(record):
        if isinstance(record, Unknown):
            return bytes([record.type_byte]) + record.body
        return encode(record)

    connection.encode_record = encode_record
    # when_dilated() fires once the manager has its selected connection.
    dw._manager._connection.send_record(Unknown(type_byte, b"\x00\x00\x00\x2a"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _harness.add_peer_arguments(parser)
    parser.add_argument("--transit-helper", default=None, help="tcp:HOST:PORT")
    parser.add_argument("--no-listen", action="store_true")
    parser.add_argument("--subprotocol", default="test")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--send", type=int, metavar="N", help="bytes to send in a subchannel")
    mode.add_argument("--receive", action="store_true", help="read one subchannel")
    mode.add_argument("--no-dilation", action="store_true", help="do not offer dilation")
    parser.add_argument(
        "--role",
        choices=["leader", "follower"],
        help="take this Dilation role: our dilation side is set to the greatest (leader) or the "
        "least (follower) 16-hex-digit side, so the peer's random side loses or wins",
    )
    parser.add_argument(
        "--unknown-record",
        type=int,
        metavar="T",
        help="once dilated, send one record of type byte T on the live connection",
    )
    args = parser.parse_args()
    if args.role is not None:
        from wormhole._dilation import manager

        side = "f" * 16 if args.role == "leader" else "0" * 16
        manager.make_side = lambda: side

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, inlineCallbacks
    from twisted.internet.protocol import Factory, Protocol

    done = Deferred()

    class Reader(Protocol):
        def connectionMade(self):
            self.hash = hashlib.sha256()
            self.count = 0
            say(sys.stderr, "subchannel opened")

        def dataReceived(self, data):
            self.hash.update(data)
            self.count += len(data)

        def connectionLost(self, reason=None):
            say(sys.stdout, f"received {self.count} {self.hash.hexdigest()}")
            say(sys.stderr, "subchannel closed")
            if not done.called:
                done.callback(None)

    class Writer(Protocol):
        def connectionMade(self):
            data = payload(args.send)
            for i in range(0, len(data), CHUNK):
                self.transport.write(data[i : i + CHUNK])
            say(sys.stdout, f"sent {len(data)} {hashlib.sha256(data).hexdigest()}")
            self.transport.loseConnection()

        def dataReceived(self, data):
            pass

        def connectionLost(self, reason=None):
            say(sys.stderr, "subchannel closed")
            if not done.called:
                done.callback(None)

    @inlineCallbacks
    def run(stdin_closed):
        w = yield _harness.open_wormhole(args, reactor, dilation=not args.no_dilation)
        if args.no_dilation:
            yield w.get_verifier()
            say(sys.stderr, "key verified")
        else:
            dw = w.dilate(transit_relay_location=args.transit_helper, no_listen=args.no_listen)
            if args.receive:
                factory = Factory.forProtocol(Reader)
                yield dw.listener_for(args.subprotocol).listen(factory)
            yield dw.when_dilated()
            say(sys.stderr, "dilated")
            from wormhole._dilation.roles import LEADER

            took = "leader" if dw._manager._my_role is LEADER else "follower"
            say(sys.stderr, f"role {took}")
            if args.unknown_record is not None:
                send_unknown_record(dw, args.unknown_record)
                say(sys.stderr, f"sent unknown record {args.unknown_record:#04x}")
            if args.send is not None:
                factory = Factory.forProtocol(Writer)
                yield dw.connector_for(args.subprotocol).connect(factory)
            yield done
        yield stdin_closed
        yield _harness.close_wormhole(w)

    _harness.run_peer("dilation_peer", run)


if __name__ == "__main__":
    main()
