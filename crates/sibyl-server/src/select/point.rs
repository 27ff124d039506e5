//! The commonest read, `SELECT <columns> FROM t WHERE <every primary key column> = ...`, answered
//! without the general planner: one partition, one clustering key, at most one row. A query
//! of any other shape (a LIMIT, a function, paging state, static columns, ...) is left to the
//! general path, which also owns every error this path does not raise identically.

use std::ops::Bound;

use bytes::Bytes;
use sibyl_cql::ast::{Operator, RelationLhs, SelectStatement, Selector};
use sibyl_protocol::messages::{ColumnSpec, Rows, RowsMetadata, RowsWriter};
use sibyl_storage::model::Slice;
use sibyl_types::clustering;
use smallvec::SmallVec;

use super::{eval_bytes, partition_key_of, ReadContext};
use crate::error::QueryResult;
use crate::rows::materialize;
use crate::schema::{ColumnKind, Table};
use crate::values::EvalCtx;

/// The rows of a full-primary-key read, or None when the statement has another shape.
pub(super) fn try_execute(
    table: &Table,
    st: &SelectStatement,
    ctx: &EvalCtx,
    rc: &ReadContext,
) -> QueryResult<Option<Rows>> {
    let npk = table.partition_key_count;
    let nkey = npk + table.clustering_count;
    if st.json
        || st.distinct
        || !st.group_by.is_empty()
        || !st.order_by.is_empty()
        || st.limit.is_some()
        || st.per_partition_limit.is_some()
        || rc.paging_state.as_ref().is_some_and(|p| !p.is_empty())
        || st.where_clause.len() != nkey
        || table.columns.iter().any(|c| c.kind == ColumnKind::Static)
    {
        return Ok(None);
    }
    // Selection first: the general path reports selection errors before restriction errors.
    let mut selected: SmallVec<[(usize, &str); 8]> = SmallVec::new();
    for item in &st.selectors {
        let Selector::Column(name) = &item.selector else {
            return Ok(None);
        };
        let Some(i) = table.column_index(name) else {
            return Ok(None);
        };
        selected.push((i, item.alias.as_deref().unwrap_or(name)));
    }
    let mut key: SmallVec<[Option<Bytes>; 4]> = SmallVec::from_elem(None, nkey);
    for rel in &st.where_clause {
        let RelationLhs::Column(name) = &rel.lhs else {
            return Ok(None);
        };
        let Some(i) = table.column_index(name).filter(|i| *i < nkey) else {
            return Ok(None);
        };
        if rel.op != Operator::Eq || key[i].is_some() {
            return Ok(None);
        }
        key[i] = Some(eval_bytes(&rel.rhs, &table.columns[i].ty, name, ctx)?);
    }
    let key: SmallVec<[Bytes; 4]> = key.into_iter().map(|v| v.expect("all set")).collect();
    let (pk_parts, ck_parts) = key.split_at(npk);
    let range = if ck_parts.is_empty() {
        (Bound::Unbounded, Bound::Unbounded)
    } else {
        let refs: SmallVec<[&[u8]; 4]> = ck_parts.iter().map(|b| b.as_ref()).collect();
        let enc = clustering::encode(&table.clustering_types(), &refs);
        let end = clustering::prefix_end(&enc);
        (Bound::Included(enc.into()), Bound::Excluded(end.into()))
    };
    let slice = Slice {
        ranges: vec![range],
        reversed: false,
        limit: Some(1),
    };
    let pk = partition_key_of(pk_parts);
    let view = rc.data.read(table.id, &pk, &slice, rc.now_secs)?;

    let mut w = RowsWriter::new();
    for r in view.iter().flat_map(|v| v.rows.iter()) {
        let row = materialize(table, pk_parts, None, Some(r))?;
        if selected.is_empty() {
            row.values.iter().for_each(|v| w.push_cell(v.as_deref()));
        } else {
            for (i, _) in &selected {
                w.push_cell(row.values[*i].as_deref());
            }
        }
        w.finish_row();
    }
    let (row_count, content) = w.finish();
    let spec = |name: &str, i: usize| ColumnSpec {
        keyspace: table.keyspace.clone(),
        table: table.name.clone(),
        name: name.to_string(),
        ty: table.columns[i].ty.clone(),
    };
    let columns = if selected.is_empty() {
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| spec(&c.name, i))
            .collect()
    } else {
        selected.iter().map(|(i, n)| spec(n, *i)).collect()
    };
    Ok(Some(Rows {
        metadata: RowsMetadata {
            columns,
            paging_state: None,
            no_metadata: false,
            new_metadata_id: None,
        },
        row_count,
        content,
    }))
}
