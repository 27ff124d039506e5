//! Lightweight transactions on one node: conditions (IF NOT EXISTS, IF EXISTS, IF c op v) are
//! checked against the current row and the writes applied, or not, while the partition's lock is
//! held; the result is Cassandra's `[applied]` row with the current values on failure. The ring
//! replaces the lock with Paxos without changing these results.

use std::cmp::Ordering;

use bytes::Bytes;
use sibyl_cql::ast::{ColumnTarget, Condition, Conditions, Operator, Term};
use sibyl_protocol::messages::{ColumnSpec, Rows, RowsWriter};
use sibyl_storage::model::{Mutation, PartitionKey};
use sibyl_types::{split_collection, split_map, split_tuple, CqlType, Value};

use crate::error::{invalid, QueryError, QueryResult};
use crate::rows::{materialize, RowData};
use crate::schema::Table;
use crate::select::partition_key_parts;
use crate::values::{eval, EvalCtx, Evaluated};

/// One conditional statement: its table, its conditions and the row it targets.
pub struct CasItem<'a> {
    pub table: &'a Table,
    pub conditions: &'a Conditions,
    pub ctx: &'a EvalCtx<'a>,
    pub key: PartitionKey,
    /// Encoded clustering of the targeted row (empty for tables without clustering columns).
    pub clustering: Bytes,
}

/// The row a conditional statement targets, from its (single) mutation.
pub fn target_of(table: &Table, mutations: &[Mutation]) -> QueryResult<(PartitionKey, Bytes)> {
    let [m] = mutations else {
        return invalid("IN on the partition key is not supported with conditional updates");
    };
    if m.rows.len() > 1 {
        return invalid(
            "IN on the clustering key columns is not supported with conditional updates",
        );
    }
    if !m.range_tombstones.is_empty() {
        return invalid("DELETE statements must restrict all PRIMARY KEY columns with equality relations in order to use IF conditions");
    }
    let clustering = m
        .rows
        .first()
        .map(|r| r.clustering.clone())
        .unwrap_or_default();
    if clustering.is_empty() && table.clustering_count > 0 && m.static_row.is_none() {
        return invalid("DELETE statements must restrict all PRIMARY KEY columns with equality relations in order to use IF conditions");
    }
    Ok((m.key.clone(), clustering))
}

/// Reads the current row (with its static columns), or None when it does not exist.
fn current_row(
    data: &dyn crate::data::DataSource,
    table: &Table,
    key: &PartitionKey,
    ck: &Bytes,
    now_secs: i64,
) -> QueryResult<Option<RowData>> {
    let slice = crate::data::one_row(ck);
    let Some(view) = data.read(table.id, key, &slice, now_secs)? else {
        return Ok(None);
    };
    let pk = partition_key_parts(table, &view.key.key)?;
    match view.rows.first() {
        Some(r) => Ok(Some(materialize(
            table,
            &pk,
            view.static_row.as_ref(),
            Some(r),
        )?)),
        // A static-only partition: the row does not exist, but its static values can be compared.
        None if table.clustering_count > 0 && ck.is_empty() => Ok(Some(materialize(
            table,
            &pk,
            view.static_row.as_ref(),
            None,
        )?)),
        None => Ok(None),
    }
}

/// The current value a condition looks at, and its type.
fn condition_subject(
    table: &Table,
    row: Option<&RowData>,
    target: &ColumnTarget,
    ctx: &EvalCtx,
) -> QueryResult<(Option<Vec<u8>>, CqlType, String)> {
    let name = match target {
        ColumnTarget::Column(n) | ColumnTarget::Element(n, _) | ColumnTarget::Field(n, _) => n,
    };
    let i = table.column_index(name).ok_or_else(|| {
        QueryError::Invalid(format!(
            "Undefined column name {name} in table {}.{}",
            table.keyspace, table.name
        ))
    })?;
    let col = &table.columns[i];
    if col.is_primary_key() {
        return invalid(format!(
            "PRIMARY KEY column '{name}' cannot have IF conditions"
        ));
    }
    let whole = row.and_then(|r| r.values[i].as_ref()).map(|b| b.to_vec());
    Ok(match target {
        ColumnTarget::Column(_) => (whole, col.ty.clone(), name.clone()),
        ColumnTarget::Element(_, k) => match col.ty.unfrozen() {
            CqlType::Map(kt, vt) => {
                let key = match eval(k, kt, name, ctx)? {
                    Evaluated::Value(b) => b,
                    _ => {
                        return invalid(format!(
                            "Invalid null value for map element access on {name}"
                        ))
                    }
                };
                let v = match &whole {
                    Some(w) => split_map(w)?
                        .into_iter()
                        .find(|(mk, _)| Value::compare(kt, mk, &key) == Ordering::Equal)
                        .map(|(_, v)| v.to_vec()),
                    None => None,
                };
                (v, (**vt).clone(), format!("{name}[{}]", "?"))
            }
            CqlType::List(et) => {
                let idx = match eval(k, &CqlType::Int, name, ctx)? {
                    Evaluated::Value(b) => {
                        i32::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 4]))
                    }
                    _ => return invalid(format!("Invalid null value for list index on {name}")),
                };
                let v = match &whole {
                    Some(w) => split_collection(w)?
                        .get(idx.max(0) as usize)
                        .map(|x| x.to_vec()),
                    None => None,
                };
                (v, (**et).clone(), name.clone())
            }
            _ => {
                return invalid(format!(
                    "Invalid element access on non-collection column {name}"
                ))
            }
        },
        ColumnTarget::Field(_, f) => match col.ty.unfrozen() {
            CqlType::Udt(def) => {
                let Some(fi) = def.fields.iter().position(|(n, _)| n == f) else {
                    return invalid(format!("Unknown field {f} in user type {}", def.name));
                };
                let v = match &whole {
                    Some(w) => split_tuple(def.fields.len(), w)?
                        .get(fi)
                        .copied()
                        .flatten()
                        .map(|x| x.to_vec()),
                    None => None,
                };
                (v, def.fields[fi].1.clone(), name.clone())
            }
            _ => return invalid(format!("Invalid field access on non-UDT column {name}")),
        },
    })
}

fn condition_holds(
    table: &Table,
    row: Option<&RowData>,
    c: &Condition,
    ctx: &EvalCtx,
) -> QueryResult<bool> {
    let (current, ty, name) = condition_subject(table, row, &c.target, ctx)?;
    if c.op == Operator::In {
        let candidates: Vec<Option<Vec<u8>>> = match &c.rhs {
            Term::Tuple(items) | Term::List(items) => items
                .iter()
                .map(|t| Ok(eval(t, &ty, &name, ctx)?.bytes().map(|b| b.to_vec())))
                .collect::<QueryResult<_>>()?,
            t => match eval(t, &CqlType::List(Box::new(ty.clone())), &name, ctx)? {
                Evaluated::Value(b) => split_collection(&b)?
                    .into_iter()
                    .map(|x| Some(x.to_vec()))
                    .collect(),
                _ => vec![],
            },
        };
        return Ok(candidates.iter().any(|cand| match (cand, &current) {
            (None, None) => true,
            (Some(a), Some(b)) => Value::compare(&ty, b, a) == Ordering::Equal,
            _ => false,
        }));
    }
    let given = match eval(&c.rhs, &ty, &name, ctx)? {
        Evaluated::Value(b) => Some(b.to_vec()),
        Evaluated::Null => None,
        Evaluated::Unset => {
            return invalid(format!("Invalid 'unset' value in condition on {name}"))
        }
    };
    Ok(match (c.op, &current, &given) {
        (Operator::Eq, None, None) => true,
        (Operator::Neq, None, None) => false,
        (Operator::Eq, _, None) | (Operator::Eq, None, _) => false,
        (Operator::Neq, _, None) | (Operator::Neq, None, _) => true,
        (op, _, None) => {
            return invalid(format!(
                "Invalid comparison with null for operator \"{}\"",
                op_text(op)
            ))
        }
        (_, None, Some(_)) => false,
        (op, Some(cur), Some(g)) => crate::select::cmp_op(Value::compare(&ty, cur, g), op),
    })
}

fn op_text(op: Operator) -> &'static str {
    match op {
        Operator::Lt => "<",
        Operator::Lte => "<=",
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Eq => "=",
        Operator::Neq => "!=",
        _ => "?",
    }
}

/// Checks every item's conditions against current data. Returns whether they all hold and
/// the result to send (`[applied]`, plus the current values when not applied).
pub fn check(
    data: &dyn crate::data::DataSource,
    items: &[CasItem],
    is_batch: bool,
    now_secs: i64,
) -> QueryResult<(bool, Rows)> {
    let table = items
        .first()
        .map(|i| i.table)
        .ok_or_else(|| QueryError::Invalid("empty conditional statement".into()))?;
    let mut applied = true;
    let mut current_rows: Vec<(Bytes, Option<RowData>)> = vec![];
    let mut condition_columns: Vec<usize> = vec![];
    let mut wildcard = false;
    for item in items {
        if *item.conditions == Conditions::None {
            continue;
        }
        let row = match current_rows.iter().find(|(ck, _)| *ck == item.clustering) {
            Some((_, r)) => r.clone(),
            None => {
                let r = current_row(data, item.table, &item.key, &item.clustering, now_secs)?;
                current_rows.push((item.clustering.clone(), r.clone()));
                r
            }
        };
        let exists = row.as_ref().is_some_and(|r| {
            (item.table.partition_key_count
                ..item.table.partition_key_count + item.table.clustering_count)
                .all(|i| r.values[i].is_some())
        });
        let ok = match item.conditions {
            Conditions::None => true,
            Conditions::IfNotExists => {
                wildcard = true;
                !exists
            }
            Conditions::IfExists => {
                wildcard = true;
                exists
            }
            Conditions::If(conds) => {
                let mut all = true;
                for c in conds {
                    let name = match &c.target {
                        ColumnTarget::Column(n)
                        | ColumnTarget::Element(n, _)
                        | ColumnTarget::Field(n, _) => n,
                    };
                    if let Some(i) = item.table.column_index(name) {
                        if !condition_columns.contains(&i) {
                            condition_columns.push(i);
                        }
                    }
                    all &= condition_holds(item.table, row.as_ref(), c, item.ctx)?;
                }
                all
            }
        };
        applied &= ok;
    }
    let spec = |name: &str, ty: CqlType| ColumnSpec {
        keyspace: table.keyspace.clone(),
        table: table.name.clone(),
        name: name.to_string(),
        ty,
    };
    let mut columns = vec![spec("[applied]", CqlType::Boolean)];
    let mut w = RowsWriter::new();
    if applied || current_rows.iter().all(|(_, r)| r.is_none()) {
        w.push_cell(Some(&[applied as u8]));
        w.finish_row();
    } else {
        let mut shown: Vec<usize> = if wildcard {
            (0..table.columns.len()).collect()
        } else {
            let mut v: Vec<usize> = if is_batch {
                (0..table.partition_key_count + table.clustering_count).collect()
            } else {
                vec![]
            };
            for &i in &condition_columns {
                if !v.contains(&i) {
                    v.push(i);
                }
            }
            v
        };
        shown.dedup();
        columns.extend(
            shown
                .iter()
                .map(|&i| spec(&table.columns[i].name, table.columns[i].ty.clone())),
        );
        for (_, row) in current_rows.iter() {
            let Some(row) = row else { continue };
            w.push_cell(Some(&[0]));
            for &i in &shown {
                w.push_cell(row.values[i].as_deref());
            }
            w.finish_row();
        }
    }
    Ok((applied, Rows::from_writer(columns, None, w)))
}
