"""Run the reference `wormhole` CLI (magic-wormhole) with every test byte kept on loopback.

Arguments pass through unchanged: `python wormhole_cli.py --relay-url URL send --text hi`.

Two guards against the public internet:
- `wormhole.ipaddrs.find_addresses` returns only 127.0.0.1, so the Transit and Dilation hints it
  advertises (and listens on) are loopback only;
- unless the caller set them (flag or environment), WORMHOLE_RELAY_URL and
  WORMHOLE_TRANSIT_HELPER default to closed ports on 127.0.0.1 instead of the public servers, so a
  test that forgets `--relay-url` fails instead of reaching relay.magic-wormhole.io.
"""

import os
import sys

os.environ.setdefault("WORMHOLE_RELAY_URL", "ws://127.0.0.1:1/v1")
os.environ.setdefault("WORMHOLE_TRANSIT_HELPER", "tcp:127.0.0.1:1")

from wormhole import ipaddrs  # noqa: E402


def _loopback_only():
    return ["127.0.0.1"]


ipaddrs.find_addresses = _loopback_only

from wormhole.cli.cli import wormhole  # noqa: E402

if __name__ == "__main__":
    sys.exit(wormhole(prog_name="wormhole"))
