#!/usr/bin/env bash
# Seeds the corpora from the spec vectors, then fuzzes each target for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS is libFuzzer's -max_total_time per target (default 60; 0 = no time limit, then RUNS
# must be set); TARGETs default to all seven (four codec, three session targets).
# Environment:
#   PARALLEL=N      run up to N targets at once (default 1; the reference machine has 2 cores)
#   SANITIZER=S     cargo-fuzz sanitizer: none (default) or address. iotmp-proto forbids unsafe
#                   code, so the default trades ASan (about 5x slower) for throughput; debug
#                   assertions and overflow checks are on either way.
#   MAX_LEN=N       libFuzzer -max_len (default 4096 for the codec targets, 1024 for the session
#                   targets, whose inputs are step lists: longer ones only repeat steps, slower)
#   RUNS=N          also stop each target after N executions (libFuzzer -runs), e.g. RUNS=10000000
#   TOOLCHAIN=T     rustup toolchain for cargo-fuzz (default nightly)
#   FEATURES=F      cargo features of the fuzz crate (none are defined today)
#   FUZZ_ARGS=...   extra libFuzzer flags
#
# Prints runs and crashes per target; exits 1 if any target crashed (or failed to run).
# Logs go to fuzz/artifacts/logs/<target>.log, crash inputs to fuzz/artifacts/<target>/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-60}"
shift || true
runs="${RUNS:-}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || { [[ "$seconds" -eq 0 ]] && [[ -z "$runs" ]]; }; then
    echo "usage: $0 [SECONDS] [TARGET...]   (SECONDS may be 0 only with RUNS=N)" >&2
    exit 2
fi
if [[ -n "$runs" ]] && ! [[ "$runs" =~ ^[0-9]+$ ]]; then
    echo "run.sh: RUNS must be a number" >&2
    exit 2
fi
all_targets=(deframe_decode_2020 deframe_decode_2026 pson_v2 protoson session_client session_server session_odd)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

parallel="${PARALLEL:-1}"
sanitizer="${SANITIZER:-none}"
max_len="${MAX_LEN:-}"
toolchain="${TOOLCHAIN:-nightly}"
read -r -a extra <<<"${FUZZ_ARGS:-}"
features=()
if [[ -n "${FEATURES:-}" ]]; then features=(--features "$FEATURES"); fi

./seed.sh

echo "run.sh: building (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    cargo "+$toolchain" fuzz build -s "$sanitizer" "${features[@]}" "$t"
done

mkdir -p artifacts/logs

run_one() {
    local t="$1"
    local log="artifacts/logs/$t.log"
    mkdir -p "artifacts/$t"
    local status=0
    local len="$max_len"
    if [[ -z "$len" ]]; then
        case "$t" in session_*) len=1024 ;; *) len=4096 ;; esac
    fi
    local bounds=()
    if [[ "$seconds" -gt 0 ]]; then bounds+=(-max_total_time="$seconds"); fi
    if [[ -n "$runs" ]]; then bounds+=(-runs="$runs"); fi
    # -timeout: an input taking over 10 s counts as a crash (a hang).
    cargo "+$toolchain" fuzz run -s "$sanitizer" "${features[@]}" "$t" "corpus/$t" -- \
        "${bounds[@]}" -max_len="$len" -timeout=10 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || status=$?
    echo "$status" >"artifacts/logs/$t.status"
}

started=$(date +%s)
for t in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge $parallel ]]; do wait -n || true; done
    echo "run.sh: fuzzing $t (${seconds}s${runs:+, at most $runs runs})"
    run_one "$t" &
done
wait
elapsed=$(( $(date +%s) - started ))

failed=0
printf '\n%-22s %14s %8s %8s %8s %8s %10s  %s\n' target runs seconds exec/s cov ft corpus crashes
for t in "${targets[@]}"; do
    log="artifacts/logs/$t.log"
    status=$(cat "artifacts/logs/$t.status" 2>/dev/null || echo 99)
    # libFuzzer's last line on a clean stop: "Done N runs in S second(s)".
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)
    if [[ -n "$done_line" ]]; then
        runs=$(awk '{print $2}' <<<"$done_line")
        secs=$(awk '{print $5}' <<<"$done_line")
    else
        # Stopped early: take the last status line's execution count.
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
        runs="${runs:-?}"
        secs="?"
    fi
    crashes=0
    if [[ "$status" != 0 ]] || ! grep -q '^Done ' "$log"; then
        crashes=1
        failed=1
    fi
    # The last status line ("#N DONE cov: C ft: F corp: K/S exec/s: E ...") has the rest.
    status_line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    field() { grep -oE "$1: [^ ]+" <<<"$status_line" | head -n 1 | awk '{print $2}' || true; }
    eps="?"
    if [[ "$secs" =~ ^[0-9]+$ ]] && [[ "$secs" -gt 0 ]] && [[ "$runs" =~ ^[0-9]+$ ]]; then eps=$((runs / secs)); fi
    printf '%-22s %14s %8s %8s %8s %8s %10s  %s\n' "$t" "$runs" "$secs" "$eps" \
        "$(field cov)" "$(field ft)" "$(field corp)" "$crashes"
    if [[ "$crashes" != 0 ]]; then
        grep -E "panicked at|SUMMARY|Test unit written to|ERROR: libFuzzer" "$log" | head -n 5 | sed 's/^/    /'
    fi
done
echo "run.sh: logs in fuzz/artifacts/logs/<target>.log"
echo "run.sh: wall time ${elapsed}s, sanitizer $sanitizer, -max_len=${max_len:-default}, features: ${FEATURES:-none}"
exit "$failed"
