//! SELECT: checking restrictions as Cassandra does, choosing partitions and clustering slices,
//! reading through the storage engine, filtering, selecting, ordering and paging.

use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sibyl_cql::ast::{
    Operator, OrderingTarget, Relation, RelationLhs, SelectStatement, Selector, Term,
};
use sibyl_protocol::messages::{ColumnSpec, ResultColumns, Rows, RowsWriter};
use sibyl_storage::model::{PartitionKey, PartitionView, Slice};
use sibyl_types::{clustering, murmur3, split_collection, split_map, CqlType, Value};

use crate::error::{invalid, QueryError, QueryResult};
use crate::rows::{materialize, RowData};
use crate::schema::{ColumnKind, Table};
use crate::selection::Selection;
use crate::values::{eval, EvalCtx, Evaluated};

mod ann;
mod one_partition;

pub use ann::is_ann;

const FILTERING_MSG: &str = "Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING";

/// A compiled restriction on one column's serialized value.
#[derive(Debug, Clone)]
enum Restriction {
    Eq(Bytes),
    In(Vec<Bytes>),
    Cmp(Operator, Bytes),
    Contains(Bytes),
    ContainsKey(Bytes),
    /// Multi-column comparison `(c_i..c_j) op (v..)`: column indexes and values.
    Tuple(Vec<usize>, Operator, Vec<Vec<Bytes>>),
    /// Equality on a text column whose index analyzes text (case folding, normalization).
    AnalyzedEq(sibyl_index::Analyzer, String),
}

fn column_of(table: &Table, name: &str) -> QueryResult<usize> {
    table.column_index(name).ok_or_else(|| {
        QueryError::Invalid(format!(
            "Undefined column name {name} in table {}.{}",
            table.keyspace, table.name
        ))
    })
}

pub fn selector_name(s: &Selector) -> String {
    match s {
        Selector::Column(c) => c.clone(),
        Selector::Function { name, args } => {
            let inner: Vec<String> = args.iter().map(selector_name).collect();
            let n = name.name.to_ascii_lowercase();
            match n.as_str() {
                "writetime" | "ttl" | "count" => format!("{n}({})", inner.join(", ")),
                _ => format!("system.{n}({})", inner.join(", ")),
            }
        }
        Selector::Star => "*".into(),
        Selector::Cast(s, _) => format!("cast({})", selector_name(s)),
        Selector::Term(t) => t.to_string(),
        Selector::Field(s, f) => format!("{}.{f}", selector_name(s)),
        Selector::Element(s, _) => format!("{}[..]", selector_name(s)),
        Selector::Arithmetic { .. } => "expr".into(),
    }
}

/// Where a SELECT reads from.
enum Partitions {
    /// These partition keys (serialized, composite when compound), in order.
    Keys(Vec<Vec<Bytes>>),
    /// A token range scan.
    Range(Bound<i64>, Bound<i64>),
    /// The rows a storage-attached index nominates within a token range.
    Indexed(Bound<i64>, Bound<i64>),
}

struct Plan {
    partitions: Partitions,
    slice_ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    /// Every restriction, checked on each row (the slices only narrow the reads).
    filters: Vec<(usize, Restriction)>,
    /// Restrictions are exactly the slices (no post-filtering needed, so limits can be pushed down).
    exact: bool,
    reversed: bool,
    /// Merge-sort rows across partitions by clustering (ORDER BY with IN on the partition key).
    sort_across_partitions: bool,
    /// The index lookup that drives an `Indexed` read.
    index: Option<(String, crate::data::IndexLookup)>,
}

pub(crate) fn index_specs(table: &Table) -> Vec<sibyl_index::IndexSpec> {
    table
        .indexes
        .iter()
        .filter_map(|d| crate::indexes::spec_of(table, d))
        .collect()
}

/// The lookup an index on column `i` offers for the restrictions on it, if any; Err when the
/// column has only a vector index.
fn index_lookup(
    table: &Table,
    specs: &[sibyl_index::IndexSpec],
    i: usize,
    rs: &[&Restriction],
) -> QueryResult<Option<(String, crate::data::IndexLookup)>> {
    use crate::data::IndexLookup;
    use sibyl_index::Target;
    let col = &table.columns[i];
    let on_col: Vec<&sibyl_index::IndexSpec> = specs
        .iter()
        .filter(|s| s.column.as_ref() == col.name.as_bytes())
        .collect();
    if !on_col.is_empty() && on_col.iter().all(|s| s.graph.is_some()) {
        return invalid("Vector indexes only support ANN queries");
    }
    for spec in on_col.iter().filter(|s| s.graph.is_none()) {
        let multicell = col.ty.is_multicell();
        let lookup = match (rs, spec.target) {
            ([Restriction::Eq(b)], Target::Values) if !multicell => {
                Some(IndexLookup::Eq(b.clone()))
            }
            ([Restriction::AnalyzedEq(_, _)], Target::Values) if !multicell => None,
            ([Restriction::Eq(b)], Target::Full) => Some(IndexLookup::Eq(b.clone())),
            ([Restriction::Contains(b)], Target::Values) if multicell => {
                Some(IndexLookup::Eq(b.clone()))
            }
            ([Restriction::ContainsKey(b)], Target::Keys) => Some(IndexLookup::Eq(b.clone())),
            (rs, Target::Values)
                if !multicell
                    && rs
                        .iter()
                        .all(|r| matches!(r, Restriction::Cmp(op, _) if *op != Operator::Neq)) =>
            {
                let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
                for r in rs {
                    let Restriction::Cmp(op, v) = r else { continue };
                    match op {
                        Operator::Gt => lo = Bound::Excluded(v.clone()),
                        Operator::Gte => lo = Bound::Included(v.clone()),
                        Operator::Lt => hi = Bound::Excluded(v.clone()),
                        _ => hi = Bound::Included(v.clone()),
                    }
                }
                Some(IndexLookup::Range(lo, hi))
            }
            _ => None,
        };
        if lookup.is_some() {
            return Ok(lookup.map(|l| (spec.name.clone(), l)));
        }
    }
    // Analyzed equality: the index looks up the raw query value and analyzes it itself.
    if let [Restriction::AnalyzedEq(..)] = rs {
        if let Some(spec) = on_col
            .iter()
            .find(|s| s.graph.is_none() && s.target == Target::Values)
        {
            return Ok(Some((spec.name.clone(), IndexLookup::Eq(Bytes::new()))));
        }
    }
    Ok(None)
}

fn eval_bytes(term: &Term, ty: &CqlType, receiver: &str, ctx: &EvalCtx) -> QueryResult<Bytes> {
    match eval(term, ty, receiver, ctx)? {
        Evaluated::Value(b) => Ok(b),
        Evaluated::Null => invalid(format!(
            "Invalid null value in condition for column {receiver}"
        )),
        Evaluated::Unset => invalid(format!("Invalid unset value for column {receiver}")),
    }
}

/// The candidates of `IN (...)` or `IN ?`.
fn in_values(rhs: &Term, ty: &CqlType, receiver: &str, ctx: &EvalCtx) -> QueryResult<Vec<Bytes>> {
    match rhs {
        Term::Tuple(items) | Term::List(items) => items
            .iter()
            .map(|t| eval_bytes(t, ty, receiver, ctx))
            .collect(),
        Term::Bind(_) => {
            let list_ty = CqlType::List(Box::new(ty.clone()));
            match eval(rhs, &list_ty, receiver, ctx)? {
                Evaluated::Value(b) => Ok(split_collection(&b)?
                    .into_iter()
                    .map(Bytes::copy_from_slice)
                    .collect()),
                _ => invalid(format!(
                    "Invalid null value for IN restriction on {receiver}"
                )),
            }
        }
        other => Ok(vec![eval_bytes(other, ty, receiver, ctx)?]),
    }
}

fn compile_relation(
    table: &Table,
    rel: &Relation,
    ctx: &EvalCtx,
) -> QueryResult<Vec<(usize, Restriction)>> {
    match &rel.lhs {
        RelationLhs::Column(name) => {
            let i = column_of(table, name)?;
            let col = &table.columns[i];
            let r = match rel.op {
                Operator::Eq => Restriction::Eq(eval_bytes(&rel.rhs, &col.ty, name, ctx)?),
                Operator::In => Restriction::In(in_values(&rel.rhs, &col.ty, name, ctx)?),
                Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte | Operator::Neq => {
                    if col.ty.is_multicell() {
                        return invalid(format!("Slice restrictions are not supported on collections (column {name})"));
                    }
                    Restriction::Cmp(rel.op, eval_bytes(&rel.rhs, &col.ty, name, ctx)?)
                }
                Operator::Contains => {
                    let elem = match col.ty.unfrozen() {
                        CqlType::List(e) | CqlType::Set(e) => (**e).clone(),
                        CqlType::Map(_, v) => (**v).clone(),
                        _ => return invalid(format!("Cannot use CONTAINS on non-collection column {name}")),
                    };
                    Restriction::Contains(eval_bytes(&rel.rhs, &elem, name, ctx)?)
                }
                Operator::ContainsKey => match col.ty.unfrozen() {
                    CqlType::Map(k, _) => Restriction::ContainsKey(eval_bytes(&rel.rhs, k, name, ctx)?),
                    _ => return invalid(format!("Cannot use CONTAINS KEY on non-map column {name}")),
                },
                Operator::Like => return invalid(format!("LIKE restriction is only supported on properly indexed columns. {name} LIKE ... is not valid.")),
                Operator::IsNot => return invalid("Unsupported \"IS NOT\" relation"),
            };
            Ok(vec![(i, r)])
        }
        RelationLhs::Columns(names) => {
            let idx: Vec<usize> = names
                .iter()
                .map(|n| column_of(table, n))
                .collect::<QueryResult<_>>()?;
            for (k, &i) in idx.iter().enumerate() {
                if table.columns[i].kind != ColumnKind::Clustering {
                    return invalid(format!("Multi-column relations can only be applied to clustering columns but was applied to: {}", names[k]));
                }
            }
            let tuple_of = |t: &Term| -> QueryResult<Vec<Bytes>> {
                match t {
                    Term::Tuple(items) if items.len() == idx.len() => items
                        .iter()
                        .zip(&idx)
                        .map(|(t, &i)| {
                            eval_bytes(t, &table.columns[i].ty, &table.columns[i].name, ctx)
                        })
                        .collect(),
                    Term::Bind(_) => {
                        let tty = CqlType::Tuple(
                            idx.iter().map(|&i| table.columns[i].ty.clone()).collect(),
                        );
                        let b = eval_bytes(t, &tty, "tuple", ctx)?;
                        Ok(sibyl_types::split_tuple(idx.len(), &b)?
                            .into_iter()
                            .map(|x| Bytes::copy_from_slice(x.unwrap_or_default()))
                            .collect())
                    }
                    _ => invalid(format!(
                        "Expected {} elements in value tuple, but got a different number",
                        idx.len()
                    )),
                }
            };
            let values = match (&rel.op, &rel.rhs) {
                (Operator::In, Term::Tuple(items))
                    if items
                        .iter()
                        .all(|i| matches!(i, Term::Tuple(_) | Term::Bind(_)))
                        && !(idx.len() > 1
                            && items.len() == idx.len()
                            && !items.iter().any(|i| matches!(i, Term::Tuple(_)))) =>
                {
                    items.iter().map(tuple_of).collect::<QueryResult<_>>()?
                }
                (Operator::In, t) => vec![tuple_of(t)?],
                (_, t) => vec![tuple_of(t)?],
            };
            Ok(vec![(usize::MAX, Restriction::Tuple(idx, rel.op, values))])
        }
        RelationLhs::Token(_) => Ok(vec![]),
        RelationLhs::MapElement(name, _) => invalid(format!(
            "Map-entry equality predicates on frozen map column {name} are not supported"
        )),
    }
}

fn token_bounds(
    table: &Table,
    rels: &[Relation],
    ctx: &EvalCtx,
) -> QueryResult<Option<(Bound<i64>, Bound<i64>)>> {
    let mut lo = Bound::Unbounded;
    let mut hi = Bound::Unbounded;
    let mut any = false;
    for rel in rels {
        let RelationLhs::Token(cols) = &rel.lhs else {
            continue;
        };
        let pk: Vec<&str> = table
            .partition_key()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        if cols.iter().map(|s| s.as_str()).collect::<Vec<_>>() != pk {
            return invalid(format!(
                "The token function arguments must be in the partition key order: {}",
                pk.join(", ")
            ));
        }
        any = true;
        let t = match &rel.rhs {
            // `token(pk) > token(value, ...)`: the token of a key given by its components.
            Term::Function { name, args } if name.name.eq_ignore_ascii_case("token") => {
                let cols = table.partition_key();
                if args.len() != cols.len() {
                    return invalid(format!(
                        "Invalid number of arguments in call to function system.token: {} required but {} provided",
                        cols.len(),
                        args.len()
                    ));
                }
                let parts = args
                    .iter()
                    .zip(cols.iter())
                    .map(|(a, c)| eval_bytes(a, &c.ty, &c.name, ctx))
                    .collect::<QueryResult<Vec<Bytes>>>()?;
                partition_key_of(&parts).token
            }
            rhs => {
                let b = eval_bytes(rhs, &CqlType::Bigint, "partition key token", ctx)?;
                i64::from_be_bytes(
                    b.as_ref()
                        .try_into()
                        .map_err(|_| QueryError::Invalid("Invalid token".into()))?,
                )
            }
        };
        match rel.op {
            Operator::Gt => lo = Bound::Excluded(t),
            Operator::Gte => lo = Bound::Included(t),
            Operator::Lt => hi = Bound::Excluded(t),
            Operator::Lte => hi = Bound::Included(t),
            Operator::Eq => {
                lo = Bound::Included(t);
                hi = Bound::Included(t);
            }
            _ => return invalid("Only EQ, IN and slice restrictions are supported on token()"),
        }
    }
    Ok(any.then_some((lo, hi)))
}

fn plan(table: &Table, st: &SelectStatement, ctx: &EvalCtx) -> QueryResult<Plan> {
    let mut filters: Vec<(usize, Restriction)> = vec![];
    for rel in &st.where_clause {
        filters.extend(compile_relation(table, rel, ctx)?);
    }
    let token = token_bounds(table, &st.where_clause, ctx)?;
    let npk = table.partition_key_count;
    let nck = table.clustering_count;
    let mut needs_filtering = false;
    let specs = index_specs(table);
    // Equality through an analyzing text index compares analyzed forms, on lookup and recheck.
    let mut analyzed_raw: Vec<(usize, Bytes)> = vec![];
    for (i, r) in filters.iter_mut() {
        if *i == usize::MAX || *i < npk + nck {
            continue;
        }
        let col = &table.columns[*i];
        if let Restriction::Eq(b) = r {
            if let Some(spec) = specs.iter().find(|s| {
                s.column.as_ref() == col.name.as_bytes()
                    && s.graph.is_none()
                    && !s.analyzer.is_identity()
                    && matches!(col.ty, CqlType::Text | CqlType::Ascii)
            }) {
                analyzed_raw.push((*i, b.clone()));
                let text = spec.analyzer.analyze(&String::from_utf8_lossy(b));
                *r = Restriction::AnalyzedEq(spec.analyzer, text);
            }
        }
    }

    // Partition key: every component by EQ/IN, or a range.
    let mut pk_values: Vec<Option<Vec<Bytes>>> = vec![None; npk];
    let mut pk_restricted_other = false;
    for (i, r) in &filters {
        if *i < npk {
            match r {
                Restriction::Eq(b) => pk_values[*i] = Some(vec![b.clone()]),
                Restriction::In(v) => pk_values[*i] = Some(v.clone()),
                _ => pk_restricted_other = true,
            }
        }
    }
    let full_pk = pk_values.iter().all(|v| v.is_some()) && !pk_restricted_other;
    let partitions = if full_pk && token.is_none() {
        let mut keys = expand_keys(&pk_values);
        if npk == 1 {
            let ty = &table.columns[0].ty;
            keys.sort_by(|a, b| Value::compare(ty, &a[0], &b[0]));
        }
        keys.dedup();
        Partitions::Keys(keys)
    } else {
        if pk_restricted_other && !st.allow_filtering {
            return invalid("Only EQ and IN relation are supported on the partition key (unless you use the token() function or allow filtering)");
        }
        if pk_values.iter().any(|v| v.is_some()) || pk_restricted_other {
            needs_filtering = true;
        }
        let (lo, hi) = token.unwrap_or((Bound::Unbounded, Bound::Unbounded));
        Partitions::Range(lo, hi)
    };
    let range_query = matches!(partitions, Partitions::Range(..));

    // Clustering: a prefix of EQ/IN, then at most one slice.
    let ck_types = table.clustering_types();
    let mut prefixes: Vec<Vec<Bytes>> = vec![vec![]];
    // The range restrictions on the column right after the equality prefix.
    let mut cmps: Vec<(Operator, &[u8])> = vec![];
    let mut exact = true;
    let mut stop = false;
    let restricted = |j: usize| {
        filters
            .iter()
            .filter(move |(i, _)| *i == npk + j)
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
    };
    let tuple_restr: Vec<&Restriction> = filters
        .iter()
        .filter(|(i, _)| *i == usize::MAX)
        .map(|(_, r)| r)
        .collect();
    if !tuple_restr.is_empty() {
        exact = false;
    }
    for j in 0..nck {
        let rs = restricted(j);
        if rs.is_empty() {
            if (j + 1..nck).any(|k| !restricted(k).is_empty())
                && !st.allow_filtering
                && !range_query
            {
                let next = (j + 1..nck).find(|k| !restricted(*k).is_empty()).unwrap();
                return invalid(format!(
                    "PRIMARY KEY column \"{}\" cannot be restricted as preceding column \"{}\" is not restricted",
                    table.columns[npk + next].name, table.columns[npk + j].name
                ));
            }
            stop = true;
        }
        if stop {
            if !rs.is_empty() {
                exact = false;
                needs_filtering = true;
            }
            continue;
        }
        match rs.as_slice() {
            [Restriction::Eq(b)] => prefixes.iter_mut().for_each(|p| p.push(b.clone())),
            [Restriction::In(vals)] => {
                let mut next = vec![];
                for p in &prefixes {
                    for v in vals {
                        let mut p2 = p.clone();
                        p2.push(v.clone());
                        next.push(p2);
                    }
                }
                prefixes = next;
            }
            rs if rs
                .iter()
                .all(|r| matches!(r, Restriction::Cmp(op, _) if *op != Operator::Neq)) =>
            {
                cmps = rs
                    .iter()
                    .filter_map(|r| match r {
                        Restriction::Cmp(op, v) => Some((*op, v.as_ref())),
                        _ => None,
                    })
                    .collect();
                stop = true;
            }
            _ => {
                exact = false;
                stop = true;
            }
        }
    }
    if range_query
        && filters
            .iter()
            .any(|(i, _)| *i >= npk && (*i < npk + nck || *i == usize::MAX))
    {
        needs_filtering = true;
    }
    let mut regular_cols: Vec<usize> = filters
        .iter()
        .filter(|(i, _)| *i != usize::MAX && *i >= npk + nck)
        .map(|(i, _)| *i)
        .collect();
    regular_cols.dedup();
    let mut index: Option<(String, crate::data::IndexLookup)> = None;
    for &c in &regular_cols {
        exact = false;
        let rs: Vec<&Restriction> = filters
            .iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, r)| r)
            .collect();
        match index_lookup(table, &specs, c, &rs)? {
            Some((name, mut lookup)) => {
                if let Some((_, raw)) = analyzed_raw.iter().find(|(i, _)| *i == c) {
                    lookup = crate::data::IndexLookup::Eq(raw.clone());
                }
                // An equality narrows more than a range.
                let better = matches!(
                    (&index, &lookup),
                    (None, _)
                        | (
                            Some((_, crate::data::IndexLookup::Range(..))),
                            crate::data::IndexLookup::Eq(_)
                        )
                );
                if better {
                    index = Some((name, lookup));
                }
            }
            None => needs_filtering = true,
        }
    }
    let partitions = match (partitions, &index) {
        (Partitions::Range(lo, hi), Some(_)) => Partitions::Indexed(lo, hi),
        (p, _) => p,
    };
    if needs_filtering && !st.allow_filtering {
        return invalid(FILTERING_MSG);
    }
    if filters.iter().any(|(i, _)| *i < npk) && range_query {
        exact = false;
    }

    // Encoded slice ranges.
    let mut encoded: Vec<Vec<u8>> = prefixes
        .iter()
        .map(|p| {
            let refs: Vec<&[u8]> = p.iter().map(|b| b.as_ref()).collect();
            clustering::encode(&ck_types[..p.len()], &refs)
        })
        .collect();
    encoded.sort();
    encoded.dedup();
    let mut slice_ranges = vec![];
    for enc in encoded {
        let mut range = prefix_range(enc.clone());
        if !cmps.is_empty() {
            // Every IN-expanded prefix has the same length; the bound is built on this one.
            let this_prefix = clustering::decode(&ck_types[..prefixes[0].len()], &enc)?;
            let refs: Vec<&[u8]> = this_prefix.iter().map(|b| b.as_slice()).collect();
            narrow_after_prefix(&ck_types, &refs, &cmps, &mut range);
        }
        slice_ranges.push(range);
    }

    // ORDER BY: clustering columns in declared order, all with or all against their direction.
    let mut reversed = false;
    if !st.order_by.is_empty() {
        if range_query {
            return invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN.");
        }
        let mut dir: Option<bool> = None;
        for (k, o) in st.order_by.iter().enumerate() {
            let OrderingTarget::Column(name) = &o.target else {
                return invalid(
                    "ANN ordering requires a storage-attached index on the vector column",
                );
            };
            let i = column_of(table, name)?;
            if table.columns[i].kind != ColumnKind::Clustering {
                return invalid(format!("Order by is currently only supported on the clustered columns of the PRIMARY KEY, got {name}"));
            }
            if i - npk != k {
                return invalid("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY");
            }
            let flip = o.descending != table.columns[i].reversed;
            if dir.is_some_and(|d| d != flip) {
                return invalid("Unsupported order by relation".to_string());
            }
            dir = Some(flip);
        }
        reversed = dir.unwrap_or(false);
    }
    let sort_across_partitions =
        !st.order_by.is_empty() && matches!(&partitions, Partitions::Keys(k) if k.len() > 1);
    Ok(Plan {
        partitions,
        slice_ranges,
        filters,
        exact,
        reversed,
        sort_across_partitions,
        index,
    })
}

pub fn cmp_op(ord: Ordering, op: Operator) -> bool {
    match op {
        Operator::Eq => ord == Ordering::Equal,
        Operator::Neq => ord != Ordering::Equal,
        Operator::Lt => ord == Ordering::Less,
        Operator::Lte => ord != Ordering::Greater,
        Operator::Gt => ord == Ordering::Greater,
        Operator::Gte => ord != Ordering::Less,
        _ => false,
    }
}

fn row_matches(
    table: &Table,
    filters: &[(usize, Restriction)],
    row: &RowData,
) -> QueryResult<bool> {
    for (i, r) in filters {
        if let Restriction::Tuple(idx, op, candidates) = r {
            let ok = candidates.iter().any(|vals| {
                let mut ord = Ordering::Equal;
                for (k, &c) in idx.iter().enumerate() {
                    let Some(v) = &row.values[c] else {
                        return false;
                    };
                    let col = &table.columns[c];
                    let mut o = Value::compare(&col.ty, v, &vals[k]);
                    if col.reversed {
                        // Tuple comparisons follow clustering order in Cassandra.
                        o = o.reverse();
                    }
                    if o != Ordering::Equal {
                        ord = o;
                        break;
                    }
                }
                if *op == Operator::In {
                    ord == Ordering::Equal
                } else {
                    cmp_op(ord, *op)
                }
            });
            if !ok {
                return Ok(false);
            }
            continue;
        }
        let col = &table.columns[*i];
        let Some(v) = &row.values[*i] else {
            return Ok(false);
        };
        let ok = match r {
            Restriction::Eq(b) => Value::compare(&col.ty, v, b) == Ordering::Equal,
            Restriction::In(bs) => bs
                .iter()
                .any(|b| Value::compare(&col.ty, v, b) == Ordering::Equal),
            Restriction::Cmp(op, b) => cmp_op(Value::compare(&col.ty, v, b), *op),
            Restriction::Contains(b) => match col.ty.unfrozen() {
                CqlType::List(e) | CqlType::Set(e) => split_collection(v)?
                    .iter()
                    .any(|x| Value::compare(e, x, b) == Ordering::Equal),
                CqlType::Map(_, vt) => split_map(v)?
                    .iter()
                    .any(|(_, x)| Value::compare(vt, x, b) == Ordering::Equal),
                _ => false,
            },
            Restriction::ContainsKey(b) => match col.ty.unfrozen() {
                CqlType::Map(kt, _) => split_map(v)?
                    .iter()
                    .any(|(k, _)| Value::compare(kt, k, b) == Ordering::Equal),
                _ => false,
            },
            Restriction::Tuple(..) => true,
            Restriction::AnalyzedEq(a, text) => a.analyze(&String::from_utf8_lossy(v)) == *text,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where a paged query resumes.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct PagingState {
    /// Serialized partition key of the last partition returned from.
    key: Vec<u8>,
    token: i64,
    /// Encoded clustering of the last row returned; None when the partition was finished.
    clustering: Option<Vec<u8>>,
    /// Rows still allowed by LIMIT.
    remaining: Option<u64>,
    /// Rows already returned from the partition of `key` (for PER PARTITION LIMIT).
    #[serde(default)]
    emitted: u64,
}

/// Where a paged GROUP BY query resumes: pages count groups, as Cassandra's group-by pager.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct GroupPagingState {
    /// Groups already returned.
    done: u64,
    /// GROUP BY column values of the last group returned.
    last: Vec<Option<Vec<u8>>>,
}

pub struct ReadContext<'a> {
    pub data: &'a dyn crate::data::DataSource,
    pub now_secs: i64,
    pub page_size: Option<usize>,
    pub paging_state: Option<Bytes>,
    pub virtual_rows: Option<Vec<Vec<Option<Value>>>>,
    /// The result columns a prepared statement announced, with the table they came from: its
    /// answers reuse them (and their encoded form) while the table still yields the same ones.
    pub prepared_columns: Option<(&'a ResultColumns, Option<&'a Table>)>,
}

fn limit_value(t: &Option<Term>, what: &str, ctx: &EvalCtx) -> QueryResult<Option<u64>> {
    let Some(t) = t else { return Ok(None) };
    match eval(t, &CqlType::Int, what, ctx)? {
        Evaluated::Value(b) => {
            let n = i32::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| QueryError::Invalid("Invalid limit".into()))?,
            );
            if n <= 0 {
                return invalid(format!(
                    "{} must be strictly positive",
                    if what == "[limit]" {
                        "LIMIT"
                    } else {
                        "PER PARTITION LIMIT"
                    }
                ));
            }
            Ok(Some(n as u64))
        }
        Evaluated::Null => invalid("Invalid null value of limit"),
        Evaluated::Unset => Ok(None),
    }
}

pub fn partition_key_parts(table: &Table, key: &[u8]) -> QueryResult<Vec<Bytes>> {
    if table.partition_key_count == 1 {
        return Ok(vec![Bytes::copy_from_slice(key)]);
    }
    Ok(
        murmur3::decompose_partition_key(table.partition_key_count, key)?
            .into_iter()
            .map(Bytes::from)
            .collect(),
    )
}

pub fn partition_key_of(parts: &[Bytes]) -> PartitionKey {
    let key = if parts.len() == 1 {
        parts[0].clone()
    } else {
        let refs: Vec<&[u8]> = parts.iter().map(|b| b.as_ref()).collect();
        Bytes::from(murmur3::compose_partition_key(&refs))
    };
    PartitionKey {
        token: murmur3::token(&key),
        key,
    }
}

/// Every combination of the EQ/IN values of the partition key components, in order.
fn expand_keys(pk_values: &[Option<Vec<Bytes>>]) -> Vec<Vec<Bytes>> {
    let mut keys: Vec<Vec<Bytes>> = vec![vec![]];
    for vals in pk_values.iter().flatten() {
        let mut next = Vec::with_capacity(keys.len() * vals.len());
        for k in &keys {
            for v in vals {
                let mut k2 = k.clone();
                k2.push(v.clone());
                next.push(k2);
            }
        }
        keys = next;
    }
    keys
}

/// Index candidates (sorted) grouped by partition.
fn by_partition(rows: &[sibyl_index::RowKey]) -> impl Iterator<Item = &[sibyl_index::RowKey]> {
    rows.chunk_by(|a, b| a.partition == b.partition)
}

/// A candidate without a clustering (static row, or no clustering columns) stands for the
/// whole partition.
fn whole_partition<'a>(
    table: &Table,
    mut group: impl Iterator<Item = &'a sibyl_index::RowKey>,
) -> bool {
    table.clustering_count == 0 || group.any(|r| r.clustering.is_empty())
}

/// A slice reading exactly these rows of one partition.
fn rows_slice<'a>(rows: impl Iterator<Item = &'a sibyl_index::RowKey>) -> Slice {
    Slice {
        ranges: rows
            .map(|r| {
                (
                    Bound::Included(r.clustering.clone()),
                    Bound::Included(r.clustering.clone()),
                )
            })
            .collect(),
        reversed: false,
        limit: None,
    }
}

/// Runs a SELECT and builds the ROWS result.
pub fn execute(
    table: &Table,
    st: &SelectStatement,
    ctx: &EvalCtx,
    rc: ReadContext,
) -> QueryResult<Rows> {
    if ann::is_ann(st) && !table.is_virtual {
        return ann::execute(table, st, ctx, rc);
    }
    if !table.is_virtual {
        if let Some(rows) = one_partition::try_execute(table, st, ctx, &rc)? {
            return Ok(rows);
        }
    }
    let sel = crate::selection::compile(table, st, ctx)?;
    let user_limit = limit_value(&st.limit, "[limit]", ctx)?;
    let user_per_partition = limit_value(&st.per_partition_limit, "[per_partition_limit]", ctx)?;
    let aggregate = sel.is_aggregate() || !st.group_by.is_empty();
    // Aggregates read every row: LIMIT and PER PARTITION LIMIT count result rows (groups).
    let (limit, per_partition) = if aggregate {
        (None, None)
    } else {
        (user_limit, user_per_partition)
    };
    if !st.order_by.is_empty()
        && rc
            .page_size
            .is_some_and(|p| p > 0 && user_limit.is_none_or(|l| l > p as u64))
        && partition_key_in(table, st)
    {
        return invalid("Cannot page queries with both ORDER BY and a IN restriction on the partition key; you must either remove the ORDER BY or the IN and sort client side, or disable paging for this query");
    }
    let mut state: Option<PagingState> = match &rc.paging_state {
        Some(b) if !b.is_empty() && !aggregate => Some(
            serde_json::from_slice(b)
                .map_err(|_| QueryError::Protocol("Invalid value for the paging state".into()))?,
        ),
        _ => None,
    };
    let page_size = if aggregate {
        None
    } else {
        rc.page_size.filter(|p| *p > 0)
    };
    let mut remaining = state.as_ref().map(|s| s.remaining).unwrap_or(limit);
    let mut out: Vec<(RowData, Option<Vec<u8>>, PartitionKey)> = vec![];
    let mut next_state: Option<PagingState> = None;

    if table.is_virtual {
        let mut rows = vec![];
        for vals in rc.virtual_rows.unwrap_or_default() {
            let mut data = RowData::empty(table.columns.len());
            for (i, v) in vals.into_iter().enumerate() {
                if let (Some(v), Some(col)) = (v, table.columns.get(i)) {
                    let mut b = vec![];
                    v.serialize_as(&col.ty, &mut b);
                    data.values[i] = Some(Bytes::from(b));
                }
            }
            rows.push(data);
        }
        let mut filters = vec![];
        for rel in &st.where_clause {
            filters.extend(compile_relation(table, rel, ctx)?);
        }
        for r in rows {
            if row_matches(table, &filters, &r)? {
                if remaining == Some(0) {
                    break;
                }
                remaining = remaining.map(|x| x - 1);
                out.push((
                    r,
                    None,
                    PartitionKey {
                        token: 0,
                        key: Bytes::new(),
                    },
                ));
            }
        }
        return finish(table, st, sel, out, None, ctx);
    }

    let p = plan(table, st, ctx)?;
    if p.sort_across_partitions {
        // ORDER BY across IN partitions: every row is read, sorted, then cut to the LIMIT.
        remaining = None;
    }
    let page_cap = page_size.map(|p| p as u64);
    let want = |out_len: usize, remaining: Option<u64>| -> Option<u64> {
        let by_page = page_cap.map(|p| p.saturating_sub(out_len as u64));
        match (by_page, remaining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let slice_for = |resume: Option<&Vec<u8>>, max_rows: Option<u64>| -> Slice {
        let mut ranges = p.slice_ranges.clone();
        if let Some(c) = resume {
            let c = Bytes::from(c.clone());
            ranges = ranges
                .into_iter()
                .filter_map(|(lo, hi)| {
                    if p.reversed {
                        let new_hi = Bound::Excluded(c.clone());
                        if bound_before(&lo, &c) {
                            Some((lo, tighter_hi(hi, new_hi)))
                        } else {
                            None
                        }
                    } else {
                        let new_lo = Bound::Excluded(c.clone());
                        if bound_after(&hi, &c) {
                            Some((tighter_lo(lo, new_lo), hi))
                        } else {
                            None
                        }
                    }
                })
                .collect();
        }
        let mut limit = if p.exact && !p.sort_across_partitions {
            max_rows.map(|m| m as usize)
        } else {
            None
        };
        if let Some(pp) = per_partition {
            if p.exact {
                limit = Some(limit.map_or(pp as usize, |l| l.min(pp as usize)));
            }
        }
        if st.distinct {
            limit = Some(1);
        }
        Slice {
            ranges,
            reversed: p.reversed,
            limit,
        }
    };

    // Reads one partition's rows into `out`; returns false when the page or limit is full.
    // `already`: rows returned from this partition by earlier pages; `last_emitted`: rows
    // returned from the partition of the last row in `out`.
    let take_partition = |view: PartitionView,
                          resume: Option<&Vec<u8>>,
                          already: u64,
                          out: &mut Vec<(RowData, Option<Vec<u8>>, PartitionKey)>,
                          remaining: &mut Option<u64>,
                          next_state: &mut Option<PagingState>,
                          last_emitted: &mut u64|
     -> QueryResult<bool> {
        let pk_parts = partition_key_parts(table, &view.key.key)?;
        let mut emitted_in_partition = already;
        let static_only =
            view.rows.is_empty()
                && view.static_row.is_some()
                && resume.is_none()
                && (p.slice_ranges.iter().all(|(lo, hi)| {
                    matches!(lo, Bound::Unbounded) && matches!(hi, Bound::Unbounded)
                }) || table.clustering_count == 0);
        let candidates: Vec<(RowData, Option<Vec<u8>>)> = if static_only || st.distinct {
            vec![(
                materialize(table, &pk_parts, view.static_row.as_ref(), None)?,
                None,
            )]
        } else {
            view.rows
                .iter()
                .map(|r| {
                    Ok((
                        materialize(table, &pk_parts, view.static_row.as_ref(), Some(r))?,
                        Some(r.clustering.to_vec()),
                    ))
                })
                .collect::<QueryResult<_>>()?
        };
        for (row, ck) in candidates {
            if !row_matches(table, &p.filters, &row)? {
                continue;
            }
            if remaining == &Some(0) || per_partition.is_some_and(|pp| emitted_in_partition >= pp) {
                break;
            }
            if page_cap.is_some_and(|cap| out.len() as u64 >= cap) && !p.sort_across_partitions {
                // Resume after the last row handed out, which may belong to an earlier partition.
                *next_state = out.last().map(|(_, ck, key)| PagingState {
                    key: key.key.to_vec(),
                    token: key.token,
                    clustering: ck.clone(),
                    remaining: *remaining,
                    emitted: *last_emitted,
                });
                return Ok(false);
            }
            *remaining = remaining.map(|r| r - 1);
            emitted_in_partition += 1;
            *last_emitted = emitted_in_partition;
            out.push((row, ck, view.key.clone()));
        }
        Ok(true)
    };

    let mut last_emitted = 0u64;
    match &p.partitions {
        Partitions::Keys(keys) => {
            let mut start = 0;
            let mut resume: Option<Vec<u8>> = None;
            let mut already = 0;
            if let Some(s) = state.take() {
                let pos = keys
                    .iter()
                    .position(|k| partition_key_of(k).key.as_ref() == s.key.as_slice());
                match (pos, s.clustering) {
                    (Some(i), Some(c)) => {
                        start = i;
                        resume = Some(c);
                        already = s.emitted;
                    }
                    (Some(i), None) => start = i + 1,
                    (None, _) => start = keys.len(),
                }
            }
            for (n, k) in keys.iter().enumerate().skip(start) {
                let pk = partition_key_of(k);
                let (r, already) = if n == start {
                    (resume.as_ref(), already)
                } else {
                    (None, 0)
                };
                let slice = slice_for(r, want(out.len(), remaining).map(|w| w + 1));
                let Some(view) = rc.data.read(table.id, &pk, &slice, rc.now_secs)? else {
                    continue;
                };
                if !take_partition(
                    view,
                    r,
                    already,
                    &mut out,
                    &mut remaining,
                    &mut next_state,
                    &mut last_emitted,
                )? {
                    break;
                }
                if remaining == Some(0) {
                    break;
                }
            }
        }
        Partitions::Indexed(..) => {}
        Partitions::Range(lo, hi) => {
            let mut from: Bound<PartitionKey> = match lo {
                Bound::Included(t) => Bound::Included(PartitionKey {
                    token: *t,
                    key: Bytes::new(),
                }),
                Bound::Excluded(t) => Bound::Excluded(PartitionKey {
                    token: *t,
                    key: Bytes::from(vec![0xFFu8; 1]),
                })
                .map_token_excluded(),
                Bound::Unbounded => Bound::Unbounded,
            };
            let mut done = false;
            if let Some(s) = state.take() {
                let key = PartitionKey {
                    token: s.token,
                    key: Bytes::from(s.key),
                };
                if let Some(c) = s.clustering {
                    // Finish the partition the last page stopped in, then scan on from the next one.
                    let slice = slice_for(Some(&c), want(out.len(), remaining).map(|w| w + 1));
                    if let Some(view) = rc.data.read(table.id, &key, &slice, rc.now_secs)? {
                        done = !take_partition(
                            view,
                            Some(&c),
                            s.emitted,
                            &mut out,
                            &mut remaining,
                            &mut next_state,
                            &mut last_emitted,
                        )? || remaining == Some(0);
                    }
                }
                from = Bound::Excluded(key);
            }
            const BATCH: usize = 64;
            while !done {
                let slice = slice_for(None, want(out.len(), remaining).map(|w| w + 1));
                let views =
                    rc.data
                        .scan(table.id, from.clone(), *hi, &slice, BATCH, rc.now_secs)?;
                let n = views.len();
                for view in views {
                    let key = view.key.clone();
                    if !take_partition(
                        view,
                        None,
                        0,
                        &mut out,
                        &mut remaining,
                        &mut next_state,
                        &mut last_emitted,
                    )? || remaining == Some(0)
                    {
                        done = true;
                        break;
                    }
                    from = Bound::Excluded(key);
                }
                if n < BATCH {
                    break;
                }
            }
        }
    }
    if let Partitions::Indexed(lo, hi) = &p.partitions {
        let (name, lookup) = p.index.as_ref().expect("an indexed plan has a lookup");
        let in_range = |t: i64| {
            (match lo {
                Bound::Included(x) => t >= *x,
                Bound::Excluded(x) => t > *x,
                Bound::Unbounded => true,
            }) && (match hi {
                Bound::Included(x) => t <= *x,
                Bound::Excluded(x) => t < *x,
                Bound::Unbounded => true,
            })
        };
        let mut candidates = rc.data.index_rows(table.id, name, lookup)?;
        candidates.retain(|r| in_range(r.partition.token));
        let resume_at = state.take();
        for group in by_partition(&candidates) {
            let key = group[0].partition.clone();
            let mut resume: Option<Vec<u8>> = None;
            let mut already = 0;
            if let Some(s) = &resume_at {
                let last = PartitionKey {
                    token: s.token,
                    key: Bytes::from(s.key.clone()),
                };
                if key < last || (key == last && s.clustering.is_none()) {
                    continue;
                }
                if key == last {
                    resume = s.clustering.clone();
                    already = s.emitted;
                }
            }
            let slice = if whole_partition(table, group.iter()) {
                slice_for(resume.as_ref(), None)
            } else {
                let after_resume = group.iter().filter(|r| {
                    resume
                        .as_ref()
                        .is_none_or(|c| r.clustering.as_ref() > c.as_slice())
                });
                let slice = rows_slice(after_resume);
                if slice.ranges.is_empty() {
                    continue;
                }
                slice
            };
            let Some(view) = rc.data.read(table.id, &key, &slice, rc.now_secs)? else {
                continue;
            };
            if !take_partition(
                view,
                resume.as_ref(),
                already,
                &mut out,
                &mut remaining,
                &mut next_state,
                &mut last_emitted,
            )? || remaining == Some(0)
            {
                break;
            }
        }
    }
    if p.sort_across_partitions {
        let ck_types = table.clustering_types();
        let _ = ck_types;
        out.sort_by(|a, b| {
            let o = a.1.cmp(&b.1);
            if p.reversed {
                o.reverse()
            } else {
                o
            }
        });
        if let Some(l) = limit {
            out.truncate(l as usize);
        }
    }
    if page_size.is_some() && next_state.is_none() && remaining != Some(0) {
        // A full page may be followed by more rows: hand out a state that resumes after the last row.
        if let (Some(cap), Some((_, ck, key))) = (page_cap, out.last()) {
            if out.len() as u64 >= cap && !p.sort_across_partitions {
                next_state = Some(PagingState {
                    key: key.key.to_vec(),
                    token: key.token,
                    clustering: if st.distinct { None } else { ck.clone() },
                    remaining,
                    emitted: last_emitted,
                });
            }
        }
    }
    if aggregate && !st.group_by.is_empty() {
        let groups = GroupPaging {
            limit: user_limit,
            per_partition: user_per_partition,
            page_size: rc.page_size.filter(|p| *p > 0),
            state: match &rc.paging_state {
                Some(b) if !b.is_empty() => Some(serde_json::from_slice(b).map_err(|_| {
                    QueryError::Protocol("Invalid value for the paging state".into())
                })?),
                _ => None,
            },
        };
        return finish_groups(table, st, &sel, out, groups, ctx);
    }
    finish(table, st, sel, out, next_state, ctx)
}

/// Whether a partition key column is restricted by IN (Cassandra's keyIsInRelation).
fn partition_key_in(table: &Table, st: &SelectStatement) -> bool {
    st.where_clause.iter().any(|r| {
        r.op == Operator::In
            && match &r.lhs {
                RelationLhs::Column(c) => column_of(table, c)
                    .is_ok_and(|i| table.columns[i].kind == ColumnKind::PartitionKey),
                RelationLhs::Columns(cs) => cs.iter().any(|c| {
                    column_of(table, c)
                        .is_ok_and(|i| table.columns[i].kind == ColumnKind::PartitionKey)
                }),
                _ => false,
            }
    })
}

struct GroupPaging {
    limit: Option<u64>,
    per_partition: Option<u64>,
    page_size: Option<usize>,
    state: Option<GroupPagingState>,
}

/// GROUP BY results: LIMIT counts groups, PER PARTITION LIMIT groups per partition, and a page
/// holds at most page-size groups, resuming after the last group returned.
fn finish_groups(
    table: &Table,
    st: &SelectStatement,
    sel: &Selection,
    out: Vec<(RowData, Option<Vec<u8>>, PartitionKey)>,
    g: GroupPaging,
    ctx: &EvalCtx,
) -> QueryResult<Rows> {
    let group_by = crate::selection::group_by_columns(table, st)?;
    let key_of = |r: &RowData| -> Vec<Option<Vec<u8>>> {
        group_by
            .iter()
            .map(|&c| r.values[c].as_ref().map(|b| b.to_vec()))
            .collect()
    };
    // Consecutive rows with equal GROUP BY columns form a group (rows are in primary key order).
    let mut groups: Vec<std::ops::Range<usize>> = vec![];
    let mut per_partition_count = 0u64;
    let mut start = 0;
    while start < out.len() {
        let mut end = start + 1;
        while end < out.len()
            && group_by
                .iter()
                .all(|&c| out[end].0.values[c] == out[start].0.values[c])
        {
            end += 1;
        }
        let same_partition = groups
            .last()
            .is_some_and(|prev| out[prev.start].2 == out[start].2);
        per_partition_count = if same_partition {
            per_partition_count + 1
        } else {
            1
        };
        if g.per_partition.is_none_or(|pp| per_partition_count <= pp) {
            groups.push(start..end);
        }
        start = end;
    }
    if let Some(l) = g.limit {
        groups.truncate(l as usize);
    }
    let skip = match &g.state {
        Some(s) => groups
            .iter()
            .position(|r| key_of(&out[r.start].0) == s.last)
            .map_or(s.done as usize, |i| i + 1),
        None => 0,
    };
    let skip = skip.min(groups.len());
    let take = g
        .page_size
        .map_or(groups.len() - skip, |p| p.min(groups.len() - skip));
    let next = (skip + take < groups.len()).then(|| GroupPagingState {
        done: (skip + take) as u64,
        last: key_of(&out[groups[skip + take - 1].start].0),
    });
    let mut keep = vec![false; out.len()];
    for r in &groups[skip..skip + take] {
        keep[r.clone()].iter_mut().for_each(|k| *k = true);
    }
    let rows: Vec<(RowData, PartitionKey)> = out
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|((r, _, key), _)| (r, key))
        .collect();
    let now_secs = ctx.now_micros.div_euclid(1_000_000);
    let mut w = RowsWriter::new();
    sel.write_rows(&rows, &group_by, now_secs, st.json, &mut w)?;
    let paging_state = next.map(|s| Bytes::from(serde_json::to_vec(&s).unwrap_or_default()));
    Ok(Rows::from_writer(
        result_specs(table, st, sel.columns.clone()),
        paging_state,
        w,
    ))
}

trait MapTokenExcluded {
    fn map_token_excluded(self) -> Self;
}
impl MapTokenExcluded for Bound<PartitionKey> {
    /// `token > t` must skip every key of token t: start after the greatest possible key of t.
    fn map_token_excluded(self) -> Self {
        match self {
            Bound::Excluded(k) if k.token < i64::MAX => Bound::Included(PartitionKey {
                token: k.token + 1,
                key: Bytes::new(),
            }),
            other => other,
        }
    }
}

fn bound_before(lo: &Bound<Bytes>, c: &Bytes) -> bool {
    match lo {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => b < c,
    }
}
fn bound_after(hi: &Bound<Bytes>, c: &Bytes) -> bool {
    match hi {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => b > c,
    }
}
fn tighter_lo(a: Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    let key = |x: &Bound<Bytes>| match x {
        Bound::Unbounded => None,
        Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            if y >= x {
                b
            } else {
                a
            }
        }
    }
}
fn tighter_hi(a: Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    let key = |x: &Bound<Bytes>| match x {
        Bound::Unbounded => None,
        Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            if y <= x {
                b
            } else {
                a
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    table: &Table,
    st: &SelectStatement,
    sel: Selection,
    out: Vec<(RowData, Option<Vec<u8>>, PartitionKey)>,
    next: Option<PagingState>,
    ctx: &EvalCtx,
) -> QueryResult<Rows> {
    let now_secs = ctx.now_micros.div_euclid(1_000_000);
    let group_by = crate::selection::group_by_columns(table, st)?;
    let rows: Vec<(RowData, PartitionKey)> = out.into_iter().map(|(r, _, k)| (r, k)).collect();
    let mut w = RowsWriter::new();
    sel.write_rows(&rows, &group_by, now_secs, st.json, &mut w)?;
    let paging_state = next.map(|s| Bytes::from(serde_json::to_vec(&s).unwrap_or_default()));
    Ok(Rows::from_writer(
        result_specs(table, st, sel.columns),
        paging_state,
        w,
    ))
}

pub fn result_columns(table: &Table, st: &SelectStatement) -> QueryResult<Vec<ColumnSpec>> {
    let ctx = EvalCtx {
        binds: &[],
        now_micros: 0,
    };
    // Selectors that need bind values cannot be compiled without them; the EXECUTE response
    // then carries the metadata instead.
    let columns = crate::selection::compile(table, st, &ctx)
        .map(|s| s.columns)
        .unwrap_or_default();
    Ok(result_specs(table, st, columns))
}

/// The result columns of `st` selecting `columns`: `prepared` when it was derived from this
/// very table or still lists the same specs (its encoding is then reused), else new specs.
pub(crate) fn result_columns_of<'c>(
    table: &Table,
    st: &SelectStatement,
    prepared: Option<(&ResultColumns, Option<&Table>)>,
    columns: impl Iterator<Item = (&'c str, &'c CqlType)>,
) -> ResultColumns {
    if let Some((p, Some(from))) = prepared {
        if std::ptr::eq(from, table) {
            return p.clone();
        }
    }
    let fresh = result_specs(table, st, columns.map(|(n, t)| (n.to_string(), t.clone())));
    match prepared {
        Some((p, _)) if p[..] == fresh[..] => p.clone(),
        _ => fresh.into(),
    }
}

/// Result column specs; SELECT JSON returns one `[json]` text column.
pub(crate) fn result_specs(
    table: &Table,
    st: &SelectStatement,
    columns: impl IntoIterator<Item = (String, CqlType)>,
) -> Vec<ColumnSpec> {
    let spec = |n: String, t: CqlType| ColumnSpec {
        keyspace: table.keyspace.clone(),
        table: table.name.clone(),
        name: n,
        ty: t,
    };
    if st.json {
        return vec![spec("[json]".into(), CqlType::Text)];
    }
    columns.into_iter().map(|(n, t)| spec(n, t)).collect()
}

/// The rows whose clustering starts with the encoded `prefix` (every row when it is empty).
pub(crate) fn prefix_range(prefix: Vec<u8>) -> (Bound<Bytes>, Bound<Bytes>) {
    if prefix.is_empty() {
        return (Bound::Unbounded, Bound::Unbounded);
    }
    let end = clustering::prefix_end(&prefix);
    (
        Bound::Included(Bytes::from(prefix)),
        Bound::Excluded(Bytes::from(end)),
    )
}

/// Narrows `range` by each `column op value` of `cmps`, the column being the one right after
/// the clustering `prefix` (given as its component values).
pub(crate) fn narrow_after_prefix(
    ck_types: &[(&CqlType, bool)],
    prefix: &[&[u8]],
    cmps: &[(Operator, &[u8])],
    range: &mut (Bound<Bytes>, Bound<Bytes>),
) {
    if cmps.is_empty() {
        return;
    }
    let j = prefix.len();
    let mut vals: smallvec::SmallVec<[&[u8]; 4]> = prefix.iter().copied().collect();
    for (op, v) in cmps {
        vals.push(v);
        let e = clustering::encode(&ck_types[..=j], &vals);
        vals.pop();
        narrow_slice(*op, ck_types[j].1, e, &mut range.0, &mut range.1);
    }
}

/// Narrows an encoded clustering range by `column op value`, where `encoded` is the clustering
/// prefix ending with that value. A DESC column's encoding is inverted, so its comparisons flip.
pub fn narrow_slice(
    op: Operator,
    reversed: bool,
    encoded: Vec<u8>,
    lo: &mut Bound<Bytes>,
    hi: &mut Bound<Bytes>,
) {
    let op = match (op, reversed) {
        (Operator::Gt, true) => Operator::Lt,
        (Operator::Gte, true) => Operator::Lte,
        (Operator::Lt, true) => Operator::Gt,
        (Operator::Lte, true) => Operator::Gte,
        (o, _) => o,
    };
    match op {
        Operator::Gt => *lo = Bound::Included(Bytes::from(clustering::prefix_end(&encoded))),
        Operator::Gte => *lo = Bound::Included(Bytes::from(encoded)),
        Operator::Lt => *hi = Bound::Excluded(Bytes::from(encoded)),
        Operator::Lte => *hi = Bound::Excluded(Bytes::from(clustering::prefix_end(&encoded))),
        _ => {}
    }
}
