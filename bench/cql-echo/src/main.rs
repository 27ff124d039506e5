//! `cql-echo`: a trivial CQL native-protocol (v4) responder used as the *ceiling* for
//! `sibyl-bench`. It does no work per request: it answers OPTIONS/STARTUP/REGISTER with
//! SUPPORTED/READY, PREPARE with bind metadata guessed from the statement text, EXECUTE
//! and QUERY with VOID (writes) or a canned ROWS result (reads), and the handful of
//! `system.local` / `system.peers` queries the driver issues while connecting.
//!
//! Running `sibyl-bench` against it measures what the client and the loopback can do on
//! this machine, so a Sibyl figure can be read as a fraction of that ceiling.
//!
//! Only what the benchmark statements need is understood. Column types are taken from
//! the column names the benchmark uses (`pk`, `ck`: bigint, `v`: blob); anything else
//! is announced as `text`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug, Clone)]
#[command(about = "Minimal CQL v4 responder: the client+loopback ceiling for sibyl-bench")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen_address: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 9042)]
    port: u16,
    /// Size of the blob `v` returned for each row of a read (match sibyl-bench --row-size).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Worker threads of the runtime (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

// Opcodes.
const OP_ERROR: u8 = 0x00;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_OPTIONS: u8 = 0x05;
const OP_SUPPORTED: u8 = 0x06;
const OP_QUERY: u8 = 0x07;
const OP_RESULT: u8 = 0x08;
const OP_PREPARE: u8 = 0x09;
const OP_EXECUTE: u8 = 0x0A;
const OP_REGISTER: u8 = 0x0B;
const OP_BATCH: u8 = 0x0D;

// Type option ids.
const T_BIGINT: u16 = 0x0002;
const T_BLOB: u16 = 0x0003;
const T_BOOLEAN: u16 = 0x0004;
const T_INT: u16 = 0x0009;
const T_UUID: u16 = 0x000C;
const T_VARCHAR: u16 = 0x000D;
const T_INET: u16 = 0x0010;
const T_SET: u16 = 0x0022;

#[derive(Clone, Copy, Debug)]
enum Ty {
    BigInt,
    Blob,
    Boolean,
    Int,
    Uuid,
    Text,
    Inet,
    SetText,
}

impl Ty {
    fn for_column(name: &str) -> Ty {
        match name {
            "pk" | "ck" => Ty::BigInt,
            "v" => Ty::Blob,
            "[applied]" => Ty::Boolean,
            "[limit]" | "id" => Ty::Int,
            _ => Ty::Text,
        }
    }
    fn write(self, out: &mut Vec<u8>) {
        let id = match self {
            Ty::BigInt => T_BIGINT,
            Ty::Blob => T_BLOB,
            Ty::Boolean => T_BOOLEAN,
            Ty::Int => T_INT,
            Ty::Uuid => T_UUID,
            Ty::Text => T_VARCHAR,
            Ty::Inet => T_INET,
            Ty::SetText => T_SET,
        };
        out.extend_from_slice(&id.to_be_bytes());
        if let Ty::SetText = self {
            out.extend_from_slice(&T_VARCHAR.to_be_bytes());
        }
    }
}

/// What a statement is, as far as the answer goes.
#[derive(Clone, Debug)]
enum Kind {
    /// Answer VOID.
    Write,
    /// Answer `rows` rows of the given columns.
    Read { columns: Vec<(String, Ty)>, rows: usize },
}

#[derive(Clone, Debug)]
struct Prepared {
    keyspace: String,
    table: String,
    binds: Vec<(String, Ty)>,
    kind: Kind,
}

struct Shared {
    args: Args,
    prepared: Mutex<Vec<Arc<Prepared>>>,
    by_text: Mutex<HashMap<String, usize>>,
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .expect("runtime");
    rt.block_on(serve(args));
}

async fn serve(args: Args) {
    let addr = format!("{}:{}", args.listen_address, args.port);
    let listener = TcpListener::bind(&addr).await.expect("bind");
    eprintln!("cql-echo listening on {addr}");
    let shared = Arc::new(Shared { args, prepared: Mutex::new(Vec::new()), by_text: Mutex::new(HashMap::new()) });
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        let _ = sock.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = connection(sock, shared).await;
        });
    }
}

async fn connection(mut sock: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        inbuf.extend_from_slice(&chunk[..n]);
        // Answer every complete frame, then write all answers at once.
        let mut pos = 0;
        while inbuf.len() - pos >= 9 {
            let h = &inbuf[pos..pos + 9];
            let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
            if inbuf.len() - pos < 9 + len {
                break;
            }
            let version = h[0] & 0x7f;
            let stream = i16::from_be_bytes([h[2], h[3]]);
            let opcode = h[4];
            let body = &inbuf[pos + 9..pos + 9 + len];
            answer(&shared, version, stream, opcode, body, &mut out);
            pos += 9 + len;
        }
        inbuf.drain(..pos);
        if !out.is_empty() {
            sock.write_all(&out).await?;
            out.clear();
        }
    }
}

// ---- encoding helpers -------------------------------------------------------------

fn put_short(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_int(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_string(out: &mut Vec<u8>, s: &str) {
    put_short(out, s.len() as u16);
    out.extend_from_slice(s.as_bytes());
}
fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_int(out, -1),
        Some(b) => {
            put_int(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Starts a response frame; returns the position of the length field.
fn begin(out: &mut Vec<u8>, version: u8, stream: i16, opcode: u8) -> usize {
    out.push(0x80 | version);
    out.push(0);
    out.extend_from_slice(&stream.to_be_bytes());
    out.push(opcode);
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    at
}
fn finish(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn error(out: &mut Vec<u8>, version: u8, stream: i16, code: i32, msg: &str) {
    let at = begin(out, version, stream, OP_ERROR);
    put_int(out, code);
    put_string(out, msg);
    finish(out, at);
}

// ---- request decoding helpers ----------------------------------------------------

fn read_long_string(body: &[u8]) -> Option<String> {
    if body.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let s = body.get(4..4 + n)?;
    Some(String::from_utf8_lossy(s).into_owned())
}

/// Query parameters' flags byte, located after `<consistency short>`.
fn skip_metadata(params: &[u8]) -> bool {
    params.get(2).map(|f| f & 0x02 != 0).unwrap_or(false)
}

// ---- the answers -------------------------------------------------------------------

fn answer(shared: &Shared, version: u8, stream: i16, opcode: u8, body: &[u8], out: &mut Vec<u8>) {
    if version != 4 {
        // Makes drivers that try v5 first fall back to v4.
        error(out, 4, stream, 0x000A, "cql-echo speaks protocol v4 only");
        return;
    }
    match opcode {
        OP_OPTIONS => {
            let at = begin(out, version, stream, OP_SUPPORTED);
            put_short(out, 2);
            put_string(out, "CQL_VERSION");
            put_short(out, 1);
            put_string(out, "3.4.7");
            put_string(out, "COMPRESSION");
            put_short(out, 0);
            finish(out, at);
        }
        OP_STARTUP | OP_REGISTER => {
            let at = begin(out, version, stream, OP_READY);
            finish(out, at);
        }
        OP_QUERY => {
            let Some(text) = read_long_string(body) else {
                return error(out, version, stream, 0x000A, "bad QUERY body");
            };
            let params = &body[4 + text.len()..];
            query(shared, version, stream, &text, skip_metadata(params), out);
        }
        OP_PREPARE => {
            let Some(text) = read_long_string(body) else {
                return error(out, version, stream, 0x000A, "bad PREPARE body");
            };
            prepare(shared, version, stream, &text, out);
        }
        OP_EXECUTE => {
            if body.len() < 2 {
                return error(out, version, stream, 0x000A, "bad EXECUTE body");
            }
            let n = u16::from_be_bytes([body[0], body[1]]) as usize;
            let id = &body[2..(2 + n).min(body.len())];
            let idx =
                if id.len() == 16 { u64::from_be_bytes(id[8..16].try_into().unwrap()) as usize } else { usize::MAX };
            let p = shared.prepared.lock().unwrap().get(idx).cloned();
            match p {
                None => {
                    // UNPREPARED: <code><message><short bytes id>
                    let at = begin(out, version, stream, OP_ERROR);
                    put_int(out, 0x2500);
                    put_string(out, "unknown prepared id");
                    put_short(out, id.len() as u16);
                    out.extend_from_slice(id);
                    finish(out, at);
                }
                Some(p) => {
                    let skip = skip_metadata(&body[2 + n..]);
                    result_for(shared, version, stream, &p, skip, out)
                }
            }
        }
        OP_BATCH => void(out, version, stream),
        _ => error(out, version, stream, 0x000A, "unsupported opcode"),
    }
}

fn void(out: &mut Vec<u8>, version: u8, stream: i16) {
    let at = begin(out, version, stream, OP_RESULT);
    put_int(out, 1);
    finish(out, at);
}

fn result_for(shared: &Shared, version: u8, stream: i16, p: &Prepared, skip: bool, out: &mut Vec<u8>) {
    match &p.kind {
        Kind::Write => void(out, version, stream),
        Kind::Read { columns, rows } => {
            let at = begin(out, version, stream, OP_RESULT);
            put_int(out, 2);
            write_metadata(out, &p.keyspace, &p.table, columns, skip);
            put_int(out, *rows as i32);
            let blob = vec![0x5au8; shared.args.value_size];
            for r in 0..*rows {
                for (_, ty) in columns {
                    match ty {
                        Ty::BigInt => put_bytes(out, Some(&(r as i64).to_be_bytes())),
                        Ty::Blob => put_bytes(out, Some(&blob)),
                        Ty::Boolean => put_bytes(out, Some(&[1])),
                        Ty::Int => put_bytes(out, Some(&(r as i32).to_be_bytes())),
                        _ => put_bytes(out, Some(b"x")),
                    }
                }
            }
            finish(out, at);
        }
    }
}

/// Rows metadata (or prepared bind metadata without the pk indexes).
fn write_metadata(out: &mut Vec<u8>, ks: &str, table: &str, cols: &[(String, Ty)], skip: bool) {
    if skip {
        put_int(out, 0x0004); // No_metadata
        put_int(out, cols.len() as i32);
        return;
    }
    put_int(out, 0x0001); // Global_tables_spec
    put_int(out, cols.len() as i32);
    put_string(out, ks);
    put_string(out, table);
    for (name, ty) in cols {
        put_string(out, name);
        ty.write(out);
    }
}

// ---- a very small understanding of the statements ----------------------------------

fn tokens(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']' || c == '\'' || c == '"' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                v.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                v.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        v.push(cur);
    }
    v
}

fn split_table(name: &str) -> (String, String) {
    let name = name.replace('"', "");
    match name.split_once('.') {
        Some((k, t)) => (k.to_string(), t.to_string()),
        None => ("ks".to_string(), name),
    }
}

/// Parses a statement into (keyspace, table, bind markers, kind).
fn analyse(text: &str) -> Prepared {
    let toks = tokens(text);
    let up: Vec<String> = toks.iter().map(|t| t.to_ascii_uppercase()).collect();
    let find = |w: &str| up.iter().position(|t| t == w);
    let mut binds = Vec::new();
    let mut kind = Kind::Write;
    let (mut keyspace, mut table) = ("ks".to_string(), "t".to_string());
    if up.first().map(|s| s.as_str()) == Some("SELECT") {
        let from = find("FROM").unwrap_or(toks.len());
        let columns: Vec<(String, Ty)> = toks[1..from]
            .iter()
            .filter(|t| *t != ",")
            .map(|c| {
                let c = c.replace('"', "");
                let ty = system_column_type(&c).unwrap_or_else(|| Ty::for_column(&c));
                (c, ty)
            })
            .collect();
        if let Some(t) = toks.get(from + 1) {
            (keyspace, table) = split_table(t);
        }
        let limit = find("LIMIT").and_then(|i| toks.get(i + 1)).and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
        kind = Kind::Read { columns, rows: limit };
        // WHERE a = ? AND b >= ?: the bind name is the identifier before the operator.
        for (i, t) in toks.iter().enumerate() {
            if t == "?" {
                let mut j = i;
                while j > 0 && matches!(toks[j - 1].as_str(), "=" | "<" | ">") {
                    j -= 1;
                }
                let name = if j > 0 { toks[j - 1].clone() } else { "?".into() };
                let name = if name.eq_ignore_ascii_case("LIMIT") { "[limit]".to_string() } else { name };
                let ty = Ty::for_column(&name);
                binds.push((name, ty));
            }
        }
    } else if up.first().map(|s| s.as_str()) == Some("INSERT") {
        // INSERT INTO ks.t (a, b, c) VALUES (?, ?, ?)
        if let Some(t) = toks.get(2) {
            (keyspace, table) = split_table(t);
        }
        let open = toks.iter().position(|t| t == "(").unwrap_or(0);
        let close = toks.iter().position(|t| t == ")").unwrap_or(0);
        let cols: Vec<String> = toks[open + 1..close].iter().filter(|t| *t != ",").cloned().collect();
        let values = find("VALUES").unwrap_or(toks.len());
        let mut k = 0;
        for t in &toks[values..] {
            if t == "?" {
                let name = cols.get(k).cloned().unwrap_or_else(|| format!("c{k}"));
                let ty = Ty::for_column(&name);
                binds.push((name, ty));
                k += 1;
            }
        }
    } else {
        for (k, t) in toks.iter().enumerate() {
            if t == "?" {
                binds.push((format!("c{k}"), Ty::Text));
            }
        }
    }
    Prepared { keyspace, table, binds, kind }
}

/// Types of the columns of system.local / system.peers the driver reads.
fn system_column_type(name: &str) -> Option<Ty> {
    Some(match name {
        "host_id" | "schema_version" => Ty::Uuid,
        "rpc_address" | "broadcast_address" | "listen_address" | "peer" | "preferred_ip" => Ty::Inet,
        "tokens" => Ty::SetText,
        _ => return None,
    })
}

fn query(shared: &Shared, version: u8, stream: i16, text: &str, skip: bool, out: &mut Vec<u8>) {
    let lower = text.to_ascii_lowercase();
    let p = analyse(text);
    if lower.contains("system.local") || lower.contains("system.peers") {
        let Kind::Read { columns, .. } = &p.kind else {
            return void(out, version, stream);
        };
        let local = lower.contains("system.local");
        let at = begin(out, version, stream, OP_RESULT);
        put_int(out, 2);
        write_metadata(out, &p.keyspace, &p.table, columns, false);
        if !local {
            put_int(out, 0);
        } else {
            put_int(out, 1);
            for (name, ty) in columns {
                match ty {
                    Ty::Uuid => put_bytes(out, Some(&[0x11u8; 16])),
                    Ty::Inet => put_bytes(out, Some(&[127, 0, 0, 1])),
                    Ty::SetText => {
                        // set<text> {"0"}
                        let mut v = Vec::new();
                        put_int(&mut v, 1);
                        put_bytes(&mut v, Some(b"0"));
                        put_bytes(out, Some(&v));
                    }
                    _ => {
                        let s: &str = match name.as_str() {
                            "data_center" => "datacenter1",
                            "rack" => "rack1",
                            "cluster_name" => "cql-echo",
                            "partitioner" => "org.apache.cassandra.dht.Murmur3Partitioner",
                            "release_version" => "4.0.0",
                            "cql_version" => "3.4.7",
                            "key" => "local",
                            _ => "",
                        };
                        put_bytes(out, Some(s.as_bytes()));
                    }
                }
            }
        }
        finish(out, at);
        return;
    }
    if lower.contains("system_schema") || lower.contains("system.") {
        // Empty result with the asked-for columns.
        if let Kind::Read { columns, .. } = &p.kind {
            let at = begin(out, version, stream, OP_RESULT);
            put_int(out, 2);
            write_metadata(out, &p.keyspace, &p.table, columns, false);
            put_int(out, 0);
            finish(out, at);
            return;
        }
    }
    let up = lower.trim_start();
    if let Some(ks) = up.strip_prefix("use ") {
        let at = begin(out, version, stream, OP_RESULT);
        put_int(out, 3);
        put_string(out, ks.trim().trim_matches('"').trim_end_matches(';'));
        finish(out, at);
        return;
    }
    let _ = skip;
    result_for(shared, version, stream, &p, false, out)
}

fn prepare(shared: &Shared, version: u8, stream: i16, text: &str, out: &mut Vec<u8>) {
    let idx = {
        let mut by_text = shared.by_text.lock().unwrap();
        if let Some(&i) = by_text.get(text) {
            i
        } else {
            let mut v = shared.prepared.lock().unwrap();
            v.push(Arc::new(analyse(text)));
            by_text.insert(text.to_string(), v.len() - 1);
            v.len() - 1
        }
    };
    let p = shared.prepared.lock().unwrap()[idx].clone();
    let at = begin(out, version, stream, OP_RESULT);
    put_int(out, 4);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(b"cqlecho!");
    id[8..].copy_from_slice(&(idx as u64).to_be_bytes());
    put_short(out, 16);
    out.extend_from_slice(&id);
    // Bind metadata: flags, count, pk_count, pk indexes, table spec, columns.
    put_int(out, 0x0001);
    put_int(out, p.binds.len() as i32);
    let pk: Vec<usize> = p.binds.iter().enumerate().filter(|(_, b)| b.0 == "pk").map(|(i, _)| i).collect();
    put_int(out, pk.len() as i32);
    for i in pk {
        put_short(out, i as u16);
    }
    put_string(out, &p.keyspace);
    put_string(out, &p.table);
    for (name, ty) in &p.binds {
        put_string(out, name);
        ty.write(out);
    }
    // Result metadata.
    match &p.kind {
        Kind::Write => {
            put_int(out, 0x0004);
            put_int(out, 0);
        }
        Kind::Read { columns, .. } => write_metadata(out, &p.keyspace, &p.table, columns, false),
    }
    finish(out, at);
}
