#!/usr/bin/env bash
# The demo: a real MCP client in C, authorized by libmcp_oauth, against real
# local peers.
#
#   scripts/demo.sh
#
# 1. Set-up (scripts/setup.sh), then builds libmcp_oauth and examples/c.
# 2. Starts the peers on 127.0.0.1: node-oidc-provider configured for MCP, and
#    an MCP server protected by it (the MCP Python SDK).
# 3. First run of the C client: 401, discovery, dynamic registration,
#    authorization through the built-in loopback receiver, token, then
#    initialize, tools/list and tools/call.
# 4. Second run: tokens and registration come from the file store; nobody is
#    asked, nothing is registered.
# The "browser" is scripts/demo-browser.sh: it follows the authorization
# server's redirects, standing in for a person who clicks "allow".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "set-up"
"$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"

step "building libmcp_oauth and the C MCP client"
cargo build --release --locked -p mcp-oauth-client-ffi
make -s -C examples/c mcp_client

step "starting the peers (authorization server + protected MCP server)"
WORK="$(mktemp -d)"
PEERS_PID=""
cleanup() {
    [[ -n "$PEERS_PID" ]] && kill "$PEERS_PID" 2>/dev/null && wait "$PEERS_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkfifo "$WORK/info"
python tests/peers/launch.py --no-stdin >"$WORK/info" 2>"$WORK/peers.log" &
PEERS_PID=$!
read -r INFO <"$WORK/info"
MCP_URL="$(python -c 'import json,sys; print(json.loads(sys.argv[1])["mcp_url"])' "$INFO")"
ISSUER="$(python -c 'import json,sys; print(json.loads(sys.argv[1])["issuer"])' "$INFO")"
echo "authorization server: $ISSUER"
echo "MCP server:           $MCP_URL"

export BROWSER="$ROOT/scripts/demo-browser.sh"
TOKENS="$WORK/tokens"

step "first run: nothing stored, so the client discovers, registers and authorizes"
examples/c/mcp_client --token-dir "$TOKENS" --call echo --args '{"text":"hello from C"}' "$MCP_URL"

step "second run: everything comes from the file store"
examples/c/mcp_client --token-dir "$TOKENS" --call whoami "$MCP_URL"

step "what the authorization server saw"
python - "$ISSUER" <<'PY'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/__control/state"))
print(f"authorizations: {state['authorizations']} (one, in the first run)")
print(f"token requests: {state['token_requests']}")
PY
echo
echo "demo complete"
