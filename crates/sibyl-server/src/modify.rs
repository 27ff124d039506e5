//! INSERT, UPDATE and DELETE: from statements and bound values to storage mutations, with
//! Cassandra's key checks, TTL and timestamp rules, and collection element operations.

use std::ops::Bound;

use bytes::Bytes;
use sibyl_cql::ast::{
    Assignment, ColumnTarget, DeleteStatement, InsertStatement, InsertValues, Operator,
    RelationLhs, Term, UpdateStatement, UsingClause,
};
use sibyl_storage::model::{
    Cell, ColumnData, ColumnView, DeletionTime, LivenessInfo, Mutation, PartitionKey,
    RangeTombstone, RowUpdate, Slice,
};
use sibyl_types::{clustering, split_collection, split_map, split_tuple, timeuuid, CqlType, Value};
use smallvec::SmallVec;

use crate::error::{invalid, QueryError, QueryResult};
use crate::rows::udt_field_path;
use crate::schema::{Column, ColumnKind, Table};
use crate::select::partition_key_of;
use crate::values::{eval, EvalCtx, Evaluated};

pub const MAX_TTL: i64 = 630_720_000;

/// Everything a write needs besides the statement.
pub struct WriteCtx<'a> {
    pub eval: &'a EvalCtx<'a>,
    /// The request's default timestamp (client-provided or the server clock), microseconds.
    pub timestamp: i64,
    pub now_secs: i64,
    pub data: &'a dyn crate::data::DataSource,
}

struct Attrs {
    timestamp: i64,
    ttl: i32,
    now: i64,
}

impl Attrs {
    fn cell(&self, value: Option<Bytes>) -> Cell {
        match value {
            Some(v) => Cell {
                timestamp: self.timestamp,
                value: Some(v),
                ttl: self.ttl,
                local_deletion_time: if self.ttl > 0 {
                    self.now + self.ttl as i64
                } else {
                    0
                },
            },
            None => Cell {
                timestamp: self.timestamp,
                value: None,
                ttl: 0,
                local_deletion_time: self.now,
            },
        }
    }
    fn deletion(&self) -> DeletionTime {
        DeletionTime {
            timestamp: self.timestamp,
            local_deletion_time: self.now,
        }
    }
    fn liveness(&self) -> LivenessInfo {
        LivenessInfo {
            timestamp: self.timestamp,
            ttl: self.ttl,
            expires_at: if self.ttl > 0 {
                self.now + self.ttl as i64
            } else {
                0
            },
        }
    }
}

fn attrs(
    table: &Table,
    using: &UsingClause,
    ctx: &WriteCtx,
    allow_ttl: bool,
) -> QueryResult<Attrs> {
    if table.is_counter_table() {
        if using.timestamp.is_some() {
            return invalid("Cannot provide custom timestamp for counter updates");
        }
        if using.ttl.is_some() {
            return invalid("Cannot provide custom TTL for counter updates");
        }
    }
    let timestamp = match &using.timestamp {
        Some(t) => match eval(t, &CqlType::Bigint, "[timestamp]", ctx.eval)? {
            Evaluated::Value(b) => i64::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| QueryError::Invalid("Invalid timestamp".into()))?,
            ),
            Evaluated::Unset => ctx.timestamp,
            Evaluated::Null => return invalid("Invalid null value of timestamp"),
        },
        None => ctx.timestamp,
    };
    if timestamp == i64::MIN {
        return invalid("Invalid timestamp value");
    }
    let ttl: i64 = match &using.ttl {
        Some(_) if !allow_ttl => return invalid("TTL cannot be used with DELETE"),
        Some(t) => match eval(t, &CqlType::Int, "[ttl]", ctx.eval)? {
            Evaluated::Value(b) => i32::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| QueryError::Invalid("Invalid TTL".into()))?,
            ) as i64,
            Evaluated::Unset => table.options.default_time_to_live as i64,
            Evaluated::Null => 0,
        },
        None => table.options.default_time_to_live as i64,
    };
    if ttl < 0 {
        return invalid(format!(
            "A TTL must be greater or equal to 0, but was {ttl}"
        ));
    }
    if ttl > MAX_TTL {
        return invalid(format!(
            "ttl is too large. requested ({ttl}) maximum ({MAX_TTL})"
        ));
    }
    Ok(Attrs {
        timestamp,
        ttl: ttl as i32,
        now: ctx.now_secs,
    })
}

fn column<'a>(table: &'a Table, name: &str) -> QueryResult<&'a Column> {
    table.column(name).ok_or_else(|| {
        QueryError::Invalid(format!(
            "Undefined column name {name} in table {}.{}",
            table.keyspace, table.name
        ))
    })
}

/// The cells for assigning a whole value to a column.
fn column_value_data(col: &Column, v: Evaluated, a: &Attrs) -> QueryResult<Option<ColumnData>> {
    let name = sibyl_storage::names::intern(col.name.as_bytes());
    let value = match v {
        Evaluated::Unset => return Ok(None),
        Evaluated::Null => None,
        Evaluated::Value(b) => Some(b),
    };
    if !col.ty.is_multicell() {
        return Ok(Some(ColumnData::Simple {
            column: name,
            cell: a.cell(value),
        }));
    }
    // Overwriting a collection deletes what was there just before this write's timestamp.
    let complex_deletion = Some(DeletionTime {
        timestamp: a.timestamp - 1,
        local_deletion_time: a.now,
    });
    let cells = match value {
        None => vec![],
        Some(b) => element_cells(&col.ty, &b, a, false)?,
    };
    Ok(Some(ColumnData::Complex {
        column: name,
        complex_deletion,
        cells,
    }))
}

/// Cells for the elements of a serialized collection or UDT value being added.
fn element_cells(
    ty: &CqlType,
    b: &[u8],
    a: &Attrs,
    prepend: bool,
) -> QueryResult<Vec<(Bytes, Cell)>> {
    Ok(match ty {
        CqlType::List(_) => {
            let items = split_collection(b)?;
            let n = items.len() as i64;
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let id = if prepend {
                        // Prepended elements sort before every appended one: use times mirrored
                        // around a reference point in the past.
                        const REFERENCE_MS: i64 = 1_262_304_000_000; // 2010-01-01
                        let now_ms = timeuuid::micros_now() / 1000;
                        timeuuid::timeuuid_from_millis(
                            2 * REFERENCE_MS - now_ms - (n - i as i64),
                            true,
                        )
                    } else {
                        timeuuid::now_timeuuid()
                    };
                    let path = clustering::encode_one(&CqlType::Timeuuid, id.as_bytes());
                    (Bytes::from(path), a.cell(Some(Bytes::copy_from_slice(v))))
                })
                .collect()
        }
        CqlType::Set(e) => split_collection(b)?
            .into_iter()
            .map(|v| {
                (
                    Bytes::from(clustering::encode_one(e, v)),
                    a.cell(Some(Bytes::new())),
                )
            })
            .collect(),
        CqlType::Map(k, _) => split_map(b)?
            .into_iter()
            .map(|(key, v)| {
                (
                    Bytes::from(clustering::encode_one(k, key)),
                    a.cell(Some(Bytes::copy_from_slice(v))),
                )
            })
            .collect(),
        CqlType::Udt(def) => split_tuple(def.fields.len(), b)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| (udt_field_path(i), a.cell(v.map(Bytes::copy_from_slice))))
            .collect(),
        other => {
            return invalid(format!(
                "Invalid operation for non-collection type {}",
                other.cql_name()
            ))
        }
    })
}

/// Partition keys and clustering prefixes named by a WHERE clause of a modification.
struct Target {
    keys: Vec<PartitionKey>,
    /// Full or partial clustering prefixes (encoded), or one empty prefix.
    clusterings: Vec<Vec<u8>>,
    /// Whether every clustering column is given.
    full_clustering: bool,
    /// A range deletion's bounds (DELETE with a slice on a clustering column).
    slice: Option<(Bound<Bytes>, Bound<Bytes>)>,
}

fn where_target(
    table: &Table,
    rels: &[sibyl_cql::ast::Relation],
    ctx: &EvalCtx,
    allow_slice: bool,
) -> QueryResult<Target> {
    let npk = table.partition_key_count;
    let mut values: Vec<Option<Vec<Bytes>>> = vec![None; table.columns.len()];
    let mut slices: Vec<(usize, Operator, Bytes)> = vec![];
    for rel in rels {
        let name = match &rel.lhs {
            RelationLhs::Column(n) => n,
            RelationLhs::Columns(_) => return invalid("Multi-column relations are not supported in modification statements"),
            RelationLhs::Token(_) => return invalid("The token function cannot be used in WHERE clauses for UPDATE and DELETE statements"),
            RelationLhs::MapElement(n, _) => return invalid(format!("Non PRIMARY KEY columns found in where clause: {n} ")),
        };
        let i = table.column_index(name).ok_or_else(|| {
            QueryError::Invalid(format!(
                "Undefined column name {name} in table {}.{}",
                table.keyspace, table.name
            ))
        })?;
        let col = &table.columns[i];
        if !col.is_primary_key() {
            return invalid(format!(
                "Non PRIMARY KEY columns found in where clause: {name} "
            ));
        }
        match rel.op {
            Operator::Eq => match eval(&rel.rhs, &col.ty, name, ctx)? {
                Evaluated::Value(b) => values[i] = Some(vec![b]),
                Evaluated::Null => {
                    return invalid(format!("Invalid null value in condition for column {name}"))
                }
                Evaluated::Unset => {
                    return invalid(format!("Invalid unset value for column {name}"))
                }
            },
            Operator::In => {
                let vals = match &rel.rhs {
                    Term::Tuple(items) | Term::List(items) => items
                        .iter()
                        .map(|t| match eval(t, &col.ty, name, ctx)? {
                            Evaluated::Value(b) => Ok(b),
                            _ => invalid(format!(
                                "Invalid null value in condition for column {name}"
                            )),
                        })
                        .collect::<QueryResult<Vec<_>>>()?,
                    t => match eval(t, &CqlType::List(Box::new(col.ty.clone())), name, ctx)? {
                        Evaluated::Value(b) => split_collection(&b)?
                            .into_iter()
                            .map(Bytes::copy_from_slice)
                            .collect(),
                        _ => {
                            return invalid(format!(
                                "Invalid null value for IN restriction on {name}"
                            ))
                        }
                    },
                };
                values[i] = Some(vals);
            }
            Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte
                if allow_slice && col.kind == ColumnKind::Clustering =>
            {
                match eval(&rel.rhs, &col.ty, name, ctx)? {
                    Evaluated::Value(b) => slices.push((i, rel.op, b)),
                    _ => {
                        return invalid(format!(
                            "Invalid null value in condition for column {name}"
                        ))
                    }
                }
            }
            _ => {
                return invalid(format!(
                    "Invalid operator {:?} for PRIMARY KEY part {name}",
                    rel.op
                ))
            }
        }
    }
    let missing: Vec<&str> = table
        .partition_key()
        .iter()
        .enumerate()
        .filter(|(i, _)| values[*i].is_none())
        .map(|(_, c)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return invalid(format!(
            "Some partition key parts are missing: {}",
            missing.join(", ")
        ));
    }
    let mut keys: Vec<Vec<Bytes>> = vec![vec![]];
    for v in values.iter().take(npk).flatten() {
        keys = keys
            .iter()
            .flat_map(|k| {
                v.iter().map(move |x| {
                    let mut k2 = k.clone();
                    k2.push(x.clone());
                    k2
                })
            })
            .collect();
    }
    let keys: Vec<PartitionKey> = keys.iter().map(|k| partition_key_of(k)).collect();
    let ck_types = table.clustering_types();
    let mut prefixes: Vec<Vec<Bytes>> = vec![vec![]];
    let mut full = true;
    for j in 0..table.clustering_count {
        match &values[npk + j] {
            Some(v) if full => {
                prefixes = prefixes.iter().flat_map(|p| v.iter().map(move |x| { let mut p2 = p.clone(); p2.push(x.clone()); p2 })).collect();
            }
            Some(_) => {
                return invalid(format!(
                    "PRIMARY KEY column \"{}\" cannot be restricted as preceding column \"{}\" is not restricted",
                    table.columns[npk + j].name,
                    table.columns[npk + j - 1].name
                ))
            }
            None => full = false,
        }
    }
    let clusterings: Vec<Vec<u8>> = prefixes
        .iter()
        .map(|p| {
            let refs: Vec<&[u8]> = p.iter().map(|b| b.as_ref()).collect();
            clustering::encode(&ck_types[..p.len()], &refs)
        })
        .collect();
    let mut slice = None;
    if !slices.is_empty() {
        let plen = prefixes[0].len();
        if slices.iter().any(|(i, _, _)| *i != npk + plen) || prefixes.len() != 1 {
            return invalid("A range deletion operation needs to specify both bounds for the clustering columns preceding the slice");
        }
        let refs: Vec<&[u8]> = prefixes[0].iter().map(|b| b.as_ref()).collect();
        let cmps: Vec<(Operator, &[u8])> =
            slices.iter().map(|(_, op, v)| (*op, v.as_ref())).collect();
        let mut range = crate::select::prefix_range(clusterings[0].clone());
        crate::select::narrow_after_prefix(&ck_types, &refs, &cmps, &mut range);
        slice = Some(range);
    }
    Ok(Target {
        keys,
        clusterings,
        full_clustering: full,
        slice,
    })
}

pub fn insert(table: &Table, st: &InsertStatement, ctx: &WriteCtx) -> QueryResult<Vec<Mutation>> {
    // Rows have few columns: a vector of names beats hashing each one.
    let mut seen: SmallVec<[&str; 8]> = SmallVec::new();
    let mut assigned: SmallVec<[(&Column, Evaluated); 8]> = SmallVec::new();
    match &st.values {
        InsertValues::Values { columns, values } => {
            if columns.len() != values.len() {
                return invalid("Unmatched column names/values".to_string());
            }
            for (n, t) in columns.iter().zip(values) {
                let col = column(table, n)?;
                if seen.contains(&n.as_str()) {
                    return invalid(format!("Multiple definitions found for column {n}"));
                }
                seen.push(n.as_str());
                assigned.push((col, eval(t, &col.ty, n, ctx.eval)?));
            }
        }
        InsertValues::Json {
            json,
            default_unset,
        } => {
            for (col, v) in json_values(table, json, *default_unset, ctx.eval)? {
                if !seen.contains(&col.name.as_str()) {
                    seen.push(col.name.as_str());
                }
                assigned.push((col, v));
            }
        }
    }
    if assigned.iter().any(|(c, _)| c.ty.is_counter()) {
        return invalid("INSERT statements are not allowed on counter tables, use UPDATE instead");
    }
    let missing: Vec<&str> = table
        .partition_key()
        .iter()
        .filter(|c| !seen.contains(&c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return invalid(format!(
            "Some partition key parts are missing: {}",
            missing.join(", ")
        ));
    }
    let missing_ck: Vec<&str> = table
        .clustering()
        .iter()
        .filter(|c| !seen.contains(&c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    let only_static = assigned
        .iter()
        .all(|(c, _)| c.is_primary_key() || c.kind == ColumnKind::Static);
    if !missing_ck.is_empty()
        && (missing_ck.len() != table.clustering_count || !only_static || !table.has_statics())
    {
        return invalid(format!(
            "Some clustering keys are missing: {}",
            missing_ck.join(", ")
        ));
    }
    let a = attrs(table, &st.using, ctx, true)?;
    let key_val = |c: &Column| -> QueryResult<Bytes> {
        match assigned
            .iter()
            .find(|(x, _)| x.name == c.name)
            .map(|(_, v)| v)
        {
            Some(Evaluated::Value(b)) => Ok(b.clone()),
            Some(Evaluated::Unset) => invalid(format!("Invalid unset value for column {}", c.name)),
            _ => invalid(format!(
                "Invalid null value in condition for column {}",
                c.name
            )),
        }
    };
    let pk: SmallVec<[Bytes; 2]> = table
        .partition_key()
        .iter()
        .map(key_val)
        .collect::<QueryResult<_>>()?;
    for (b, c) in pk.iter().zip(table.partition_key()) {
        if b.len() > 65535 {
            return invalid(format!(
                "Key length of {} is longer than maximum of 65535",
                b.len()
            ));
        }
        let _ = c;
    }
    let mut m = Mutation::new(table.id, partition_key_of(&pk));
    let mut row = RowUpdate::default();
    let mut statics = RowUpdate::default();
    if missing_ck.is_empty() {
        let ck: SmallVec<[Bytes; 4]> = table
            .clustering()
            .iter()
            .map(key_val)
            .collect::<QueryResult<_>>()?;
        let refs: SmallVec<[&[u8]; 4]> = ck.iter().map(|b| b.as_ref()).collect();
        row.clustering = Bytes::from(clustering::encode(&table.clustering_types(), &refs));
        row.liveness = Some(a.liveness());
    } else {
        statics.liveness = Some(a.liveness());
    }
    for (col, v) in assigned {
        if col.is_primary_key() {
            continue;
        }
        if let Some(d) = column_value_data(col, v, &a)? {
            if col.kind == ColumnKind::Static {
                statics.columns.push(d);
            } else {
                row.columns.push(d);
            }
        }
    }
    if missing_ck.is_empty() {
        m.rows.push(row);
    }
    if !statics.columns.is_empty() || statics.liveness.is_some() {
        m.static_row = Some(statics);
    }
    Ok(vec![m])
}

/// Reads the live elements of a list column of one row (for index-based list operations).
fn read_list(
    table: &Table,
    key: &PartitionKey,
    clustering_key: &[u8],
    col: &Column,
    ctx: &WriteCtx,
) -> QueryResult<Vec<(Bytes, Bytes)>> {
    let ranges = if clustering_key.is_empty() {
        vec![(Bound::Unbounded, Bound::Unbounded)]
    } else {
        vec![(
            Bound::Included(Bytes::copy_from_slice(clustering_key)),
            Bound::Excluded(Bytes::from(clustering::prefix_end(clustering_key))),
        )]
    };
    let slice = Slice {
        ranges,
        reversed: false,
        limit: Some(1),
    };
    let Some(view) = ctx.data.read(table.id, key, &slice, ctx.now_secs)? else {
        return Ok(vec![]);
    };
    let row = if col.kind == ColumnKind::Static {
        view.static_row
    } else {
        view.rows.into_iter().next()
    };
    let Some(row) = row else { return Ok(vec![]) };
    Ok(row
        .columns
        .into_iter()
        .find(|(n, _)| n.as_ref() == col.name.as_bytes())
        .map(|(_, v)| match v {
            ColumnView::Complex(elems) => elems.into_iter().map(|(p, c)| (p, c.value)).collect(),
            ColumnView::Simple(c) => vec![(Bytes::new(), c.value)],
        })
        .unwrap_or_default())
}

fn list_index(t: &Term, name: &str, ctx: &EvalCtx) -> QueryResult<usize> {
    match eval(t, &CqlType::Int, name, ctx)? {
        Evaluated::Value(b) => {
            let i = i32::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|_| QueryError::Invalid("Invalid list index".into()))?,
            );
            if i < 0 {
                return invalid(format!("Invalid negative list index {i}"));
            }
            Ok(i as usize)
        }
        _ => invalid(format!("Invalid null value for list index of {name}")),
    }
}

pub fn update(table: &Table, st: &UpdateStatement, ctx: &WriteCtx) -> QueryResult<Vec<Mutation>> {
    let target = where_target(table, &st.where_clause, ctx.eval, false)?;
    let a = attrs(table, &st.using, ctx, true)?;
    let only_static = st.assignments.iter().all(|asg| {
        let n = match asg {
            Assignment::Set(
                ColumnTarget::Column(n) | ColumnTarget::Element(n, _) | ColumnTarget::Field(n, _),
                _,
            ) => n,
            Assignment::Add(n, _) | Assignment::Prepend(n, _) | Assignment::Subtract(n, _) => n,
        };
        table
            .column(n)
            .map(|c| c.kind == ColumnKind::Static)
            .unwrap_or(false)
    });
    if !target.full_clustering && !only_static {
        let missing: Vec<&str> = table
            .clustering()
            .iter()
            .skip(target.clusterings.first().map(|_| 0).unwrap_or(0))
            .map(|c| c.name.as_str())
            .collect();
        let given = table.clustering().len() - missing.len();
        let _ = given;
        let missing: Vec<&str> = table
            .clustering()
            .iter()
            .filter(|c| {
                !st.where_clause
                    .iter()
                    .any(|r| matches!(&r.lhs, RelationLhs::Column(n) if *n == c.name))
            })
            .map(|c| c.name.as_str())
            .collect();
        return invalid(format!(
            "Some clustering keys are missing: {}",
            missing.join(", ")
        ));
    }
    let mut out = vec![];
    for key in &target.keys {
        let mut m = Mutation::new(table.id, key.clone());
        for ck in &target.clusterings {
            let mut row = RowUpdate {
                clustering: Bytes::from(ck.clone()),
                ..Default::default()
            };
            let mut statics = RowUpdate::default();
            for asg in &st.assignments {
                let (data, is_static) = assignment_data(table, asg, key, ck, &a, ctx)?;
                if let Some(d) = data {
                    if is_static {
                        statics.columns.push(d);
                    } else {
                        row.columns.push(d);
                    }
                }
            }
            if !statics.columns.is_empty() {
                m.static_row = Some(statics);
            }
            if !row.columns.is_empty() && target.full_clustering {
                m.rows.push(row);
            }
        }
        out.push(m);
    }
    Ok(out)
}

fn assignment_data(
    table: &Table,
    asg: &Assignment,
    key: &PartitionKey,
    ck: &[u8],
    a: &Attrs,
    ctx: &WriteCtx,
) -> QueryResult<(Option<ColumnData>, bool)> {
    let name_of = |asg: &Assignment| -> String {
        match asg {
            Assignment::Set(
                ColumnTarget::Column(n) | ColumnTarget::Element(n, _) | ColumnTarget::Field(n, _),
                _,
            ) => n.clone(),
            Assignment::Add(n, _) | Assignment::Prepend(n, _) | Assignment::Subtract(n, _) => {
                n.clone()
            }
        }
    };
    let col = column(table, &name_of(asg))?;
    if col.is_primary_key() {
        return invalid(format!("PRIMARY KEY part {} found in SET part", col.name));
    }
    let is_static = col.kind == ColumnKind::Static;
    let cname = sibyl_storage::names::intern(col.name.as_bytes());
    let complex = |cells: Vec<(Bytes, Cell)>| ColumnData::Complex {
        column: cname.clone(),
        complex_deletion: None,
        cells,
    };
    let data = match asg {
        Assignment::Set(ColumnTarget::Column(_), t) => {
            if col.ty.is_counter() {
                return invalid(format!("Cannot set the value of counter column {} (counters can only be incremented/decremented, not set)", col.name));
            }
            column_value_data(col, eval(t, &col.ty, &col.name, ctx.eval)?, a)?
        }
        Assignment::Set(ColumnTarget::Element(_, k), v) => match col.ty.clone() {
            CqlType::Map(kt, vt) => {
                let kb = match eval(k, &kt, &format!("key({})", col.name), ctx.eval)? {
                    Evaluated::Value(b) => b,
                    _ => return invalid("Invalid null value for map key"),
                };
                let path = Bytes::from(clustering::encode_one(&kt, &kb));
                let val = match eval(v, &vt, &format!("value({})", col.name), ctx.eval)? {
                    Evaluated::Value(b) => Some(b),
                    Evaluated::Null => None,
                    Evaluated::Unset => return Ok((None, is_static)),
                };
                Some(complex(vec![(path, a.cell(val))]))
            }
            CqlType::List(et) => {
                let idx = list_index(k, &col.name, ctx.eval)?;
                let elems = read_list(table, key, ck, col, ctx)?;
                let Some((path, _)) = elems.get(idx) else {
                    return invalid(format!(
                        "List index {idx} out of bound, list has size {}",
                        elems.len()
                    ));
                };
                let val = match eval(v, &et, &col.name, ctx.eval)? {
                    Evaluated::Value(b) => Some(b),
                    Evaluated::Null => None,
                    Evaluated::Unset => return Ok((None, is_static)),
                };
                Some(complex(vec![(path.clone(), a.cell(val))]))
            }
            _ => {
                return invalid(format!(
                    "Invalid operation ({}[..] = ...) for non collection column {}",
                    col.name, col.name
                ))
            }
        },
        Assignment::Set(ColumnTarget::Field(_, f), v) => match &col.ty {
            CqlType::Udt(def) => {
                let Some(i) = def.fields.iter().position(|(n, _)| n == f) else {
                    return invalid(format!(
                        "UDT column {} does not have a field named {f}",
                        col.name
                    ));
                };
                let val = match eval(v, &def.fields[i].1, &format!("{}.{f}", col.name), ctx.eval)? {
                    Evaluated::Value(b) => Some(b),
                    Evaluated::Null => None,
                    Evaluated::Unset => return Ok((None, is_static)),
                };
                Some(complex(vec![(udt_field_path(i), a.cell(val))]))
            }
            CqlType::Frozen(_) => {
                return invalid(format!(
                    "Invalid operation ({}.{f} = ...) for frozen UDT column {}",
                    col.name, col.name
                ))
            }
            _ => {
                return invalid(format!(
                    "Invalid operation ({}.{f} = ...) for non-UDT column {}",
                    col.name, col.name
                ))
            }
        },
        Assignment::Add(_, t) | Assignment::Prepend(_, t) if col.ty.is_counter() => {
            if matches!(asg, Assignment::Prepend(..)) {
                return invalid(format!(
                    "Invalid operation ({} = ? + {}) for counter column {}",
                    col.name, col.name, col.name
                ));
            }
            counter_cell(col, t, 1, a, ctx)?
        }
        Assignment::Subtract(_, t) if col.ty.is_counter() => counter_cell(col, t, -1, a, ctx)?,
        Assignment::Add(_, t) | Assignment::Prepend(_, t) => {
            if !col.ty.is_multicell() {
                return invalid(format!(
                    "Invalid operation ({} = {} + ?) for non counter column {}",
                    col.name, col.name, col.name
                ));
            }
            let prepend = matches!(asg, Assignment::Prepend(..));
            if prepend && !matches!(col.ty, CqlType::List(_)) {
                return invalid(format!(
                    "Invalid operation ({} = ? + {}) for non list column {}",
                    col.name, col.name, col.name
                ));
            }
            match eval(t, &col.ty, &col.name, ctx.eval)? {
                Evaluated::Value(b) => Some(complex(element_cells(&col.ty, &b, a, prepend)?)),
                _ => None,
            }
        }
        Assignment::Subtract(_, t) => match col.ty.clone() {
            CqlType::Set(e) => match eval(t, &col.ty, &col.name, ctx.eval)? {
                Evaluated::Value(b) => Some(complex(
                    split_collection(&b)?
                        .into_iter()
                        .map(|v| (Bytes::from(clustering::encode_one(&e, v)), a.cell(None)))
                        .collect(),
                )),
                _ => None,
            },
            CqlType::Map(k, _) => {
                let st = CqlType::Set(k.clone());
                match eval(t, &st, &col.name, ctx.eval)? {
                    Evaluated::Value(b) => Some(complex(
                        split_collection(&b)?
                            .into_iter()
                            .map(|v| (Bytes::from(clustering::encode_one(&k, v)), a.cell(None)))
                            .collect(),
                    )),
                    _ => None,
                }
            }
            CqlType::List(e) => match eval(t, &col.ty, &col.name, ctx.eval)? {
                Evaluated::Value(b) => {
                    let remove = split_collection(&b)?;
                    let elems = read_list(table, key, ck, col, ctx)?;
                    let cells = elems
                        .into_iter()
                        .filter(|(_, v)| {
                            remove
                                .iter()
                                .any(|r| Value::compare(&e, r, v) == std::cmp::Ordering::Equal)
                        })
                        .map(|(p, _)| (p, a.cell(None)))
                        .collect();
                    Some(complex(cells))
                }
                _ => None,
            },
            _ => {
                return invalid(format!(
                    "Invalid operation ({} = {} - ?) for non counter column {}",
                    col.name, col.name, col.name
                ))
            }
        },
    };
    Ok((data, is_static))
}

pub fn delete(table: &Table, st: &DeleteStatement, ctx: &WriteCtx) -> QueryResult<Vec<Mutation>> {
    let target = where_target(table, &st.where_clause, ctx.eval, st.columns.is_empty())?;
    let a = attrs(table, &st.using, ctx, false)?;
    let mut out = vec![];
    for key in &target.keys {
        let mut m = Mutation::new(table.id, key.clone());
        if st.columns.is_empty() {
            if let Some((lo, hi)) = &target.slice {
                m.range_tombstones.push(RangeTombstone {
                    start: lo.clone(),
                    end: hi.clone(),
                    deletion: a.deletion(),
                });
            } else if target.clusterings.iter().all(|c| c.is_empty()) {
                m.partition_deletion = Some(a.deletion());
            } else if target.full_clustering {
                for ck in &target.clusterings {
                    m.rows.push(RowUpdate {
                        clustering: Bytes::from(ck.clone()),
                        deletion: Some(a.deletion()),
                        ..Default::default()
                    });
                }
            } else {
                for ck in &target.clusterings {
                    m.range_tombstones.push(RangeTombstone {
                        start: Bound::Included(Bytes::from(ck.clone())),
                        end: Bound::Excluded(Bytes::from(clustering::prefix_end(ck))),
                        deletion: a.deletion(),
                    });
                }
            }
            out.push(m);
            continue;
        }
        for ck in &target.clusterings {
            let mut row = RowUpdate {
                clustering: Bytes::from(ck.clone()),
                ..Default::default()
            };
            let mut statics = RowUpdate::default();
            for t in &st.columns {
                let name = match t {
                    ColumnTarget::Column(n)
                    | ColumnTarget::Element(n, _)
                    | ColumnTarget::Field(n, _) => n,
                };
                let col = column(table, name)?;
                if col.is_primary_key() {
                    return invalid(format!(
                        "Invalid identifier {name} for deletion (should not be a PRIMARY KEY part)"
                    ));
                }
                if col.kind != ColumnKind::Static && !target.full_clustering {
                    let missing: Vec<&str> =
                        table.clustering().iter().map(|c| c.name.as_str()).collect();
                    return invalid(format!(
                        "Some clustering keys are missing: {}",
                        missing.join(", ")
                    ));
                }
                let cname = sibyl_storage::names::intern(name.as_bytes());
                let data = match t {
                    ColumnTarget::Column(_) if col.ty.is_multicell() || col.ty.is_counter() => {
                        ColumnData::Complex {
                            column: cname,
                            complex_deletion: Some(a.deletion()),
                            cells: vec![],
                        }
                    }
                    ColumnTarget::Column(_) => ColumnData::Simple {
                        column: cname,
                        cell: a.cell(None),
                    },
                    ColumnTarget::Element(_, k) => match col.ty.clone() {
                        CqlType::Map(kt, _) | CqlType::Set(kt) => {
                            let kb = match eval(k, &kt, name, ctx.eval)? {
                                Evaluated::Value(b) => b,
                                _ => return invalid("Invalid null value for map key"),
                            };
                            ColumnData::Complex {
                                column: cname,
                                complex_deletion: None,
                                cells: vec![(
                                    Bytes::from(clustering::encode_one(&kt, &kb)),
                                    a.cell(None),
                                )],
                            }
                        }
                        CqlType::List(_) => {
                            let idx = list_index(k, name, ctx.eval)?;
                            let elems = read_list(table, key, ck, col, ctx)?;
                            let Some((path, _)) = elems.get(idx) else {
                                return invalid(format!(
                                    "List index {idx} out of bound, list has size {}",
                                    elems.len()
                                ));
                            };
                            ColumnData::Complex {
                                column: cname,
                                complex_deletion: None,
                                cells: vec![(path.clone(), a.cell(None))],
                            }
                        }
                        _ => {
                            return invalid(format!(
                                "Invalid element deletion on non-collection column {name}"
                            ))
                        }
                    },
                    ColumnTarget::Field(_, f) => match &col.ty {
                        CqlType::Udt(def) => {
                            let Some(i) = def.fields.iter().position(|(n, _)| n == f) else {
                                return invalid(format!(
                                    "UDT column {name} does not have a field named {f}"
                                ));
                            };
                            ColumnData::Complex {
                                column: cname,
                                complex_deletion: None,
                                cells: vec![(udt_field_path(i), a.cell(None))],
                            }
                        }
                        _ => {
                            return invalid(format!(
                                "Invalid field deletion on non-UDT column {name}"
                            ))
                        }
                    },
                };
                if col.kind == ColumnKind::Static {
                    statics.columns.push(data);
                } else {
                    row.columns.push(data);
                }
            }
            if !statics.columns.is_empty() {
                m.static_row = Some(statics);
            }
            if !row.columns.is_empty() {
                m.rows.push(row);
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// A counter increment or decrement as written by the statement: a simple cell holding the
/// delta. It is never stored as is: the counter's leader replica turns it into its own shard
/// (`counters::lead`).
#[allow(clippy::too_many_arguments)]
fn counter_cell(
    col: &Column,
    delta: &Term,
    sign: i64,
    a: &Attrs,
    ctx: &WriteCtx,
) -> QueryResult<Option<ColumnData>> {
    let d = match eval(delta, &CqlType::Counter, &col.name, ctx.eval)? {
        Evaluated::Value(b) => i64::from_be_bytes(
            b.as_ref()
                .try_into()
                .map_err(|_| QueryError::Invalid("Invalid counter delta".into()))?,
        ),
        Evaluated::Null => {
            return invalid(format!(
                "Invalid null value for counter increment on {}",
                col.name
            ))
        }
        Evaluated::Unset => return Ok(None),
    };
    Ok(Some(ColumnData::Simple {
        column: sibyl_storage::names::intern(col.name.as_bytes()),
        cell: a.cell(Some(Bytes::copy_from_slice(
            &sign.wrapping_mul(d).to_be_bytes(),
        ))),
    }))
}

/// The partition keys a modification's WHERE clause names (for locking before read-modify-write).
pub fn partition_keys(
    table: &Table,
    rels: &[sibyl_cql::ast::Relation],
    ctx: &EvalCtx,
) -> QueryResult<Vec<PartitionKey>> {
    Ok(where_target(table, rels, ctx, true)?.keys)
}

/// The column values of `INSERT ... JSON`: every column named in the object, and the others
/// as null (DEFAULT NULL) or left alone (DEFAULT UNSET).
fn json_values<'t>(
    table: &'t Table,
    json: &Term,
    default_unset: bool,
    ctx: &EvalCtx,
) -> QueryResult<Vec<(&'t Column, Evaluated)>> {
    let text = match eval(json, &CqlType::Text, "[json]", ctx)? {
        Evaluated::Value(b) => String::from_utf8(b.to_vec())
            .map_err(|_| QueryError::Invalid("Invalid UTF-8 in JSON value".into()))?,
        _ => return invalid("Got null for INSERT JSON values"),
    };
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        QueryError::Invalid(format!(
            "Could not decode JSON string as a map: {e}. String was: {text}"
        ))
    })?;
    let serde_json::Value::Object(map) = parsed else {
        return invalid(format!("Could not decode JSON string as a map: {text}"));
    };
    // Keys name columns as CQL identifiers: "\"Quoted\"" keeps its case, others fold to lower case.
    let mut given: Vec<(String, serde_json::Value)> = vec![];
    for (k, v) in map {
        let name = if k.len() >= 2 && k.starts_with('"') && k.ends_with('"') {
            k[1..k.len() - 1].replace("\"\"", "\"")
        } else {
            k.to_lowercase()
        };
        if table.column(&name).is_none() {
            return invalid(format!(
                "JSON values map contains unrecognized column: {name}"
            ));
        }
        given.push((name, v));
    }
    let mut out = vec![];
    for col in &table.columns {
        match given.iter().find(|(n, _)| *n == col.name) {
            Some((_, v)) => {
                let value = sibyl_types::json::from_json(&col.ty, v).map_err(|e| {
                    QueryError::Invalid(format!("Error decoding JSON value for {}: {e}", col.name))
                })?;
                let evaluated = match value {
                    Some(v) => {
                        let mut b = Vec::new();
                        v.serialize_as(&col.ty, &mut b);
                        Evaluated::Value(Bytes::from(b))
                    }
                    None => Evaluated::Null,
                };
                out.push((col, evaluated));
            }
            None if col.is_primary_key() || default_unset => {}
            None => out.push((col, Evaluated::Null)),
        }
    }
    Ok(out)
}
