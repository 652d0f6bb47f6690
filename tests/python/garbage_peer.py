"""A peer built on the reference library (magic-wormhole) that sends bad app messages, for tests.

It opens a wormhole (wormhole.create) on --relay-url, with --code or an allocated code (printed on
stderr as `Wormhole code is: <code>`, like the CLI's sender), waits until the key is verified,
then sends the application messages (phases "0", "1" ...) chosen by --send:

- not-json: the bytes b"\\xff\\x00 not json" (not even UTF-8);
- json-array: `[1, 2, 3]`: JSON, but not an object;
- unknown-offer: `{"offer": {"teleport": {"destination": "mars"}}}`;
- answer: `{"answer": {"message_ack": "ok"}}`, an answer to a receiver that offered nothing;
- file-ack: `{"answer": {"file_ack": "ok"}}`, a file answer to a text offer;
- hostile-error: `{"error": HOSTILE_ERROR}`, an error whose text is terminal escape sequences
  (set the window title, clear the screen, fake a prompt, hide what follows).

Every message the other side sends is printed on stdout as `peer said: <text>`. With
--after-peer-message it first waits for one (e.g. the text offer of a sender); with --expect-reply
it waits for one after sending (e.g. the receiver's `error`), so that it is printed before the
script exits. Then it waits until stdin closes, closes the wormhole and exits 0 (errors of the
close are printed, not raised: the other side may have gone).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
from _harness import say  # noqa: E402

HOSTILE_ERROR = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL...ok? (y/N) \x1b[8m"

PAYLOADS = {
    "not-json": b"\xff\x00 not json",
    "json-array": b"[1, 2, 3]",
    "unknown-offer": b'{"offer": {"teleport": {"destination": "mars"}}}',
    "answer": b'{"answer": {"message_ack": "ok"}}',
    "file-ack": b'{"answer": {"file_ack": "ok"}}',
    "hostile-error": json.dumps({"error": HOSTILE_ERROR}).encode(),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _harness.add_peer_arguments(parser)
    parser.add_argument(
        "--send",
        required=True,
        action="append",
        choices=sorted(PAYLOADS),
        help="what to send (repeat to send several messages, in order)",
    )
    parser.add_argument(
        "--after-peer-message",
        action="store_true",
        help="wait for one message from the other side before sending",
    )
    parser.add_argument(
        "--expect-reply",
        action="store_true",
        help="after sending, wait for one message from the other side",
    )
    args = parser.parse_args()

    from twisted.internet import reactor
    from twisted.internet.defer import inlineCallbacks

    @inlineCallbacks
    def run(stdin_closed):
        w = yield _harness.open_wormhole(args, reactor)
        yield w.get_verifier()
        say(sys.stderr, "key verified")
        if args.after_peer_message:
            first = yield w.get_message()
            say(sys.stdout, f"peer said: {first.decode('utf-8', 'replace')}")
        for payload in args.send:
            w.send_message(PAYLOADS[payload])
            say(sys.stderr, f"sent {payload}")
        if args.expect_reply:
            reply = yield w.get_message()
            say(sys.stdout, f"peer said: {reply.decode('utf-8', 'replace')}")

        def print_messages(_=None):
            d = w.get_message()
            d.addCallback(
                lambda m: say(sys.stdout, f"peer said: {m.decode('utf-8', 'replace')}")
            )
            d.addCallback(print_messages)
            d.addErrback(lambda f: say(sys.stderr, f"get_message: {f.value!r}"))

        print_messages()
        yield stdin_closed
        yield _harness.close_wormhole(w)

    _harness.run_peer("garbage_peer", run)


if __name__ == "__main__":
    main()
