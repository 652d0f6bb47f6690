"""Shared plumbing of the test scripts: the servers' `listening <port>` contract and the stdin
watchdog, and the setup of the peers built on the reference library (magic-wormhole).

Every server script prints exactly one line `listening <port>` on stdout once its socket accepts
connections, then runs until it is killed or until its stdin reaches end of file (so a server never
outlives the test process that spawned it with a piped stdin). Pass `--ignore-stdin` to run one by
hand with stdin closed.

Every peer script (`dilation_peer.py`, `garbage_peer.py`) takes --relay-url, --appid and --code
(`add_peer_arguments`), opens its wormhole with `open_wormhole` (which prints
`Wormhole code is: <code>` on stderr, like the CLI's sender), runs its body under `run_peer`, and
closes the wormhole with `close_wormhole` once its stdin closes; it exits 0, or 1 if the body
failed (`<name> failed: <error>` on stderr).
"""

import sys
import threading


def add_common_arguments(parser):
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port on 127.0.0.1 to listen on; 0 picks a free one (default)",
    )
    parser.add_argument(
        "--ignore-stdin",
        action="store_true",
        help="keep running when stdin reaches end of file (default: exit then)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="write the server's Twisted log to stderr",
    )


def start_logging(args):
    if args.verbose:
        from twisted.python import log

        log.startLogging(sys.stderr, setStdout=False)


def announce(port):
    """Print the readiness line the Rust harness waits for."""
    sys.stdout.write(f"listening {port}\n")
    sys.stdout.flush()


APPID = "lothar.com/wormhole/text-or-file-xfer"


def say(stream, text):
    """Write one line and flush it (the Rust harness waits for lines)."""
    stream.write(text + "\n")
    stream.flush()


def watch_stdin(on_eof):
    """Call `on_eof()` from a thread once stdin reaches end of file."""

    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            on_eof()

    threading.Thread(target=watch, name="stdin-watchdog", daemon=True).start()


def stop_on_stdin_eof(reactor, args):
    """Stop the reactor once stdin is closed, unless --ignore-stdin was given."""
    if args.ignore_stdin:
        return
    watch_stdin(lambda: reactor.callFromThread(reactor.stop))


def loopback_only():
    """Make the reference library advertise (and listen on) 127.0.0.1 only, for Transit and
    Dilation hints."""
    from wormhole import ipaddrs

    ipaddrs.find_addresses = lambda: ["127.0.0.1"]


def add_peer_arguments(parser):
    parser.add_argument("--relay-url", required=True, help="ws:// URL of the mailbox server")
    parser.add_argument("--appid", default=APPID)
    parser.add_argument("--code", default=None, help="the code (default: allocate one)")


def open_wormhole(args, reactor, **create_kwargs):
    """A Deferred firing with a wormhole on args.relay_url and args.appid, with args.code or an
    allocated one, once the code is known (and printed on stderr)."""
    from twisted.internet.defer import inlineCallbacks

    import wormhole

    @inlineCallbacks
    def go():
        w = wormhole.create(args.appid, args.relay_url, reactor, **create_kwargs)
        if args.code:
            w.set_code(args.code)
        else:
            w.allocate_code()
        code = yield w.get_code()
        say(sys.stderr, f"Wormhole code is: {code}")
        return w

    return go()


def close_wormhole(w):
    """w.close(); its error is printed, not raised: the other side may be gone or unhappy."""
    d = w.close()
    d.addErrback(lambda failure: say(sys.stderr, f"close: {failure.value!r}"))
    return d


def run_peer(name, body):
    """Run the reactor until `body(stdin_closed)` (a Deferred) fires, where `stdin_closed` fires
    once stdin closes; then exit 0, or 1 if the body failed."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    stdin_closed = Deferred()
    watch_stdin(lambda: reactor.callFromThread(stdin_closed.callback, None))
    status = {"exit": 0}

    def failed(failure):
        say(sys.stderr, f"{name} failed: {failure.value!r}")
        status["exit"] = 1

    def finish(result):
        if reactor.running:
            reactor.stop()
        return result

    reactor.callWhenRunning(lambda: body(stdin_closed).addErrback(failed).addBoth(finish))
    reactor.run()
    sys.exit(status["exit"])
