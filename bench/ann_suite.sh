#!/usr/bin/env bash
# Sibyl's vector-search (ANN) benchmark: one node, RF 1, loopback.
#
#   bash bench/ann_suite.sh
#
# Builds sibyl and the bench tools (release), starts a sibyl node on a fresh temp data dir
# (127.0.0.1:$PORT) and runs `sibyl-bench ann`: loads VECTORS random unit vectors of
# DIMENSIONS floats into sibyl_ann.vecs, computes the exact top-10 of QUERIES query vectors
# in the tool, measures the server's brute-force rate (BRUTE_QUERIES full scans with
# similarity_cosine), then for each index configuration of CONFIGS
# (maximum_node_connections:construction_beam_width:search_beam_width) re-creates the SAI
# vector index, times its build and runs every query once: latency, queries/s, recall@10
# and queries/s as a multiple of brute force (target: recall >= 0.95 at >= 20x).
# Writes bench/results/ann-<timestamp>.jsonl (raw records) and .md (summary table).
# Everything it starts is killed on exit.
#
# Environment: VECTORS (100000), DIMENSIONS (768), QUERIES (1000), SEED (42),
# CONFIGS ("16:100:200,16:100:100:0,16:100:400:0,16:100:1600:0"; M:C:S[:E], E = exact_search_limit), CONCURRENCY (64),
# CONNECTIONS (2), BRUTE_QUERIES (5), PAGE_SIZE (5000), DURATION (unset: one pass over the
# queries per config; set: repeat the queries for that many seconds), PORT (19630),
# SIBYL_BIN (default target/release/sibyl), SKIP_BUILD=1, OUT (bench/results),
# EXTRA_ARGS (more sibyl-bench options).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"

VECTORS=${VECTORS:-100000}
DIMENSIONS=${DIMENSIONS:-768}
QUERIES=${QUERIES:-1000}
SEED=${SEED:-42}
CONFIGS=${CONFIGS:-16:100:200,16:100:100:0,16:100:400:0,16:100:1600:0}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-2}
BRUTE_QUERIES=${BRUTE_QUERIES:-5}
PAGE_SIZE=${PAGE_SIZE:-5000}
PORT=${PORT:-19630}
OUT=${OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSON="$OUT/ann-$STAMP.jsonl"
MD="$OUT/ann-$STAMP.md"
NODE_LOG="$OUT/ann-$STAMP.sibyl.log"
BENCH_LOG="$OUT/ann-$STAMP.bench.log"
: >"$JSON"
: >"$NODE_LOG"

build_all

DATA=$(mktemp -d /tmp/sibyl-ann-data.XXXXXX)
TMP_DIRS+=("$DATA")

log "starting sibyl on 127.0.0.1:$PORT (data $DATA)"
start_sibyl "$DATA/data" "$PORT" "$NODE_LOG"
probe "$PORT"

A=(ann --port "$PORT" --keyspace sibyl_ann --vectors "$VECTORS" --dimensions "$DIMENSIONS"
   --queries "$QUERIES" --seed "$SEED" --configs "$CONFIGS" --concurrency "$CONCURRENCY"
   --connections "$CONNECTIONS" --brute-queries "$BRUTE_QUERIES" --page-size "$PAGE_SIZE"
   --json "$JSON" --progress "${PROGRESS:-10}")
[ -n "${DURATION:-}" ] && A+=(--duration "$DURATION")
# shellcheck disable=SC2206
[ -n "${EXTRA_ARGS:-}" ] && A+=($EXTRA_ARGS)
log "sibyl-bench ${A[*]}"
T0=$(date +%s)
set +e
"$BENCH_BIN" "${A[@]}" 2>&1 | tee "$BENCH_LOG" >&2
RC=${PIPESTATUS[0]}
set -e
SECS=$(( $(date +%s) - T0 ))
HWM=$(rss_mib "$SIBYL_PID" VmHWM)
RSS=$(rss_mib "$SIBYL_PID" VmRSS)
DU=$(du -sb "$DATA" | cut -f1)
[ "$RC" -eq 0 ] || log "sibyl-bench ann exited with status $RC (see ${BENCH_LOG#"$ROOT"/})"

# ---- report --------------------------------------------------------------------------
python3 - "$JSON" "$HWM" "$RSS" "$DU" "$SECS" "$RC" >"$MD" <<'EOF'
import json, sys
jf, hwm, rss, du, secs, rc = sys.argv[1:]
recs = [json.loads(l) for l in open(jf) if l.strip()]
load = next((r for r in recs if r["phase"] == "load"), None)
brute = next((r for r in recs if r["phase"] == "brute"), None)
idx = [r for r in recs if r["phase"].startswith("index:")]
first = recs[0] if recs else {}
k = first.get("k", 10)
f = lambda v, fmt: "-" if v is None else format(v, fmt)
print(f'ANN benchmark: {first.get("vectors", "?"):,} vectors of {first.get("dimensions", "?")} floats '
      f'(seed {first.get("seed", "?")}), {first.get("queries", "?"):,} queries, top {k}, '
      f'concurrency {first.get("concurrency", "?")}; {secs} s in all.')
print()
if load:
    print(f'Load: {load["rows"]:,} rows in {load["seconds"]:.1f} s = **{load["rows_per_s"]:,.0f} rows/s** '
          f'(insert p50 {load["p50_ms"]:.2f} ms, p99 {load["p99_ms"]:.2f} ms, {load["errors"]} errors).')
    print()
print(f"| index (M:C:S[:E]) | build s | queries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | recall@{k} | x brute force | errors | target |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
if brute:
    print(f'| brute force ({brute["brute_queries"]} full scans, page {brute["page_size"]}) | | '
          f'{brute["queries_per_s"]:.2f} | {brute["p50_ms"]:.0f} | {brute["p90_ms"]:.0f} | {brute["p99_ms"]:.0f} | '
          f'{brute["p999_ms"]:.0f} | {f(brute["recall"], ".4f")} | {"1" if brute["queries_per_s"] > 0 else "-"} | {brute["errors"]} | |')
for r in idx:
    name = f'{r["maximum_node_connections"]}:{r["construction_beam_width"]}:{r["search_beam_width"]}'
    if "exact_search_limit" in r:
        name += f':{r["exact_search_limit"]}'
    if r.get("failure"):
        print(f'| {name} | | | | | | | | | | failed: {r["failure"]} |')
        continue
    build = r.get("build_s")
    build_s = f(build, ".1f") if build is not None else f'{r["create_s"]:.1f}*'
    ratio, rec = r.get("ratio_to_brute"), r.get("recall")
    ok = ratio is not None and rec is not None and rec >= 0.95 and ratio >= 20
    print(f'| {name} | {build_s} | {r["queries_per_s"]:,.1f} | {r["p50_ms"]:.2f} | {r["p90_ms"]:.2f} | '
          f'{r["p99_ms"]:.2f} | {r["p999_ms"]:.2f} | {f(rec, ".4f")} | {f(ratio, ",.1f")} | {r["errors"]} | '
          f'{"met" if ok else "not met"} |')
print()
print("M = maximum_node_connections, C = construction_beam_width, S = search_beam_width, E = exact_search_limit "
      "(E 0: every segment searched through the HNSW graph; no E: the default, segments up to 131,072 vectors "
      "scanned exactly in memory).")
print()
print("Target: recall@10 >= 0.95 at >= 20x the brute-force query rate. Build time: from CREATE CUSTOM INDEX "
      "to is_built in system_views.sai_column_indexes (polled every 100 ms); * = status view unavailable, "
      "time until CREATE returned.")
notes = sorted({r["build_note"] for r in idx if r.get("build_note")})
for n in notes:
    print(f"Note: {n}")
errs = {}
for r in recs:
    for e in r.get("error_messages", []):
        errs.setdefault(r["phase"], []).append(f'{e["count"]}x {e["message"]}')
for ph, es in errs.items():
    print(f"Errors ({ph}): " + "; ".join(es)[:600])
print()
print(f"Node peak RSS (VmHWM) {hwm} MiB, RSS at end {rss} MiB; data dir {int(du) / 2**20:,.0f} MiB at end."
      + (f" sibyl-bench exited with status {rc}." if rc != "0" else ""))
EOF
{
    echo
    echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(date -u '+%Y-%m-%d %H:%M UTC'); sibyl $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)${SIBYL_NOTE:+ ($SIBYL_NOTE)}. Raw records: ${JSON#"$ROOT"/}"
} >>"$MD"
cat "$MD"
exit "$RC"
