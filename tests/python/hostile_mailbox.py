"""A WebSocket proxy in front of a real mailbox server that injects one bad frame, for tests.

Every client connection to ws://127.0.0.1:<port>/<any path> gets its own connection to the
upstream mailbox server (--upstream, e.g. the harness's MailboxServer), and frames are forwarded
unchanged both ways. Once per client connection, right after forwarding the trigger frame from the
server (--after TYPE: the first server message of that type, e.g. `welcome`, `ack`, `claimed`),
the proxy sends the client one frame of its own (--inject):

- malformed-json: a text frame that is not JSON;
- unknown-type: a well-formed message of a type no server sends (`{"type": "teleport", ...}`);
- oversized: a text frame of valid JSON, larger than wormholed's 16 MiB limit (16 MiB + 1 KiB);
- binary: a binary frame holding a well-formed `ack`.

Prints `listening <port>` on stdout once ready and one line `injected <kind> after <trigger>` on
stderr per injection; exits when stdin closes (see _harness.py).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402

FRAME_LIMIT = 16 << 20


def bad_frame(kind):
    """The injected payload and whether it goes as a binary frame."""
    if kind == "malformed-json":
        return b'{"type": "message", this is not JSON', False
    if kind == "unknown-type":
        message = {"type": "teleport", "destination": "mars", "server_tx": time.time()}
        return json.dumps(message).encode(), False
    if kind == "oversized":
        head = b'{"type": "teleport", "padding": "'
        tail = b'"}'
        padding = b"x" * (FRAME_LIMIT + 1024 - len(head) - len(tail))
        return head + padding + tail, False
    if kind == "binary":
        message = {"type": "ack", "id": None, "server_tx": time.time()}
        return json.dumps(message).encode(), True
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _harness.add_common_arguments(parser)
    parser.add_argument("--upstream", required=True, help="ws:// URL of the real mailbox server")
    parser.add_argument(
        "--inject",
        required=True,
        choices=["malformed-json", "unknown-type", "oversized", "binary"],
        help="the bad frame to send each client",
    )
    parser.add_argument(
        "--after",
        default="welcome",
        metavar="TYPE",
        help="inject right after forwarding the first server message of this type "
        "(welcome, ack, allocated, claimed, message ...; default: welcome)",
    )
    args = parser.parse_args()
    _harness.start_logging(args)

    from autobahn.twisted.websocket import (
        WebSocketClientFactory,
        WebSocketClientProtocol,
        WebSocketServerFactory,
        WebSocketServerProtocol,
        connectWS,
    )
    from twisted.internet import reactor

    payload, is_binary = bad_frame(args.inject)

    class Upstream(WebSocketClientProtocol):
        """The proxy's connection to the real server, on behalf of one client."""

        def onOpen(self):
            self.factory.client.upstream_open(self)

        def onMessage(self, data, isBinary):
            self.factory.client.from_server(data, isBinary)

        def onClose(self, wasClean, code, reason):
            self.factory.client.upstream_closed()

    class Client(WebSocketServerProtocol):
        """One client of the proxy (the wormhole under test)."""

        def onOpen(self):
            self.upstream = None
            self.pending = []
            self.injected = False
            self.closed = False
            factory = WebSocketClientFactory(args.upstream)
            factory.protocol = Upstream
            factory.client = self
            connectWS(factory)

        def upstream_open(self, upstream):
            if self.closed:
                upstream.sendClose()
                return
            self.upstream = upstream
            for data, binary in self.pending:
                upstream.sendMessage(data, binary)
            self.pending = []

        def upstream_closed(self):
            if not self.closed:
                self.closed = True
                self.sendClose()

        def from_server(self, data, binary):
            if self.closed:
                return
            self.sendMessage(data, binary)
            if self.injected or binary:
                return
            try:
                kind = json.loads(data.decode("utf-8")).get("type")
            except ValueError:
                return
            if kind == args.after:
                self.injected = True
                self.sendMessage(payload, is_binary)
                sys.stderr.write(f"injected {args.inject} after {args.after}\n")
                sys.stderr.flush()

        def onMessage(self, data, isBinary):
            if self.upstream is None:
                self.pending.append((data, isBinary))
            else:
                self.upstream.sendMessage(data, isBinary)

        def onClose(self, wasClean, code, reason):
            self.closed = True
            upstream = getattr(self, "upstream", None)
            if upstream is not None:
                upstream.sendClose()

    factory = WebSocketServerFactory()
    factory.protocol = Client
    listener = reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    _harness.announce(listener.getHost().port)
    _harness.stop_on_stdin_eof(reactor, args)
    reactor.run()


if __name__ == "__main__":
    main()
