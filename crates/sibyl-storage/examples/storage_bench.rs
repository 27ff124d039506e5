//! Rough write/read/scan throughput of the engine: `cargo run -p sibyl-storage --release
//! --example storage_bench -- [partitions] [rows_per_partition] [threads]`.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sibyl_storage::*;

fn key(n: u64) -> PartitionKey {
    let token = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1) as i64 - (i64::MAX / 2);
    PartitionKey {
        token,
        key: Bytes::from(n.to_be_bytes().to_vec()),
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let partitions = args.first().copied().unwrap_or(20_000);
    let rows = args.get(1).copied().unwrap_or(5);
    let threads = args.get(2).copied().unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let table = uuid::Uuid::from_u128(1);
    let opts = EngineOptions {
        memtable_space: 64 * 1024 * 1024,
        ..Default::default()
    };
    let params = TableParams {
        name: "bench.t".into(),
        ..Default::default()
    };
    let e = Arc::new(Engine::open(dir.path(), opts, vec![(table, params)]).unwrap());
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for p in (t..partitions).step_by(threads as usize) {
                    for r in 0..rows {
                        let m = Mutation {
                            table,
                            key: key(p),
                            partition_deletion: None,
                            range_tombstones: vec![],
                            static_row: None,
                            rows: vec![RowUpdate {
                                clustering: Bytes::from((r as u32).to_be_bytes().to_vec()),
                                liveness: Some(LivenessInfo {
                                    timestamp: 1,
                                    ttl: 0,
                                    expires_at: 0,
                                }),
                                deletion: None,
                                columns: vec![ColumnData::Simple {
                                    column: Bytes::from_static(b"v"),
                                    cell: Cell {
                                        timestamp: 1,
                                        value: Some(Bytes::from(vec![7u8; 100])),
                                        ttl: 0,
                                        local_deletion_time: 0,
                                    },
                                }],
                            }],
                        };
                        e.apply(&m).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let n = partitions * rows;
    let el = t0.elapsed();
    println!(
        "write: {n} rows in {el:?} ({:.0} rows/s)",
        n as f64 / el.as_secs_f64()
    );
    let t0 = Instant::now();
    e.flush(None).unwrap();
    println!("flush: {:?}", t0.elapsed());
    let t0 = Instant::now();
    for p in 0..partitions {
        assert!(e.read(table, &key(p), &Slice::all(), 0).unwrap().is_some());
    }
    let el = t0.elapsed();
    println!(
        "read: {partitions} partitions in {el:?} ({:.0}/s)",
        partitions as f64 / el.as_secs_f64()
    );
    let t0 = Instant::now();
    let mut from = Bound::Unbounded;
    let mut count = 0;
    loop {
        let page = e
            .scan(
                table,
                from.clone(),
                Bound::Unbounded,
                &Slice::all(),
                1000,
                0,
            )
            .unwrap();
        if page.is_empty() {
            break;
        }
        count += page.len();
        from = Bound::Excluded(page.last().unwrap().key.clone());
    }
    println!("scan: {count} partitions in {:?}", t0.elapsed());
    let t0 = Instant::now();
    e.compact(table).unwrap();
    println!("major compaction: {:?}", t0.elapsed());
    e.shutdown().unwrap();
}
