"""Bulk-data endpoints for bench/dilation.py: the Python reference as a Dilation peer, and the app
end of one of wormholed's subchannel sockets.

Both send or receive N bytes of a fixed pattern (a 4 MiB block of seeded pseudo-random bytes,
repeated, cut at N: see `pattern_chunks`), and both print on stdout:

    sender     `sent N`                                  once the subchannel is closed both ways
    receiver   `received N <sha256 hex> <first-to-last s>`  when the subchannel ended (EOF); the
               seconds are time.perf_counter() from the first byte read to the last byte read
    both       `stats <cpu s> <VmHWM KiB>`               this process's user+system CPU seconds
               (os.times) and peak RSS (/proc/self/status VmHWM) at that moment

Modes:

    wormhole   the reference library (magic-wormhole 0.24): create(dilation=True) with --code on
               --relay-url, dilate(transit_relay_location=--transit-helper), then --send N through
               connector_for(--subprotocol) (a streaming IPushProducer registered on the
               subchannel: writes of --chunk bytes while the Dilation outbound queue is not
               paused), or --receive through listener_for; find_addresses is patched to
               127.0.0.1. Prints `dilated` on stderr. After the stats line it closes the wormhole
               (bounded) and exits.
    socket     connect to --socket (a subchannel socket of wormholed) and write N bytes
               (sendall of 1 MiB slices), shut the write half, read to EOF; or read to EOF
               (recv_into a 1 MiB buffer) and hash.
"""

import argparse
import hashlib
import os
import random
import socket
import sys
import time

BLOCK = 4 << 20
SEED = 2026


def say(stream, text):
    stream.write(text + "\n")
    stream.flush()


def block():
    return random.Random(SEED).randbytes(BLOCK)


def pattern_chunks(size, chunk):
    """The pattern of `size` bytes as a list of bytes objects of at most `chunk` bytes, each
    reused: the list covers one block; callers cycle through it. Returns (chunks, per block)."""
    data = block()
    assert BLOCK % chunk == 0
    return [data[i:i + chunk] for i in range(0, BLOCK, chunk)]


def pattern_sha256(size):
    data = block()
    h = hashlib.sha256()
    left = size
    while left:
        n = min(left, BLOCK)
        h.update(data[:n] if n < BLOCK else data)
        left -= n
    return h.hexdigest()


def stats():
    t = os.times()
    hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    say(sys.stdout, f"stats {t.user + t.system:.3f} {hwm}")


class Receiver:
    def __init__(self):
        self.hash = hashlib.sha256()
        self.count = 0
        self.first = None
        self.last = None

    def data(self, data):
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.hash.update(data)
        self.count += len(data)

    def report(self):
        span = (self.last - self.first) if self.first is not None else 0.0
        say(sys.stdout, f"received {self.count} {self.hash.hexdigest()} {span:.6f}")


def socket_mode(args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    s.connect(args.socket)
    if args.send is not None:
        chunks = pattern_chunks(args.send, 1 << 20)
        left = args.send
        i = 0
        while left:
            c = chunks[i % len(chunks)]
            if len(c) > left:
                c = c[:left]
            s.sendall(c)
            left -= len(c)
            i += 1
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        say(sys.stdout, f"sent {args.send}")
    else:
        r = Receiver()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            r.data(view[:n])
        r.report()
    s.close()
    stats()


def wormhole_mode(args):
    from wormhole import ipaddrs

    ipaddrs.find_addresses = lambda: ["127.0.0.1"]

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, inlineCallbacks
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import deferLater

    import wormhole

    done = Deferred()

    class Reader(Protocol):
        def connectionMade(self):
            self.r = Receiver()

        def dataReceived(self, data):
            self.r.data(data)

        def connectionLost(self, reason=None):
            self.r.report()
            if not done.called:
                done.callback(None)

    class Writer(Protocol):
        """A streaming producer on its own subchannel transport."""

        def connectionMade(self):
            self.chunks = pattern_chunks(args.send, args.chunk)
            self.left = args.send
            self.i = 0
            self.paused = False
            self.scheduled = False
            self.transport.registerProducer(self, True)
            self.schedule()

        def schedule(self):
            if not self.scheduled:
                self.scheduled = True
                reactor.callLater(0, self.pump)

        def pump(self):
            self.scheduled = False
            n = 0
            while self.left and not self.paused and n < 256:
                c = self.chunks[self.i % len(self.chunks)]
                if len(c) > self.left:
                    c = c[:self.left]
                self.left -= len(c)
                self.i += 1
                n += 1
                self.transport.write(c)
            if self.left == 0:
                if self.transport is not None and not getattr(self, "finished", False):
                    self.finished = True
                    self.transport.unregisterProducer()
                    self.transport.loseConnection()
            elif not self.paused:
                self.schedule()

        def pauseProducing(self):
            self.paused = True

        def resumeProducing(self):
            self.paused = False
            if self.left:
                self.schedule()

        def stopProducing(self):
            self.left = 0

        def dataReceived(self, data):
            pass

        def connectionLost(self, reason=None):
            say(sys.stdout, f"sent {args.send - self.left}")
            if not done.called:
                done.callback(None)

    @inlineCallbacks
    def run():
        w = wormhole.create(args.appid, args.relay_url, reactor, dilation=True)
        w.set_code(args.code)
        dw = w.dilate(transit_relay_location=args.transit_helper, no_listen=False)
        if args.send is None:
            yield dw.listener_for(args.subprotocol).listen(Factory.forProtocol(Reader))
        yield dw.when_dilated()
        say(sys.stderr, "dilated")
        if args.send is not None:
            yield dw.connector_for(args.subprotocol).connect(Factory.forProtocol(Writer))
        yield done
        stats()
        closing = w.close()
        closing.addErrback(lambda f: say(sys.stderr, f"close: {f.value!r}"))
        timer = deferLater(reactor, 10, lambda: None)
        first = Deferred()
        closing.addBoth(lambda _: first.called or first.callback(None))
        timer.addBoth(lambda _: first.called or first.callback(None))
        yield first

    def failed(failure):
        say(sys.stderr, f"dilation_peer_bench failed: {failure.value!r}")
        global exit_code
        exit_code = 1

    def finish(_):
        if reactor.running:
            reactor.stop()

    reactor.callWhenRunning(lambda: run().addErrback(failed).addBoth(finish))
    reactor.run()


exit_code = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["wormhole", "socket"])
    parser.add_argument("--relay-url", help="ws:// URL of the mailbox server (wormhole mode)")
    parser.add_argument("--transit-helper", default=None, help="tcp:HOST:PORT (wormhole mode)")
    parser.add_argument("--appid", default="lothar.com/wormhole/text-or-file-xfer")
    parser.add_argument("--code", help="the code (wormhole mode)")
    parser.add_argument("--subprotocol", default="bench")
    parser.add_argument("--chunk", type=int, default=65536,
                        help="bytes per subchannel write in wormhole mode (default 65536)")
    parser.add_argument("--socket", help="subchannel socket path (socket mode)")
    parser.add_argument("--timeout", type=float, default=120.0, help="socket timeout (s)")
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--send", type=int, metavar="N")
    side.add_argument("--receive", action="store_true")
    args = parser.parse_args()
    if args.mode == "socket":
        socket_mode(args)
    else:
        wormhole_mode(args)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
