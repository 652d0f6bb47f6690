#!/usr/bin/env bash
# Creates the Python virtualenv that holds the reference implementations the interop tests run
# against (magic-wormhole CLI and library, mailbox server, transit relay), pinned to the versions
# PROTOCOL.md was checked against.
#
# Location: $WORMHOLE_TEST_VENV, else <repo>/.venv (gitignored). Idempotent: when the marker file
# in the venv records the same pin list, nothing is installed again. Any failure is fatal.
#
# Usage: scripts/python-env.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WORMHOLE_TEST_VENV:-$repo_root/.venv}"
python="${PYTHON:-python3}"

# The pins. Change them here only; the marker below makes every checkout reinstall on change.
pins=(
    "magic-wormhole[dilate]==0.24.0"
    "magic-wormhole-mailbox-server==0.8.0"
    "magic-wormhole-transit-relay==0.5.0"
)
want="$(printf '%s\n' "${pins[@]}")"

mkdir -p "$venv"
venv="$(cd "$venv" && pwd)"
marker="$venv/.wormhole-test-pins"

# One installer at a time per venv (several engineers or test runs may share a checkout).
exec 9>"$venv/.wormhole-test-lock"
flock 9

if [[ -x "$venv/bin/python" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    echo "python-env: $venv is up to date"
    exit 0
fi

if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "python-env: creating venv at $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

rm -f "$marker"
echo "python-env: installing ${pins[*]}"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input "${pins[@]}"

# Check what is importable and its version, rather than trusting pip's exit code alone.
"$venv/bin/python" - <<'PY'
from importlib.metadata import version

import noise  # noqa: F401  (the [dilate] extra)
import wormhole.cli.cli  # noqa: F401
import wormhole_mailbox_server.server  # noqa: F401
import wormhole_transit_relay.transit_server  # noqa: F401

expected = {
    "magic-wormhole": "0.24.0",
    "magic-wormhole-mailbox-server": "0.8.0",
    "magic-wormhole-transit-relay": "0.5.0",
}
for name, want in expected.items():
    got = version(name)
    if got != want:
        raise SystemExit(f"python-env: {name} is {got}, expected {want}")
PY

printf '%s\n' "$want" >"$marker"
echo "python-env: $venv is ready"
