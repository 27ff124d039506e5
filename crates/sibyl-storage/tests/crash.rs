//! Crash test with real processes: a child process (this test binary, re-run in writer mode)
//! writes in batch mode and prints every acknowledged key; the parent kill -9s it at random
//! moments, reopens the data dir and checks every acknowledged key is present.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use sibyl_storage::*;

const DIR_VAR: &str = "SIBYL_CRASH_CHILD_DIR";
const START_VAR: &str = "SIBYL_CRASH_CHILD_START";

fn options() -> EngineOptions {
    EngineOptions {
        commitlog_sync: CommitlogSync::Batch,
        commitlog_segment_size: 128 * 1024,
        memtable_space: 2 * 1024 * 1024,
        compaction_throughput_mb_per_sec: 0,
        auto_snapshot: true,
        block_cache_bytes: 1 << 20,
    }
}

fn table() -> Vec<(TableId, TableParams)> {
    let mut p = params("ks.crash");
    p.compaction = CompactionStrategy::SizeTiered {
        min_threshold: 2,
        max_threshold: 8,
    };
    vec![(tid(7), p)]
}

fn value(k: u64) -> String {
    format!("value-{k}-{}", "p".repeat((k % 200) as usize))
}

/// Writer mode: only active when spawned by `run_cycles` with the env vars set.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let start: u64 = std::env::var(START_VAR).unwrap().parse().unwrap();
    let e = Arc::new(Engine::open(Path::new(&dir), options(), table()).unwrap());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let e = e.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let k = start + t * 10_000_000 + i;
                    e.apply(&insert(tid(7), pk(k), 1, "v", k as i64, &value(k)))
                        .unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {k}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn run_cycles(cycles: u64, min_ms: u64, max_ms: u64) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env(START_VAR, ((cycle + 1) * 100_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut keys = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    break; // torn by the kill
                }
                if let Some(k) = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.trim().strip_prefix("ACK "))
                {
                    keys.push(k.parse::<u64>().unwrap());
                }
            }
            keys
        });
        // Wait until the child writes, then kill it at a random moment.
        std::thread::sleep(Duration::from_millis(min_ms + rng.next(max_ms - min_ms)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let keys = reader.join().unwrap();
        acked.extend(keys.iter().copied());

        let t0 = Instant::now();
        let e = Engine::open(dir.path(), options(), table()).unwrap();
        let mut missing = Vec::new();
        for &k in &acked {
            match e.read(tid(7), &pk(k), &Slice::all(), NOW).unwrap() {
                Some(v) if simple_value(&v, 1, "v") == Some(value(k)) => {}
                other => missing.push((k, other.is_some())),
            }
        }
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {} of {} acknowledged keys missing/wrong: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(10)]
        );
        // Occasionally crash the verifier too (no shutdown), otherwise shut down cleanly.
        if cycle % 2 == 0 {
            e.shutdown().unwrap();
        }
        drop(e);
        eprintln!(
            "cycle {cycle}: {} new acks, {} total, verified in {:?}",
            keys.len(),
            acked.len(),
            t0.elapsed()
        );
    }
    assert!(!acked.is_empty());
    let _ = Bytes::new();
}

#[test]
fn crash_kill9_fast() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    run_cycles(3, 400, 900);
}

#[test]
#[ignore = "long: many kill -9 cycles"]
fn crash_kill9_long() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    run_cycles(25, 200, 3000);
}
