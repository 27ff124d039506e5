//! Between the storage engine's cells and CQL rows: building mutations' cells from values, and
//! turning a partition's live rows back into serialized column values.

use bytes::Bytes;
use sibyl_storage::model::{ColumnView, LiveCell, RowView};
use sibyl_types::{clustering, CqlType};

use crate::error::{QueryError, QueryResult};
use crate::schema::{Column, ColumnKind, Table};

/// Write metadata of a simple cell, for writetime() and ttl().
#[derive(Debug, Clone, Copy)]
pub struct CellMeta {
    pub timestamp: i64,
    pub ttl: i32,
    pub expires_at: i64,
}

/// One CQL row: a serialized value (or null) per table column, in the table's column order.
#[derive(Debug, Clone)]
pub struct RowData {
    pub values: Vec<Option<Bytes>>,
    pub meta: Vec<Option<CellMeta>>,
    /// Per-element metadata of non-frozen collections (column index, elements in order); only
    /// filled for rows that have such columns, so other rows allocate nothing.
    pub elements: Vec<(usize, Vec<CellMeta>)>,
}

impl RowData {
    pub fn empty(n: usize) -> Self {
        RowData {
            values: vec![None; n],
            meta: vec![None; n],
            elements: Vec::new(),
        }
    }
}

fn put_len_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Rebuilds the serialized form of a non-frozen collection or UDT from its live elements.
pub fn complex_to_bytes(ty: &CqlType, elems: &[(Bytes, LiveCell)]) -> QueryResult<Bytes> {
    let mut out = Vec::new();
    match ty {
        // A counter is stored as one shard per node that counted; its value is their sum.
        CqlType::Counter => {
            let sum = elems.iter().fold(0i64, |acc, (_, c)| {
                acc.wrapping_add(i64::from_be_bytes(
                    c.value.as_ref().try_into().unwrap_or([0; 8]),
                ))
            });
            out.extend_from_slice(&sum.to_be_bytes());
        }
        CqlType::List(_) => {
            out.extend_from_slice(&(elems.len() as i32).to_be_bytes());
            for (_, c) in elems {
                put_len_prefixed(&mut out, &c.value);
            }
        }
        CqlType::Set(e) => {
            out.extend_from_slice(&(elems.len() as i32).to_be_bytes());
            for (path, _) in elems {
                put_len_prefixed(&mut out, &clustering::decode_one(e, path)?);
            }
        }
        CqlType::Map(k, _) => {
            out.extend_from_slice(&(elems.len() as i32).to_be_bytes());
            for (path, c) in elems {
                put_len_prefixed(&mut out, &clustering::decode_one(k, path)?);
                put_len_prefixed(&mut out, &c.value);
            }
        }
        CqlType::Udt(def) => {
            let mut fields: Vec<Option<&Bytes>> = vec![None; def.fields.len()];
            for (path, c) in elems {
                let idx = udt_field_index(path)?;
                if idx < fields.len() {
                    fields[idx] = Some(&c.value);
                }
            }
            for f in fields {
                match f {
                    Some(v) => put_len_prefixed(&mut out, v),
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        other => {
            return Err(QueryError::Server(format!(
                "complex cells for non-multicell type {}",
                other.cql_name()
            )))
        }
    }
    Ok(Bytes::from(out))
}

pub fn udt_field_path(idx: usize) -> Bytes {
    Bytes::copy_from_slice(&(idx as u16).to_be_bytes())
}

fn udt_field_index(path: &[u8]) -> QueryResult<usize> {
    match path {
        [a, b] => Ok(u16::from_be_bytes([*a, *b]) as usize),
        _ => Err(QueryError::Server("corrupt UDT field path".into())),
    }
}

/// The serialized value of the regular column `col` in `row`, if it has one.
pub fn column_value(col: &Column, row: &RowView) -> QueryResult<Option<Bytes>> {
    match find(row, &col.name) {
        None => Ok(None),
        Some(ColumnView::Simple(c)) => Ok(Some(c.value.clone())),
        Some(ColumnView::Complex(elems)) => complex_to_bytes(&col.ty, elems).map(Some),
    }
}

fn find<'a>(row: &'a RowView, name: &str) -> Option<&'a ColumnView> {
    row.columns
        .binary_search_by(|(n, _)| n.as_ref().cmp(name.as_bytes()))
        .ok()
        .map(|i| &row.columns[i].1)
}

/// Builds a CQL row from partition key components, an optional static row and an optional
/// clustered row (None: a partition that only has static content).
pub fn materialize(
    table: &Table,
    pk: &[Bytes],
    statics: Option<&RowView>,
    row: Option<&RowView>,
) -> QueryResult<RowData> {
    let mut data = RowData::empty(table.columns.len());
    for (i, v) in pk.iter().enumerate() {
        data.values[i] = Some(v.clone());
    }
    if let Some(r) = row {
        if table.clustering_count > 0 && !r.clustering.is_empty() {
            let parts = clustering::decode(&table.clustering_types(), &r.clustering)?;
            for (j, p) in parts.into_iter().enumerate() {
                data.values[table.partition_key_count + j] = Some(Bytes::from(p));
            }
        }
    }
    for (i, col) in table
        .columns
        .iter()
        .enumerate()
        .skip(table.partition_key_count + table.clustering_count)
    {
        let source = match col.kind {
            ColumnKind::Static => statics,
            _ => row,
        };
        let Some(view) = source.and_then(|r| find(r, &col.name)) else {
            continue;
        };
        match view {
            ColumnView::Simple(c) => {
                data.values[i] = Some(c.value.clone());
                data.meta[i] = Some(CellMeta {
                    timestamp: c.timestamp,
                    ttl: c.ttl,
                    expires_at: c.expires_at,
                });
            }
            ColumnView::Complex(elems) => {
                data.values[i] = Some(complex_to_bytes(&col.ty, elems)?);
                if col.ty.is_collection() {
                    data.elements.push((
                        i,
                        elems
                            .iter()
                            .map(|(_, c)| CellMeta {
                                timestamp: c.timestamp,
                                ttl: c.ttl,
                                expires_at: c.expires_at,
                            })
                            .collect(),
                    ));
                }
                if let Some((_, c)) = elems.iter().max_by_key(|(_, c)| c.timestamp) {
                    data.meta[i] = Some(CellMeta {
                        timestamp: c.timestamp,
                        ttl: c.ttl,
                        expires_at: c.expires_at,
                    });
                }
            }
        }
    }
    Ok(data)
}
