#!/usr/bin/env bash
# Build the Python binding into the repo venv and run its tests.
#   tests/python/run.sh [pytest arguments]
# Needs scripts/setup.sh to have run (the venv, Node for the peers, cargo).
# Exits non-zero when the build or any test fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"

python -m pip install --quiet --disable-pip-version-check -r "$ROOT/bindings/python/requirements-test.txt"
(cd "$ROOT/bindings/python" && maturin develop --release --quiet)
cd "$ROOT"
# With a Secret Service on a private D-Bus session (scripts/with-keyring.sh) when
# gnome-keyring is installed, so the keychain store's tests run too.
if command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null; then
    exec "$ROOT/scripts/with-keyring.sh" python -m pytest tests/python "$@"
fi
python -m pytest tests/python "$@"
