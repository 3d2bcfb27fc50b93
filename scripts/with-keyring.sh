#!/usr/bin/env bash
# Run a command with a real Secret Service: a private D-Bus session bus
# (dbus-run-session) with gnome-keyring's secrets component, its login keyring
# created and unlocked non-interactively in a throwaway data directory.
# Used by scripts/test.sh for the keychain store's tests; works as root on a
# machine without a desktop session.
#
#   scripts/with-keyring.sh COMMAND [ARGS...]
set -euo pipefail

if [[ "${1:-}" != "--inside" ]]; then
    for tool in dbus-run-session gnome-keyring-daemon; do
        command -v "$tool" >/dev/null || {
            echo "with-keyring: $tool is missing (scripts/setup.sh installs it)" >&2
            exit 1
        }
    done
    exec dbus-run-session -- "$0" --inside "$@"
fi
shift

data="$(mktemp -d)"
# The daemon ends with the session bus, which ends after this script.
trap 'rm -rf "$data"' EXIT
export XDG_DATA_HOME="$data" XDG_RUNTIME_DIR="$data/run"
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
# The password only protects this throwaway keyring.
eval "$(printf 'test-keyring' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL MCP_OAUTH_KEYRING_TESTS=1
"$@"
