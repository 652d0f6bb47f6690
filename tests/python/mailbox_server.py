"""Run the reference mailbox server (magic-wormhole-mailbox-server) on 127.0.0.1 for tests.

Builds the same service as `twist wormhole-mailbox` (wormhole_mailbox_server.server_tap) from the
package's own functions, with an in-memory channel database (or the file given by --channel-db,
so that its state survives a restart), no usage database (or the file given by --usage-db, where
the server records each mailbox's result: happy, lonely, errory, scary ...), and the listener
bound to 127.0.0.1 only. Prints `listening <port>` on stdout once ready; see _harness.py.

--hold-nameplate N makes two made-up sides claim nameplate N (of the file-transfer appid) through
the server's own claim code before it listens, exactly as two clients that claimed N and have not
released it yet: a third side that claims N gets `crowded`.

The WebSocket endpoint is ws://127.0.0.1:<port>/v1; GET / answers `Wormhole Relay`. With
--tls-cert CERT --tls-key KEY (PEM files) the same server speaks TLS only, through Twisted's
listenSSL: wss://127.0.0.1:<port>/v1 (the certificate decides which names a client accepts).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402

# The appid and the two sides of --hold-nameplate.
HOLD_APPID = "lothar.com/wormhole/text-or-file-xfer"
HOLD_SIDES = ("0000000001", "0000000002")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _harness.add_common_arguments(parser)
    parser.add_argument(
        "--disallow-list",
        action="store_true",
        help="refuse to send the list of allocated nameplates (like the server's flag)",
    )
    parser.add_argument("--motd", default=None, help="message of the day in the welcome")
    parser.add_argument(
        "--signal-error", default=None, help="welcome error: every client must abort"
    )
    parser.add_argument(
        "--advertise-version", default=None, help="current_cli_version in the welcome"
    )
    parser.add_argument(
        "--channel-db",
        default=":memory:",
        metavar="PATH",
        help="SQLite file for the channel database (default: in memory); a server restarted "
        "on the same file keeps its nameplates, mailboxes and messages",
    )
    parser.add_argument(
        "--usage-db",
        default=None,
        metavar="PATH",
        help="SQLite file for the usage database (table `mailboxes`, column `result`)",
    )
    parser.add_argument(
        "--hold-nameplate",
        action="append",
        default=[],
        metavar="NAMEPLATE",
        help="before listening, let two made-up sides claim NAMEPLATE (appid "
        "lothar.com/wormhole/text-or-file-xfer), so that a third claim is crowded; repeatable",
    )
    parser.add_argument(
        "--tls-cert",
        default=None,
        metavar="CERT",
        help="serve over TLS (wss://) with this PEM certificate (chain); needs --tls-key",
    )
    parser.add_argument(
        "--tls-key", default=None, metavar="KEY", help="the PEM private key of --tls-cert"
    )
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    _harness.start_logging(args)

    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall
    from twisted.python import log
    from wormhole_mailbox_server.database import (
        create_or_upgrade_channel_db,
        create_or_upgrade_usage_db,
    )
    from wormhole_mailbox_server.server import make_server
    from wormhole_mailbox_server.server_tap import (
        CHANNEL_EXPIRATION_TIME,
        EXPIRATION_CHECK_PERIOD,
    )
    from wormhole_mailbox_server.web import make_web_server

    channel_db = create_or_upgrade_channel_db(args.channel_db)
    server = make_server(
        channel_db,
        allow_list=not args.disallow_list,
        advertise_version=args.advertise_version,
        signal_error=args.signal_error,
        blur_usage=None,
        usage_db=create_or_upgrade_usage_db(args.usage_db) if args.usage_db else None,
        log_file=None,
        welcome_motd=args.motd,
    )
    server.startService()

    for nameplate in args.hold_nameplate:
        app = server.get_app(HOLD_APPID)
        for side in HOLD_SIDES:
            app.claim_nameplate(nameplate, side, time.time())

    # The same pruning as server_tap's TimerService, so long tests see the real expiry.
    def expire():
        now = time.time()
        try:
            server.prune_all_apps(now, now - CHANNEL_EXPIRATION_TIME)
        except Exception as e:  # as server_tap: a failed prune must not kill the loop
            log.err(e, "error during prune_all_apps")

    LoopingCall(expire).start(EXPIRATION_CHECK_PERIOD, now=False)

    site = make_web_server(server, log_requests=args.verbose)
    if args.tls_cert is None:
        listener = reactor.listenTCP(args.port, site, interface="127.0.0.1")
    else:
        listener = reactor.listenSSL(
            args.port, site, tls_context(args.tls_cert, args.tls_key), interface="127.0.0.1"
        )
    _harness.announce(listener.getHost().port)
    _harness.stop_on_stdin_eof(reactor, args)
    reactor.run()


def tls_context(cert_path, key_path):
    """Twisted's TLS server options for the PEM certificate and key (read before listening, so a
    bad file fails the start instead of the first handshake)."""
    from twisted.internet import ssl

    with open(cert_path, "rb") as cert, open(key_path, "rb") as key:
        return ssl.PrivateCertificate.loadPEM(key.read() + cert.read()).options()


if __name__ == "__main__":
    main()
