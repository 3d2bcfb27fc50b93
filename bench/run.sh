#!/usr/bin/env bash
# Every benchmark of the performance issue in one run, one table at the end:
# each figure for ours beside the MCP Python SDK's or the machine's floor, the
# ratio, the goal, pass or not.
#
#   bench/run.sh [--quick]
#
# Needs scripts/setup.sh to have run (the venv, Node for the peers, Go, cargo).
# Builds what it needs in release mode (the C library, the Rust examples, the
# Python module into .venv) and the C library in the dist profile (its size),
# starts the real peers itself, and takes about 10-15 minutes on 2 cores
# (--quick: about 3, without the dist build). The build goes to $ROOT/target,
# where the Go binding's cgo flags look for libmcp_oauth.a.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
export CARGO_TARGET_DIR="$ROOT/target"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="$PATH:/usr/local/go/bin"
fi
cd "$ROOT"

echo "[bench] building (release)" >&2
cargo build --release --quiet -p mcp-oauth-client-ffi
cargo build --release --quiet -p mcp-oauth-client --example bench_hot_path --example bench_scale
(cd bindings/python && maturin develop --release --quiet)
make --quiet -C tests/c bench >/dev/null
# The shipped library's profile, for its size (fat LTO: a few minutes more).
if [[ " $* " != *" --quick "* ]]; then
    cargo build --profile dist --quiet -p mcp-oauth-client-ffi
fi

exec python bench/run.py "$@"
