//! `sibyl-bench ann`: approximate-nearest-neighbour (vector search) benchmark.
//!
//! 1. Generates `--vectors` random unit vectors of `--dimensions` components (gaussian
//!    components, normalised) from `--seed`, and `--queries` query vectors from another
//!    stream of the same seed. Vector *i* of a stream depends only on (seed, stream, i).
//! 2. Loads them into `<keyspace>.vecs (id int PRIMARY KEY, v vector<float, D>)` with a
//!    prepared INSERT at `--concurrency` (skipped with `--skip-load`) and reports rows/s.
//! 3. Computes the exact top-k (cosine = dot product of unit vectors) of every query by
//!    brute force in the tool, on all cores.
//! 4. Baseline: `--brute-queries` full scans `SELECT id, similarity_cosine(v, ?)` (paged by
//!    `--page-size`), top-k taken client-side: the server's brute-force query rate.
//! 5. For each `--configs` entry M:C:S drops and re-creates the SAI vector index with
//!    maximum_node_connections M, construction_beam_width C, search_beam_width S, times its
//!    build (polling `system_views.sai_column_indexes` every 100 ms), then runs every query
//!    `SELECT id ... ORDER BY v ANN OF ? LIMIT k` once (or repeatedly for `--duration` s when
//!    that option is given) and reports latency percentiles, queries/s, recall@k and the
//!    query rate as a multiple of the brute-force rate.
//!
//! Output: one JSON line per phase (load, brute, one per config) on stdout or appended to
//! `--json`, a progress line per phase and a summary table on stderr.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use hdrhistogram::Histogram;
use scylla::client::session::Session;
use scylla::frame::response::result::{ColumnType, NativeType};
use scylla::frame::types::Consistency;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::serialize::SerializationError;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Statement;
use scylla::value::CqlValue;

use crate::{connect, ms, parse_consistency, write_record, Args};

pub const TABLE: &str = "vecs";
pub const INDEX: &str = "vecs_v_idx";
/// Stream numbers of the generator: base vectors and query vectors.
const STREAM_BASE: u64 = 0;
const STREAM_QUERY: u64 = 1;

// ---------------------------------------------------------------------------------------
// Index configurations
// ---------------------------------------------------------------------------------------

/// One index configuration: `maximum_node_connections:construction_beam_width:search_beam_width`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    pub m: u32,
    pub construction_beam_width: u32,
    pub search_beam_width: u32,
    /// Sibyl's `exact_search_limit` (segments up to this size are scanned exactly); None keeps
    /// the server's default.
    pub exact_search_limit: Option<u32>,
}

impl IndexConfig {
    pub fn name(&self) -> String {
        match self.exact_search_limit {
            Some(e) => format!("M{} C{} S{} E{e}", self.m, self.construction_beam_width, self.search_beam_width),
            None => format!("M{} C{} S{}", self.m, self.construction_beam_width, self.search_beam_width),
        }
    }

    fn label(&self) -> String {
        let base = format!("{}:{}:{}", self.m, self.construction_beam_width, self.search_beam_width);
        match self.exact_search_limit {
            Some(e) => format!("{base}:{e}"),
            None => base,
        }
    }
}

/// Parses `"16:100:40,16:200:200"` (whitespace around items is ignored).
pub fn parse_configs(s: &str) -> Result<Vec<IndexConfig>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let parts: Vec<&str> = item.split(':').map(str::trim).collect();
        if parts.len() != 3 && parts.len() != 4 {
            bail!("index config {item:?} is not M:C:S[:E] (maximum_node_connections:construction_beam_width:search_beam_width[:exact_search_limit])");
        }
        let num = |p: &str| -> Result<u32> {
            let v: u32 = p.parse().with_context(|| format!("index config {item:?}: {p:?} is not a number"))?;
            if v == 0 {
                bail!("index config {item:?}: values must be positive");
            }
            Ok(v)
        };
        out.push(IndexConfig {
            m: num(parts[0])?,
            construction_beam_width: num(parts[1])?,
            search_beam_width: num(parts[2])?,
            exact_search_limit: match parts.get(3) {
                Some(p) => Some(p.parse().with_context(|| format!("index config {item:?}: {p:?} is not a number"))?),
                None => None,
            },
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Deterministic vector generation
// ---------------------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in (0, 1].
fn unit_open(state: &mut u64) -> f64 {
    ((splitmix64(state) >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Fills `out` with vector `index` of `stream`: gaussian components (Box-Muller), normalised
/// to length 1. Depends only on (seed, stream, index), so it can be generated in parallel
/// and re-generated identically by a later `--skip-load` run.
pub fn gen_vector(seed: u64, stream: u64, index: u64, out: &mut [f32]) {
    let mut st = seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ index.wrapping_mul(0xA076_1D64_78BD_642F);
    splitmix64(&mut st);
    let mut i = 0;
    while i < out.len() {
        let r = (-2.0 * unit_open(&mut st).ln()).sqrt();
        let t = std::f64::consts::TAU * unit_open(&mut st);
        out[i] = (r * t.cos()) as f32;
        if i + 1 < out.len() {
            out[i + 1] = (r * t.sin()) as f32;
        }
        i += 2;
    }
    let norm = out.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in out.iter_mut() {
            *x = (*x as f64 / norm) as f32;
        }
    } else if let Some(x) = out.first_mut() {
        *x = 1.0;
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `count` vectors of `dim` components, row-major, generated on all cores.
pub fn gen_vectors(seed: u64, stream: u64, count: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; count * dim];
    if dim == 0 || count == 0 {
        return v;
    }
    let per = count.div_ceil(threads());
    std::thread::scope(|s| {
        for (c, chunk) in v.chunks_mut(per * dim).enumerate() {
            s.spawn(move || {
                for (j, row) in chunk.chunks_mut(dim).enumerate() {
                    gen_vector(seed, stream, (c * per + j) as u64, row);
                }
            });
        }
    });
    v
}

// ---------------------------------------------------------------------------------------
// Exact search, recall
// ---------------------------------------------------------------------------------------

/// Dot product with 16 independent accumulators (so the compiler vectorises it).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// The k best (highest score) ids seen, best first; ties go to the lower id.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    items: Vec<(f32, i32)>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK { k, items: Vec::with_capacity(k + 1) }
    }

    fn better(a: (f32, i32), b: (f32, i32)) -> bool {
        a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
    }

    #[inline]
    pub fn push(&mut self, score: f32, id: i32) {
        if self.k == 0 || score.is_nan() {
            return;
        }
        if self.items.len() == self.k && !Self::better((score, id), self.items[self.k - 1]) {
            return;
        }
        let pos = self.items.iter().position(|&it| Self::better((score, id), it)).unwrap_or(self.items.len());
        self.items.insert(pos, (score, id));
        self.items.truncate(self.k);
    }

    pub fn ids(&self) -> Vec<i32> {
        self.items.iter().map(|&(_, id)| id).collect()
    }
}

/// Exact top-`k` ids of every query (rows of `queries`) among the rows of `base`, by
/// score = dot product. Blocks of queries are spread over all cores; each block streams
/// the base vectors once.
pub fn ground_truth(base: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<i32>> {
    const BLOCK: usize = 8;
    let nq = queries.len().checked_div(dim).unwrap_or(0);
    let blocks = nq.div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Vec<i32>>> = Mutex::new(vec![Vec::new(); nq]);
    std::thread::scope(|s| {
        for _ in 0..threads().min(blocks.max(1)) {
            s.spawn(|| loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= blocks {
                    break;
                }
                let q0 = b * BLOCK;
                let q1 = (q0 + BLOCK).min(nq);
                let qs: Vec<&[f32]> = (q0..q1).map(|q| &queries[q * dim..(q + 1) * dim]).collect();
                let mut tops: Vec<TopK> = (q0..q1).map(|_| TopK::new(k)).collect();
                for (id, row) in base.chunks_exact(dim).enumerate() {
                    for (qv, top) in qs.iter().zip(tops.iter_mut()) {
                        top.push(dot(qv, row), id as i32);
                    }
                }
                let mut r = results.lock().unwrap();
                for (q, top) in (q0..q1).zip(tops) {
                    r[q] = top.ids();
                }
            });
        }
    });
    results.into_inner().unwrap()
}

/// Fraction of the true neighbours `truth` found in `returned` (duplicates count once).
/// An empty `truth` (empty table) counts as full recall.
pub fn recall(returned: &[i32], truth: &[i32]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|t| returned.contains(t)).count();
    hits as f64 / truth.len() as f64
}

// ---------------------------------------------------------------------------------------
// Binding a vector<float, n>
// ---------------------------------------------------------------------------------------

/// Wire value of `vector<float, n>`: n big-endian IEEE-754 floats back to back, no lengths.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

/// A CQL literal `[0.1, -0.2, ...]` (Rust's shortest round-trip formatting of each float).
pub fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{x:?}");
    }
    s.push(']');
    s
}

#[derive(Debug)]
struct VectorBindError(String);

impl std::fmt::Display for VectorBindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VectorBindError {}

/// A `vector<float, n>` bind value. Serialized by hand (n big-endian f32s) for a
/// `vector<float, n>` marker of the right dimension, or for a `blob` marker (a server that
/// describes the vector's bytes as a blob).
#[derive(Copy, Clone, Debug)]
pub struct VecF32<'a>(pub &'a [f32]);

impl SerializeValue for VecF32<'_> {
    fn serialize<'b>(
        &self,
        typ: &ColumnType,
        writer: CellWriter<'b>,
    ) -> std::result::Result<WrittenCellProof<'b>, SerializationError> {
        match typ {
            ColumnType::Vector { typ: elem, dimensions } => {
                if **elem != ColumnType::Native(NativeType::Float) {
                    return Err(SerializationError::new(VectorBindError(format!(
                        "cannot bind a float vector to a vector of {elem:?}"
                    ))));
                }
                if *dimensions as usize != self.0.len() {
                    return Err(SerializationError::new(VectorBindError(format!(
                        "vector of {} floats bound to vector<float, {dimensions}>",
                        self.0.len()
                    ))));
                }
            }
            ColumnType::Native(NativeType::Blob) => {}
            other => {
                return Err(SerializationError::new(VectorBindError(format!(
                    "cannot bind a float vector to a marker of type {other:?}"
                ))))
            }
        }
        writer.set_value(&encode_vector(self.0)).map_err(SerializationError::new)
    }
}

/// A statement with one vector argument (and maybe an id): prepared when the server accepts
/// it, else sent as text with the vector written as a literal.
enum VecStmt {
    Prepared(PreparedStatement),
    /// Template with `{id}` and `{vec}` placeholders.
    Literal {
        template: String,
        cl: Consistency,
        page_size: i32,
        timeout: Option<Duration>,
    },
}

impl VecStmt {
    /// `prepared_cql` uses `?` markers (the vector last); `template` is the same
    /// statement with `{id}` / `{vec}` placeholders for the unprepared fallback.
    async fn make(
        session: &Session,
        what: &str,
        prepared_cql: &str,
        template: String,
        cl: Consistency,
        page_size: i32,
        dim: usize,
    ) -> VecStmt {
        match session.prepare(prepared_cql).await {
            Ok(mut p) => {
                p.set_consistency(cl);
                p.set_page_size(page_size);
                // The vector is the last marker: say so if the server types it otherwise.
                let specs = p.get_variable_col_specs();
                let want =
                    ColumnType::Vector { typ: Box::new(ColumnType::Native(NativeType::Float)), dimensions: dim as u16 };
                match specs.get_by_index(specs.len().wrapping_sub(1)).map(|c| c.typ()) {
                    Some(t) if *t == want => {}
                    t => eprintln!(
                        "warning: the server types the vector marker of the {what} statement as {t:?}, not vector<float, {dim}>"
                    ),
                }
                VecStmt::Prepared(p)
            }
            Err(e) => {
                eprintln!(
                    "warning: PREPARE of the {what} statement failed ({e}); sending it unprepared with vector literals"
                );
                VecStmt::Literal { template, cl, page_size, timeout: None }
            }
        }
    }

    fn set_request_timeout(&mut self, t: Option<Duration>) {
        match self {
            VecStmt::Prepared(p) => p.set_request_timeout(t),
            VecStmt::Literal { timeout, .. } => *timeout = t,
        }
    }

    fn literal(&self, id: Option<i32>, v: &[f32]) -> Statement {
        let VecStmt::Literal { template, cl, page_size, timeout } = self else { unreachable!() };
        let text = template
            .replace("{id}", &id.map(|i| i.to_string()).unwrap_or_default())
            .replace("{vec}", &vector_literal(v));
        let mut s = Statement::new(text);
        s.set_consistency(*cl);
        s.set_page_size(*page_size);
        s.set_request_timeout(*timeout);
        s
    }

    async fn insert(&self, session: &Session, id: i32, v: &[f32]) -> std::result::Result<(), String> {
        match self {
            VecStmt::Prepared(p) => session.execute_unpaged(p, (id, VecF32(v))).await.map(|_| ()),
            VecStmt::Literal { .. } => session.query_unpaged(self.literal(Some(id), v), &[]).await.map(|_| ()),
        }
        .map_err(|e| e.to_string())
    }

    /// ANN query: the ids returned, in order.
    async fn ann(&self, session: &Session, v: &[f32]) -> std::result::Result<Vec<i32>, String> {
        let res = match self {
            VecStmt::Prepared(p) => session.execute_unpaged(p, (VecF32(v),)).await,
            VecStmt::Literal { .. } => session.query_unpaged(self.literal(None, v), &[]).await,
        }
        .map_err(|e| e.to_string())?;
        let rows = res.into_rows_result().map_err(|e| e.to_string())?;
        let mut ids = Vec::new();
        for r in rows.rows::<(i32,)>().map_err(|e| e.to_string())? {
            ids.push(r.map_err(|e| e.to_string())?.0);
        }
        Ok(ids)
    }

    /// Full scan `SELECT id, similarity(v, ?)` through all pages: the top-k ids by score and
    /// the number of rows scanned.
    async fn scan_top_k(&self, session: &Session, v: &[f32], k: usize) -> std::result::Result<(Vec<i32>, u64), String> {
        let pager = match self {
            VecStmt::Prepared(p) => session.execute_iter(p.clone(), (VecF32(v),)).await,
            VecStmt::Literal { .. } => session.query_iter(self.literal(None, v), &[]).await,
        }
        .map_err(|e| e.to_string())?;
        let mut stream = pager.rows_stream::<(i32, Option<CqlValue>)>().map_err(|e| e.to_string())?;
        let mut top = TopK::new(k);
        let mut n = 0u64;
        while let Some(row) = stream.next().await {
            let (id, score) = row.map_err(|e| e.to_string())?;
            let score = match score {
                Some(CqlValue::Float(f)) => f,
                Some(CqlValue::Double(d)) => d as f32,
                None => continue,
                Some(other) => return Err(format!("similarity column is not a float: {other:?}")),
            };
            top.push(score, id);
            n += 1;
        }
        Ok((top.ids(), n))
    }
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// Distinct error messages with counts (the first `max` kept).
struct Errors {
    count: AtomicU64,
    messages: Mutex<Vec<(String, u64)>>,
    max: usize,
}

impl Errors {
    fn new(max: usize) -> Errors {
        Errors { count: AtomicU64::new(0), messages: Mutex::new(Vec::new()), max }
    }

    fn record(&self, msg: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut v = self.messages.lock().unwrap();
        if let Some(e) = v.iter_mut().find(|(m, _)| *m == msg) {
            e.1 += 1;
        } else if v.len() < self.max {
            v.push((msg, 1));
        }
    }

    fn total(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn json(&self) -> serde_json::Value {
        let v = self.messages.lock().unwrap();
        serde_json::Value::Array(v.iter().map(|(m, n)| serde_json::json!({"count": n, "message": m})).collect())
    }

    fn print(&self, what: &str) {
        for (m, n) in self.messages.lock().unwrap().iter() {
            eprintln!("  {what} error x{n}: {m}");
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap()
}

fn record_latency(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).max(1);
    let _ = h.record(us.min(h.high()));
}

/// Latency summary of a histogram (ms).
struct Lat {
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Lat {
    fn of(h: &Histogram<u64>) -> Lat {
        if h.is_empty() {
            return Lat { mean: 0.0, p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, max: 0.0 };
        }
        let q = |p: f64| ms(h.value_at_quantile(p));
        Lat { mean: h.mean() / 1000.0, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: ms(h.max()) }
    }

    fn json(&self, rec: &mut serde_json::Value) {
        rec["mean_ms"] = self.mean.into();
        rec["p50_ms"] = self.p50.into();
        rec["p90_ms"] = self.p90.into();
        rec["p99_ms"] = self.p99.into();
        rec["p999_ms"] = self.p999.into();
        rec["max_ms"] = self.max.into();
    }
}

/// Prints `[name] elapsed done rate` every `every` seconds until aborted.
fn spawn_progress(
    name: String,
    done: Arc<AtomicUsize>,
    every: f64,
    total: Option<usize>,
) -> Option<tokio::task::JoinHandle<()>> {
    if every <= 0.0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let (mut last, mut last_t) = (0usize, start);
        loop {
            tokio::time::sleep(Duration::from_secs_f64(every)).await;
            let d = done.load(Ordering::Relaxed);
            let now = Instant::now();
            let rate = (d - last) as f64 / (now - last_t).as_secs_f64();
            let of = total.map(|t| format!(" / {t}")).unwrap_or_default();
            eprintln!("[{name}] {:6.1}s  {d:>9}{of}  {rate:>9.0}/s", (now - start).as_secs_f64());
            (last, last_t) = (d, now);
        }
    }))
}

struct Ctx {
    args: Args,
    session: Session,
    ks: String,
    dim: usize,
    k: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Vec<Vec<i32>>,
}

impl Ctx {
    fn query(&self, q: usize) -> &[f32] {
        &self.queries[q * self.dim..(q + 1) * self.dim]
    }

    fn base_record(&self, phase: &str) -> serde_json::Value {
        let a = &self.args;
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        serde_json::json!({
            "label": if a.label.is_empty() { phase.to_string() } else { format!("{}:{phase}", a.label) },
            "timestamp": ts,
            "workload": "ann",
            "phase": phase,
            "hosts": a.hosts,
            "port": a.port,
            "keyspace": self.ks,
            "connections": a.connections,
            "concurrency": a.concurrency,
            "consistency": a.consistency,
            "vectors": a.vectors,
            "dimensions": a.dimensions,
            "queries": a.queries,
            "k": self.k,
            "seed": a.seed,
        })
    }
}

/// Loads every base vector with the prepared INSERT at `--concurrency`.
async fn load(ctx: &Arc<Ctx>, cl: Consistency) -> Result<serde_json::Value> {
    let a = &ctx.args;
    let ks = &ctx.ks;
    let session = &ctx.session;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {}}}",
                a.replication_factor
            ),
            &[],
        )
        .await
        .context("CREATE KEYSPACE")?;
    if a.drop {
        session.query_unpaged(format!("DROP TABLE IF EXISTS {ks}.{TABLE}"), &[]).await.context("DROP TABLE")?;
    }
    session
        .query_unpaged(
            format!("CREATE TABLE IF NOT EXISTS {ks}.{TABLE} (id int PRIMARY KEY, v vector<float, {}>)", ctx.dim),
            &[],
        )
        .await
        .context("CREATE TABLE")?;
    let stmt = Arc::new(
        VecStmt::make(
            session,
            "INSERT",
            &format!("INSERT INTO {ks}.{TABLE} (id, v) VALUES (?, ?)"),
            format!("INSERT INTO {ks}.{TABLE} (id, v) VALUES ({{id}}, {{vec}})"),
            cl,
            5000,
            ctx.dim,
        )
        .await,
    );
    let n = a.vectors;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Errors::new(a.max_error_messages));
    let progress = spawn_progress("load".into(), done.clone(), a.progress, Some(n));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..a.concurrency.max(1).min(n.max(1)) {
        let (ctx, stmt, next, done, errors) = (ctx.clone(), stmt.clone(), next.clone(), done.clone(), errors.clone());
        handles.push(tokio::spawn(async move {
            let mut h = new_hist();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                match stmt.insert(&ctx.session, i as i32, &ctx.base[i * ctx.dim..(i + 1) * ctx.dim]).await {
                    Ok(()) => record_latency(&mut h, t.elapsed()),
                    Err(e) => errors.record(e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            h
        }));
    }
    let mut hist = new_hist();
    for h in handles {
        hist.add(h.await?).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    let lat = Lat::of(&hist);
    let errs = errors.total();
    let rate = (n as u64 - errs) as f64 / secs;
    eprintln!(
        "load: {n} vectors in {secs:.2}s = {rate:.0} rows/s ({errs} errors); insert latency ms p50 {:.3} p99 {:.3} max {:.3}",
        lat.p50, lat.p99, lat.max
    );
    errors.print("load");
    let mut rec = ctx.base_record("load");
    rec["rows"] = n.into();
    rec["errors"] = errs.into();
    rec["seconds"] = secs.into();
    rec["rows_per_s"] = rate.into();
    rec["prepared"] = matches!(*stmt, VecStmt::Prepared(_)).into();
    lat.json(&mut rec);
    rec["error_messages"] = errors.json();
    if errs == n as u64 && n > 0 {
        write_record(&ctx.args, &rec)?;
        bail!("every INSERT failed; stopping");
    }
    Ok(rec)
}

/// Result of a query phase (ANN or brute force).
struct QueryRun {
    queries: u64,
    errors: u64,
    seconds: f64,
    qps: f64,
    recall: Option<f64>,
    lat: Lat,
    rows_scanned: u64,
    errors_json: serde_json::Value,
}

/// Runs query `i % nq` for i = 0, 1, ... at `concurrency`: one pass over `nq` queries, and
/// further passes until `duration` has passed when one is given. Recall is averaged over
/// the successful queries.
async fn run_queries(
    ctx: &Arc<Ctx>,
    name: &str,
    stmt: Arc<VecStmt>,
    nq: usize,
    concurrency: usize,
    duration: Option<f64>,
    brute: bool,
) -> Result<QueryRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Errors::new(ctx.args.max_error_messages));
    let progress = spawn_progress(name.to_string(), done.clone(), ctx.args.progress, duration.is_none().then_some(nq));
    let start = Instant::now();
    let deadline = duration.map(|d| start + Duration::from_secs_f64(d));
    let mut handles = Vec::new();
    // One pass needs at most one task per query; a timed run keeps them all busy.
    let tasks = if duration.is_some() { concurrency.max(1) } else { concurrency.max(1).min(nq.max(1)) };
    for _ in 0..tasks {
        let (ctx, stmt, next, done, errors) = (ctx.clone(), stmt.clone(), next.clone(), done.clone(), errors.clone());
        handles.push(tokio::spawn(async move {
            let (mut h, mut rsum, mut rn, mut scanned) = (new_hist(), 0f64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= nq && deadline.is_none_or(|d| Instant::now() >= d) {
                    break;
                }
                let q = i % nq;
                let t = Instant::now();
                let res = if brute {
                    stmt.scan_top_k(&ctx.session, ctx.query(q), ctx.k).await
                } else {
                    stmt.ann(&ctx.session, ctx.query(q)).await.map(|ids| (ids, 0))
                };
                match res {
                    Ok((ids, n)) => {
                        record_latency(&mut h, t.elapsed());
                        rsum += recall(&ids, &ctx.truth[q]);
                        rn += 1;
                        scanned += n;
                    }
                    Err(e) => errors.record(e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (h, rsum, rn, scanned)
        }));
    }
    let (mut hist, mut rsum, mut rn, mut scanned) = (new_hist(), 0f64, 0u64, 0u64);
    for h in handles {
        let (h2, s, n, sc) = h.await?;
        hist.add(h2).unwrap();
        rsum += s;
        rn += n;
        scanned += sc;
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    let queries = done.load(Ordering::Relaxed) as u64;
    let errs = errors.total();
    errors.print(name);
    Ok(QueryRun {
        queries,
        errors: errs,
        seconds,
        qps: (queries - errs) as f64 / seconds,
        recall: (rn > 0).then(|| rsum / rn as f64),
        lat: Lat::of(&hist),
        rows_scanned: scanned,
        errors_json: errors.json(),
    })
}

fn query_json(rec: &mut serde_json::Value, r: &QueryRun) {
    rec["queries_run"] = r.queries.into();
    rec["errors"] = r.errors.into();
    rec["seconds"] = r.seconds.into();
    rec["queries_per_s"] = r.qps.into();
    rec["recall"] = r.recall.into();
    r.lat.json(rec);
    rec["error_messages"] = r.errors_json.clone();
}

/// Index build timing.
struct Build {
    create_s: f64,
    build_s: Option<f64>,
    note: Option<String>,
}

/// Drops and re-creates the index with `cfg`, then polls `system_views.sai_column_indexes`
/// every 100 ms until `is_built`. An error of the DROP or CREATE is returned; a failing status
/// query is noted and the index taken as built when the CREATE returned.
async fn build_index(ctx: &Ctx, cfg: &IndexConfig) -> Result<Build> {
    let ks = &ctx.ks;
    let session = &ctx.session;
    let timeout = Duration::from_secs_f64(ctx.args.index_timeout);
    let mut drop = Statement::new(format!("DROP INDEX IF EXISTS {ks}.{INDEX}"));
    drop.set_request_timeout(Some(timeout));
    session.query_unpaged(drop, &[]).await.context("DROP INDEX")?;
    let mut create = Statement::new(format!(
        "CREATE CUSTOM INDEX {INDEX} ON {ks}.{TABLE} (v) USING 'StorageAttachedIndex' WITH OPTIONS = \
         {{'similarity_function': 'cosine', 'maximum_node_connections': '{}', 'construction_beam_width': '{}', 'search_beam_width': '{}'{}}}",
        cfg.m,
        cfg.construction_beam_width,
        cfg.search_beam_width,
        cfg.exact_search_limit.map(|e| format!(", 'exact_search_limit': '{e}'")).unwrap_or_default()
    ));
    create.set_request_timeout(Some(timeout));
    let start = Instant::now();
    session.query_unpaged(create, &[]).await.context("CREATE CUSTOM INDEX")?;
    let create_s = start.elapsed().as_secs_f64();
    let status = format!(
        "SELECT is_built FROM system_views.sai_column_indexes WHERE keyspace_name = '{ks}' AND table_name = '{TABLE}' AND index_name = '{INDEX}'"
    );
    loop {
        let res = async {
            let rows = session.query_unpaged(status.as_str(), &[]).await.map_err(|e| e.to_string())?;
            let rows = rows.into_rows_result().map_err(|e| e.to_string())?;
            let mut built = false;
            for r in rows.rows::<(Option<bool>,)>().map_err(|e| e.to_string())? {
                built |= r.map_err(|e| e.to_string())?.0.unwrap_or(false);
            }
            Ok::<bool, String>(built)
        }
        .await;
        match res {
            Ok(true) => return Ok(Build { create_s, build_s: Some(start.elapsed().as_secs_f64()), note: None }),
            Ok(false) => {}
            Err(e) => {
                let note = format!("index status query failed ({e}); build time unknown, taken as built after CREATE");
                eprintln!("warning: {note}");
                return Ok(Build { create_s, build_s: None, note: Some(note) });
            }
        }
        if start.elapsed() >= timeout {
            bail!("index not built after {:.0}s", timeout.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One line of the summary table.
struct Line {
    name: String,
    build_s: Option<f64>,
    run: Option<QueryRun>,
    ratio: Option<f64>,
    failure: Option<String>,
}

fn fmt_opt(v: Option<f64>, width: usize, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:>width$.prec$}"),
        None => format!("{:>width$}", "-"),
    }
}

fn table(lines: &[Line], k: usize) -> String {
    let mut s = String::new();
    let rk = format!("recall@{k}");
    let _ = writeln!(
        s,
        "{:<18} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "config", "build s", "queries/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", rk, "x brute", "errors"
    );
    for l in lines {
        if let Some(f) = &l.failure {
            let _ = writeln!(s, "{:<18} {:>9} FAILED: {f}", l.name, fmt_opt(l.build_s, 9, 2));
            continue;
        }
        let r = l.run.as_ref();
        let _ = writeln!(
            s,
            "{:<18} {} {} {} {} {} {} {} {} {:>7}",
            l.name,
            fmt_opt(l.build_s, 9, 2),
            fmt_opt(r.map(|r| r.qps), 10, 1),
            fmt_opt(r.map(|r| r.lat.p50), 9, 2),
            fmt_opt(r.map(|r| r.lat.p90), 9, 2),
            fmt_opt(r.map(|r| r.lat.p99), 9, 2),
            fmt_opt(r.map(|r| r.lat.p999), 9, 2),
            fmt_opt(r.and_then(|r| r.recall), 10, 4),
            fmt_opt(l.ratio, 9, 1),
            r.map_or(0, |r| r.errors)
        );
    }
    s
}

/// Entry point of `sibyl-bench ann`. `duration_given`: `--duration` was on the command line
/// (then the ANN queries repeat for that long instead of running one pass).
pub async fn run(args: Args, duration_given: bool) -> Result<()> {
    let configs = parse_configs(&args.configs)?;
    let cl = parse_consistency(&args.consistency)?;
    let dim = args.dimensions;
    if dim == 0 || dim > u16::MAX as usize {
        bail!("--dimensions must be in 1..=65535");
    }
    if args.vectors > i32::MAX as usize {
        bail!("--vectors must fit an int id");
    }
    let k = args.top_k.max(1);
    let nq = args.queries.max(1);

    let t = Instant::now();
    let base = tokio::task::block_in_place(|| gen_vectors(args.seed, STREAM_BASE, args.vectors, dim));
    let queries = tokio::task::block_in_place(|| gen_vectors(args.seed, STREAM_QUERY, nq, dim));
    eprintln!(
        "generated {} base and {nq} query vectors of {dim} dimensions (seed {}) in {:.2}s",
        args.vectors,
        args.seed,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let truth = tokio::task::block_in_place(|| ground_truth(&base, &queries, dim, k));
    eprintln!("exact top-{k} of {nq} queries computed in {:.2}s ({} threads)", t.elapsed().as_secs_f64(), threads());

    let session = connect(&args).await?;
    let ks = args.keyspace.clone();
    let ctx = Arc::new(Ctx { args: args.clone(), session, ks: ks.clone(), dim, k, base, queries, truth });

    if !args.skip_load {
        let rec = load(&ctx, cl).await?;
        write_record(&args, &rec)?;
    } else {
        eprintln!("--skip-load: using the existing {ks}.{TABLE}");
    }

    let mut lines = Vec::new();

    // ---- baseline: brute-force scans through the server ----------------------------
    let mut brute_qps = None;
    if args.brute_queries > 0 {
        let nb = args.brute_queries.min(nq);
        let mut stmt = VecStmt::make(
            &ctx.session,
            "brute-force",
            &format!("SELECT id, similarity_cosine(v, ?) FROM {ks}.{TABLE}"),
            format!("SELECT id, similarity_cosine(v, {{vec}}) FROM {ks}.{TABLE}"),
            cl,
            args.page_size.max(1),
            ctx.dim,
        )
        .await;
        stmt.set_request_timeout(Some(Duration::from_secs(120)));
        let conc = if args.brute_concurrency == 0 { args.concurrency } else { args.brute_concurrency };
        eprintln!("brute force: {nb} full scans (page size {}, concurrency {})", args.page_size, conc.min(nb));
        let r = run_queries(&ctx, "brute", Arc::new(stmt), nb, conc, None, true).await?;
        let mut rec = ctx.base_record("brute");
        rec["brute_queries"] = nb.into();
        rec["page_size"] = args.page_size.into();
        rec["brute_concurrency"] = conc.min(nb).into();
        rec["rows_scanned_per_query"] =
            if r.queries > r.errors { (r.rows_scanned / (r.queries - r.errors)).into() } else { 0.into() };
        query_json(&mut rec, &r);
        write_record(&args, &rec)?;
        eprintln!(
            "brute force: {:.2} queries/s, p50 {:.1} ms, recall {}, {} errors",
            r.qps,
            r.lat.p50,
            fmt_opt(r.recall, 0, 4),
            r.errors
        );
        if r.queries > r.errors {
            brute_qps = Some(r.qps);
        }
        let ratio = brute_qps.map(|_| 1.0);
        lines.push(Line { name: "brute force".into(), build_s: None, run: Some(r), ratio, failure: None });
    }

    // ---- index configurations ----------------------------------------------------------
    let duration = duration_given.then_some(args.duration);
    for cfg in &configs {
        let name = cfg.name();
        eprintln!("{name}: building index");
        let mut rec = ctx.base_record(&format!("index:{}", cfg.label()));
        rec["maximum_node_connections"] = cfg.m.into();
        rec["construction_beam_width"] = cfg.construction_beam_width.into();
        rec["search_beam_width"] = cfg.search_beam_width.into();
        if let Some(e) = cfg.exact_search_limit {
            rec["exact_search_limit"] = e.into();
        }
        rec["brute_queries_per_s"] = brute_qps.into();
        let build = match build_index(&ctx, cfg).await {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("{name}: index failed: {msg}");
                rec["failure"] = msg.clone().into();
                write_record(&args, &rec)?;
                lines.push(Line { name, build_s: None, run: None, ratio: None, failure: Some(msg) });
                continue;
            }
        };
        rec["create_s"] = build.create_s.into();
        rec["build_s"] = build.build_s.into();
        rec["build_note"] = build.note.clone().into();
        eprintln!(
            "{name}: CREATE returned after {:.2}s, built after {}s",
            build.create_s,
            fmt_opt(build.build_s, 0, 2)
        );
        let stmt = VecStmt::make(
            &ctx.session,
            "ANN",
            &format!("SELECT id FROM {ks}.{TABLE} ORDER BY v ANN OF ? LIMIT {k}"),
            format!("SELECT id FROM {ks}.{TABLE} ORDER BY v ANN OF {{vec}} LIMIT {k}"),
            cl,
            5000,
            ctx.dim,
        )
        .await;
        let r = run_queries(&ctx, &name, Arc::new(stmt), nq, args.concurrency, duration, false).await?;
        let ratio = brute_qps.filter(|&b| b > 0.0 && r.queries > r.errors).map(|b| r.qps / b);
        query_json(&mut rec, &r);
        rec["ratio_to_brute"] = ratio.into();
        write_record(&args, &rec)?;
        eprintln!(
            "{name}: {:.1} queries/s, p50 {:.2} ms, p99 {:.2} ms, recall@{k} {}, {}x brute force, {} errors",
            r.qps,
            r.lat.p50,
            r.lat.p99,
            fmt_opt(r.recall, 0, 4),
            fmt_opt(ratio, 0, 1),
            r.errors
        );
        lines.push(Line { name, build_s: build.build_s.or(Some(build.create_s)), run: Some(r), ratio, failure: None });
    }

    eprintln!();
    eprintln!(
        "ann: {} vectors x {dim} dims, {nq} queries, k {k}, concurrency {} (target: recall@{k} >= 0.95 at >= 20x brute force)",
        args.vectors, args.concurrency
    );
    eprint!("{}", table(&lines, k));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse() {
        let c = parse_configs("16:100:40, 16:200:400,").unwrap();
        assert_eq!(
            c,
            vec![
                IndexConfig { m: 16, construction_beam_width: 100, search_beam_width: 40, exact_search_limit: None },
                IndexConfig { m: 16, construction_beam_width: 200, search_beam_width: 400, exact_search_limit: None },
            ]
        );
        assert!(parse_configs("16:100").is_err());
        assert!(parse_configs("16:x:40").is_err());
        assert!(parse_configs("0:100:40").is_err());
        assert!(parse_configs("").unwrap().is_empty());
    }

    #[test]
    fn vectors_are_deterministic_unit_and_streams_differ() {
        let a = gen_vectors(42, STREAM_BASE, 37, 65);
        let b = gen_vectors(42, STREAM_BASE, 37, 65);
        assert_eq!(a, b);
        // Vector i does not depend on how many are generated.
        let mut one = vec![0f32; 65];
        gen_vector(42, STREAM_BASE, 36, &mut one);
        assert_eq!(&a[36 * 65..], &one[..]);
        for row in a.chunks(65) {
            let n: f32 = row.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5, "norm^2 {n}");
        }
        let q = gen_vectors(42, STREAM_QUERY, 37, 65);
        assert_ne!(a, q);
        assert_ne!(a, gen_vectors(43, STREAM_BASE, 37, 65));
        // Roughly gaussian: mean ~0, components of a unit vector have variance ~1/d.
        let big = gen_vectors(7, STREAM_BASE, 200, 100);
        let mean = big.iter().map(|&x| x as f64).sum::<f64>() / big.len() as f64;
        let var = big.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / big.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var * 100.0 - 1.0).abs() < 0.05, "var*d {}", var * 100.0);
    }

    #[test]
    fn dot_matches_naive() {
        for d in [1, 15, 16, 17, 64, 100] {
            let v = gen_vectors(1, 0, 2, d);
            let (a, b) = v.split_at(d);
            let naive: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(a, b) as f64 - naive).abs() < 1e-5, "d {d}");
            assert!((dot(a, a) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn top_k_keeps_best_in_order() {
        let mut t = TopK::new(3);
        for (s, id) in [(0.1, 1), (0.9, 2), (0.5, 3), (0.7, 4), (0.2, 5), (0.9, 0), (f32::NAN, 9)] {
            t.push(s, id);
        }
        assert_eq!(t.ids(), vec![0, 2, 4]);
        let mut t = TopK::new(5);
        t.push(1.0, 1);
        assert_eq!(t.ids(), vec![1]);
    }

    #[test]
    fn ground_truth_matches_sort() {
        let (n, d, nq, k) = (500, 24, 13, 10);
        let base = gen_vectors(5, STREAM_BASE, n, d);
        let qs = gen_vectors(5, STREAM_QUERY, nq, d);
        let gt = ground_truth(&base, &qs, d, k);
        assert_eq!(gt.len(), nq);
        for (q, got) in gt.iter().enumerate() {
            let qv = &qs[q * d..(q + 1) * d];
            let mut all: Vec<(f64, i32)> = base
                .chunks(d)
                .enumerate()
                .map(|(i, r)| (r.iter().zip(qv).map(|(a, b)| *a as f64 * *b as f64).sum(), i as i32))
                .collect();
            all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
            let want: Vec<i32> = all[..k].iter().map(|x| x.1).collect();
            assert_eq!(got, &want, "query {q}");
        }
        // A query equal to a base vector finds itself first.
        let gt = ground_truth(&base, &base[7 * d..8 * d], d, k);
        assert_eq!(gt[0][0], 7);
        // Fewer rows than k.
        let gt = ground_truth(&base[..3 * d], &qs, d, k);
        assert!(gt.iter().all(|g| g.len() == 3));
    }

    #[test]
    fn recall_counts_distinct_hits() {
        let truth: Vec<i32> = (0..10).collect();
        assert_eq!(recall(&truth, &truth), 1.0);
        assert_eq!(recall(&[9, 8, 7, 100, 101], &truth), 0.3);
        assert_eq!(recall(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], &truth), 0.1);
        assert_eq!(recall(&[], &truth), 0.0);
        assert_eq!(recall(&[1, 2], &[]), 1.0);
        // Order does not matter.
        let rev: Vec<i32> = truth.iter().rev().copied().collect();
        assert_eq!(recall(&rev, &truth), 1.0);
    }

    fn ser(v: VecF32, typ: &ColumnType) -> std::result::Result<Vec<u8>, SerializationError> {
        let mut buf = Vec::new();
        v.serialize(typ, CellWriter::new(&mut buf))?;
        Ok(buf)
    }

    fn vector_type(elem: NativeType, n: u16) -> ColumnType<'static> {
        ColumnType::Vector { typ: Box::new(ColumnType::Native(elem)), dimensions: n }
    }

    #[test]
    fn vector_serializes_as_big_endian_floats() {
        let v = [1.0f32, -2.5, 0.1];
        let bytes = ser(VecF32(&v), &vector_type(NativeType::Float, 3)).unwrap();
        // [int32 length = 12] then three big-endian floats, no per-element lengths.
        let mut want = vec![0, 0, 0, 12];
        want.extend_from_slice(&[0x3f, 0x80, 0, 0]);
        want.extend_from_slice(&[0xc0, 0x20, 0, 0]);
        want.extend_from_slice(&0.1f32.to_bits().to_be_bytes());
        assert_eq!(bytes, want);
        // The driver's own Vec<f32> serialization agrees.
        let mut drv = Vec::new();
        v.to_vec().serialize(&vector_type(NativeType::Float, 3), CellWriter::new(&mut drv)).unwrap();
        assert_eq!(bytes, drv);
        // A blob marker gets the same bytes.
        assert_eq!(ser(VecF32(&v), &ColumnType::Native(NativeType::Blob)).unwrap(), want);
        // Wrong dimension, element type or marker type: errors.
        assert!(ser(VecF32(&v), &vector_type(NativeType::Float, 4)).is_err());
        assert!(ser(VecF32(&v), &vector_type(NativeType::Double, 3)).is_err());
        assert!(ser(VecF32(&v), &ColumnType::Native(NativeType::Int)).is_err());
        assert_eq!(encode_vector(&v), want[4..].to_vec());
    }

    #[test]
    fn literal_round_trips() {
        let v = [1.0f32, -2.5, 0.1, 1e-7, 123456.79];
        let lit = vector_literal(&v);
        assert_eq!(lit, "[1.0, -2.5, 0.1, 1e-7, 123456.79]");
        let parsed: Vec<f32> =
            lit.trim_matches(|c| c == '[' || c == ']').split(", ").map(|x| x.parse().unwrap()).collect();
        assert_eq!(parsed, v);
    }
}
