#!/usr/bin/env bash
# Seeds the corpora from the spec vectors, then fuzzes each target for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS is libFuzzer's -max_total_time per target (default 60); TARGETs default to all four.
# Environment:
#   PARALLEL=N      run up to N targets at once (default 1; the reference machine has 2 cores)
#   SANITIZER=S     cargo-fuzz sanitizer: none (default) or address. iotmp-proto forbids unsafe
#                   code, so the default trades ASan (about 5x slower) for throughput; debug
#                   assertions and overflow checks are on either way.
#   MAX_LEN=N       libFuzzer -max_len (default 4096)
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
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
all_targets=(deframe_decode_2020 deframe_decode_2026 pson_v2 protoson)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

parallel="${PARALLEL:-1}"
sanitizer="${SANITIZER:-none}"
max_len="${MAX_LEN:-4096}"
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
    # -timeout: an input taking over 10 s counts as a crash (a hang).
    cargo "+$toolchain" fuzz run -s "$sanitizer" "${features[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || status=$?
    echo "$status" >"artifacts/logs/$t.status"
}

started=$(date +%s)
for t in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge $parallel ]]; do wait -n || true; done
    echo "run.sh: fuzzing $t for ${seconds}s"
    run_one "$t" &
done
wait
elapsed=$(( $(date +%s) - started ))

failed=0
printf '\n%-22s %14s %8s %8s  %s\n' target runs seconds crashes log
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
    printf '%-22s %14s %8s %8s  %s\n' "$t" "$runs" "$secs" "$crashes" "fuzz/$log"
    if [[ "$crashes" != 0 ]]; then
        grep -E "panicked at|SUMMARY|Test unit written to|ERROR: libFuzzer" "$log" | head -n 5 | sed 's/^/    /'
    fi
done
echo "run.sh: wall time ${elapsed}s, sanitizer $sanitizer, -max_len=$max_len, features: ${FEATURES:-none}"
exit "$failed"
