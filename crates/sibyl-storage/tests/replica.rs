//! Coordinator reads over several replicas: random writes, deletions and TTLs of one
//! partition spread over 2-3 engines must, through `read_raw` + `resolve` (with short-read
//! protection driven by `is_complete`), read exactly like one engine that received every
//! write; and applying `merge` of the raw answers (read repair) makes every replica read
//! like that engine. Plus serde round trips of the raw and resolved forms.

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use sibyl_storage::*;

const TTL: i32 = 10_000;

#[derive(Clone, Debug)]
struct CellSpec {
    ts: i64,
    /// 0 live, 1 expiring (live), 2 expiring (expired), 3 tombstone
    kind: u8,
    v: u8,
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        c: u8,
        ts: i64,
        v: u8,
        kind: u8,
    },
    Update {
        c: u8,
        col: u8,
        cell: CellSpec,
    },
    DeleteRow {
        c: u8,
        ts: i64,
    },
    DeleteRange {
        a: u8,
        b: u8,
        ia: bool,
        ib: bool,
        ts: i64,
    },
    DeletePartition {
        ts: i64,
    },
    SetMap {
        c: u8,
        ts: i64,
        elems: Vec<u8>,
    },
    AddElem {
        c: u8,
        path: u8,
        cell: CellSpec,
    },
    Static {
        cell: CellSpec,
    },
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Which replicas receive the write (bit i: engine i); never 0.
    replicas: u8,
    /// Flush this replica after the write (index >= replica count: none).
    flush: u8,
}

fn cell_spec() -> impl Strategy<Value = CellSpec> {
    (1i64..12, 0u8..4, 0u8..3).prop_map(|(ts, kind, v)| CellSpec { ts, kind, v })
}

const ROWS: u8 = 6;

fn op_strategy() -> impl Strategy<Value = Op> {
    let ts = || 1i64..12;
    prop_oneof![
        4 => (0..ROWS, ts(), 0u8..3, 0u8..3).prop_map(|(c, ts, v, kind)| Op::Insert { c, ts, v, kind }),
        4 => (0..ROWS, 0u8..2, cell_spec()).prop_map(|(c, col, cell)| Op::Update { c, col, cell }),
        2 => (0..ROWS, ts()).prop_map(|(c, ts)| Op::DeleteRow { c, ts }),
        1 => (0..ROWS, 0..ROWS, any::<bool>(), any::<bool>(), ts())
            .prop_map(|(a, b, ia, ib, ts)| Op::DeleteRange { a: a.min(b), b: a.max(b), ia, ib, ts }),
        1 => ts().prop_map(|ts| Op::DeletePartition { ts }),
        1 => (0..ROWS, ts(), proptest::collection::vec(0u8..4, 0..3))
            .prop_map(|(c, ts, elems)| Op::SetMap { c, ts, elems }),
        2 => (0..ROWS, 0u8..4, cell_spec()).prop_map(|(c, path, cell)| Op::AddElem { c, path, cell }),
        1 => cell_spec().prop_map(|cell| Op::Static { cell }),
    ]
}

/// Expired cells get odd timestamps, everything else even ones (as in tests/model.rs):
/// compaction turns expired cells into tombstones, which changes how they reconcile against
/// an expiring cell of the same timestamp.
fn cell_ts(ts: i64, kind: u8) -> i64 {
    ts * 2 + i64::from(kind == 2)
}

fn make_cell(s: &CellSpec, now: i64) -> Cell {
    let v = Some(Bytes::from(vec![b'a' + s.v]));
    let timestamp = cell_ts(s.ts, s.kind);
    match s.kind {
        0 => Cell {
            timestamp,
            value: v,
            ttl: 0,
            local_deletion_time: 0,
        },
        1 => Cell {
            timestamp,
            value: v,
            ttl: TTL,
            local_deletion_time: now + TTL as i64,
        },
        2 => Cell {
            timestamp,
            value: v,
            ttl: TTL,
            local_deletion_time: now - 50,
        },
        _ => Cell {
            timestamp,
            value: None,
            ttl: 0,
            local_deletion_time: now - 100,
        },
    }
}

fn del(ts: i64, now: i64) -> DeletionTime {
    DeletionTime {
        timestamp: ts * 2,
        local_deletion_time: now - 100,
    }
}

fn col(n: u8) -> Bytes {
    Bytes::from(vec![b'a' + n])
}

fn key() -> PartitionKey {
    pk(7)
}

fn to_mutation(op: &Op, now: i64) -> Mutation {
    let mut m = empty_mutation(tid(1), key());
    let row = |c: u8| RowUpdate {
        clustering: ck(c as u32),
        ..Default::default()
    };
    match op {
        Op::Insert { c, ts, v, kind } => {
            let mut r = row(*c);
            let lts = cell_ts(*ts, *kind);
            r.liveness = Some(match kind {
                0 => LivenessInfo {
                    timestamp: lts,
                    ttl: 0,
                    expires_at: 0,
                },
                1 => LivenessInfo {
                    timestamp: lts,
                    ttl: TTL,
                    expires_at: now + TTL as i64,
                },
                _ => LivenessInfo {
                    timestamp: lts,
                    ttl: TTL,
                    expires_at: now - 50,
                },
            });
            let cell = make_cell(
                &CellSpec {
                    ts: *ts,
                    kind: *kind,
                    v: *v,
                },
                now,
            );
            r.columns.push(ColumnData::Simple {
                column: col(0),
                cell,
            });
            m.rows.push(r);
        }
        Op::Update { c, col: cn, cell } => {
            let mut r = row(*c);
            r.columns.push(ColumnData::Simple {
                column: col(*cn),
                cell: make_cell(cell, now),
            });
            m.rows.push(r);
        }
        Op::DeleteRow { c, ts } => {
            let mut r = row(*c);
            r.deletion = Some(del(*ts, now));
            m.rows.push(r);
        }
        Op::DeleteRange { a, b, ia, ib, ts } => {
            let s = if *ia {
                Bound::Included(ck(*a as u32))
            } else {
                Bound::Excluded(ck(*a as u32))
            };
            let e = if *ib {
                Bound::Included(ck(*b as u32))
            } else {
                Bound::Excluded(ck(*b as u32))
            };
            m.range_tombstones.push(RangeTombstone {
                start: s,
                end: e,
                deletion: del(*ts, now),
            });
        }
        Op::DeletePartition { ts } => m.partition_deletion = Some(del(*ts, now)),
        Op::SetMap { c, ts, elems } => {
            let mut r = row(*c);
            let cells = elems
                .iter()
                .map(|p| {
                    (
                        Bytes::from(vec![*p]),
                        make_cell(
                            &CellSpec {
                                ts: *ts,
                                kind: 0,
                                v: *p,
                            },
                            now,
                        ),
                    )
                })
                .collect();
            r.columns.push(ColumnData::Complex {
                column: col(5),
                complex_deletion: Some(del(*ts, now)).map(|d| DeletionTime {
                    timestamp: d.timestamp - 1,
                    ..d
                }),
                cells,
            });
            m.rows.push(r);
        }
        Op::AddElem { c, path, cell } => {
            let mut r = row(*c);
            r.columns.push(ColumnData::Complex {
                column: col(5),
                complex_deletion: None,
                cells: vec![(Bytes::from(vec![*path]), make_cell(cell, now))],
            });
            m.rows.push(r);
        }
        Op::Static { cell } => {
            let mut r = RowUpdate::default();
            r.columns.push(ColumnData::Simple {
                column: col(7),
                cell: make_cell(cell, now),
            });
            m.static_row = Some(r);
        }
    }
    m
}

#[derive(Clone, Debug)]
struct SliceSpec {
    /// Sorted distinct clustering points, paired into ranges (an odd last one opens to the end).
    points: BTreeSet<u8>,
    open_start: bool,
    incl: Vec<bool>,
    reversed: bool,
    limit: Option<usize>,
}

fn slice_strategy() -> impl Strategy<Value = SliceSpec> {
    (
        proptest::collection::btree_set(0..ROWS + 1, 0..5),
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), 5),
        any::<bool>(),
        proptest::option::of(0usize..5),
    )
        .prop_map(|(points, open_start, incl, reversed, limit)| SliceSpec {
            points,
            open_start,
            incl,
            reversed,
            limit,
        })
}

fn make_slice(s: &SliceSpec) -> Slice {
    let b = |i: usize, p: u8| {
        if s.incl[i] {
            Bound::Included(ck(p as u32))
        } else {
            Bound::Excluded(ck(p as u32))
        }
    };
    let pts: Vec<u8> = s.points.iter().copied().collect();
    let mut ranges = Vec::new();
    if pts.is_empty() {
        ranges.push((Bound::Unbounded, Bound::Unbounded));
    } else if s.open_start {
        ranges.push((Bound::Unbounded, b(0, pts[0])));
        let mut i = 1;
        while i < pts.len() {
            let end = pts.get(i + 1).map_or(Bound::Unbounded, |&p| b(i + 1, p));
            ranges.push((b(i, pts[i]), end));
            i += 2;
        }
    } else {
        let mut i = 0;
        while i < pts.len() {
            let end = pts.get(i + 1).map_or(Bound::Unbounded, |&p| b(i + 1, p));
            ranges.push((b(i, pts[i]), end));
            i += 2;
        }
    }
    Slice {
        ranges,
        reversed: s.reversed,
        limit: s.limit,
    }
}

fn open(dir: &std::path::Path) -> Engine {
    let p = TableParams {
        // Nothing is ever purged: replicas flush (and may compact) at different moments.
        gc_grace_seconds: 100 * 365 * 86_400,
        ..params("ks.t")
    };
    let opts = EngineOptions {
        commitlog_sync: CommitlogSync::Periodic { period_ms: 60_000 },
        ..Default::default()
    };
    Engine::open(dir, opts, vec![(tid(1), p)]).unwrap()
}

fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The coordinator's read: raw answers for the slice; on a short read, the replicas are
/// asked again with growing limits (finally none). Returns the answers that were resolved.
fn coordinator_read(
    replicas: &[Engine],
    slice: &Slice,
    now: i64,
) -> (Option<PartitionView>, Vec<Mutation>, bool) {
    let mut asked = slice.clone();
    let mut short = false;
    loop {
        let raws: Vec<Mutation> = replicas
            .iter()
            .filter_map(|e| e.read_raw(tid(1), &key(), &asked, now).unwrap())
            .collect();
        if is_complete(&raws, &asked, now) {
            return (resolve(&key(), &raws, slice, now), raws, short);
        }
        short = true;
        asked.limit = match asked.limit {
            Some(l) if l < 8 => Some(l * 2 + 1),
            _ => None,
        };
    }
}

fn check(steps: Vec<Step>, n: usize, slices: Vec<SliceSpec>) -> Result<(), TestCaseError> {
    let now = real_now();
    let dirs: Vec<tempfile::TempDir> = (0..=n).map(|_| tempfile::tempdir().unwrap()).collect();
    let single = open(dirs[n].path());
    let replicas: Vec<Engine> = dirs[..n].iter().map(|d| open(d.path())).collect();
    for s in &steps {
        let m = to_mutation(&s.op, now);
        single.apply(&m).unwrap();
        for (i, e) in replicas.iter().enumerate() {
            if s.replicas & (1 << i) != 0 {
                e.apply(&m).unwrap();
            }
        }
        if let Some(e) = replicas.get(s.flush as usize) {
            e.flush(None).unwrap();
        }
    }
    for spec in &slices {
        let slice = make_slice(spec);
        let want = single.read(tid(1), &key(), &slice, now).unwrap();

        // One engine's raw answer resolves to its own read.
        let own = single.read_raw(tid(1), &key(), &slice, now).unwrap();
        prop_assert_eq!(
            resolve(&key(), own.as_slice(), &slice, now),
            want.clone(),
            "single engine raw"
        );
        prop_assert!(is_complete(own.as_slice(), &slice, now));

        let (got, raws, _short) = coordinator_read(&replicas, &slice, now);
        prop_assert_eq!(&got, &want, "resolved replicas, slice {:?}", slice);

        // Serde round trips (postcard in the server; JSON here).
        for m in &raws {
            let back: Mutation = serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap();
            prop_assert_eq!(&back, m);
        }
        let back: Option<PartitionView> =
            serde_json::from_str(&serde_json::to_string(&got).unwrap()).unwrap();
        prop_assert_eq!(&back, &got);
        let sback: Slice = serde_json::from_str(&serde_json::to_string(&slice).unwrap()).unwrap();
        prop_assert_eq!(&sback, &slice);

        // merge() resolves like resolve().
        let merged = merge(&raws);
        prop_assert_eq!(
            resolve(&key(), merged.as_slice(), &slice, now),
            got.clone(),
            "merge then resolve"
        );
    }
    // Read repair: every replica gets the merged answers of every slice; afterwards each one
    // reads every slice like the single engine.
    for spec in &slices {
        let slice = make_slice(spec);
        let (_, raws, _) = coordinator_read(&replicas, &slice, now);
        if let Some(m) = merge(&raws) {
            for e in &replicas {
                e.apply(&m).unwrap();
            }
        }
        let want = single.read(tid(1), &key(), &slice, now).unwrap();
        for (i, e) in replicas.iter().enumerate() {
            let got = e.read(tid(1), &key(), &slice, now).unwrap();
            prop_assert_eq!(&got, &want, "replica {} after repair, slice {:?}", i, slice);
        }
    }
    Ok(())
}

fn step_strategy(n: usize) -> impl Strategy<Value = Step> {
    (op_strategy(), 1u8..(1 << n), 0u8..(n as u8 * 4)).prop_map(|(op, replicas, flush)| Step {
        op,
        replicas,
        flush,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replicas_resolve_like_one_engine(
        (n, steps) in (2usize..=3).prop_flat_map(|n| (Just(n), proptest::collection::vec(step_strategy(n), 1..40))),
        slices in proptest::collection::vec(slice_strategy(), 1..5),
    ) {
        check(steps, n, slices)?;
    }
}

/// The short read `is_complete` exists for: replica A counts row 1 as its only live row
/// within limit 1, replica B deleted row 1; row 2 (only on A) is the true first live row.
#[test]
fn short_read_is_detected() {
    let now = NOW;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path());
    let b = open(dirs[1].path());
    let t = tid(1);
    a.apply(&insert(t, key(), 1, "v", 1, "x")).unwrap();
    a.apply(&insert(t, key(), 2, "v", 1, "y")).unwrap();
    b.apply(&row_delete(t, key(), 1, dt(2, now))).unwrap();
    let slice = Slice {
        limit: Some(1),
        ..Slice::all()
    };
    let raws: Vec<Mutation> = [&a, &b]
        .iter()
        .filter_map(|e| e.read_raw(t, &key(), &slice, now).unwrap())
        .collect();
    assert_eq!(raws[0].rows.len(), 1, "A stops at its first live row");
    assert!(!is_complete(&raws, &slice, now));
    assert_eq!(resolve(&key(), &raws, &slice, now), None);
    let (got, _, short) = coordinator_read(&[a, b], &slice, now);
    assert!(short);
    assert_eq!(clusterings(&got), vec![ck(2)]);
}

/// Rows holding only tombstones come back raw, before the last live row of a limited slice,
/// and range tombstones overlapping the slice come back whole.
#[test]
fn read_raw_keeps_tombstones() {
    let now = NOW;
    let d = tempfile::tempdir().unwrap();
    let e = open(d.path());
    let t = tid(1);
    e.apply(&row_delete(t, key(), 1, dt(5, now))).unwrap();
    e.apply(&update(t, key(), 2, "v", tomb(5, now))).unwrap();
    e.apply(&insert(t, key(), 3, "v", 1, "x")).unwrap();
    e.apply(&insert(t, key(), 4, "v", 1, "y")).unwrap();
    e.apply(&range_delete(
        t,
        key(),
        Bound::Included(8),
        Bound::Included(9),
        dt(5, now),
    ))
    .unwrap();
    e.flush(None).unwrap();
    e.apply(&insert(t, key(), 3, "v", 2, "z")).unwrap();
    let slice = Slice {
        limit: Some(1),
        ..Slice::all()
    };
    let raw = e.read_raw(t, &key(), &slice, now).unwrap().unwrap();
    let cs: Vec<Bytes> = raw.rows.iter().map(|r| r.clustering.clone()).collect();
    assert_eq!(cs, vec![ck(1), ck(2), ck(3)]);
    assert_eq!(raw.rows[0].deletion, Some(dt(5, now)));
    assert_eq!(
        raw.rows[2].columns,
        vec![ColumnData::Simple {
            column: Bytes::from("v"),
            cell: live(2, "z"),
        }],
        "superseded versions are dropped"
    );
    assert_eq!(raw.range_tombstones.len(), 1);
    let narrow = Slice {
        ranges: vec![(Bound::Included(ck(0)), Bound::Included(ck(4)))],
        reversed: true,
        limit: None,
    };
    let raw = e.read_raw(t, &key(), &narrow, now).unwrap().unwrap();
    assert!(raw.range_tombstones.is_empty());
    assert_eq!(raw.rows.len(), 4);
    let only_rt = Slice {
        ranges: vec![(Bound::Included(ck(9)), Bound::Unbounded)],
        reversed: false,
        limit: None,
    };
    let raw = e.read_raw(t, &key(), &only_rt, now).unwrap().unwrap();
    assert!(raw.rows.is_empty());
    assert_eq!(raw.range_tombstones.len(), 1);
    let nothing = Slice {
        ranges: vec![(Bound::Excluded(ck(9)), Bound::Unbounded)],
        reversed: false,
        limit: None,
    };
    assert_eq!(e.read_raw(t, &key(), &nothing, now).unwrap(), None);
    assert_eq!(merge(&[]), None);
}
