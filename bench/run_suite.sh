#!/usr/bin/env bash
# Sibyl's standard benchmark suite: one node, RF 1, loopback, against the cql-echo ceiling.
#
#   bash bench/run_suite.sh
#
# Builds sibyl and the bench tools (release), starts a sibyl node on a fresh temp data
# dir (127.0.0.1:$PORT) and cql-echo (127.0.0.1:$ECHO_PORT), runs
#   write (sequential keys) -> restart (memtables flushed, reads hit SSTables) ->
#   point read -> slice read -> mixed 50/50 -> fixed-rate write at half the max write
#   throughput -> lwt (uncontended, contended)
# against both, and prints a Markdown table. Also records start-up time to serving and
# the node's RSS idle and under load. Everything it starts is killed on exit.
#
# Environment: SIBYL_BIN (default target/release/sibyl), SKIP_BUILD=1, PORT (19600),
# ECHO_PORT (19601), DURATION seconds per run (10), CONCURRENCY (64), CONNECTIONS (2),
# ROW_SIZE (100), OUT (results dir, default bench/results).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"

PORT=${PORT:-19600}
ECHO_PORT=${ECHO_PORT:-19601}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-2}
ROW_SIZE=${ROW_SIZE:-100}
WARMUP=${WARMUP:-2}
OUT=${OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSON="$OUT/suite-$STAMP.jsonl"
MD="$OUT/suite-$STAMP.md"
: >"$JSON"

build_all

DATA=$(mktemp -d /tmp/sibyl-bench-data.XXXXXX)
TMP_DIRS+=("$DATA")
NODE_LOG="$OUT/suite-$STAMP.sibyl.log"
: >"$NODE_LOG"

log "starting sibyl on 127.0.0.1:$PORT (data $DATA)"
start_sibyl "$DATA/data" "$PORT" "$NODE_LOG"
STARTUP_EMPTY_MS=$STARTUP_MS
sleep 1
IDLE_RSS=$(rss_mib "$SIBYL_PID" VmRSS)
log "start-up ${STARTUP_EMPTY_MS} ms, idle RSS ${IDLE_RSS} MiB"
probe "$PORT"

log "starting cql-echo on 127.0.0.1:$ECHO_PORT"
"$ECHO_BIN" --port "$ECHO_PORT" --value-size "$ROW_SIZE" >"$OUT/suite-$STAMP.echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_port "$ECHO_PORT" 10
kill -0 "$ECHO_PID" 2>/dev/null || { echo "cql-echo did not start (port $ECHO_PORT in use?)" >&2; exit 1; }

start_rss_sampler "$SIBYL_PID" "$OUT/.rss1-$STAMP"
C=(--concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --row-size "$ROW_SIZE")

# ---- write: sequential keys, one row per partition ---------------------------------
BIG=100000000
bench sibyl:write "$PORT" "$JSON" write "${C[@]}" --duration "$DURATION" --warmup "$WARMUP" \
    --distribution sequential --partitions $BIG --table kv
RSS_WRITE=$(rss_mib "$SIBYL_PID" VmRSS)
wait_quiet "$SIBYL_PID"
bench echo:write "$ECHO_PORT" "$JSON" write "${C[@]}" --duration "$DURATION" --warmup "$WARMUP" \
    --distribution sequential --partitions $BIG --table kv
# The rows 0..N-1 now exist (the warm-up wrote a prefix of the same keys).
N=$(json_field "$JSON" sibyl:write ops)
[ "$N" -gt 0 ] || { echo "write phase did no operations" >&2; exit 1; }

# ---- wide partitions for the slice reads (not measured) ----------------------------
WIDE_PARTS=${WIDE_PARTS:-2000}
bench sibyl:load-wide "$PORT" "$JSON" write "${C[@]}" --count $((WIDE_PARTS * 100)) \
    --distribution sequential --partitions "$WIDE_PARTS" --rows-per-partition 100 --table wide
HWM_1=$(rss_mib "$SIBYL_PID" VmHWM)

# ---- restart: memtables are flushed on SIGTERM, so the reads below hit SSTables ----
log "restarting sibyl (flush on shutdown)"
stop_pid "$SIBYL_PID"
start_sibyl "$DATA/data" "$PORT" "$NODE_LOG"
STARTUP_DATA_MS=$STARTUP_MS
log "start-up with data ${STARTUP_DATA_MS} ms"
start_rss_sampler "$SIBYL_PID" "$OUT/.rss2-$STAMP"

# ---- point read, slice read, mixed --------------------------------------------------
R=(--duration "$DURATION" --warmup "$WARMUP")
bench sibyl:read "$PORT" "$JSON" read "${C[@]}" "${R[@]}" --partitions "$N" --table kv
wait_quiet "$SIBYL_PID"
bench echo:read "$ECHO_PORT" "$JSON" read "${C[@]}" "${R[@]}" --partitions "$N" --table kv
bench sibyl:slice "$PORT" "$JSON" slice "${C[@]}" "${R[@]}" --partitions "$WIDE_PARTS" \
    --rows-per-partition 100 --slice-rows 10 --table wide
wait_quiet "$SIBYL_PID"
bench echo:slice "$ECHO_PORT" "$JSON" slice "${C[@]}" "${R[@]}" --partitions "$WIDE_PARTS" \
    --rows-per-partition 100 --slice-rows 10 --table wide
bench sibyl:mixed "$PORT" "$JSON" mixed "${C[@]}" "${R[@]}" --partitions "$N" --table kv --read-ratio 0.5
RSS_LOAD=$(rss_mib "$SIBYL_PID" VmRSS)
wait_quiet "$SIBYL_PID"
bench echo:mixed "$ECHO_PORT" "$JSON" mixed "${C[@]}" "${R[@]}" --partitions "$N" --table kv --read-ratio 0.5

# ---- fixed rate: half the max write throughput, latency from intended start --------
MAXW=$(json_field "$JSON" sibyl:write ops_per_s)
HALF=$(python3 -c "print(max(1, int(float('$MAXW') / 2)))")
# Enough tasks that the pacer never waits for a free one (a stall shows as latency).
# Same workload as the max measurement: sequential keys, continuing after the rows written.
# One client thread: at half the rate it keeps up, and it spends a quarter less CPU per
# operation than several (no request or response handed between threads), CPU the server
# shares on this machine. Were it late, that would count as latency, never hide any.
bench sibyl:rate "$PORT" "$JSON" write "${C[@]}" --concurrency 256 --threads 1 --duration "$DURATION" \
    --rate "$HALF" --distribution sequential --partitions $BIG --key-offset "$N" --table kv
wait_quiet "$SIBYL_PID"
bench echo:rate "$ECHO_PORT" "$JSON" write "${C[@]}" --concurrency 256 --threads 1 --duration "$DURATION" \
    --rate "$HALF" --distribution sequential --partitions $BIG --key-offset "$N" --table kv

# ---- lwt: errors are reported, not fatal --------------------------------------------
LWT_D=$(python3 -c "print(max(1, $DURATION / 2))")
bench sibyl:lwt "$PORT" "$JSON" lwt "${C[@]}" --duration "$LWT_D" --table kv || true
wait_quiet "$SIBYL_PID"
bench echo:lwt "$ECHO_PORT" "$JSON" lwt "${C[@]}" --duration "$LWT_D" --table kv || true
bench sibyl:lwt-contended "$PORT" "$JSON" lwt-contended "${C[@]}" --duration "$LWT_D" --table kv || true
wait_quiet "$SIBYL_PID"
bench echo:lwt-contended "$ECHO_PORT" "$JSON" lwt-contended "${C[@]}" --duration "$LWT_D" --table kv || true

HWM_2=$(rss_mib "$SIBYL_PID" VmHWM)
read -r ANON1 FILE1 <"$OUT/.rss1-$STAMP"
read -r ANON2 FILE2 <"$OUT/.rss2-$STAMP"
rm -f "$OUT/.rss1-$STAMP" "$OUT/.rss2-$STAMP"
LOGGED_START=$(grep -o 'started in [0-9]* ms' "$NODE_LOG" | head -1 || true)

# ---- the table ---------------------------------------------------------------------
python3 - "$JSON" "$HALF" >"$MD" <<'EOF'
import json, sys
recs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    recs[r["label"]] = r
rows = [("write", "write"), ("point read (from SSTables)", "read"), ("slice read (10 rows)", "slice"),
        ("mixed 50/50", "mixed"), (f"write at fixed {sys.argv[2]} ops/s (half max)", "rate"),
        ("lwt uncontended", "lwt"), ("lwt contended (4 keys)", "lwt-contended")]
print("| workload | Sibyl ops/s | ceiling ops/s | ratio | Sibyl p50 ms | Sibyl p99 ms | Sibyl p99.9 ms | ceiling p99 ms | Sibyl errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, key in rows:
    s, e = recs.get("sibyl:" + key), recs.get("echo:" + key)
    if not s or not e:
        continue
    ratio = s["ops_per_s"] / e["ops_per_s"] if e["ops_per_s"] else 0
    ok = s["ops"] - s["errors"]
    lat = lambda k: f'{s[k]:.2f}' if ok else "–"
    print(f'| {name} | {s["ops_per_s"]:,.0f} | {e["ops_per_s"]:,.0f} | {ratio:.0%} | {lat("p50_ms")} | {lat("p99_ms")} | {lat("p999_ms")} | {e["p99_ms"]:.2f} | {s["errors"]} |')
errs = [(k, m) for k, r in recs.items() if k.startswith("sibyl:") for m in r["error_messages"]]
if errs:
    print()
    print("First Sibyl error messages:")
    for k, m in errs[:6]:
        print(f'- {k}: x{m["count"]} `{m["message"][:200]}`')
EOF
{
    echo
    echo "| node | value |"
    echo "|---|---|"
    echo "| start-up to serving, empty data dir (launch → port accepts) | ${STARTUP_EMPTY_MS} ms (node log: ${LOGGED_START:-n/a}) |"
    echo "| start-up to serving, after the write phase (commit log / SSTables to open) | ${STARTUP_DATA_MS} ms |"
    echo "| idle RSS after start | ${IDLE_RSS} MiB |"
    echo "| RSS after the write phase / peak (VmHWM) during loading | ${RSS_WRITE} / ${HWM_1} MiB |"
    echo "| RSS after the mixed phase / peak (VmHWM) after restart | ${RSS_LOAD} / ${HWM_2} MiB |"
    echo "| peak heap (RssAnon) / mmapped files (RssFile): loading; after restart | ${ANON1} / ${FILE1} MiB; ${ANON2} / ${FILE2} MiB |"
    echo
    echo "Rows written in the write phase: $N (row = 16 B key + ${ROW_SIZE} B value); concurrency ${CONCURRENCY}, ${CONNECTIONS} connections, ${DURATION} s per run."
    echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(date -u '+%Y-%m-%d %H:%M UTC'); sibyl $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)${SIBYL_NOTE:+ ($SIBYL_NOTE)}."
    echo "Raw records: ${JSON#"$ROOT"/}"
} >>"$MD"
cat "$MD"
