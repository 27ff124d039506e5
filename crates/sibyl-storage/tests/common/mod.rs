#![allow(dead_code)]

use std::ops::Bound;

use bytes::Bytes;
use sibyl_storage::*;
use uuid::Uuid;

pub const NOW: i64 = 1_700_000_000;

pub fn tid(n: u8) -> TableId {
    Uuid::from_bytes([n; 16])
}

pub fn params(name: &str) -> TableParams {
    TableParams {
        name: name.into(),
        ..Default::default()
    }
}

pub fn pk(n: u64) -> PartitionKey {
    // A fake token: deterministic and spreads keys.
    let token = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1) as i64 - (i64::MAX / 2);
    PartitionKey {
        token,
        key: Bytes::from(n.to_be_bytes().to_vec()),
    }
}

pub fn ck(n: u32) -> Bytes {
    Bytes::from(n.to_be_bytes().to_vec())
}

pub fn live(ts: i64, v: &str) -> Cell {
    Cell {
        timestamp: ts,
        value: Some(Bytes::from(v.to_string())),
        ttl: 0,
        local_deletion_time: 0,
    }
}

pub fn expiring(ts: i64, v: &str, ttl: i32, expires: i64) -> Cell {
    Cell {
        timestamp: ts,
        value: Some(Bytes::from(v.to_string())),
        ttl,
        local_deletion_time: expires,
    }
}

pub fn tomb(ts: i64, ldt: i64) -> Cell {
    Cell {
        timestamp: ts,
        value: None,
        ttl: 0,
        local_deletion_time: ldt,
    }
}

pub fn dt(ts: i64, ldt: i64) -> DeletionTime {
    DeletionTime {
        timestamp: ts,
        local_deletion_time: ldt,
    }
}

pub fn empty_mutation(table: TableId, key: PartitionKey) -> Mutation {
    Mutation::new(table, key)
}

/// INSERT-like: row with liveness and one simple column.
pub fn insert(table: TableId, key: PartitionKey, c: u32, col: &str, ts: i64, v: &str) -> Mutation {
    let mut m = empty_mutation(table, key);
    m.rows.push(RowUpdate {
        clustering: ck(c),
        liveness: Some(LivenessInfo {
            timestamp: ts,
            ttl: 0,
            expires_at: 0,
        }),
        deletion: None,
        columns: vec![ColumnData::Simple {
            column: Bytes::from(col.to_string()),
            cell: live(ts, v),
        }],
    });
    m
}

/// UPDATE-like: one cell, no liveness.
pub fn update(table: TableId, key: PartitionKey, c: u32, col: &str, cell: Cell) -> Mutation {
    let mut m = empty_mutation(table, key);
    m.rows.push(RowUpdate {
        clustering: ck(c),
        liveness: None,
        deletion: None,
        columns: vec![ColumnData::Simple {
            column: Bytes::from(col.to_string()),
            cell,
        }],
    });
    m
}

pub fn row_delete(table: TableId, key: PartitionKey, c: u32, d: DeletionTime) -> Mutation {
    let mut m = empty_mutation(table, key);
    m.rows.push(RowUpdate {
        clustering: ck(c),
        liveness: None,
        deletion: Some(d),
        columns: vec![],
    });
    m
}

pub fn range_delete(
    table: TableId,
    key: PartitionKey,
    start: Bound<u32>,
    end: Bound<u32>,
    d: DeletionTime,
) -> Mutation {
    let mut m = empty_mutation(table, key);
    m.range_tombstones.push(RangeTombstone {
        start: start.map(ck),
        end: end.map(ck),
        deletion: d,
    });
    m
}

pub fn partition_delete(table: TableId, key: PartitionKey, d: DeletionTime) -> Mutation {
    let mut m = empty_mutation(table, key);
    m.partition_deletion = Some(d);
    m
}

pub fn simple_value(view: &PartitionView, c: u32, col: &str) -> Option<String> {
    let row = view.rows.iter().find(|r| r.clustering == ck(c))?;
    row.columns
        .iter()
        .find(|(n, _)| n.as_ref() == col.as_bytes())
        .and_then(|(_, v)| match v {
            ColumnView::Simple(c) => Some(String::from_utf8(c.value.to_vec()).unwrap()),
            _ => None,
        })
}

pub fn clusterings(view: &Option<PartitionView>) -> Vec<Bytes> {
    view.as_ref()
        .map(|v| v.rows.iter().map(|r| r.clustering.clone()).collect())
        .unwrap_or_default()
}
