//! `ORDER BY v ANN OF [...] LIMIT k`: candidates from the vector index (or, when a filter or a
//! partition key narrows the rows enough, every matching row), re-read, re-checked and ranked
//! by their current vector's exact similarity.

use std::collections::HashSet;
use std::ops::Bound;

use bytes::Bytes;
use sibyl_cql::ast::{OrderingTarget, SelectStatement};
use sibyl_index::vector::{decode_f32s, is_zero_vector};
use sibyl_index::{RowKey, Similarity};
use sibyl_protocol::messages::Rows;
use sibyl_storage::model::{PartitionKey, Slice};
use sibyl_types::CqlType;

use super::{
    by_partition, compile_relation, expand_keys, finish, index_lookup, index_specs, limit_value,
    partition_key_of, partition_key_parts, row_matches, rows_slice, whole_partition, ReadContext,
    Restriction,
};
use crate::data::IndexLookup;
use crate::error::{invalid, QueryResult};
use crate::rows::{materialize, RowData};
use crate::schema::{ColumnKind, Table};
use crate::values::{eval, EvalCtx, Evaluated};

pub const MAX_ANN_LIMIT: u64 = 1000;
/// A filter matching at most this many rows is ranked exactly instead of through the graph.
const EXACT_CANDIDATES: usize = 4096;
/// Graph candidates asked for stop growing here; beyond it the table is ranked exactly.
const MAX_GRAPH_CANDIDATES: usize = 65_536;

type Scored = (f32, RowData, Option<Vec<u8>>, PartitionKey);

pub fn is_ann(st: &SelectStatement) -> bool {
    st.order_by
        .iter()
        .any(|o| matches!(o.target, OrderingTarget::Ann(..)))
}

struct Ranker<'a> {
    table: &'a Table,
    filters: &'a [(usize, Restriction)],
    column: usize,
    query: &'a [f32],
    similarity: Similarity,
    seen: HashSet<RowKey>,
    found: Vec<Scored>,
}

impl Ranker<'_> {
    /// Reads the candidate rows of one partition and keeps those that pass every restriction.
    fn consider(&mut self, rc: &ReadContext, key: &PartitionKey, slice: &Slice) -> QueryResult<()> {
        let Some(view) = rc.data.read(self.table.id, key, slice, rc.now_secs)? else {
            return Ok(());
        };
        let pk = partition_key_parts(self.table, &view.key.key)?;
        for r in &view.rows {
            let rk = RowKey {
                partition: view.key.clone(),
                clustering: r.clustering.clone(),
            };
            if !self.seen.insert(rk) {
                continue;
            }
            let row = materialize(self.table, &pk, view.static_row.as_ref(), Some(r))?;
            if !row_matches(self.table, self.filters, &row)? {
                continue;
            }
            let Some(v) = row.values[self.column]
                .as_ref()
                .and_then(|b| decode_f32s(b))
            else {
                continue;
            };
            if v.len() != self.query.len() {
                continue;
            }
            let score = self.similarity.score(self.query, &v);
            let ck = (self.table.clustering_count > 0).then(|| r.clustering.to_vec());
            self.found.push((score, row, ck, view.key.clone()));
        }
        Ok(())
    }

    /// Considers candidate rows, one read per partition.
    fn consider_rows(&mut self, rc: &ReadContext, rows: &[RowKey]) -> QueryResult<()> {
        for group in by_partition(rows) {
            let unseen: Vec<&RowKey> = group.iter().filter(|r| !self.seen.contains(*r)).collect();
            let Some(first) = unseen.first() else {
                continue;
            };
            let slice = if whole_partition(self.table, unseen.iter().copied()) {
                Slice::all()
            } else {
                rows_slice(unseen.iter().copied())
            };
            self.consider(rc, &first.partition, &slice)?;
        }
        Ok(())
    }

    /// Every row of the table (the exact answer when the graph cannot give enough rows).
    fn consider_all(&mut self, rc: &ReadContext) -> QueryResult<()> {
        let mut from: Bound<PartitionKey> = Bound::Unbounded;
        loop {
            let views = rc.data.scan(
                self.table.id,
                from.clone(),
                Bound::Unbounded,
                &Slice::all(),
                256,
                rc.now_secs,
            )?;
            let n = views.len();
            for v in views {
                from = Bound::Excluded(v.key.clone());
                self.consider(rc, &v.key, &Slice::all())?;
            }
            if n < 256 {
                return Ok(());
            }
        }
    }
}

pub fn execute(
    table: &Table,
    st: &SelectStatement,
    ctx: &EvalCtx,
    rc: ReadContext,
) -> QueryResult<Rows> {
    let sel = crate::selection::compile(table, st, ctx)?;
    let (column_name, term) = match st.order_by.as_slice() {
        [o] => match &o.target {
            OrderingTarget::Ann(c, t) => {
                if o.descending {
                    return invalid("Descending ANN ordering is not supported");
                }
                (c, t)
            }
            _ => unreachable!("is_ann checked the ordering"),
        },
        _ => return invalid("ANN ordering does not support any other ordering"),
    };
    let Some(column) = table.column_index(column_name) else {
        return invalid(format!(
            "Undefined column name {column_name} in table {}.{}",
            table.keyspace, table.name
        ));
    };
    let col = &table.columns[column];
    let dims = match col.ty.unfrozen() {
        CqlType::Vector(e, n) if **e == CqlType::Float => *n as usize,
        _ => return invalid("ANN ordering is only supported on float vector indexes"),
    };
    let specs = index_specs(table);
    let Some(spec) = specs
        .iter()
        .find(|s| s.column.as_ref() == col.name.as_bytes() && s.graph.is_some())
    else {
        return invalid("ANN ordering by vector requires the column to be indexed");
    };
    let graph = spec.graph.expect("a vector index has graph parameters");
    let limit = match limit_value(&st.limit, "[limit]", ctx)? {
        Some(l) if l <= MAX_ANN_LIMIT => l as usize,
        other => {
            return invalid(format!(
                "Use of ANN OF in an ORDER BY clause requires a LIMIT that is not greater than {MAX_ANN_LIMIT}. LIMIT was {}",
                other.map_or("NO LIMIT".to_string(), |l| l.to_string())
            ))
        }
    };
    if sel.is_aggregate() || !st.group_by.is_empty() {
        return invalid("Vector ANN queries cannot be run with aggregation");
    }
    let query = match eval(term, &col.ty, column_name, ctx)? {
        Evaluated::Value(b) => decode_f32s(&b).filter(|v| v.len() == dims).ok_or_else(|| {
            crate::error::QueryError::Invalid(format!(
                "Invalid vector literal for {column_name} of type {}",
                col.ty.cql_name()
            ))
        })?,
        _ => return invalid(format!("Unsupported null value for column {column_name}")),
    };
    if graph.similarity == Similarity::Cosine && is_zero_vector(&query) {
        return invalid(
            "Zero and near-zero vectors cannot be indexed or queried with cosine similarity",
        );
    }

    let mut filters: Vec<(usize, Restriction)> = vec![];
    for rel in &st.where_clause {
        filters.extend(compile_relation(table, rel, ctx)?);
    }
    let npk = table.partition_key_count;
    // A fully restricted partition key reads those partitions; other restrictions need indexes.
    let mut pk_values: Vec<Option<Vec<Bytes>>> = vec![None; npk];
    for (i, r) in &filters {
        if *i < npk {
            match r {
                Restriction::Eq(b) => pk_values[*i] = Some(vec![b.clone()]),
                Restriction::In(v) => pk_values[*i] = Some(v.clone()),
                _ => {}
            }
        }
    }
    let full_pk = pk_values.iter().all(|v| v.is_some())
        && filters
            .iter()
            .all(|(i, r)| *i >= npk || matches!(r, Restriction::Eq(_) | Restriction::In(_)));
    let mut driving: Option<(String, IndexLookup)> = None;
    let mut cols: Vec<usize> = filters
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| *i >= npk)
        .collect();
    cols.dedup();
    for c in cols {
        let rs: Vec<&Restriction> = filters
            .iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, r)| r)
            .collect();
        let looked = if c == usize::MAX || table.columns[c].kind == ColumnKind::Clustering {
            None
        } else {
            index_lookup(table, &specs, c, &rs)?
        };
        match looked {
            Some(l) => {
                if driving.is_none() {
                    driving = Some(l)
                }
            }
            None if full_pk => {}
            None => {
                return invalid(
                    "ANN ordering by vector requires all restricted column(s) to be indexed",
                )
            }
        }
    }
    if !full_pk && pk_values.iter().any(|v| v.is_some()) && driving.is_none() {
        return invalid("ANN ordering by vector requires all restricted column(s) to be indexed");
    }

    let mut ranker = Ranker {
        table,
        filters: &filters,
        column,
        query: &query,
        similarity: graph.similarity,
        seen: HashSet::new(),
        found: vec![],
    };
    if full_pk {
        for k in expand_keys(&pk_values) {
            ranker.consider(&rc, &partition_key_of(&k), &Slice::all())?;
        }
    } else {
        let filtered = match &driving {
            Some((name, lookup)) => {
                let rows = rc.data.index_rows(table.id, name, lookup)?;
                if rows.len() <= EXACT_CANDIDATES {
                    ranker.consider_rows(&rc, &rows)?;
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if !filtered {
            let mut k = (limit * 2).max(10);
            loop {
                let rows = rc.data.index_rows(
                    table.id,
                    &spec.name,
                    &IndexLookup::Nearest {
                        vector: query.clone(),
                        k,
                    },
                )?;
                ranker.consider_rows(&rc, &rows)?;
                if ranker.found.len() >= limit || rows.len() < k {
                    break;
                }
                if k >= MAX_GRAPH_CANDIDATES {
                    ranker.consider_all(&rc)?;
                    break;
                }
                k = (k * 4).min(MAX_GRAPH_CANDIDATES);
            }
        }
    }
    let mut found = ranker.found;
    found.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.3.cmp(&b.3))
            .then_with(|| a.2.cmp(&b.2))
    });
    found.truncate(limit);
    let out = found.into_iter().map(|(_, r, ck, k)| (r, ck, k)).collect();
    finish(table, st, sel, out, None, ctx)
}
