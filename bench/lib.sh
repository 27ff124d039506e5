# Helpers shared by run_suite.sh, storage_suite.sh and ann_suite.sh (sourced, not run).
# Expects ROOT (repository root) to be set.

BENCH_DIR="$ROOT/bench"
BENCH_BIN="$BENCH_DIR/target/release/sibyl-bench"
ECHO_BIN="$BENCH_DIR/target/release/cql-echo"
SIBYL_BIN="${SIBYL_BIN:-$ROOT/target/release/sibyl}"

PIDS=()
TMP_DIRS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    for p in "${TMP_DIRS[@]:-}"; do
        [ -n "$p" ] && rm -rf "$p"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build_all() {
    if [ "${SKIP_BUILD:-0}" = "1" ]; then
        log "SKIP_BUILD=1: using $SIBYL_BIN and $BENCH_BIN as they are"
    else
        if [ "$SIBYL_BIN" = "$ROOT/target/release/sibyl" ]; then
            log "building sibyl (cargo build --release -p sibyl-server)"
            (cd "$ROOT" && cargo build --release -q -p sibyl-server)
        fi
        log "building bench tools (bench/ workspace)"
        (cd "$BENCH_DIR" && cargo build --release -q)
    fi
    [ -x "$SIBYL_BIN" ] || { echo "no sibyl binary at $SIBYL_BIN" >&2; exit 1; }
}

now_ms() { date +%s%3N; }

# wait_port PORT TIMEOUT_S: polls until a TCP connect succeeds.
wait_port() {
    local port=$1 deadline=$(( $(now_ms) + ${2:-20} * 1000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.002
    done
    return 1
}

# start_sibyl DATA_DIR PORT LOGFILE [extra args...]: sets SIBYL_PID and STARTUP_MS
# (launch to first accepted TCP connection, measured by polling).
start_sibyl() {
    local data=$1 port=$2 logf=$3
    shift 3
    local t0
    t0=$(now_ms)
    # The storage port (gossip + internode) is offset from the CQL port so a benchmark node
    # never collides with a development node on 7000.
    "$SIBYL_BIN" --data-dir "$data" --listen-address 127.0.0.1 --native-port "$port" --storage-port "$((port + 1000))" "$@" >>"$logf" 2>&1 &
    SIBYL_PID=$!
    PIDS+=("$SIBYL_PID")
    if ! wait_port "$port" 60; then
        echo "sibyl did not start serving on port $port; log:" >&2
        tail -20 "$logf" >&2
        exit 1
    fi
    STARTUP_MS=$(( $(now_ms) - t0 ))
}

# stop_pid PID: SIGTERM (Sibyl flushes its memtables) and wait for the exit.
stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# rss_mib PID FIELD (VmRSS or VmHWM) -> MiB with one decimal.
rss_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# io_write_bytes PID -> bytes the process caused to be written to storage.
io_write_bytes() {
    awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0
}

# bench LABEL PORT JSONFILE ARGS...: runs sibyl-bench, appends its JSON record to JSONFILE.
bench() {
    local label=$1 port=$2 json=$3
    shift 3
    log "sibyl-bench $* (port $port, $label)"
    "$BENCH_BIN" "$@" --port "$port" --label "$label" --json "$json" --progress "${PROGRESS:-5}"
}

# wait_quiet PID: waits (at most 60 s) until the process uses under a tenth of a core, so a
# measurement that follows (the ceiling's, on the same cores) does not share them with the
# node's background work (flushes, compactions) left over from the run before.
wait_quiet() {
    local pid=$1 a b i
    for i in $(seq 120); do
        a=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
        sleep 0.5
        b=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
        [ $((b - a)) -lt 5 ] && return 0
    done
    log "pid $pid still busy after 60 s"
}

# json_field JSONFILE LABEL FIELD: FIELD of the last record with that label.
json_field() {
    jq -r --arg l "$2" "select(.label == \$l) | .$3" "$1" | tail -1
}

# start_rss_sampler PID FILE: every 0.2 s records the peak anonymous RSS (heap: RssAnon)
# and the peak file-backed RSS (mmapped SSTables: RssFile) of PID into FILE as
# "anon_mib file_mib". VmHWM counts both, so a node that mmaps its SSTables shows the
# page cache it touched there; RssAnon is the memory the node itself allocated.
start_rss_sampler() {
    local pid=$1 file=$2
    (
        ma=0 mf=0
        while kill -0 "$pid" 2>/dev/null; do
            read -r a f < <(awk '$1=="RssAnon:"{a=$2} $1=="RssFile:"{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
            [ "${a:-0}" -gt "$ma" ] && ma=$a
            [ "${f:-0}" -gt "$mf" ] && mf=$f
            echo "$((ma / 1024)) $((mf / 1024))" >"$file.tmp" && mv "$file.tmp" "$file"
            sleep 0.2
        done
    ) &
    PIDS+=("$!")
}

# probe PORT: one write through the driver; on failure prints why and exits.
probe() {
    local err
    if ! err=$("$BENCH_BIN" write --port "$1" --count 1 --concurrency 1 --table probe --progress 0 2>&1 >/dev/null); then
        echo "$err" >&2
        if grep -q 'unsupported CQL version' <<<"$err"; then
            echo "The node rejects the scylla driver's STARTUP (it sends CQL_VERSION 4.0.0, which Cassandra accepts)." >&2
            echo "Fix the CQL_VERSION check of sibyl-server's STARTUP handling, or point SIBYL_BIN at a fixed build." >&2
        fi
        exit 1
    fi
}
