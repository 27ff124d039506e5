//! `sibyl-bench`: a CQL load generator for Sibyl (or any CQL v4 server), built on the
//! `scylla` Rust driver.
//!
//! Workloads (table `<keyspace>.<table> (pk bigint, ck bigint, v blob, PRIMARY KEY (pk, ck))`):
//! * `write`          INSERT rows of `--row-size` bytes
//! * `read`           point SELECT by full primary key
//! * `slice`          SELECT `--slice-rows` rows of a partition from a random clustering key
//! * `mixed`          `--read-ratio` point reads, the rest writes
//! * `lwt`            INSERT ... IF NOT EXISTS on fresh keys (uncontended)
//! * `lwt-contended`  INSERT ... IF NOT EXISTS on `--hot-keys` keys (contended)
//! * `ann`            vector search: load vectors, build SAI vector indexes with several
//!   configurations, measure ANN query latency, rate and recall against a brute-force
//!   baseline (see `ann.rs`; its options are `--vectors`, `--dimensions`, `--queries`,
//!   `--configs`, ...)
//!
//! Keys: partition `pk` in `0..--partitions`, clustering `ck` in `0..--rows-per-partition`,
//! chosen `--distribution uniform` or `sequential` (operation i hits row i of the key space,
//! wrapping).
//!
//! With `--rate R` operations are scheduled at fixed intended start times (i / R seconds
//! after the start) by a pacer thread; each latency is measured from the *intended* start,
//! so a stalled server shows up in the latencies (no coordinated omission). Without
//! `--rate`, `--concurrency` operations are kept in flight and latency is the service time.

mod ann;

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use hdrhistogram::Histogram;
use rand::{Rng, RngCore, SeedableRng};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::client::PoolSize;
use scylla::frame::types::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Statement;
use tokio::sync::Semaphore;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Write,
    Read,
    Slice,
    Mixed,
    Lwt,
    LwtContended,
    Ann,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Distribution {
    Uniform,
    Sequential,
}

#[derive(Parser, Debug, Clone)]
#[command(about = "CQL load generator for Sibyl (scylla driver, HDR latency histogram)", args_override_self = true)]
struct Args {
    /// Workload to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Comma-separated contact points.
    #[arg(long, default_value = "127.0.0.1")]
    hosts: String,
    /// CQL native port.
    #[arg(long, default_value_t = 9042)]
    port: u16,
    /// Connections per host.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Operations in flight at once (tasks).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured duration in seconds (ignored when --count is given).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Number of measured operations (instead of --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Fixed target rate in operations per second (latency from intended start).
    #[arg(long)]
    rate: Option<f64>,
    /// Warm-up seconds before measuring (same workload, not recorded).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Consistency level: any, one, two, three, quorum, all, local_quorum, each_quorum, local_one.
    #[arg(long, default_value = "one")]
    consistency: String,
    /// Replication factor of the keyspace if it is created.
    #[arg(long, default_value_t = 1)]
    replication_factor: u32,
    #[arg(long, default_value = "sibyl_bench")]
    keyspace: String,
    #[arg(long, default_value = "t")]
    table: String,
    /// Size in bytes of the value column `v` of each row.
    #[arg(long, default_value_t = 100)]
    row_size: usize,
    /// Number of partitions of the key space.
    #[arg(long, default_value_t = 10_000)]
    partitions: u64,
    /// Clustering rows per partition of the key space.
    #[arg(long, default_value_t = 1)]
    rows_per_partition: u64,
    /// Key distribution.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Added to the operation number before it is turned into a key (sequential loads in chunks).
    #[arg(long, default_value_t = 0)]
    key_offset: u64,
    /// Rows per `slice` read.
    #[arg(long, default_value_t = 10)]
    slice_rows: u64,
    /// Fraction of reads in `mixed`.
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// Number of keys hammered by `lwt-contended`.
    #[arg(long, default_value_t = 4)]
    hot_keys: u64,
    /// Drop the table first (fresh data).
    #[arg(long)]
    drop: bool,
    /// Don't create the keyspace/table (assume they exist).
    #[arg(long)]
    no_schema: bool,
    /// Write the JSON result record to this file (appended) instead of stdout.
    #[arg(long)]
    json: Option<String>,
    /// Free-form label copied into the JSON record.
    #[arg(long, default_value = "")]
    label: String,
    /// Seconds between progress lines on stderr (0 = none).
    #[arg(long, default_value_t = 1.0)]
    progress: f64,
    /// How many distinct error messages to keep and print.
    #[arg(long, default_value_t = 5)]
    max_error_messages: usize,
    /// Worker threads of the client's runtime (0 = one per core). At a fixed rate below what
    /// one thread can drive, 1 avoids handing every request and response between threads.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Append one line per operation slower than `--slow-ms` to this file: its intended start
    /// (ms since the phase began) and its latency (ms), to see when stalls happen.
    #[arg(long)]
    slow_log: Option<String>,
    /// Threshold of `--slow-log`, in milliseconds.
    #[arg(long, default_value_t = 2.0)]
    slow_ms: f64,
    /// Seed of the key / value generator (`ann`: of the vectors).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// ann: number of vectors loaded (ids 0..N).
    #[arg(long, default_value_t = 100_000, help_heading = "ann")]
    vectors: usize,
    /// ann: dimensions of the vectors (`vector<float, D>`).
    #[arg(long, visible_alias = "dim", default_value_t = 768, help_heading = "ann")]
    dimensions: usize,
    /// ann: number of query vectors (one pass over them per index configuration; repeated
    /// passes for --duration seconds only when --duration is given).
    #[arg(long, default_value_t = 1000, help_heading = "ann")]
    queries: usize,
    /// ann: neighbours per query (LIMIT k, recall@k).
    #[arg(long, default_value_t = 10, help_heading = "ann")]
    top_k: usize,
    /// ann: index configurations, comma-separated
    /// maximum_node_connections:construction_beam_width:search_beam_width.
    #[arg(long, default_value = "16:100:200,16:100:100:0,16:100:400:0,16:100:1600:0", help_heading = "ann")]
    configs: String,
    /// ann: reuse the existing table (same --vectors/--dimensions/--seed) instead of loading.
    #[arg(long, help_heading = "ann")]
    skip_load: bool,
    /// ann: brute-force baseline queries (full scans with similarity_cosine; 0 = none).
    #[arg(long, default_value_t = 5, help_heading = "ann")]
    brute_queries: usize,
    /// ann: brute-force scans in flight (0 = --concurrency, capped at --brute-queries).
    #[arg(long, default_value_t = 0, help_heading = "ann")]
    brute_concurrency: usize,
    /// ann: page size of the brute-force scans.
    #[arg(long, default_value_t = 5000, help_heading = "ann")]
    page_size: i32,
    /// ann: seconds to wait for an index build (CREATE and is_built polling).
    #[arg(long, default_value_t = 1800.0, help_heading = "ann")]
    index_timeout: f64,
}

fn parse_consistency(s: &str) -> Result<Consistency> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => bail!("unknown consistency level {other:?}"),
    })
}

/// A statement: prepared when the server accepted it, else sent as a plain query (so a
/// server that rejects it, e.g. LWT on Sibyl today, yields per-operation errors).
enum Stmt {
    Prepared(PreparedStatement),
    Unprepared(Statement),
}

impl Stmt {
    async fn make(session: &Session, cql: &str, cl: Consistency) -> Stmt {
        match session.prepare(cql).await {
            Ok(mut p) => {
                p.set_consistency(cl);
                Stmt::Prepared(p)
            }
            Err(e) => {
                eprintln!("warning: PREPARE failed ({e}); using unprepared statements for {cql:?}");
                let mut s = Statement::new(cql);
                s.set_consistency(cl);
                Stmt::Unprepared(s)
            }
        }
    }
}

/// Outcome of one operation: rows returned.
async fn run_stmt<V: scylla::serialize::row::SerializeRow>(
    session: &Session,
    stmt: &Stmt,
    values: V,
    read: bool,
) -> std::result::Result<u64, String> {
    let res = match stmt {
        Stmt::Prepared(p) => session.execute_unpaged(p, values).await,
        Stmt::Unprepared(s) => session.query_unpaged(s.clone(), values).await,
    }
    .map_err(|e| e.to_string())?;
    if !read {
        return Ok(0);
    }
    let rows = res.into_rows_result().map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for r in rows.rows::<(i64, &[u8])>().map_err(|e| e.to_string())? {
        let (_ck, v) = r.map_err(|e| e.to_string())?;
        std::hint::black_box(v.len());
        n += 1;
    }
    Ok(n)
}

struct Statements {
    insert: Stmt,
    point: Stmt,
    slice: Stmt,
    lwt: Stmt,
}

/// Shared state of one phase (warm-up or measured).
struct Phase {
    next: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    rows: AtomicU64,
    stop: AtomicBool,
    limit: Option<u64>,
    deadline: Option<Instant>,
    start: Instant,
    /// Pacer permits (fixed-rate mode).
    permits: Option<Arc<Semaphore>>,
    rate: Option<f64>,
    error_messages: Mutex<Vec<(String, u64)>>,
    max_messages: usize,
    /// `--slow-log` threshold in µs (u64::MAX when off) and the slow operations seen.
    slow_us: u64,
    slow: Mutex<Vec<(u64, u64)>>,
}

impl Phase {
    fn record_error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut v = self.error_messages.lock().unwrap();
        if let Some(e) = v.iter_mut().find(|(m, _)| *m == msg) {
            e.1 += 1;
        } else if v.len() < self.max_messages {
            v.push((msg, 1));
        }
    }
}

struct Ctx {
    args: Args,
    session: Session,
    stmts: Statements,
    /// Random bytes the values are sliced from (incompressible data).
    pool: Vec<u8>,
}

fn key_for(args: &Args, i: u64, rng: &mut impl Rng) -> (i64, i64) {
    let rpp = args.rows_per_partition.max(1);
    let parts = args.partitions.max(1);
    match args.distribution {
        Distribution::Sequential => {
            let i = i + args.key_offset;
            (((i / rpp) % parts) as i64, (i % rpp) as i64)
        }
        Distribution::Uniform => (rng.random_range(0..parts) as i64, rng.random_range(0..rpp) as i64),
    }
}

async fn one_op(ctx: &Ctx, i: u64, rng: &mut rand::rngs::SmallRng) -> std::result::Result<u64, String> {
    let a = &ctx.args;
    let value = |rng: &mut rand::rngs::SmallRng| {
        let off = rng.random_range(0..=(ctx.pool.len() - a.row_size));
        &ctx.pool[off..off + a.row_size]
    };
    match a.workload {
        Workload::Write => {
            let (pk, ck) = key_for(a, i, rng);
            run_stmt(&ctx.session, &ctx.stmts.insert, (pk, ck, value(rng)), false).await
        }
        Workload::Read => {
            let (pk, ck) = key_for(a, i, rng);
            run_stmt(&ctx.session, &ctx.stmts.point, (pk, ck), true).await
        }
        Workload::Slice => {
            let (pk, _) = key_for(a, i, rng);
            let span = a.rows_per_partition.saturating_sub(a.slice_rows) + 1;
            let from = rng.random_range(0..span) as i64;
            run_stmt(&ctx.session, &ctx.stmts.slice, (pk, from), true).await
        }
        Workload::Mixed => {
            let (pk, ck) = key_for(a, i, rng);
            if rng.random_bool(a.read_ratio.clamp(0.0, 1.0)) {
                run_stmt(&ctx.session, &ctx.stmts.point, (pk, ck), true).await
            } else {
                run_stmt(&ctx.session, &ctx.stmts.insert, (pk, ck, value(rng)), false).await
            }
        }
        Workload::Lwt => {
            // Fresh keys: a per-run base keeps reruns uncontended too.
            let base = (ctx.args.seed as i64) << 40;
            let pk = base + i as i64;
            run_stmt(&ctx.session, &ctx.stmts.lwt, (pk, 0i64, value(rng)), false).await
        }
        Workload::LwtContended => {
            let pk = rng.random_range(0..a.hot_keys.max(1)) as i64;
            run_stmt(&ctx.session, &ctx.stmts.lwt, (pk, 0i64, value(rng)), false).await
        }
        Workload::Ann => Err("the ann workload runs through ann::run".into()),
    }
}

async fn worker(ctx: Arc<Ctx>, phase: Arc<Phase>, mut hist: Histogram<u64>, seed: u64) -> Histogram<u64> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    loop {
        if phase.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(p) = &phase.permits {
            match p.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break, // closed: phase over
            }
        }
        let i = phase.next.fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = phase.limit {
            if i >= limit {
                phase.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        let now = Instant::now();
        if let Some(d) = phase.deadline {
            if now >= d {
                phase.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        // Intended start: on the fixed schedule in rate mode, else now.
        let intended = match phase.rate {
            Some(r) => phase.start + Duration::from_secs_f64(i as f64 / r),
            None => now,
        };
        let res = one_op(&ctx, i, &mut rng).await;
        let lat = intended.elapsed();
        match res {
            Ok(rows) => {
                phase.rows.fetch_add(rows, Ordering::Relaxed);
                let us = (lat.as_nanos() as u64 / 1000).max(1);
                let _ = hist.record(us.min(hist.high()));
                if us >= phase.slow_us {
                    let at = intended.saturating_duration_since(phase.start).as_micros() as u64;
                    phase.slow.lock().unwrap().push((at, us));
                }
            }
            Err(e) => phase.record_error(e),
        }
        phase.done.fetch_add(1, Ordering::Relaxed);
    }
    hist
}

/// Pacer thread: releases one permit per operation at its intended start time.
fn spawn_pacer(phase: Arc<Phase>, rate: f64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let permits = phase.permits.clone().unwrap();
        let mut released: u64 = 0;
        loop {
            if phase.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if let Some(d) = phase.deadline {
                if now >= d {
                    break;
                }
            }
            let due = ((now - phase.start).as_secs_f64() * rate) as u64 + 1;
            let due = phase.limit.map_or(due, |l| due.min(l + 1));
            if due > released {
                permits.add_permits((due - released) as usize);
                released = due;
            }
            if let Some(l) = phase.limit {
                if released > l {
                    break;
                }
            }
            // Sleep until the next operation is due (at least 50 µs to batch at high rates).
            let next_at = phase.start + Duration::from_secs_f64(released as f64 / rate);
            let wait = next_at.saturating_duration_since(Instant::now());
            std::thread::sleep(wait.max(Duration::from_micros(50)));
        }
        phase.stop.store(true, Ordering::Relaxed);
        permits.close();
    })
}

struct PhaseResult {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    rows: u64,
    elapsed: Duration,
    messages: Vec<(String, u64)>,
}

async fn run_phase(ctx: &Arc<Ctx>, name: &str, duration: Option<f64>, count: Option<u64>, seed: u64) -> PhaseResult {
    let a = &ctx.args;
    let start = Instant::now();
    let phase = Arc::new(Phase {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        limit: count,
        deadline: duration.map(|d| start + Duration::from_secs_f64(d)),
        start,
        permits: a.rate.map(|_| Arc::new(Semaphore::new(0))),
        rate: a.rate,
        error_messages: Mutex::new(Vec::new()),
        max_messages: a.max_error_messages,
        slow_us: if a.slow_log.is_some() { (a.slow_ms * 1000.0) as u64 } else { u64::MAX },
        slow: Mutex::new(Vec::new()),
    });
    let pacer = a.rate.map(|r| spawn_pacer(phase.clone(), r));
    let mut handles = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        handles.push(tokio::spawn(worker(ctx.clone(), phase.clone(), hist, seed ^ (w as u64 * 0x9E37_79B9))));
    }
    // Progress line.
    let progress = if a.progress > 0.0 {
        let phase = phase.clone();
        let every = Duration::from_secs_f64(a.progress);
        let name = name.to_string();
        Some(tokio::spawn(async move {
            let mut last = 0u64;
            let mut last_t = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let done = phase.done.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done - last) as f64 / (now - last_t).as_secs_f64();
                eprintln!(
                    "[{name}] {:6.1}s  ops {:>10}  {:>9.0} ops/s  errors {}",
                    (now - phase.start).as_secs_f64(),
                    done,
                    rate,
                    phase.errors.load(Ordering::Relaxed)
                );
                last = done;
                last_t = now;
            }
        }))
    } else {
        None
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for h in handles {
        if let Ok(h2) = h.await {
            hist.add(h2).unwrap();
        }
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(p) = pacer {
        phase.stop.store(true, Ordering::Relaxed);
        let _ = p.join();
    }
    let messages = phase.error_messages.lock().unwrap().clone();
    if let Some(path) = &a.slow_log {
        let mut slow = std::mem::take(&mut *phase.slow.lock().unwrap());
        slow.sort_unstable();
        let mut out = String::new();
        for (at, us) in slow {
            out.push_str(&format!("{name} {:.3} {:.3}\n", at as f64 / 1000.0, us as f64 / 1000.0));
        }
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(out.as_bytes()));
    }
    PhaseResult {
        hist,
        ops: phase.done.load(Ordering::Relaxed),
        errors: phase.errors.load(Ordering::Relaxed),
        rows: phase.rows.load(Ordering::Relaxed),
        elapsed,
        messages,
    }
}

/// A session to `--hosts` (`--connections` per host, no schema metadata).
async fn connect(args: &Args) -> Result<Session> {
    let nodes: Vec<String> = args
        .hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:{}", args.port) })
        .collect();
    SessionBuilder::new()
        .known_nodes(&nodes)
        .pool_size(PoolSize::PerHost(NonZeroUsize::new(args.connections.max(1)).unwrap()))
        // The generator needs no schema metadata (and the ceiling server has none).
        .fetch_schema_metadata(false)
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .with_context(|| format!("connecting to {nodes:?}"))
}

async fn setup(args: &Args) -> Result<Ctx> {
    let cl = parse_consistency(&args.consistency)?;
    let session = connect(args).await?;
    let ks = &args.keyspace;
    let t = &args.table;
    if !args.no_schema {
        session
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {}}}",
                    args.replication_factor
                ),
                &[],
            )
            .await
            .context("CREATE KEYSPACE")?;
        if args.drop {
            session.query_unpaged(format!("DROP TABLE IF EXISTS {ks}.{t}"), &[]).await.context("DROP TABLE")?;
        }
        session
            .query_unpaged(
                format!("CREATE TABLE IF NOT EXISTS {ks}.{t} (pk bigint, ck bigint, v blob, PRIMARY KEY (pk, ck))"),
                &[],
            )
            .await
            .context("CREATE TABLE")?;
    }
    let stmts = Statements {
        insert: Stmt::make(&session, &format!("INSERT INTO {ks}.{t} (pk, ck, v) VALUES (?, ?, ?)"), cl).await,
        point: Stmt::make(&session, &format!("SELECT ck, v FROM {ks}.{t} WHERE pk = ? AND ck = ?"), cl).await,
        slice: Stmt::make(
            &session,
            &format!("SELECT ck, v FROM {ks}.{t} WHERE pk = ? AND ck >= ? LIMIT {}", args.slice_rows.max(1)),
            cl,
        )
        .await,
        lwt: if matches!(args.workload, Workload::Lwt | Workload::LwtContended) {
            Stmt::make(&session, &format!("INSERT INTO {ks}.{t} (pk, ck, v) VALUES (?, ?, ?) IF NOT EXISTS"), cl).await
        } else {
            Stmt::Unprepared(Statement::new(""))
        },
    };
    let mut pool = vec![0u8; (1 << 20) + args.row_size];
    rand::rngs::SmallRng::seed_from_u64(args.seed).fill_bytes(&mut pool);
    Ok(Ctx { args: args.clone(), session, stmts, pool })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Writes a JSON record as one line to `--json` (appended) or stdout.
fn write_record(args: &Args, rec: &serde_json::Value) -> Result<()> {
    let line = rec.to_string();
    match &args.json {
        Some(path) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(f, "{line}")?;
        }
        None => println!("{line}"),
    }
    Ok(())
}

fn main() {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let duration_given = matches.value_source("duration") == Some(ValueSource::CommandLine);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    let res = if args.workload == Workload::Ann {
        rt.block_on(ann::run(args, duration_given))
    } else {
        rt.block_on(run(args))
    };
    if let Err(e) = res {
        eprintln!("sibyl-bench: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let ctx = Arc::new(setup(&args).await?);
    if args.warmup > 0.0 {
        let w = run_phase(&ctx, "warmup", Some(args.warmup), None, args.seed.wrapping_add(1)).await;
        eprintln!("warm-up: {} ops in {:.1}s ({} errors)", w.ops, w.elapsed.as_secs_f64(), w.errors);
    }
    let (duration, count) = match args.count {
        Some(c) => (None, Some(c)),
        None => (Some(args.duration), None),
    };
    let name = args.workload.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let r = run_phase(&ctx, &name, duration, count, args.seed).await;
    let secs = r.elapsed.as_secs_f64();
    let ok = r.ops - r.errors;
    let h = &r.hist;
    let ops_s = r.ops as f64 / secs;
    let q = |p: f64| if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(p)) };
    let mut summary = String::new();
    let _ = writeln!(summary, "workload      {name}");
    let _ = writeln!(
        summary,
        "operations    {} in {:.2}s  = {:.0} ops/s  ({} ok, {} errors{})",
        r.ops,
        secs,
        ops_s,
        ok,
        r.errors,
        args.rate.map(|x| format!(", target rate {x:.0}/s")).unwrap_or_default()
    );
    if matches!(args.workload, Workload::Read | Workload::Slice | Workload::Mixed) {
        let _ = writeln!(summary, "rows read     {}", r.rows);
    }
    let _ = writeln!(
        summary,
        "latency ms    mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}{}",
        if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        if h.is_empty() { 0.0 } else { ms(h.max()) },
        if args.rate.is_some() { "  (from intended start)" } else { "" }
    );
    for (m, n) in &r.messages {
        let _ = writeln!(summary, "error x{n}: {m}");
    }
    eprint!("{summary}");
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let rec = serde_json::json!({
        "label": args.label,
        "timestamp": ts,
        "workload": name,
        "hosts": args.hosts,
        "port": args.port,
        "connections": args.connections,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "consistency": args.consistency,
        "row_size": args.row_size,
        "partitions": args.partitions,
        "rows_per_partition": args.rows_per_partition,
        "distribution": format!("{:?}", args.distribution).to_lowercase(),
        "ops": r.ops,
        "errors": r.errors,
        "rows_read": r.rows,
        "seconds": secs,
        "ops_per_s": ops_s,
        "mean_ms": if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        "p50_ms": q(0.5),
        "p90_ms": q(0.9),
        "p99_ms": q(0.99),
        "p999_ms": q(0.999),
        "max_ms": if h.is_empty() { 0.0 } else { ms(h.max()) },
        "error_messages": r.messages.iter().map(|(m, n)| serde_json::json!({"count": n, "message": m})).collect::<Vec<_>>(),
    });
    write_record(&args, &rec)
}
