"""Run the reference transit relay (magic-wormhole-transit-relay) on 127.0.0.1 for tests.

Builds the same service as `twist transitrelay` (wormhole_transit_relay.server_tap) from the
package's own functions, without a usage database, with the TCP listener bound to 127.0.0.1 only.
Prints `listening <port>` on stdout once ready (the TCP port; clients use
`--transit-helper tcp:127.0.0.1:<port>`); see _harness.py.

With `--websocket-port N` (0 = free port) it also serves the relay's WebSocket flavour and then
prints a second line `websocket <port>` before `listening <port>`.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _harness.add_common_arguments(parser)
    parser.add_argument(
        "--websocket-port",
        type=int,
        default=None,
        help="also listen for WebSocket relay clients on this port (0 = free one)",
    )
    args = parser.parse_args()
    _harness.start_logging(args)

    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet import protocol, reactor
    from twisted.internet.task import LoopingCall
    from wormhole_transit_relay import transit_server
    from wormhole_transit_relay.usage import create_usage_tracker

    usage = create_usage_tracker(blur_usage=None, log_file=None, usage_db=None)
    transit = transit_server.Transit(usage, reactor.seconds)

    tcp_factory = protocol.ServerFactory()
    tcp_factory.protocol = transit_server.TransitConnection
    tcp_factory.log_requests = args.verbose
    tcp_factory.transit = transit

    if args.websocket_port is not None:
        # The URL only has to satisfy autobahn; the port is known after listening.
        ws_factory = WebSocketServerFactory("ws://127.0.0.1/")
        ws_factory.protocol = transit_server.WebSocketTransitConnection
        ws_factory.transit = transit
        ws_factory.log_requests = args.verbose
        ws_listener = reactor.listenTCP(
            args.websocket_port, ws_factory, interface="127.0.0.1"
        )
        sys.stdout.write(f"websocket {ws_listener.getHost().port}\n")

    LoopingCall(transit.update_stats).start(5 * 60.0, now=False)

    listener = reactor.listenTCP(args.port, tcp_factory, interface="127.0.0.1")
    _harness.announce(listener.getHost().port)
    _harness.stop_on_stdin_eof(reactor, args)
    reactor.run()


if __name__ == "__main__":
    main()
