mod common;

use std::ops::Bound;

use common::*;
use sibyl_storage::*;

fn opts() -> EngineOptions {
    EngineOptions {
        commitlog_sync: CommitlogSync::Batch,
        ..Default::default()
    }
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(
        dir,
        opts(),
        vec![(tid(1), params("ks.t1")), (tid(2), params("ks.t2"))],
    )
    .unwrap()
}

fn get(e: &Engine, k: u64) -> Option<PartitionView> {
    e.read(tid(1), &pk(k), &Slice::all(), NOW).unwrap()
}

#[test]
fn write_read_flush_read() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    for k in 0..100 {
        e.apply(&insert(tid(1), pk(k), 1, "v", 10, &format!("v{k}")))
            .unwrap();
    }
    assert_eq!(
        simple_value(&get(&e, 5).unwrap(), 1, "v").as_deref(),
        Some("v5")
    );
    e.flush(None).unwrap();
    for k in 0..100 {
        assert_eq!(
            simple_value(&get(&e, k).unwrap(), 1, "v"),
            Some(format!("v{k}"))
        );
    }
    assert!(get(&e, 1000).is_none());
    // Newer write in memtable overrides sstable; older one loses.
    e.apply(&insert(tid(1), pk(5), 1, "v", 20, "new")).unwrap();
    e.apply(&insert(tid(1), pk(6), 1, "v", 5, "old")).unwrap();
    assert_eq!(
        simple_value(&get(&e, 5).unwrap(), 1, "v").as_deref(),
        Some("new")
    );
    assert_eq!(
        simple_value(&get(&e, 6).unwrap(), 1, "v").as_deref(),
        Some("v6")
    );
    // Tombstone in memtable shadows sstable data.
    e.apply(&partition_delete(tid(1), pk(7), dt(10, NOW)))
        .unwrap();
    assert!(get(&e, 7).is_none());
    e.shutdown().unwrap();
    let e = open(d.path());
    assert!(get(&e, 7).is_none());
    assert_eq!(
        simple_value(&get(&e, 5).unwrap(), 1, "v").as_deref(),
        Some("new")
    );
    e.shutdown().unwrap();
}

#[test]
fn unknown_table() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    assert!(matches!(
        e.apply(&insert(tid(9), pk(1), 1, "v", 1, "x")),
        Err(StorageError::UnknownTable(_))
    ));
    assert!(matches!(
        e.read(tid(9), &pk(1), &Slice::all(), NOW),
        Err(StorageError::UnknownTable(_))
    ));
}

#[test]
fn restart_without_shutdown_replays_commitlog() {
    let d = tempfile::tempdir().unwrap();
    {
        let e = open(d.path());
        for k in 0..50 {
            e.apply(&insert(tid(1), pk(k), 1, "v", 10, "x")).unwrap();
            e.apply(&insert(tid(2), pk(k), 1, "v", 10, "y")).unwrap();
        }
        e.flush(Some(tid(2))).unwrap();
        e.apply(&row_delete(tid(1), pk(3), 1, dt(11, NOW))).unwrap();
        // dropped without shutdown: a crash
    }
    let e = open(d.path());
    for k in 0..50 {
        if k == 3 {
            assert!(get(&e, k).is_none());
        } else {
            assert!(get(&e, k).is_some(), "key {k}");
        }
        assert!(e
            .read(tid(2), &pk(k), &Slice::all(), NOW)
            .unwrap()
            .is_some());
    }
    drop(e);
    // Unknown tables in the log are skipped.
    let e = Engine::open(d.path(), opts(), vec![(tid(2), params("ks.t2"))]).unwrap();
    assert!(e
        .read(tid(2), &pk(1), &Slice::all(), NOW)
        .unwrap()
        .is_some());
}

/// Commit log segments (not the released files kept for reuse, `.recycle`).
fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// The end of the last entry of a commit log segment (`[u32 len][u32 crc][payload]` after a
/// 16-byte header).
fn written_end(segment: &[u8]) -> usize {
    let mut pos = 16;
    while pos + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        pos += 8 + len;
    }
    pos
}

#[test]
fn torn_tail_is_ignored() {
    for garble in [false, true] {
        let d = tempfile::tempdir().unwrap();
        {
            let e = open(d.path());
            for k in 0..20 {
                e.apply(&insert(tid(1), pk(k), 1, "v", 10, "x")).unwrap();
            }
        }
        let segs = segments(d.path());
        let last = segs.last().unwrap();
        let mut data = std::fs::read(last).unwrap();
        // Segments are preallocated: the entries end where a zero length follows.
        let n = written_end(&data);
        if garble {
            for b in &mut data[n - 5..] {
                *b ^= 0xA5;
            }
        } else {
            data.truncate(n - 7);
        }
        std::fs::write(last, &data).unwrap();
        let e = open(d.path());
        for k in 0..19 {
            assert!(get(&e, k).is_some(), "key {k}");
        }
        assert!(get(&e, 19).is_none());
    }
}

#[test]
fn flushed_segments_are_deleted() {
    let d = tempfile::tempdir().unwrap();
    let o = EngineOptions {
        commitlog_segment_size: 64 * 1024,
        ..opts()
    };
    let e = Engine::open(d.path(), o, vec![(tid(1), params("ks.t1"))]).unwrap();
    let big = "x".repeat(1000);
    for k in 0..500 {
        e.apply(&insert(tid(1), pk(k), 1, "v", 10, &big)).unwrap();
    }
    assert!(segments(d.path()).len() > 4);
    e.flush(None).unwrap();
    assert_eq!(segments(d.path()).len(), 1);
    let files = std::fs::read_dir(d.path().join("commitlog"))
        .unwrap()
        .count();
    assert!(
        files <= 3,
        "one segment and at most two kept for reuse: {files} files"
    );
}

#[test]
fn big_partition_slices_use_row_index() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    let val = "y".repeat(200);
    for c in 0..2000 {
        e.apply(&insert(tid(1), pk(1), c, "v", 10, &format!("{c}{val}")))
            .unwrap();
    }
    e.apply(&range_delete(
        tid(1),
        pk(1),
        Bound::Included(100),
        Bound::Included(199),
        dt(10, NOW),
    ))
    .unwrap();
    e.flush(None).unwrap();
    let s = Slice {
        ranges: vec![(Bound::Included(ck(1500)), Bound::Excluded(ck(1510)))],
        reversed: true,
        limit: Some(3),
    };
    let v = e.read(tid(1), &pk(1), &s, NOW).unwrap();
    assert_eq!(clusterings(&v), vec![ck(1509), ck(1508), ck(1507)]);
    let s = Slice {
        ranges: vec![(Bound::Included(ck(95)), Bound::Included(ck(205)))],
        reversed: false,
        limit: None,
    };
    let v = e.read(tid(1), &pk(1), &s, NOW).unwrap();
    let got = clusterings(&v);
    assert_eq!(got.len(), 5 + 6);
    let all = e.read(tid(1), &pk(1), &Slice::all(), NOW).unwrap().unwrap();
    assert_eq!(all.rows.len(), 1900);
}

#[test]
fn scan_in_token_order_with_paging() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    for k in 0..60 {
        e.apply(&insert(tid(1), pk(k), 1, "v", 10, "x")).unwrap();
        if k == 30 {
            e.flush(None).unwrap();
        }
    }
    e.apply(&partition_delete(tid(1), pk(10), dt(10, NOW)))
        .unwrap();
    let mut all = Vec::new();
    let mut from = Bound::Unbounded;
    loop {
        let page = e
            .scan(
                tid(1),
                from.clone(),
                Bound::Unbounded,
                &Slice::all(),
                7,
                NOW,
            )
            .unwrap();
        if page.is_empty() {
            break;
        }
        from = Bound::Excluded(page.last().unwrap().key.clone());
        all.extend(page.into_iter().map(|v| v.key));
    }
    let mut expected: Vec<PartitionKey> = (0..60).filter(|k| *k != 10).map(pk).collect();
    expected.sort();
    assert_eq!(all, expected);
    let to = expected[20].token;
    let some = e
        .scan(
            tid(1),
            Bound::Unbounded,
            Bound::Included(to),
            &Slice::all(),
            1000,
            NOW,
        )
        .unwrap();
    assert_eq!(some.len(), 21);
    let some = e
        .scan(
            tid(1),
            Bound::Included(expected[5].clone()),
            Bound::Excluded(to),
            &Slice::all(),
            1000,
            NOW,
        )
        .unwrap();
    assert_eq!(some.len(), 15);
}

#[test]
fn compaction_merges_and_purges() {
    let d = tempfile::tempdir().unwrap();
    let mut p = params("ks.t1");
    p.gc_grace_seconds = 0;
    let e = Engine::open(d.path(), opts(), vec![(tid(1), p)]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for k in 0..20 {
        e.apply(&insert(tid(1), pk(k), 1, "v", 10, "x")).unwrap();
    }
    e.flush(None).unwrap();
    for k in 0..10 {
        e.apply(&partition_delete(tid(1), pk(k), dt(11, now - 10)))
            .unwrap();
    }
    e.apply(&update(
        tid(1),
        pk(15),
        1,
        "w",
        expiring(12, "ttl", 1, now - 5),
    ))
    .unwrap();
    e.flush(None).unwrap();
    let tdir = std::fs::read_dir(d.path().join("tables"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let count = || {
        std::fs::read_dir(&tdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("-Data.db")
            })
            .count()
    };
    assert_eq!(count(), 2);
    e.compact(tid(1)).unwrap();
    assert_eq!(count(), 1);
    let r = |k| e.read(tid(1), &pk(k), &Slice::all(), now).unwrap();
    for k in 0..10 {
        assert!(r(k).is_none());
    }
    for k in 10..20 {
        let v = r(k).unwrap();
        assert_eq!(simple_value(&v, 1, "v").as_deref(), Some("x"));
        assert_eq!(v.rows[0].columns.len(), 1);
    }
    // Tombstones were purged: the only sstable has the 10 live partitions and no tombstones
    // (the expired cell of key 15 became a tombstone and was purged too).
    let info = e.sstable_info(tid(1)).unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].partitions, 10);
    assert_eq!(info[0].tombstones, 0);
    e.shutdown().unwrap();
    let e = Engine::open(d.path(), opts(), vec![(tid(1), params("ks.t1"))]).unwrap();
    assert!(e
        .read(tid(1), &pk(3), &Slice::all(), now)
        .unwrap()
        .is_none());
    assert!(e
        .read(tid(1), &pk(13), &Slice::all(), now)
        .unwrap()
        .is_some());
}

#[test]
fn tombstone_not_purged_when_older_data_outside_compaction() {
    let d = tempfile::tempdir().unwrap();
    let mut p = params("ks.t1");
    p.gc_grace_seconds = 0;
    p.compaction = CompactionStrategy::SizeTiered {
        min_threshold: 1000,
        max_threshold: 1000,
    };
    let e = Engine::open(d.path(), opts(), vec![(tid(1), p)]).unwrap();
    // Old data stays in memtable; the tombstone gets flushed and compacted alone.
    e.apply(&partition_delete(tid(1), pk(1), dt(11, 1)))
        .unwrap();
    e.flush(None).unwrap();
    e.apply(&insert(tid(1), pk(1), 1, "v", 10, "x")).unwrap();
    e.compact(tid(1)).unwrap();
    assert!(e
        .read(tid(1), &pk(1), &Slice::all(), NOW)
        .unwrap()
        .is_none());
    assert_eq!(e.sstable_info(tid(1)).unwrap()[0].tombstones, 1);
    // Once the old data is flushed too, a major compaction covers it and purges both.
    e.flush(None).unwrap();
    e.compact(tid(1)).unwrap();
    assert!(e.sstable_info(tid(1)).unwrap().is_empty());
    assert!(e
        .read(tid(1), &pk(1), &Slice::all(), NOW)
        .unwrap()
        .is_none());
}

#[test]
fn tombstones_kept_within_gc_grace() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path()); // default gc_grace_seconds: 10 days
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    e.apply(&insert(tid(1), pk(1), 1, "v", 10, "x")).unwrap();
    e.apply(&row_delete(tid(1), pk(1), 1, dt(11, now - 3600)))
        .unwrap();
    e.apply(&update(tid(1), pk(2), 1, "v", tomb(11, now - 3600)))
        .unwrap();
    e.flush(None).unwrap();
    e.compact(tid(1)).unwrap();
    let info = e.sstable_info(tid(1)).unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].tombstones, 2);
    assert!(get(&e, 1).is_none());
}

#[test]
fn truncate_drop_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    for k in 0..10 {
        e.apply(&insert(tid(1), pk(k), 1, "v", 10, "x")).unwrap();
        e.apply(&insert(tid(2), pk(k), 1, "v", 10, "x")).unwrap();
    }
    e.flush(Some(tid(1))).unwrap();
    let snap = e.snapshot("s1").unwrap();
    assert!(snap.exists());
    e.truncate(tid(1)).unwrap();
    assert!(get(&e, 1).is_none());
    e.apply(&insert(tid(1), pk(100), 1, "v", 10, "x")).unwrap();
    drop(e);
    // Truncated data does not come back from the commit log.
    let e = open(d.path());
    assert!(get(&e, 1).is_none());
    assert!(get(&e, 100).is_some());
    e.drop_table(tid(2)).unwrap();
    assert!(matches!(
        e.read(tid(2), &pk(1), &Slice::all(), NOW),
        Err(StorageError::UnknownTable(_))
    ));
    let snaps: Vec<String> = std::fs::read_dir(d.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(snaps.iter().any(|s| s.starts_with("truncated-")));
    assert!(snaps.iter().any(|s| s.starts_with("dropped-")));
    e.create_table(tid(2), params("ks.t2")).unwrap();
    e.create_table(tid(2), params("ks.t2")).unwrap();
    assert!(e
        .read(tid(2), &pk(1), &Slice::all(), NOW)
        .unwrap()
        .is_none());
}

#[test]
fn leveled_and_background_compaction() {
    let d = tempfile::tempdir().unwrap();
    let mut p = params("ks.t1");
    p.compaction = CompactionStrategy::Leveled {
        sstable_size_in_mb: 1,
    };
    p.compression = Compression::None;
    let e = Engine::open(d.path(), opts(), vec![(tid(1), p)]).unwrap();
    for round in 0..4 {
        for k in 0..200 {
            e.apply(&insert(
                tid(1),
                pk(k),
                1,
                "v",
                10 + round,
                &format!("r{round}"),
            ))
            .unwrap();
        }
        e.flush(None).unwrap();
    }
    // Background compaction picks up the 4 L0 tables.
    let tdir = std::fs::read_dir(d.path().join("tables"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let count = || {
        std::fs::read_dir(&tdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("-Data.db")
            })
            .count()
    };
    let start = std::time::Instant::now();
    while count() > 1 && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(count(), 1);
    for k in 0..200 {
        assert_eq!(
            simple_value(&get(&e, k).unwrap(), 1, "v").as_deref(),
            Some("r3")
        );
    }
}

#[test]
fn backpressure_with_tiny_budget() {
    let d = tempfile::tempdir().unwrap();
    let o = EngineOptions {
        memtable_space: 256 * 1024,
        commitlog_sync: CommitlogSync::Periodic { period_ms: 50 },
        ..Default::default()
    };
    let e =
        std::sync::Arc::new(Engine::open(d.path(), o, vec![(tid(1), params("ks.t1"))]).unwrap());
    let big = "z".repeat(2000);
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let e = e.clone();
            let big = big.clone();
            std::thread::spawn(move || {
                for k in 0..500u64 {
                    e.apply(&insert(tid(1), pk(t * 1000 + k), 1, "v", 10, &big))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    for t in 0..4 {
        for k in (0..500u64).step_by(37) {
            assert!(e
                .read(tid(1), &pk(t * 1000 + k), &Slice::all(), NOW)
                .unwrap()
                .is_some());
        }
    }
    e.shutdown().unwrap();
}

#[test]
fn group_and_batch_commit_with_concurrent_writers() {
    for mode in [CommitlogSync::Group { window_ms: 5 }, CommitlogSync::Batch] {
        let d = tempfile::tempdir().unwrap();
        let o = EngineOptions {
            commitlog_sync: mode,
            ..Default::default()
        };
        let e = std::sync::Arc::new(
            Engine::open(d.path(), o.clone(), vec![(tid(1), params("ks.t1"))]).unwrap(),
        );
        let start = std::time::Instant::now();
        let hs: Vec<_> = (0..8u64)
            .map(|t| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for k in 0..40u64 {
                        e.apply(&insert(tid(1), pk(t * 1000 + k), 1, "v", 10, "x"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // 320 writes in 8 threads: group mode shares fsyncs, so this is far below 320 windows.
        if let CommitlogSync::Group { .. } = mode {
            assert!(
                start.elapsed() < std::time::Duration::from_millis(320 * 5),
                "{:?}",
                start.elapsed()
            );
        }
        drop(e);
        let e = Engine::open(d.path(), o, vec![(tid(1), params("ks.t1"))]).unwrap();
        for t in 0..8u64 {
            for k in 0..40u64 {
                assert!(e
                    .read(tid(1), &pk(t * 1000 + k), &Slice::all(), NOW)
                    .unwrap()
                    .is_some());
            }
        }
    }
}

#[test]
fn static_only_partition_and_alter() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    let mut m = empty_mutation(tid(1), pk(1));
    m.static_row = Some(RowUpdate {
        clustering: bytes::Bytes::new(),
        liveness: None,
        deletion: None,
        columns: vec![ColumnData::Simple {
            column: bytes::Bytes::from("s"),
            cell: live(5, "st"),
        }],
    });
    e.apply(&m).unwrap();
    e.flush(None).unwrap();
    let v = get(&e, 1).unwrap();
    assert!(v.rows.is_empty());
    assert!(v.static_row.is_some());
    let mut p = params("ks.t1");
    p.compression = Compression::None;
    p.compaction = CompactionStrategy::Leveled {
        sstable_size_in_mb: 1,
    };
    e.alter_table(tid(1), p).unwrap();
    e.apply(&insert(tid(1), pk(1), 3, "v", 10, "x")).unwrap();
    e.flush(None).unwrap();
    e.compact(tid(1)).unwrap();
    let v = get(&e, 1).unwrap();
    assert_eq!(v.rows.len(), 1);
    assert!(v.static_row.is_some());
}

#[test]
fn engine_is_send_sync_and_names_are_sanitized() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    let d = tempfile::tempdir().unwrap();
    let e = Engine::open(d.path(), opts(), vec![(tid(3), params("../evil/name"))]).unwrap();
    e.apply(&insert(tid(3), pk(1), 1, "v", 1, "x")).unwrap();
    e.flush(None).unwrap();
    let dirs: Vec<String> = std::fs::read_dir(d.path().join("tables"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].starts_with(".._evil_name-"), "{dirs:?}");
}

#[test]
fn forward_limited_reads_across_sources_with_tombstones() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    for c in 0..3000u32 {
        e.apply(&insert(tid(1), pk(1), c, "v", 10, "x")).unwrap();
        if c == 1500 {
            e.flush(None).unwrap();
        }
    }
    e.flush(None).unwrap();
    // Deletions in a newer source shadow long stretches of rows from older ones.
    e.apply(&range_delete(
        tid(1),
        pk(1),
        Bound::Included(10),
        Bound::Excluded(1400),
        dt(10, NOW),
    ))
    .unwrap();
    for c in (1400..2000u32).step_by(2) {
        e.apply(&row_delete(tid(1), pk(1), c, dt(10, NOW))).unwrap();
    }
    let all = e.read(tid(1), &pk(1), &Slice::all(), NOW).unwrap().unwrap();
    for (start, limit) in [(0u32, 5usize), (0, 100), (5, 20), (1390, 400), (2990, 50)] {
        let s = Slice {
            ranges: vec![(Bound::Included(ck(start)), Bound::Unbounded)],
            reversed: false,
            limit: Some(limit),
        };
        let got = e.read(tid(1), &pk(1), &s, NOW).unwrap();
        let want: Vec<_> = all
            .rows
            .iter()
            .filter(|r| r.clustering >= ck(start))
            .take(limit)
            .cloned()
            .collect();
        assert_eq!(
            got.map(|v| v.rows).unwrap_or_default(),
            want,
            "start {start} limit {limit}"
        );
    }
}

#[test]
fn reversed_limited_reads_across_sources_with_tombstones() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    let val = "r".repeat(100);
    for c in 0..3000u32 {
        e.apply(&insert(tid(1), pk(1), c, "v", 10, &val)).unwrap();
        if c == 1500 {
            e.flush(None).unwrap();
        }
    }
    e.flush(None).unwrap();
    e.apply(&range_delete(
        tid(1),
        pk(1),
        Bound::Included(1600),
        Bound::Excluded(2990),
        dt(10, NOW),
    ))
    .unwrap();
    for c in (1000..1600u32).step_by(2) {
        e.apply(&row_delete(tid(1), pk(1), c, dt(10, NOW))).unwrap();
    }
    let all = e.read(tid(1), &pk(1), &Slice::all(), NOW).unwrap().unwrap();
    for (end, limit) in [
        (2999u32, 5usize),
        (2999, 100),
        (2995, 20),
        (1700, 400),
        (40, 50),
    ] {
        let s = Slice {
            ranges: vec![(Bound::Unbounded, Bound::Included(ck(end)))],
            reversed: true,
            limit: Some(limit),
        };
        let got = e.read(tid(1), &pk(1), &s, NOW).unwrap();
        let want: Vec<_> = all
            .rows
            .iter()
            .rev()
            .filter(|r| r.clustering <= ck(end))
            .take(limit)
            .cloned()
            .collect();
        assert_eq!(
            got.map(|v| v.rows).unwrap_or_default(),
            want,
            "end {end} limit {limit}"
        );
    }
    // Two ranges, reversed.
    let s = Slice {
        ranges: vec![
            (Bound::Included(ck(10)), Bound::Excluded(ck(20))),
            (Bound::Included(ck(2995)), Bound::Unbounded),
        ],
        reversed: true,
        limit: Some(8),
    };
    let got: Vec<_> = e
        .read(tid(1), &pk(1), &s, NOW)
        .unwrap()
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.clustering)
        .collect();
    let want: Vec<_> = [2999u32, 2998, 2997, 2996, 2995, 19, 18, 17]
        .into_iter()
        .map(ck)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn owned_and_shared_mutations_store_the_same() {
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    let read = |e: &Engine, t: u8, k: u64| {
        e.read(tid(t), &pk(k), &Slice::all(), NOW)
            .unwrap()
            .map(|p| simple_value(&p, 1, "v"))
    };
    for k in 0..50 {
        let ts = 10 + (k as i64 % 3);
        let m = |t: u8| insert(tid(t), pk(k % 20), 1, "v", ts, &format!("v{k}"));
        e.apply(&m(1)).unwrap();
        e.apply_owned(m(2)).unwrap();
    }
    e.apply(&partition_delete(tid(1), pk(3), dt(100, NOW)))
        .unwrap();
    e.apply_owned(partition_delete(tid(2), pk(3), dt(100, NOW)))
        .unwrap();
    let check = |e: &Engine| {
        for k in 0..20 {
            assert_eq!(read(e, 1, k), read(e, 2, k), "partition {k}");
        }
        assert!(read(e, 2, 3).is_none());
        assert!(read(e, 2, 4).is_some());
    };
    check(&e);
    // Through the commit log (replayed without a flush) and through an SSTable.
    drop(e);
    let e = open(d.path());
    check(&e);
    e.flush(None).unwrap();
    check(&e);
    e.shutdown().unwrap();
}
