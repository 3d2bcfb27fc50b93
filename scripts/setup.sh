#!/usr/bin/env bash
# Bootstrap a fresh Debian machine (or refresh an existing checkout) for building
# and testing this repo. Idempotent and fast when everything is already in place.
#
#   scripts/setup.sh            # from any directory
#   source scripts/env.sh       # afterwards: Node 22 and the venv on PATH
#
# What it does:
#   1. Debian packages (APT_PACKAGES below) when missing: installs them as root,
#      otherwise prints what is missing and exits non-zero.
#   2. npm ci in tests/peers (oidc-provider and a Node 22 binary from the npm
#      package `node`) and in tests/conformance when it has a package.json.
#   3. The venv .venv with tests/requirements.txt and bindings/python/requirements-test.txt.
#   4. Checks that the Rust toolchain (cargo) is there; installs cargo-fuzz
#      (cargo install cargo-fuzz --locked) when missing.
#   5. go mod download in bindings/go (Go from PATH or /usr/local/go/bin).
# Environment: PYTHON (interpreter for the venv, default python3),
#              SETUP_SKIP_APT=1 (do not check Debian packages).
set -euo pipefail

# Debian packages the build and the tests need (one list; add to it here).
APT_PACKAGES="libcurl4-openssl-dev libcjson-dev pkg-config valgrind curl make gcc g++ cmake clang redis-server"
# The keychain store's tests: a Secret Service (gnome-keyring) on a private
# D-Bus session, and secret-tool to read its entries as another program.
APT_PACKAGES+=" gnome-keyring dbus-daemon libsecret-tools"
# The loopback receiver's pages seen in a real browser (headless Chromium).
APT_PACKAGES+=" chromium"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
failures=()

say() { printf '[setup] %s\n' "$*"; }
warn() { printf '[setup] %s\n' "$*" >&2; }

# A stamp file holds the hash of the inputs of a step; the step is skipped when it matches.
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---------------------------------------------------------------------------
# 1. Debian packages
apt_step() {
    if [[ "${SETUP_SKIP_APT:-0}" == 1 ]]; then
        say "skipping Debian packages (SETUP_SKIP_APT=1)"
        return
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "not a Debian-based system: install the equivalents of: $APT_PACKAGES"
        warn "then rerun with SETUP_SKIP_APT=1"
        exit 1
    fi
    local missing=() p
    for p in $APT_PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        say "Debian packages present"
        return
    fi
    if [[ "$(id -u)" != 0 ]]; then
        warn "missing Debian packages: ${missing[*]}"
        warn "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------
# 2. npm projects (each pinned by its package-lock.json)
npm_ci() {
    local dir="$1"
    if [[ ! -f "$dir/package.json" ]]; then
        return
    fi
    if [[ ! -f "$dir/package-lock.json" ]]; then
        warn "$dir/package.json has no package-lock.json; skipping npm ci there"
        failures+=("npm lock file missing in ${dir#"$ROOT"/}")
        return
    fi
    local stamp="$dir/node_modules/.setup-stamp" want
    want="$(hash_of "$dir/package.json" "$dir/package-lock.json")"
    if stamp_ok "$stamp" "$want"; then
        say "npm packages in ${dir#"$ROOT"/} up to date"
        return
    fi
    say "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s' "$want" >"$stamp"
}

npm_step() {
    if ! command -v npm >/dev/null 2>&1; then
        warn "npm not found: install Node.js and npm (Debian: apt-get install -y nodejs npm), then rerun"
        exit 1
    fi
    npm_ci "$ROOT/tests/peers"
    npm_ci "$ROOT/tests/conformance"
    local node22="$ROOT/tests/peers/node_modules/node/bin/node" v
    if ! v="$("$node22" --version 2>/dev/null)" || [[ "$v" != v22.* ]]; then
        warn "Node 22 from the npm package 'node' is not usable at $node22 (got '${v:-nothing}')"
        warn "its install script may have been blocked: rerun 'npm ci' in tests/peers with install scripts allowed"
        rm -f "$ROOT/tests/peers/node_modules/.setup-stamp"
        exit 1
    fi
    say "Node $v at tests/peers/node_modules/node/bin"
}

# ---------------------------------------------------------------------------
# 3. Python venv
venv_step() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local reqs=("$ROOT/tests/requirements.txt" "$ROOT/bindings/python/requirements-test.txt")
    local stamp="$VENV/.setup-stamp" want args=() r
    want="$(hash_of "${reqs[@]}")-$("$VENV/bin/python" -c 'import sys; print(sys.version)' | head -1)"
    if stamp_ok "$stamp" "$want"; then
        say "Python packages in .venv up to date"
        return
    fi
    for r in "${reqs[@]}"; do args+=(-r "$r"); done
    say "pip install ${reqs[*]#"$ROOT"/} into .venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}"
    printf '%s' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# 5. Go modules of bindings/go (pinned by its go.sum; Go itself is not a
#    Debian package here: /usr/local/go/bin or PATH)
go_step() {
    local go
    go="$(command -v go || true)"
    [[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
    if [[ -z "$go" ]]; then
        warn "Go not found (PATH or /usr/local/go/bin): the go section of scripts/test.sh will fail"
        failures+=("go missing")
        return
    fi
    local stamp="$ROOT/bindings/go/.setup-stamp" want
    want="$(hash_of "$ROOT/bindings/go/go.sum")"
    if stamp_ok "$stamp" "$want"; then
        say "Go modules of bindings/go up to date"
        return
    fi
    say "go mod download in bindings/go"
    (cd "$ROOT/bindings/go" && "$go" mod download)
    printf '%s' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# 4. Rust toolchain
rust_step() {
    local cargo
    cargo="$(command -v cargo || true)"
    if [[ -z "$cargo" && -x "$HOME/.cargo/bin/cargo" ]]; then
        cargo="$HOME/.cargo/bin/cargo"
    fi
    if [[ -z "$cargo" ]]; then
        warn "Rust toolchain not found (no cargo on PATH or in ~/.cargo/bin)."
        warn "Install Rust >= 1.85 (rustup, https://rustup.rs) and rerun."
        failures+=("cargo missing")
        return
    fi
    say "$("$cargo" --version)"
    # cargo-fuzz, for the fuzz section of scripts/test.sh.
    if "$cargo" fuzz --version >/dev/null 2>&1; then
        say "$("$cargo" fuzz --version)"
    else
        say "cargo install cargo-fuzz --locked"
        "$cargo" install cargo-fuzz --locked || failures+=("cargo-fuzz")
    fi
}

apt_step
npm_step
venv_step
rust_step
go_step

if ((${#failures[@]})); then
    warn "incomplete: ${failures[*]}"
    exit 1
fi
say "done; run: source scripts/env.sh"
