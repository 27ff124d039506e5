#!/usr/bin/env bash
# Sibyl's storage benchmark: load ~1 KB rows through the server in chunks of one million,
# then restart (memtables flushed) and run random point reads and slices.
#
#   bash bench/storage_suite.sh
#
# Reports the write rate of every million rows (target: the last million at >= 80 % of
# the first), read p50/p99, on-disk size versus raw data size, write amplification
# (/proc/PID/io write_bytes of the node versus raw bytes) and peak RSS (VmHWM; target
# below 1 GiB).
#
# Environment: ROWS (10000000; loading stops early, at a chunk boundary, once
# LOAD_TIME_LIMIT seconds (1200) have passed, and the report says how many rows were
# loaded), CHUNK (1000000), ROW_SIZE (1000), ROWS_PER_PARTITION (100), READ_DURATION
# (30), CONCURRENCY (64), CONNECTIONS (2), PORT (19610), SIBYL_BIN, SKIP_BUILD=1,
# OUT (bench/results), DATA_DIR (default: a fresh temp dir, removed at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"

ROWS=${ROWS:-10000000}
CHUNK=${CHUNK:-1000000}
ROW_SIZE=${ROW_SIZE:-1000}
RPP=${ROWS_PER_PARTITION:-100}
READ_DURATION=${READ_DURATION:-30}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-2}
PORT=${PORT:-19610}
LOAD_TIME_LIMIT=${LOAD_TIME_LIMIT:-1200}
OUT=${OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSON="$OUT/storage-$STAMP.jsonl"
MD="$OUT/storage-$STAMP.md"
NODE_LOG="$OUT/storage-$STAMP.sibyl.log"
: >"$JSON"
: >"$NODE_LOG"

build_all

if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR
    mkdir -p "$DATA"
else
    DATA=$(mktemp -d /tmp/sibyl-storage-data.XXXXXX)
    TMP_DIRS+=("$DATA")
fi

log "starting sibyl on 127.0.0.1:$PORT (data $DATA)"
start_sibyl "$DATA" "$PORT" "$NODE_LOG"
IO0=$(io_write_bytes "$SIBYL_PID")
probe "$PORT"
start_rss_sampler "$SIBYL_PID" "$OUT/.rss-load-$STAMP"

PARTS=$(( (ROWS + RPP - 1) / RPP ))
C=(--concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --row-size "$ROW_SIZE"
   --partitions "$PARTS" --rows-per-partition "$RPP" --table s)

# ---- load, one chunk at a time ----------------------------------------------------
LOAD_START=$(date +%s)
LOADED=0
k=0
while [ "$LOADED" -lt "$ROWS" ]; do
    n=$(( ROWS - LOADED < CHUNK ? ROWS - LOADED : CHUNK ))
    bench "load:$k" "$PORT" "$JSON" write "${C[@]}" --count "$n" --key-offset "$LOADED" \
        --distribution sequential --progress 10
    LOADED=$(( LOADED + n ))
    k=$(( k + 1 ))
    log "loaded $LOADED rows; node RSS $(rss_mib "$SIBYL_PID" VmRSS) MiB, data $(du -sh "$DATA" | cut -f1)"
    if [ $(( $(date +%s) - LOAD_START )) -ge "$LOAD_TIME_LIMIT" ] && [ "$LOADED" -lt "$ROWS" ]; then
        log "load time limit (${LOAD_TIME_LIMIT}s) reached: stopping at $LOADED rows"
        break
    fi
done
LOAD_SECS=$(( $(date +%s) - LOAD_START ))
sleep 5
IO1=$(io_write_bytes "$SIBYL_PID")
HWM_LOAD=$(rss_mib "$SIBYL_PID" VmHWM)
RSS_LOAD=$(rss_mib "$SIBYL_PID" VmRSS)
DU_LOADED=$(du -sb "$DATA" | cut -f1)

# ---- restart: SIGTERM flushes the memtables; reads then come from SSTables ---------
log "restarting sibyl"
T0=$(now_ms)
stop_pid "$SIBYL_PID"
STOP_MS=$(( $(now_ms) - T0 ))
DU_FLUSHED=$(du -sb "$DATA" | cut -f1)
start_sibyl "$DATA" "$PORT" "$NODE_LOG"
STARTUP_MS=$STARTUP_MS
log "stopped in ${STOP_MS} ms, restarted in ${STARTUP_MS} ms"
sleep 1
IDLE_RSS_DATA=$(rss_mib "$SIBYL_PID" VmRSS)
start_rss_sampler "$SIBYL_PID" "$OUT/.rss-read-$STAMP"

# ---- reads ---------------------------------------------------------------------------
# Keys of the loaded rows: pk in 0..LOADED/RPP, ck in 0..RPP.
RPARTS=$(( LOADED / RPP ))
R=(--concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --row-size "$ROW_SIZE"
   --partitions "$RPARTS" --rows-per-partition "$RPP" --table s --no-schema --duration "$READ_DURATION" --warmup 3)
bench read "$PORT" "$JSON" read "${R[@]}"
bench slice "$PORT" "$JSON" slice "${R[@]}" --slice-rows 10
HWM_READ=$(rss_mib "$SIBYL_PID" VmHWM)
DU_END=$(du -sb "$DATA" | cut -f1)
IO2=$(io_write_bytes "$SIBYL_PID")
read -r ANON_LOAD FILE_LOAD <"$OUT/.rss-load-$STAMP"
read -r ANON_READ FILE_READ <"$OUT/.rss-read-$STAMP"
rm -f "$OUT/.rss-load-$STAMP" "$OUT/.rss-read-$STAMP"

# ---- report --------------------------------------------------------------------------
python3 - "$JSON" "$LOADED" "$ROW_SIZE" "$IO0" "$IO1" "$DU_LOADED" "$DU_FLUSHED" "$DU_END" \
    "$HWM_LOAD" "$RSS_LOAD" "$HWM_READ" "$STARTUP_MS" "$STOP_MS" "$LOAD_SECS" "$IDLE_RSS_DATA" "$ROWS" "$IO2" "$ANON_LOAD" "$FILE_LOAD" "$ANON_READ" "$FILE_READ" \
    >"$MD" <<'EOF'
import json, sys
(jf, loaded, row_size, io0, io1, du_loaded, du_flushed, du_end, hwm_load, rss_load, hwm_read,
 startup_ms, stop_ms, load_secs, idle_rss, asked, io2, anon_load, file_load, anon_read, file_read) = sys.argv[1:]
loaded, row_size, asked = int(loaded), int(row_size), int(asked)
recs = [json.loads(l) for l in open(jf)]
loads = [r for r in recs if r["label"].startswith("load:")]
by = {r["label"]: r for r in recs}
raw = loaded * (row_size + 16)  # value + pk + ck
gib = lambda b: f"{int(b) / 2**30:.2f} GiB"
print(f"Rows loaded: {loaded:,} of {asked:,} asked, {row_size} B values (+16 B key), "
      f"{raw / 2**30:.2f} GiB raw, in {load_secs} s.")
print()
print("| million | write ops/s | p50 ms | p99 ms | p99.9 ms | errors |")
print("|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(loads):
    print(f'| {i + 1} | {r["ops_per_s"]:,.0f} | {r["p50_ms"]:.2f} | {r["p99_ms"]:.2f} | {r["p999_ms"]:.2f} | {r["errors"]} |')
print()
print("| measure | value | target |")
print("|---|---|---|")
if len(loads) >= 2:
    ratio = loads[-1]["ops_per_s"] / loads[0]["ops_per_s"]
    print(f'| write rate, last million / first million | {ratio:.0%} | >= 80 % |')
for k, name in (("read", "point read (random, from SSTables)"), ("slice", "slice read (10 rows)")):
    r = by.get(k)
    if r:
        print(f'| {name} | {r["ops_per_s"]:,.0f} ops/s, p50 {r["p50_ms"]:.2f} ms, p99 {r["p99_ms"]:.2f} ms, '
              f'rows read {r["rows_read"]:,}, errors {r["errors"]} | |')
print(f"| on disk after load (memtables not yet flushed) | {gib(du_loaded)} ({int(du_loaded) / raw:.2f} x raw) | |")
print(f"| on disk after flush-on-shutdown | {gib(du_flushed)} ({int(du_flushed) / raw:.2f} x raw) | |")
print(f"| on disk after the reads (compactions may have run) | {gib(du_end)} ({int(du_end) / raw:.2f} x raw) | |")
wb = int(io1) - int(io0)
print(f"| bytes written by the node during the load (/proc/PID/io write_bytes) | {gib(wb)} = {wb / raw:.2f} x raw | |")
print(f"| bytes written by the restarted node during the reads | {gib(int(io2))} | |")
print(f"| peak RSS (VmHWM) while loading / RSS at end of load | {hwm_load} / {rss_load} MiB | < 1024 MiB |")
print(f"| of which: peak heap (RssAnon) / peak mmapped files (RssFile) while loading | {anon_load} / {file_load} MiB | |")
print(f"| peak RSS (VmHWM) of the restarted node during reads | {hwm_read} MiB | < 1024 MiB |")
print(f"| of which: peak heap (RssAnon) / peak mmapped files (RssFile) during reads | {anon_read} / {file_read} MiB | |")
print(f"| shutdown (flush) / start-up to serving with the data | {stop_ms} ms / {startup_ms} ms | start-up < 1 s |")
print(f"| idle RSS after restart with the data | {idle_rss} MiB | |")
EOF
{
    echo
    echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(date -u '+%Y-%m-%d %H:%M UTC'); sibyl $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)${SIBYL_NOTE:+ ($SIBYL_NOTE)}. Raw records: ${JSON#"$ROOT"/}"
} >>"$MD"
cat "$MD"
