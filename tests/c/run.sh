#!/usr/bin/env bash
# The C tests of libmcp_oauth, end to end:
#   1. build the library (debug) and the C programs, with ASan+UBSan and plain;
#   2. start the real peers (oidc-provider + the protected MCP server);
#   3. under ASan+UBSan: every error path (test_api), the full flow through the
#      C API (test_flow), and the example client against the peers: a first run
#      authorizes (loopback receiver + $BROWSER=curl), a second run uses the file
#      store and does no authorization (checked with the AS's control counters);
#   4. under valgrind: test_api and test_flow, zero errors and zero definite leaks;
#   5. misuse (test_misuse, ASan+UBSan and valgrind): NULL, invalid UTF-8
#      and empty strings in every argument of every function (cases
#      generated from the header by gen_null_cases.py at build time),
#      zero lengths, blocking calls from every kind of callback,
#      cancellation in every state, 16 threads on one provider;
#   6. the Redis store (test_redis, ASan+UBSan) against a redis-server started
#      here on a free port and stopped at the end.
# Exits non-zero on any failure; the last line is "N passed, N failed".
#
#   tests/c/run.sh                 (after scripts/setup.sh; source scripts/env.sh)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/c"
cd "$ROOT"
if [ -f "$ROOT/scripts/env.sh" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
    # shellcheck disable=SC1091
    source "$ROOT/scripts/env.sh" >/dev/null 2>&1 || true
fi
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }
finish() {
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

WORK="$(mktemp -d)"
PEERS_PID=""
REDIS_PID=""
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [ -n "$PEERS_PID" ]; then
        exec 3>&- 2>/dev/null || true # closing the launcher's stdin stops the peers
        for _ in $(seq 50); do kill -0 "$PEERS_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$PEERS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Run a test program; its "RESULT passed=N failed=M" line adds to the totals.
run_program() {
    local label="$1"; shift
    local out="$WORK/$label.out"
    "$@" >"$out" 2>&1
    local rc=$?
    grep -E '^not ok' "$out" | sed "s/^/  [$label] /"
    local line p f
    line=$(grep -E '^RESULT passed=' "$out" | tail -1)
    p=$(sed -n 's/.*passed=\([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
        pass "$label: ${p} checks"
    else
        fail "$label: exit status $rc; output follows"
        tail -40 "$out" | sed 's/^/    /'
    fi
    return $rc
}

echo "# building libmcp_oauth (debug)"
if cargo build -p mcp-oauth-client-ffi; then pass "cargo build -p mcp-oauth-client-ffi"; else fail "cargo build"; finish; fi

echo "# building the C programs"
if make -s -C "$HERE" SAN=1 >"$WORK/make-asan.log" 2>&1; then pass "C tests build with -Wall -Wextra -Werror, ASan+UBSan"; else fail "make SAN=1"; cat "$WORK/make-asan.log"; finish; fi
if make -s -C "$HERE" SAN=0 >"$WORK/make-plain.log" 2>&1; then pass "C tests build (plain, for valgrind)"; else fail "make"; cat "$WORK/make-plain.log"; finish; fi
if make -s -C "$ROOT/examples/c" PROFILE=debug >"$WORK/make-example.log" 2>&1 && "$ROOT/examples/c/cpp_header_check" >/dev/null; then
    pass "examples/c builds with -std=c11 and the C++17 header compiles and runs"
else
    fail "examples/c build"; cat "$WORK/make-example.log"
fi

# (the compiler's failure is the expected outcome: its output is what is checked)
cxx14_out=$(printf '#include "mcp_oauth.hpp"\n' | ${CXX:-c++} -std=c++14 -fsyntax-only -I"$ROOT/include" -x c++ - 2>&1)
if grep -q "needs C++17" <<<"$cxx14_out"; then
    pass "mcp_oauth.hpp refuses a pre-C++17 compiler with a clear error"
else
    fail "mcp_oauth.hpp with -std=c++14"
fi

# The misuse generator covers a new function by itself, and refuses what it
# cannot handle rather than skipping it.
GEN_HEADER="$WORK/gen-check.h"
cp "$ROOT/include/mcp_oauth.h" "$GEN_HEADER"
printf '\n/**\n * Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.\n */\nmcp_oauth_result mcp_oauth_gen_check_new(const struct mcp_oauth_provider *provider,\n                                         const char *name);\n' >>"$GEN_HEADER"
if python3 "$HERE/gen_null_cases.py" "$GEN_HEADER" "$WORK/gen-check-cases.h" &&
    grep -q 'mcp_oauth_gen_check_new(NULL provider, name)' "$WORK/gen-check-cases.h" &&
    grep -q 'mcp_oauth_gen_check_new(provider, NULL name)' "$WORK/gen-check-cases.h"; then
    pass "gen_null_cases.py: a function added to the header gets its NULL cases without anything written by hand"
else
    fail "gen_null_cases.py did not cover a new function"
fi
cp "$ROOT/include/mcp_oauth.h" "$GEN_HEADER"
printf '\nmcp_oauth_result mcp_oauth_gen_check_odd(struct mcp_oauth_unknown_thing *thing);\n' >>"$GEN_HEADER"
if ! python3 "$HERE/gen_null_cases.py" "$GEN_HEADER" "$WORK/gen-check-odd.h" 2>"$WORK/gen-check.err" &&
    grep -q 'mcp_oauth_gen_check_odd' "$WORK/gen-check.err"; then
    pass "gen_null_cases.py fails loudly on a parameter type it does not know ($(head -c 120 "$WORK/gen-check.err"))"
else
    fail "gen_null_cases.py accepted a parameter type it does not know"
fi

echo "# starting the peers"
mkfifo "$WORK/peers.in"
"$PYTHON" "$ROOT/tests/peers/launch.py" <"$WORK/peers.in" >"$WORK/peers.json" 2>"$WORK/peers.log" &
PEERS_PID=$!
exec 3>"$WORK/peers.in"
for _ in $(seq 600); do
    [ -s "$WORK/peers.json" ] && break
    kill -0 "$PEERS_PID" 2>/dev/null || break
    sleep 0.1
done
if ! [ -s "$WORK/peers.json" ]; then
    fail "the peers did not start"; tail -20 "$WORK/peers.log"; finish
fi
peer() { "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/peers.json" "$1"; }
export MCP_URL ISSUER PRM_URL CONTROL_URL
MCP_URL=$(peer mcp_url); ISSUER=$(peer issuer); PRM_URL=$(peer prm_url); CONTROL_URL=$(peer control_url)
pass "peers up: MCP $MCP_URL, AS $ISSUER"
export BROWSER="$HERE/browser-curl.sh %s"
# The Rust runtime's threads are still running at exit; their memory is
# reachable, not leaked, so LeakSanitizer stays on.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

authorizations() { curl -s "$CONTROL_URL/state" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['authorizations'])"; }
token_requests() { curl -s "$CONTROL_URL/state" | "$PYTHON" -c "import json,sys; print(sum(json.load(sys.stdin)['token_requests'].values()))"; }

echo "# ASan+UBSan: error paths"
run_program "asan test_api" "$HERE/build-asan/test_api"

echo "# ASan+UBSan: what a shipping host relies on (release, cancellation, transport, versions)"
run_program "asan test_abi" "$HERE/build-asan/test_abi"

echo "# ASan+UBSan: the machine-to-machine setters and the signing callback"
run_program "asan test_m2m" "$HERE/build-asan/test_m2m"

echo "# ASan+UBSan: misuse (generated NULL/UTF-8/empty cases, zero lengths, re-entrancy, cancellation, 16 threads)"
run_program "asan test_misuse" "$HERE/build-asan/test_misuse"

echo "# ASan+UBSan: the device flow, log-out with revocation, the keychain store's error without a Secret Service"
export APPROVE_DEVICE="$ROOT/tests/browser/approve_device.py"
run_program "asan test_builtins" "$HERE/build-asan/test_builtins"
echo "# ASan+UBSan: the keychain store with a real Secret Service (gnome-keyring, scripts/with-keyring.sh)"
run_program "asan test_builtins keyring" "$ROOT/scripts/with-keyring.sh" "$HERE/build-asan/test_builtins"

echo "# ASan+UBSan: the full flow through the C API"
TOKEN_DIR="$WORK/tokens-flow" run_program "asan test_flow" "$HERE/build-asan/test_flow"

echo "# ASan+UBSan: no secret in the TRACE log or the errors of every grant (scan_secrets.py checks the record)"
mkdir -p "$WORK/secrets"
if KEYS_DIR="$ROOT/core/tests/keys" SECRETS_DIR="$WORK/secrets" run_program "asan test_secrets" "$HERE/build-asan/test_secrets"; then
    if "$PYTHON" "$HERE/scan_secrets.py" "$WORK/secrets" >"$WORK/scan.out" 2>&1; then
        pass "no secret in the log or the error text: $(head -1 "$WORK/scan.out" | sed 's/^# //')"
    else
        fail "secrets found in the log or the error text"; sed 's/^/    /' "$WORK/scan.out" | tail -40
    fi
fi

echo "# ASan+UBSan: the example client against the peers"
CLIENT="$HERE/build-asan/mcp_client"
a0=$(authorizations)
if "$CLIENT" --token-dir "$WORK/tokens-client" "$MCP_URL" >"$WORK/client1.out" 2>&1 &&
    grep -q "tools/list" "$WORK/client1.out" && grep -q "whoami" "$WORK/client1.out" &&
    grep -q "handing the response to libmcp_oauth" "$WORK/client1.out"; then
    pass "client, first run: 401, authorization through the loopback receiver, tools/list, tools/call"
else
    fail "client, first run"; sed 's/^/    /' "$WORK/client1.out" | tail -40
fi
a1=$(authorizations); t1=$(token_requests)
if [ "$a1" -eq $((a0 + 1)) ]; then pass "first run: one authorization at the AS ($a0 -> $a1)"; else fail "first run: authorizations $a0 -> $a1"; fi
if "$CLIENT" --token-dir "$WORK/tokens-client" "$MCP_URL" --call echo --args '{"text":"from the file store"}' \
    >"$WORK/client2.out" 2>&1 && grep -q "from the file store" "$WORK/client2.out" &&
    ! grep -q "handing the response" "$WORK/client2.out"; then
    pass "client, second run: tokens from the file store, no 401, tools/call echo"
else
    fail "client, second run"; sed 's/^/    /' "$WORK/client2.out" | tail -40
fi
a2=$(authorizations); t2=$(token_requests)
if [ "$a2" -eq "$a1" ] && [ "$t2" -eq "$t1" ]; then
    pass "second run: no authorization and no token request at the AS"
else
    fail "second run: authorizations $a1 -> $a2, token requests $t1 -> $t2"
fi
if "$CLIENT" --headless --memory-store --no-call "$MCP_URL" >"$WORK/client3.out" 2>&1 &&
    grep -q "tools/list" "$WORK/client3.out"; then
    pass "client --headless --memory-store"
else
    fail "client --headless"; sed 's/^/    /' "$WORK/client3.out" | tail -40
fi
if "$CLIENT" --headless --memory-store --call admin_action "$MCP_URL" >"$WORK/client4.out" 2>&1 &&
    grep -q "stepping up" "$WORK/client4.out" && grep -q "admin action done" "$WORK/client4.out"; then
    pass "client: 403 insufficient_scope on tools/call, step-up, retry"
else
    fail "client step-up"; sed 's/^/    /' "$WORK/client4.out" | tail -40
fi

echo "# ASan+UBSan: the event-loop example (libcurl multi, the transport callback, async calls, storage callbacks)"
ASYNC="$HERE/build-asan/mcp_async_client"
a3=$(authorizations)
if "$ASYNC" --store-dir "$WORK/tokens-async" "$MCP_URL" >"$WORK/async1.out" 2>&1 &&
    grep -q "handing the response to libmcp_oauth" "$WORK/async1.out" && grep -q "^tools/list: .*echo" "$WORK/async1.out"; then
    pass "async client, first run: 401, the flow over the host's transport on one event loop, tools/list"
else
    fail "async client, first run"; sed 's/^/    /' "$WORK/async1.out" | tail -30
fi
a4=$(authorizations); t4=$(token_requests)
if [ "$a4" -eq $((a3 + 1)) ]; then pass "async client: one authorization at the AS ($a3 -> $a4)"; else fail "async client: authorizations $a3 -> $a4"; fi
if "$ASYNC" --store-dir "$WORK/tokens-async" "$MCP_URL" >"$WORK/async2.out" 2>&1 &&
    ! grep -q "handing the response" "$WORK/async2.out" && grep -q "^tools/list: .*echo" "$WORK/async2.out" &&
    [ "$(authorizations)" -eq "$a4" ] && [ "$(token_requests)" -eq "$t4" ]; then
    pass "async client, second run: tokens from its storage callbacks, no 401, no request at the AS"
else
    fail "async client, second run"; sed 's/^/    /' "$WORK/async2.out" | tail -30
fi

echo "# installed: ffi/install.sh into a clean prefix, examples/c built against it (pkg-config, CMake)"
PREFIX_DIR="$WORK/prefix"
# Whether program $1 loads libmcp_oauth from directory $2 (ldd's whole output
# is read first: with pipefail, grep -q closing the pipe early would fail it).
linked_to() { local deps; deps=$(ldd "$1") && grep -q "libmcp_oauth.so.* => $2" <<<"$deps"; }
if ffi/install.sh --prefix "$PREFIX_DIR" --profile debug >"$WORK/install.log" 2>&1 &&
    [ -L "$PREFIX_DIR/lib/libmcp_oauth.so" ] && [ -f "$PREFIX_DIR/lib/libmcp_oauth.a" ] &&
    readelf -d "$PREFIX_DIR/lib/libmcp_oauth.so" | grep -q "SONAME.*libmcp_oauth.so.[0-9]*.[0-9]*]"; then
    pass "ffi/install.sh: library with a versioned soname, static library, headers, mcp_oauth.pc, CMake package"
else
    fail "ffi/install.sh"; tail -20 "$WORK/install.log"
fi
cp -r "$ROOT/examples/c" "$WORK/examples-pkgconfig"
rm -f "$WORK/examples-pkgconfig/mcp_client" "$WORK/examples-pkgconfig/cpp_header_check"
if PKG_CONFIG_PATH="$PREFIX_DIR/lib/pkgconfig" make -s -C "$WORK/examples-pkgconfig" PKG_CONFIG=1 >"$WORK/make-pc.log" 2>&1 &&
    linked_to "$WORK/examples-pkgconfig/mcp_client" "$PREFIX_DIR/lib/" &&
    "$WORK/examples-pkgconfig/mcp_client" --headless --memory-store --no-call "$MCP_URL" >"$WORK/client-pc.out" 2>&1 &&
    grep -q "tools/list" "$WORK/client-pc.out"; then
    pass "examples/c built with pkg-config against the installed copy, and run against the peers"
else
    fail "examples/c with pkg-config"
    tail -20 "$WORK/make-pc.log"
    [ -f "$WORK/client-pc.out" ] && tail -20 "$WORK/client-pc.out"
fi
if command -v cmake >/dev/null; then
    if cmake -S "$ROOT/examples/c" -B "$WORK/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX_DIR" >"$WORK/cmake.log" 2>&1 &&
        cmake --build "$WORK/cmake-build" >>"$WORK/cmake.log" 2>&1 &&
        linked_to "$WORK/cmake-build/mcp_client" "$PREFIX_DIR/lib/" &&
        "$WORK/cmake-build/cpp_header_check" >>"$WORK/cmake.log" 2>&1 &&
        "$WORK/cmake-build/mcp_client" --headless --memory-store --no-call "$MCP_URL" >"$WORK/client-cmake.out" 2>&1 &&
        grep -q "tools/list" "$WORK/client-cmake.out"; then
        pass "examples/c built with CMake (find_package(mcp_oauth)) against the installed copy, and run"
    else
        fail "examples/c with CMake"
        tail -30 "$WORK/cmake.log"
        [ -f "$WORK/client-cmake.out" ] && tail -30 "$WORK/client-cmake.out"
    fi
else
    fail "cmake is not installed"
fi

echo "# ASan+UBSan: the Redis store (a redis-server of its own on a free port)"
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    REDIS_PORT=$("$PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" \
        --loglevel warning >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_PREFIX="c-test" run_program "asan test_redis" "$HERE/build-asan/test_redis"
    # What the library stored: encrypted, no token in clear.
    stored=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'c-test:*:tokens' | head -1)
    value=$(redis-cli -p "$REDIS_PORT" hget "$stored" d)
    if [ -n "$stored" ] && [[ "$value" == aes256gcm:k1:* ]] && ! grep -q '"access_token"' <<<"$value"; then
        pass "the tokens in Redis are encrypted with the key k1 ($stored)"
    else
        fail "the tokens in Redis: key '$stored', value not encrypted as expected"
    fi
else
    fail "redis-server is not installed (scripts/setup.sh installs it): the Redis store's C test did not run"
fi

echo "# valgrind"
if command -v valgrind >/dev/null; then
    VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 --quiet)
    run_program "valgrind test_api" "${VG[@]}" "$HERE/build-plain/test_api"
    run_program "valgrind test_abi" "${VG[@]}" "$HERE/build-plain/test_abi"
    TOKEN_DIR="$WORK/tokens-valgrind" run_program "valgrind test_flow" "${VG[@]}" "$HERE/build-plain/test_flow"
    run_program "valgrind test_m2m" "${VG[@]}" "$HERE/build-plain/test_m2m"
    run_program "valgrind test_misuse" "${VG[@]}" "$HERE/build-plain/test_misuse"
else
    fail "valgrind is not installed (scripts/setup.sh installs it)"
fi

finish
