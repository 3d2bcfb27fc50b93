# Source this file (bash or zsh) after scripts/setup.sh:
#   source scripts/env.sh
# Puts the repo's Node 22 first on PATH and activates the repo venv (.venv).

if [ -n "${BASH_SOURCE:-}" ]; then
    _mcp_env_src="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
    _mcp_env_src="${(%):-%x}"
else
    _mcp_env_src="$0"
fi
MCP_OAUTH_ROOT="$(cd "$(dirname "$_mcp_env_src")/.." && pwd)"
export MCP_OAUTH_ROOT
unset _mcp_env_src

_mcp_node_bin="$MCP_OAUTH_ROOT/tests/peers/node_modules/node/bin"
if [ -x "$_mcp_node_bin/node" ]; then
    case ":$PATH:" in
        *":$_mcp_node_bin:"*) ;;
        *) PATH="$_mcp_node_bin:$PATH" ;;
    esac
    export PATH
else
    echo "env.sh: Node 22 not installed yet; run scripts/setup.sh" >&2
fi
unset _mcp_node_bin

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
    export PATH
fi

if [ -f "$MCP_OAUTH_ROOT/.venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "$MCP_OAUTH_ROOT/.venv/bin/activate"
else
    echo "env.sh: .venv missing; run scripts/setup.sh" >&2
fi
