"""Shared plumbing of the test servers: the `listening <port>` contract and the stdin watchdog.

Every server script prints exactly one line `listening <port>` on stdout once its socket accepts
connections, then runs until it is killed or until its stdin reaches end of file (so a server never
outlives the test process that spawned it with a piped stdin). Pass `--ignore-stdin` to run one by
hand with stdin closed.
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


def stop_on_stdin_eof(reactor, args):
    """Stop the reactor once stdin is closed, unless --ignore-stdin was given."""
    if args.ignore_stdin:
        return

    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            reactor.callFromThread(reactor.stop)

    threading.Thread(target=watch, name="stdin-watchdog", daemon=True).start()
