#!/usr/bin/env bash
# Run every client auth/* scenario of the pinned MCP conformance suite against one client.
#
#   tests/conformance/run.sh <client-name> [<client-command>]
#
# <client-command> defaults to tests/conformance/clients/<client-name>. The suite appends
# the MCP server URL as the last argument and sets MCP_CONFORMANCE_SCENARIO,
# MCP_CONFORMANCE_CONTEXT and MCP_CONFORMANCE_PROTOCOL_VERSION (see SCENARIOS.md).
#
# The list under <client-name>: in expected-failures.yml is the baseline. Exit status is
# 0 only when every scenario passes or fails exactly as listed there; a listed scenario
# that passes ("XPASS", stale entry) fails the run, like the suite's --expected-failures.
#
# Environment:
#   CONFORMANCE_JOBS          scenarios run at once (default 2; see README.md)
#   CONFORMANCE_TIMEOUT_MS    per-client-run timeout given to the suite (default 30000)
#   CONFORMANCE_SCENARIOS     space-separated subset of scenario names (default: all auth/*)
#   CONFORMANCE_SPEC_VERSION  pass --spec-version to the suite (default: each scenario's own
#                             version; scenarios not applicable at that version are SKIPPED)
#   CONFORMANCE_EXPECTED_FAILURES  baseline file (default: expected-failures.yml here)
#
# Logs: tests/conformance/results/<client-name>/<scenario>.log (+ checks/ from the suite).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
    echo "usage: $0 <client-name> [<client-command>]" >&2
    exit 2
}
[[ $# -ge 1 && $# -le 2 && -n "$1" ]] || usage
client="$1"
if [[ $# -eq 2 ]]; then
    command="$2"
else
    command="$here/clients/$client"
    [[ -x "$command" ]] || { echo "run.sh: no executable client at $command" >&2; exit 2; }
fi

# Node 22 from tests/conformance/node_modules/node when installed (npm ci), else PATH.
if [[ -x "$here/node_modules/node/bin/node" ]]; then
    export PATH="$here/node_modules/node/bin:$PATH"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if (( node_major < 22 )); then
    echo "run.sh: the conformance suite needs Node >= 22 (found: $(node --version 2>/dev/null || echo none)); run 'npm ci' in tests/conformance" >&2
    exit 2
fi
conformance="$here/node_modules/.bin/conformance"
[[ -x "$conformance" ]] || { echo "run.sh: $conformance missing; run 'npm ci' in tests/conformance" >&2; exit 2; }

jobs="${CONFORMANCE_JOBS:-2}"
timeout_ms="${CONFORMANCE_TIMEOUT_MS:-30000}"
baseline_src="${CONFORMANCE_EXPECTED_FAILURES:-$here/expected-failures.yml}"
results="$here/results/$client"
rm -rf "$results"
mkdir -p "$results/checks"

# Scenario list: from the suite itself, not hard-coded.
if [[ -n "${CONFORMANCE_SCENARIOS:-}" ]]; then
    read -r -a scenarios <<<"$CONFORMANCE_SCENARIOS"
else
    mapfile -t scenarios < <("$conformance" list --client 2>/dev/null | sed -n 's/^ *- \(auth\/[^ ]*\).*/\1/p')
    if [[ ${#scenarios[@]} -eq 0 ]]; then
        mapfile -t scenarios < <("$conformance" list 2>/dev/null | sed -n 's/^ *- \(auth\/[^ ]*\).*/\1/p')
    fi
fi
[[ ${#scenarios[@]} -gt 0 ]] || { echo "run.sh: no auth/* scenarios found" >&2; exit 2; }
expected_count=33 # auth/* client scenarios in @modelcontextprotocol/conformance 0.2.0-alpha.12
if [[ -z "${CONFORMANCE_SCENARIOS:-}" && ${#scenarios[@]} -ne $expected_count ]]; then
    echo "run.sh: warning: the suite lists ${#scenarios[@]} auth/* scenarios, expected $expected_count (suite version changed?)" >&2
fi

# The suite's baseline format is {client: [...], server: [...]}; ours keys the lists by
# client name. Extract this client's list into the suite's format.
baseline="$results/expected-failures.yml"
node - "$baseline_src" "$client" "$baseline" "$here/node_modules/yaml" <<'EOF'
const fs = require("fs");
const [src, client, out, yamlPath] = process.argv.slice(2);
const YAML = require(yamlPath);
const doc = fs.existsSync(src) ? YAML.parse(fs.readFileSync(src, "utf8")) ?? {} : {};
const list = doc[client] ?? [];
if (!Array.isArray(list)) {
  console.error(`run.sh: '${client}' in ${src} must be a list of scenario names`);
  process.exit(2);
}
fs.writeFileSync(out, YAML.stringify({ client: list }));
EOF

run_one() {
    local scenario="$1" safe start end rc spec_args=()
    safe="${scenario//\//-}"
    [[ -n "${CONFORMANCE_SPEC_VERSION:-}" ]] && spec_args=(--spec-version "$CONFORMANCE_SPEC_VERSION")
    start="$(date +%s.%N)"
    rc=0
    "$conformance" client --command "$command" --scenario "$scenario" \
        --timeout "$timeout_ms" --expected-failures "$baseline" \
        -o "$results/checks" "${spec_args[@]}" >"$results/$safe.log" 2>&1 || rc=$?
    end="$(date +%s.%N)"
    echo "$rc $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')" >"$results/$safe.status"
}
export -f run_one
export conformance command timeout_ms baseline results

t0="$(date +%s.%N)"
printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
t1="$(date +%s.%N)"

# Summary table.
strip() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
# Ids of the FAILURE/WARNING checks of one scenario, from the checks.json the suite saved.
failed_checks() {
    local file
    file="$(ls -d "$results/checks/$1"-*/checks.json 2>/dev/null | tail -1 || true)"
    [[ -n "$file" ]] || return 0
    node -e 'const c = require(process.argv[1]);
      const ids = [...new Set(c.filter((x) => x.status === "FAILURE" || x.status === "WARNING").map((x) => x.id))];
      process.stdout.write(ids.join(","));' "$file" 2>/dev/null || true
}
fail=0
n_pass=0 n_xfail=0 n_fail=0 n_xpass=0 n_skip=0
printf '\n%-44s %-9s %-7s %-6s %s\n' "scenario" "checks" "verdict" "secs" "notes"
printf '%s\n' "--------------------------------------------------------------------------------------------"
for scenario in "${scenarios[@]}"; do
    safe="${scenario//\//-}"
    log="$results/$safe.log"
    read -r rc secs <"$results/$safe.status" || { rc=99; secs=?; }
    text="$(strip "$log")"
    checks="$(grep -o 'Passed: [0-9]*/[0-9]*' <<<"$text" | tail -1 | cut -d' ' -f2 || true)"
    warnings="$(sed -n 's/^Passed: .*, \([0-9]*\) warnings$/\1/p' <<<"$text" | tail -1 || true)"
    notes=()
    [[ -n "$warnings" && "$warnings" != 0 ]] && notes+=("${warnings} warning(s)")
    grep -q 'CLIENT TIMED OUT' <<<"$text" && notes+=("client timed out")
    grep -q 'CLIENT EXITED WITH ERROR' <<<"$text" && notes+=("client exit $(sed -n 's/.*CLIENT EXITED WITH ERROR (code \([0-9-]*\)).*/\1/p' <<<"$text" | head -1 || true)")
    if grep -q '^SKIPPED:' <<<"$text"; then
        verdict=SKIP; n_skip=$((n_skip + 1)); checks="-"
    elif grep -qE "^  ~ ${scenario}(:|$)" <<<"$text"; then
        verdict=XFAIL; n_xfail=$((n_xfail + 1))
    elif grep -qE "^  ✓ ${scenario}(:|$)" <<<"$text"; then
        verdict=XPASS; n_xpass=$((n_xpass + 1)); fail=1; notes+=("listed in the baseline but passes: remove it")
    elif [[ "$rc" == 0 ]] && grep -q 'OVERALL: PASSED' <<<"$text"; then
        verdict=PASS; n_pass=$((n_pass + 1))
    else
        verdict=FAIL; n_fail=$((n_fail + 1)); fail=1
        failed="$(failed_checks "$scenario")"
        [[ -n "$failed" ]] && notes+=("failed: $failed")
    fi
    printf '%-44s %-9s %-7s %-6s %s\n' "$scenario" "${checks:-?}" "$verdict" "$secs" "$(IFS=';'; echo "${notes[*]:-}")"
done
wall="$(awk -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", e - s }')"
printf '%s\n' "--------------------------------------------------------------------------------------------"
echo "client: $client; scenarios: ${#scenarios[@]}; jobs: $jobs"
echo "PASS $n_pass, XFAIL $n_xfail (expected), FAIL $n_fail, XPASS $n_xpass (stale baseline), SKIP $n_skip"
echo "wall time: ${wall}s; logs: $results"
if [[ $fail -ne 0 ]]; then
    echo "RESULT: FAILED (unexpected failures or stale expected-failures entries)"
    exit 1
fi
echo "RESULT: OK"
