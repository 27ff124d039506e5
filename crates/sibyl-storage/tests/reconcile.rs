mod common;

use bytes::Bytes;
use common::*;
use sibyl_storage::partition::{reconcile, PartitionData};
use sibyl_storage::*;

#[test]
fn higher_timestamp_wins() {
    let a = live(10, "a");
    let b = live(11, "b");
    assert_eq!(reconcile(&a, &b), &b);
    assert_eq!(reconcile(&b, &a), &b);
    let t = tomb(9, 100);
    assert_eq!(reconcile(&a, &t), &a);
}

#[test]
fn equal_timestamp_tombstone_wins() {
    let a = live(10, "zzz");
    let t = tomb(10, 1);
    assert_eq!(reconcile(&a, &t), &t);
    assert_eq!(reconcile(&t, &a), &t);
    let e = expiring(10, "x", 5, 500);
    assert_eq!(reconcile(&e, &t), &t);
    assert_eq!(reconcile(&t, &e), &t);
}

#[test]
fn equal_timestamp_expiring_beats_regular_then_ldt_then_value() {
    let r = live(10, "zzz");
    let e = expiring(10, "a", 5, 500);
    assert_eq!(reconcile(&r, &e), &e);
    assert_eq!(reconcile(&e, &r), &e);
    let e2 = expiring(10, "a", 5, 600);
    assert_eq!(reconcile(&e, &e2), &e2);
    assert_eq!(reconcile(&e2, &e), &e2);
    let t1 = tomb(10, 100);
    let t2 = tomb(10, 200);
    assert_eq!(reconcile(&t1, &t2), &t2);
    let a = live(10, "a");
    let b = live(10, "b");
    assert_eq!(reconcile(&a, &b), &b);
    assert_eq!(reconcile(&b, &a), &b);
}

fn view(m: &[Mutation], now: i64) -> Option<PartitionView> {
    let mut p = PartitionData::default();
    for m in m {
        p.merge(PartitionData::from_mutation(m));
    }
    p.resolve(&m[0].key, &Slice::all(), now)
}

#[test]
fn late_write_with_older_timestamp_loses() {
    let t = tid(1);
    let v = view(
        &[
            insert(t, pk(1), 1, "v", 20, "new"),
            insert(t, pk(1), 1, "v", 10, "old"),
        ],
        NOW,
    )
    .unwrap();
    assert_eq!(simple_value(&v, 1, "v").as_deref(), Some("new"));
}

#[test]
fn row_deletion_shadows_older_and_equal() {
    let t = tid(1);
    let v = view(
        &[
            insert(t, pk(1), 1, "v", 10, "a"),
            row_delete(t, pk(1), 1, dt(10, NOW)),
        ],
        NOW,
    );
    assert!(v.is_none());
    let v = view(
        &[
            insert(t, pk(1), 1, "v", 11, "a"),
            row_delete(t, pk(1), 1, dt(10, NOW)),
        ],
        NOW,
    )
    .unwrap();
    assert_eq!(simple_value(&v, 1, "v").as_deref(), Some("a"));
}

#[test]
fn row_deletion_kills_liveness_but_newer_cell_keeps_row() {
    let t = tid(1);
    let v = view(
        &[
            insert(t, pk(1), 1, "v", 10, "a"),
            row_delete(t, pk(1), 1, dt(15, NOW)),
            update(t, pk(1), 1, "w", live(20, "b")),
        ],
        NOW,
    )
    .unwrap();
    assert_eq!(v.rows.len(), 1);
    assert!(v.rows[0].liveness.is_none());
    assert_eq!(simple_value(&v, 1, "v"), None);
    assert_eq!(simple_value(&v, 1, "w").as_deref(), Some("b"));
}

#[test]
fn liveness_keeps_row_without_cells() {
    let t = tid(1);
    let v = view(
        &[
            insert(t, pk(1), 1, "v", 10, "a"),
            update(t, pk(1), 1, "v", tomb(11, NOW)),
        ],
        NOW,
    )
    .unwrap();
    assert_eq!(v.rows.len(), 1);
    assert!(v.rows[0].columns.is_empty());
    // UPDATE-created row disappears when its only cell is deleted.
    let v = view(
        &[
            update(t, pk(1), 1, "v", live(10, "a")),
            update(t, pk(1), 1, "v", tomb(11, NOW)),
        ],
        NOW,
    );
    assert!(v.is_none());
}

#[test]
fn range_tombstone_bounds() {
    let t = tid(1);
    let mut ms: Vec<Mutation> = (0..10).map(|c| insert(t, pk(1), c, "v", 10, "x")).collect();
    ms.push(range_delete(
        t,
        pk(1),
        std::ops::Bound::Included(2),
        std::ops::Bound::Excluded(5),
        dt(10, NOW),
    ));
    ms.push(range_delete(
        t,
        pk(1),
        std::ops::Bound::Excluded(7),
        std::ops::Bound::Unbounded,
        dt(10, NOW),
    ));
    let v = view(&ms, NOW);
    assert_eq!(clusterings(&v), vec![ck(0), ck(1), ck(5), ck(6), ck(7)]);
    // Newer data survives.
    ms.push(insert(t, pk(1), 3, "v", 11, "y"));
    assert_eq!(
        clusterings(&view(&ms, NOW)),
        vec![ck(0), ck(1), ck(3), ck(5), ck(6), ck(7)]
    );
}

#[test]
fn partition_deletion_shadows_all_including_static() {
    let t = tid(1);
    let mut st = empty_mutation(t, pk(1));
    st.static_row = Some(RowUpdate {
        clustering: Bytes::new(),
        liveness: None,
        deletion: None,
        columns: vec![ColumnData::Simple {
            column: Bytes::from("s"),
            cell: live(10, "static"),
        }],
    });
    let v = view(&[st.clone()], NOW).unwrap();
    assert!(v.rows.is_empty());
    assert!(v.static_row.is_some());
    let v = view(
        &[
            st.clone(),
            insert(t, pk(1), 1, "v", 10, "a"),
            partition_delete(t, pk(1), dt(10, NOW)),
        ],
        NOW,
    );
    assert!(v.is_none());
    let v = view(
        &[
            st,
            insert(t, pk(1), 1, "v", 11, "a"),
            partition_delete(t, pk(1), dt(10, NOW)),
        ],
        NOW,
    )
    .unwrap();
    assert!(v.static_row.is_none());
    assert_eq!(v.rows.len(), 1);
}

#[test]
fn complex_deletion_overwrites_collection() {
    let t = tid(1);
    let elem = |ts: i64, p: &str, v: &str| (Bytes::from(p.to_string()), live(ts, v));
    let mk = |del: Option<DeletionTime>, cells: Vec<(Bytes, Cell)>| {
        let mut m = empty_mutation(t, pk(1));
        m.rows.push(RowUpdate {
            clustering: ck(1),
            liveness: None,
            deletion: None,
            columns: vec![ColumnData::Complex {
                column: Bytes::from("m"),
                complex_deletion: del,
                cells,
            }],
        });
        m
    };
    let v = view(
        &[
            mk(None, vec![elem(10, "a", "1"), elem(10, "b", "2")]),
            mk(Some(dt(19, NOW)), vec![elem(20, "c", "3")]),
            mk(None, vec![elem(15, "d", "late-but-old")]),
        ],
        NOW,
    )
    .unwrap();
    match &v.rows[0].columns[0].1 {
        ColumnView::Complex(cells) => {
            let keys: Vec<&[u8]> = cells.iter().map(|(p, _)| p.as_ref()).collect();
            assert_eq!(keys, vec![b"c".as_ref()]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ttl_expiry() {
    let t = tid(1);
    let v = view(
        &[update(t, pk(1), 1, "v", expiring(10, "a", 100, NOW + 100))],
        NOW,
    )
    .unwrap();
    let c = &v.rows[0].columns[0].1;
    assert!(matches!(c, ColumnView::Simple(l) if l.ttl == 100 && l.expires_at == NOW + 100));
    assert!(view(
        &[update(t, pk(1), 1, "v", expiring(10, "a", 100, NOW + 100))],
        NOW + 100
    )
    .is_none());
    // Expiring liveness.
    let mut m = insert(t, pk(1), 1, "v", 10, "a");
    m.rows[0].liveness = Some(LivenessInfo {
        timestamp: 10,
        ttl: 5,
        expires_at: NOW + 5,
    });
    m.rows[0].columns.clear();
    assert!(view(&[m.clone()], NOW + 4).is_some());
    assert!(view(&[m], NOW + 5).is_none());
}

#[test]
fn slices_reverse_and_limit() {
    let t = tid(1);
    let ms: Vec<Mutation> = (0..10).map(|c| insert(t, pk(1), c, "v", 10, "x")).collect();
    let mut p = PartitionData::default();
    for m in &ms {
        p.merge(PartitionData::from_mutation(m));
    }
    use std::ops::Bound::*;
    let s = Slice {
        ranges: vec![
            (Included(ck(1)), Included(ck(3))),
            (Excluded(ck(6)), Unbounded),
        ],
        reversed: true,
        limit: Some(4),
    };
    let v = p.resolve(&pk(1), &s, NOW);
    assert_eq!(clusterings(&v), vec![ck(9), ck(8), ck(7), ck(3)]);
    let s = Slice {
        reversed: false,
        limit: None,
        ..s
    };
    assert_eq!(
        clusterings(&p.resolve(&pk(1), &s, NOW)),
        vec![ck(1), ck(2), ck(3), ck(7), ck(8), ck(9)]
    );
}
