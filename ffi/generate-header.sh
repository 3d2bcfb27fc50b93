#!/bin/sh
# Regenerate include/mcp_oauth.h from ffi/src with cbindgen.
#   ffi/generate-header.sh          write the header
#   ffi/generate-header.sh --check  fail (exit 1) if the committed header differs
# Uses the pinned cbindgen 0.29.4, installed with `cargo install --locked` when missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
want=0.29.4
have=$(cbindgen --version 2>/dev/null | awk '{print $2}') || true
if [ "$have" != "$want" ]; then
    echo "generate-header.sh: installing cbindgen $want (found: ${have:-none})" >&2
    cargo install cbindgen --locked --version "$want" >&2
fi
out="$root/include/mcp_oauth.h"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config "$here/cbindgen.toml" --crate mcp-oauth-client-ffi --output "$tmp" "$here"
if [ "${1:-}" = "--check" ]; then
    if ! diff -u "$out" "$tmp"; then
        echo "include/mcp_oauth.h is out of date: run ffi/generate-header.sh" >&2
        exit 1
    fi
    echo "include/mcp_oauth.h is up to date"
else
    mkdir -p "$root/include"
    cp "$tmp" "$out"
    echo "wrote include/mcp_oauth.h"
fi
