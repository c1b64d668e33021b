#!/usr/bin/env bash
# Scale figures for BENCHMARKS.md: starts a release `iotmp server` on loopback with a temporary
# registry, runs `iotmp bench` at the sizes of issue 6, prints each JSON summary and saves them
# all (one JSON object per line) to the output file. Opt-in, not part of CI; takes ~10 minutes.
#
#   scripts/bench.sh --runtime mio [--out FILE] [--quick] [--only conn|stream|rpc] [--rates "R …"]
#
#   --runtime   the server's driver: mio, smol or async-std (default smol)
#   --out       where the summaries go (default bench-RUNTIME-DATE.jsonl in the current folder)
#   --quick     small sizes and short runs, to check the script itself
#   --only      run one subcommand only
#   --rates     the event rates of the stream ladder (default 10000 … 70000 by 10000); when
#               given, the sampling run is skipped (to refine a knee quickly)
#
# Environment: IOTMP_BIN uses that binary instead of building one; CARGO_TARGET_DIR as usual.
# The server is always stopped on exit (also on Ctrl-C or a failed step).
set -euo pipefail

runtime=smol
out=""
quick=0
only=""
rates=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runtime) runtime="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --only) only="$2"; shift 2 ;;
        --rates) rates="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$runtime" in mio|smol|async-std) ;; *) echo "--runtime: mio, smol or async-std" >&2; exit 2 ;; esac
out="${out:-bench-$runtime-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/iotmp-bench.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -INT "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The binary is copied: a shared target folder may be rebuilt by someone else meanwhile.
if [[ -n "${IOTMP_BIN:-}" ]]; then
    cp "$IOTMP_BIN" "$work/iotmp"
else
    (cd "$root" && cargo build --release -q -p iotmp-cli)
    cp "${CARGO_TARGET_DIR:-$root/target}/release/iotmp" "$work/iotmp"
fi
bin="$work/iotmp"

ulimit -n "$(ulimit -Hn)"
db="$work/iotmp.db"
listen=127.0.0.1:25304
http=127.0.0.1:28180

# Every run gets a fresh server and registry: memory a previous fleet freed stays in the
# server's allocator and would make the next fleet look cheaper than it is.
start_server() {
    rm -f "$db" "$db-wal" "$db-shm"
    "$bin" user add owner --db "$db" >/dev/null 2>&1
    # Defaults but the device cap (10,000), which the 19k run exceeds. Admission stays on: the
    # bench gives every connection a source address of its own, as real devices have.
    "$bin" server --db "$db" --listen "$listen" --http "$http" --runtime "$runtime" \
        --max-connections 20000 >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q "HTTP API listening" "$work/server.log" && return 0
        kill -0 "$server_pid" || { cat "$work/server.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() {
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

echo "# $(date -u +%FT%TZ) runtime=$runtime nproc=$(nproc) $(uname -sr)" >&2
echo "# $(lscpu | sed -n 's/^Model name: *//p')" >&2
: >"$out"
run() {
    start_server
    echo "+ iotmp bench $*" >&2
    "$bin" bench "$@" --db "$db" --server "$listen" --server-pid "$server_pid" --json --quiet \
        | tee -a "$out"
    stop_server
}

if [[ $quick == 1 ]]; then
    conn_sizes=(200); stream_devices=50; stream_rates=(500 2000); rpc_devices=50; secs=3
else
    conn_sizes=(5000 10000 19000); stream_devices=5000
    stream_rates=(10000 20000 30000 40000 50000 60000 70000); rpc_devices=5000; secs=10
fi

if [[ -z "$only" || "$only" == conn ]]; then
    for n in "${conn_sizes[@]}"; do
        run conn --devices "$n" --rate 10000 --duration "$secs"
    done
    # Headroom: how fast connects go when the bench asks for more than the target.
    run conn --devices "${conn_sizes[-1]}" --rate 25000 --duration 3
fi
if [[ -n "$rates" ]]; then
    read -r -a stream_rates <<<"$rates"
fi
if [[ -z "$only" || "$only" == stream ]]; then
    for rate in "${stream_rates[@]}"; do
        run stream --http "$http" --devices "$stream_devices" --rate "$rate" --warm-up 3 \
            --duration "$secs"
    done
fi
if [[ -z "$rates" && ( -z "$only" || "$only" == stream ) ]]; then
    run stream --http "$http" --devices "$stream_devices" --interval 1 --warm-up 2 \
        --duration "$secs"
fi
if [[ -z "$only" || "$only" == rpc ]]; then
    run rpc --http "$http" --devices "$rpc_devices" --concurrency 100 --warm-up 2 \
        --duration "$secs"
fi
echo "# summaries saved to $out" >&2
