#!/usr/bin/env bash
# Run every test of the project: the Rust core (unit, edge cases, and
# integration against the real peers), the Redis fleet store (against
# redis-server instances and a three-node cluster the tests start), the C
# ABI (C tests under sanitizers and valgrind, header drift), the Python
# module, the Go package, the MCP conformance suite for the C and Python
# clients, and a short run of every fuzz target.
#
#   scripts/test.sh              # everything (does the set-up first)
#   scripts/test.sh rust python  # only some sections
#
# Sections: rust, redis, header, peers, c, python, go, conformance, fuzz.
# Exits non-zero when any section fails; the last line counts the sections.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup.sh" || { echo "set-up failed; see the messages above" >&2; exit 1; }
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"

ALL_SECTIONS=(rust redis header peers c python go conformance fuzz)
if (($#)); then SECTIONS=("$@"); else SECTIONS=("${ALL_SECTIONS[@]}"); fi

passed=0
failed=0
failed_names=()
started=$(date +%s)

run_section() {
    local name="$1"; shift
    local t0; t0=$(date +%s)
    printf '\n==== %s ====\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
        printf '==== %s: ok (%ss)\n' "$name" "$(($(date +%s) - t0))"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        printf '==== %s: FAILED (%ss)\n' "$name" "$(($(date +%s) - t0))"
    fi
}

section_rust() {
    # Formatting and lints where the toolchain has them (rustup's default profile does).
    if cargo fmt --version >/dev/null 2>&1; then
        cargo fmt --all --check || return 1
    else
        echo "rustfmt is not installed: formatting not checked (rustup component add rustfmt)"
    fi
    if cargo clippy --version >/dev/null 2>&1; then
        cargo clippy --workspace --all-targets --locked -- -D warnings || return 1
    else
        echo "clippy is not installed: lints not checked (rustup component add clippy)"
    fi
    cargo test --workspace --locked --no-fail-fast || return 1
    # The keychain store against a real Secret Service (gnome-keyring on a
    # private D-Bus session; see scripts/with-keyring.sh).
    "$ROOT/scripts/with-keyring.sh" cargo test --locked -p mcp-oauth-client --features keyring --test keyring \
        -- --include-ignored || return 1
    # The mcp-oauth tool with --store keychain, under the same Secret Service.
    "$ROOT/scripts/with-keyring.sh" cargo test --locked -p mcp-oauth --test peers keychain -- --include-ignored
}

section_redis() {
    # The tests start their own redis-server processes (one instance, and a
    # three-node cluster through redis-cli --cluster create) on free 127.0.0.1
    # ports, and stop them after. Without the tools this section fails: the
    # fleet store is never reported as tested when it was not.
    local tool
    for tool in redis-server redis-cli; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "$tool is not installed: the Redis store cannot be tested (scripts/setup.sh installs redis-server)"
            return 1
        fi
    done
    # The core with Redis alone (no keychain): a feature set of its own.
    cargo clippy -p mcp-oauth-client --features redis --all-targets --locked -- -D warnings || return 1
    # The workspace's tests (the rust section) build the core with every
    # feature the C library has, Redis included, and run these already.
    if [[ " ${SECTIONS[*]} " == *" rust "* ]]; then
        echo "the Redis tests (storage::redis, redis_fleet) ran in the rust section"
        return 0
    fi
    cargo test -p mcp-oauth-client --features redis --locked --no-fail-fast --lib storage::redis || return 1
    cargo test -p mcp-oauth-client --features redis --locked --no-fail-fast --test redis_fleet
}

section_header() {
    # The header is cbindgen's output, and Swift's module map imports it (clang).
    "$ROOT/ffi/generate-header.sh" --check && "$ROOT/bindings/swift/check.sh"
}

section_peers() {
    python -m pytest -q -p no:cacheprovider tests/peers
}

section_c() {
    "$ROOT/tests/c/run.sh"
}

section_python() {
    "$ROOT/tests/python/run.sh"
}

go_binary() {
    local go
    go="$(command -v go || true)"
    [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
    if [ -z "$go" ]; then echo "Go is not installed (PATH or /usr/local/go/bin)" >&2; return 1; fi
    printf '%s' "$go"
}

# The Go example client (also the Go conformance client), over the release static library.
build_go_client() {
    local go
    go="$(go_binary)" || return 1
    (cd "$ROOT/bindings/go" && "$go" build -o "${CARGO_TARGET_DIR:-$ROOT/target}/go/mcp-go-client" ./cmd/mcp-go-client)
}

section_go() {
    # bindings/go links the release static library; its tests start the peers.
    local go
    go="$(go_binary)" || return 1
    cargo build --release --locked -p mcp-oauth-client-ffi || return 1
    (
        cd "$ROOT/bindings/go" || exit 1
        unformatted="$("$(dirname "$go")/gofmt" -l .)"
        if [ -n "$unformatted" ]; then echo "not gofmt-formatted: $unformatted"; exit 1; fi
        "$go" vet ./... && "$go" test -race -count=1 ./...
    )
}

section_conformance() {
    local rc=0
    # The clients' build step (tests/conformance/README.md): the C client over the
    # release libmcp_oauth, mcp_oauth_client in the venv, the Go client.
    cargo build --release --locked -p mcp-oauth-client-ffi &&
        make -s -B -C "$ROOT/examples/c" PROFILE=release mcp_client &&
        (cd "$ROOT/bindings/python" && maturin develop --release --quiet) &&
        build_go_client || return 1
    "$ROOT/tests/conformance/run.sh" c || rc=1
    "$ROOT/tests/conformance/run.sh" python || rc=1
    "$ROOT/tests/conformance/run.sh" go || rc=1
    return $rc
}

# Seconds each fuzz target runs (libFuzzer's -max_total_time).
FUZZ_SECONDS="${FUZZ_SECONDS:-15}"

section_fuzz() {
    # The seed corpus and the inputs of fixed crashes, through the targets'
    # entry points, without cargo-fuzz.
    cargo test -p mcp-oauth-client --features fuzzing,redis --locked --test fuzz_corpus || return 1
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz is not installed: the fuzz targets were not run (scripts/setup.sh installs it)"
        return 1
    fi
    # cargo-fuzz needs a nightly compiler (sanitizer flags): nightly when
    # installed, else the stable one with its unstable features unlocked.
    local cargo=(env RUSTC_BOOTSTRAP=1 cargo)
    if rustup run nightly rustc --version >/dev/null 2>&1; then
        cargo=(cargo +nightly)
    fi
    (cd "$ROOT/fuzz" && "${cargo[@]}" fuzz build) || return 1
    # Each target from its seeds, for FUZZ_SECONDS; new inputs go to a scratch
    # directory so the committed corpus stays as it is. A crash, a leak, a
    # timeout (10 s for one input) or an out-of-memory fails the section.
    local work t log rc=0
    work="$(mktemp -d)"
    for t in $(cd "$ROOT/fuzz" && "${cargo[@]}" fuzz list); do
        mkdir -p "$work/$t"
        log="$work/$t.log"
        if (cd "$ROOT/fuzz" && "${cargo[@]}" fuzz run "$t" "$work/$t" "corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 >"$log" 2>&1); then
            printf '%-22s %s\n' "$t" "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
        else
            tail -n 60 "$log"
            echo "fuzz target $t FAILED (the input is in fuzz/artifacts/$t)"
            rc=1
        fi
    done
    rm -rf "$work"
    return $rc
}

for s in "${SECTIONS[@]}"; do
    case "$s" in
        rust | redis | header | peers | c | python | go | conformance | fuzz) run_section "$s" "section_$s" ;;
        *) echo "unknown section: $s (known: ${ALL_SECTIONS[*]})" >&2; exit 2 ;;
    esac
done

printf '\nsections: %s; wall time %ss\n' "${SECTIONS[*]}" "$(($(date +%s) - started))"
if ((failed)); then
    printf 'failed sections: %s\n' "${failed_names[*]}"
fi
printf 'sections: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
