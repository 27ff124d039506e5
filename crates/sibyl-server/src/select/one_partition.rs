//! The commonest reads, answered without the general planner: one partition named by its
//! whole key, then either one clustering key (a point read) or a clustering prefix with at
//! most a range on the next column (a slice), plain columns selected, and an answer that fits
//! in one page. A query of any other shape (functions, ORDER BY, IN, filtering, paging
//! state, static columns, ...) is left to the general path, which also owns every error this
//! path does not raise identically.

use bytes::Bytes;
use sibyl_cql::ast::{Operator, RelationLhs, SelectStatement, Selector};
use sibyl_protocol::messages::{Rows, RowsWriter};
use sibyl_storage::model::Slice;
use sibyl_types::clustering;
use smallvec::SmallVec;

use super::{
    eval_bytes, limit_value, narrow_after_prefix, partition_key_of, prefix_range,
    result_columns_of, ReadContext,
};
use crate::error::QueryResult;
use crate::rows::column_value;
use crate::schema::{ColumnKind, Table};
use crate::values::EvalCtx;

/// The rows of a one-partition read, or None when the statement has another shape.
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
        || st.per_partition_limit.is_some()
        || rc.paging_state.as_ref().is_some_and(|p| !p.is_empty())
        || table.columns.iter().any(|c| c.kind == ColumnKind::Static)
    {
        return Ok(None);
    }
    // Selection, then LIMIT, then restrictions: the order the general path reports errors in.
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
    if selected.is_empty() {
        // `SELECT *`: every column in table order.
        let all = table.columns.iter().enumerate();
        selected.extend(all.map(|(i, c)| (i, c.name.as_str())));
    }
    let limit = limit_value(&st.limit, "[limit]", ctx)?;
    let mut eq: SmallVec<[Option<Bytes>; 4]> = SmallVec::from_elem(None, nkey);
    let mut ranges: SmallVec<[(usize, Operator, Bytes); 2]> = SmallVec::new();
    for rel in &st.where_clause {
        let RelationLhs::Column(name) = &rel.lhs else {
            return Ok(None);
        };
        let Some(i) = table.column_index(name).filter(|i| *i < nkey) else {
            return Ok(None);
        };
        let value = || eval_bytes(&rel.rhs, &table.columns[i].ty, name, ctx);
        match rel.op {
            Operator::Eq if eq[i].is_none() => eq[i] = Some(value()?),
            Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte if i >= npk => {
                ranges.push((i, rel.op, value()?))
            }
            _ => return Ok(None),
        }
    }
    // The whole partition key; equalities on a clustering prefix; ranges only right after it.
    let prefix = eq[npk..].iter().take_while(|v| v.is_some()).count();
    if eq[..npk].iter().any(|v| v.is_none())
        || eq[npk + prefix..].iter().any(|v| v.is_some())
        || ranges.iter().any(|(i, ..)| *i != npk + prefix)
    {
        return Ok(None);
    }
    let single_row = npk + prefix == nkey;
    if !single_row {
        // Everything must fit in the first page: no paging state to make.
        let page = rc.page_size.filter(|p| *p > 0);
        if page.is_some_and(|p| limit.is_none_or(|l| l > p as u64)) {
            return Ok(None);
        }
    }
    let key: SmallVec<[Bytes; 4]> = eq.into_iter().flatten().collect();
    let (pk_parts, ck_prefix) = key.split_at(npk);
    let ck_types = table.clustering_types();
    let prefix_refs: SmallVec<[&[u8]; 4]> = ck_prefix.iter().map(|b| b.as_ref()).collect();
    let mut range = prefix_range(if prefix_refs.is_empty() {
        vec![]
    } else {
        clustering::encode(&ck_types[..prefix], &prefix_refs)
    });
    let cmps: SmallVec<[(Operator, &[u8]); 2]> =
        ranges.iter().map(|(_, op, v)| (*op, v.as_ref())).collect();
    narrow_after_prefix(&ck_types, &prefix_refs, &cmps, &mut range);
    let slice = Slice {
        ranges: vec![range],
        reversed: false,
        limit: if single_row {
            Some(1)
        } else {
            limit.map(|l| l as usize)
        },
    };
    let pk = partition_key_of(pk_parts);
    let view = rc.data.read(table.id, &pk, &slice, rc.now_secs)?;

    // Cells go straight from the rows read to the answer: only the selected columns are
    // looked at, and the clustering is decoded only when a clustering column is selected.
    let mut w = RowsWriter::new();
    let wants_clustering = selected.iter().any(|(i, _)| (npk..nkey).contains(i));
    for r in view.iter().flat_map(|v| v.rows.iter()) {
        let ck = if wants_clustering && !r.clustering.is_empty() {
            clustering::decode(&ck_types, &r.clustering)?
        } else {
            Vec::new()
        };
        for (i, _) in &selected {
            match *i {
                i if i < npk => w.push_cell(Some(&pk_parts[i])),
                i if i < nkey => w.push_cell(ck.get(i - npk).map(|c| c.as_slice())),
                i => w.push_cell(column_value(&table.columns[i], r)?.as_deref()),
            }
        }
        w.finish_row();
    }
    let columns = selected.iter().map(|(i, n)| (*n, &table.columns[*i].ty));
    Ok(Some(Rows::from_writer(
        result_columns_of(table, st, rc.prepared_columns, columns),
        None,
        w,
    )))
}
