//! Keeps the node's storage-attached indexes in step with the schema: index definitions become
//! `sibyl_index` specs attached to storage as table observers, new indexes are built over
//! existing data in the background.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::RwLock;
use sibyl_index::{
    Analyzer, ColumnIndex, GraphParams, IndexSpec, Similarity, TableIndexes, Target,
};
use sibyl_types::CqlType;
use uuid::Uuid;

use crate::node::Node;
use crate::schema::{IndexDef, Schema, Table};

/// Defaults of Cassandra 5.0's vector index, plus our query-time beam.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
pub const DEFAULT_CONSTRUCTION_BEAM: usize = 100;
pub const DEFAULT_SEARCH_BEAM: usize = 200;
/// Segments up to this many vectors are searched exactly (~50 ms for 128 Ki vectors of 768
/// floats on one core here); larger ones through the graph.
pub const DEFAULT_EXACT_LIMIT: usize = 131_072;

#[derive(Default)]
pub struct Indexes {
    tables: RwLock<HashMap<Uuid, Arc<TableIndexes>>>,
}

/// The column and target an index definition names (`c`, `values(c)`, `keys(c)`, `full(c)`).
pub fn parse_target(def: &IndexDef) -> Option<(String, Target)> {
    let t = def.options.get("target")?;
    let unquote = |s: &str| {
        let s = s.trim();
        if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            s[1..s.len() - 1].replace("\"\"", "\"")
        } else {
            s.to_string()
        }
    };
    for (prefix, target) in [
        ("values(", Target::Values),
        ("keys(", Target::Keys),
        ("full(", Target::Full),
    ] {
        if let Some(rest) = t.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return Some((unquote(rest), target));
        }
    }
    if t.starts_with("entries(") {
        return None;
    }
    Some((unquote(t), Target::Values))
}

fn bool_option(def: &IndexDef, name: &str, default: bool) -> bool {
    def.options
        .get(name)
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(default)
}

fn usize_option(def: &IndexDef, name: &str, default: usize) -> usize {
    def.options
        .get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The spec of an index, or None when it is not one Sibyl can serve queries from.
pub fn spec_of(table: &Table, def: &IndexDef) -> Option<IndexSpec> {
    let (column, target) = parse_target(def)?;
    let col = table.column(&column)?;
    let graph = match col.ty.unfrozen() {
        CqlType::Vector(e, n) if **e == CqlType::Float => Some(GraphParams {
            dimensions: *n as usize,
            similarity: def
                .options
                .get("similarity_function")
                .and_then(|s| Similarity::parse(s))
                .unwrap_or(Similarity::Cosine),
            connectivity: usize_option(def, "maximum_node_connections", DEFAULT_MAX_CONNECTIONS),
            construction_beam: usize_option(
                def,
                "construction_beam_width",
                DEFAULT_CONSTRUCTION_BEAM,
            ),
            search_beam: usize_option(def, "search_beam_width", DEFAULT_SEARCH_BEAM),
            exact_limit: usize_option(def, "exact_search_limit", DEFAULT_EXACT_LIMIT),
        }),
        _ => None,
    };
    Some(IndexSpec {
        name: def.name.clone(),
        column: Bytes::from(col.name.clone()),
        column_type: col.ty.clone(),
        target,
        analyzer: Analyzer {
            case_sensitive: bool_option(def, "case_sensitive", true),
            normalize: bool_option(def, "normalize", false),
            ascii: bool_option(def, "ascii", false),
        },
        graph,
    })
}

impl Indexes {
    pub fn table(&self, id: Uuid) -> Option<Arc<TableIndexes>> {
        self.tables.read().get(&id).cloned()
    }

    pub fn index(&self, table: Uuid, name: &str) -> Option<Arc<ColumnIndex>> {
        self.table(table)?.get(name)
    }

    /// Rejects what a vector index cannot hold, as Cassandra does at write time: an all-zero
    /// vector in a column indexed with cosine similarity.
    pub fn check_indexable(
        &self,
        table: Uuid,
        m: &sibyl_storage::Mutation,
    ) -> Result<(), crate::error::QueryError> {
        let Some(ti) = self.table(table) else {
            return Ok(());
        };
        for index in ti.all() {
            let spec = &index.spec;
            if !spec
                .graph
                .is_some_and(|g| g.similarity == Similarity::Cosine)
            {
                continue;
            }
            let zero = m.rows.iter().flat_map(|r| &r.columns).any(|c| {
                matches!(c, sibyl_storage::ColumnData::Simple { column, cell }
                    if *column == spec.column
                        && cell
                            .value
                            .as_deref()
                            .and_then(sibyl_index::vector::decode_f32s)
                            .is_some_and(|v| sibyl_index::vector::is_zero_vector(&v)))
            });
            if zero {
                return Err(crate::error::QueryError::Invalid(
                    "Zero and near-zero vectors cannot be indexed or queried with cosine similarity"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Brings the attached indexes in line with `schema`; new ones are built on a thread.
    pub fn sync(&self, node: &Weak<Node>, engine: &sibyl_storage::Engine, schema: &Schema) {
        let mut tables = self.tables.write();
        let mut seen = vec![];
        for t in schema.tables() {
            let specs: Vec<IndexSpec> = t.indexes.iter().filter_map(|d| spec_of(t, d)).collect();
            if specs.is_empty() && !tables.contains_key(&t.id) {
                continue;
            }
            seen.push(t.id);
            let ti = tables
                .entry(t.id)
                .or_insert_with(|| Arc::new(TableIndexes::new()))
                .clone();
            let added = ti.set_specs(specs);
            if ti.is_empty() {
                let _ = engine.set_observer(t.id, None);
                tables.remove(&t.id);
                continue;
            }
            let obs: Arc<dyn sibyl_storage::TableObserver> = ti.clone();
            if engine.set_observer(t.id, Some(obs)).is_err() {
                continue;
            }
            for index in added {
                let node = node.clone();
                let ti = ti.clone();
                let id = t.id;
                let _ = std::thread::Builder::new()
                    .name("sibyl-index-build".into())
                    .spawn(move || {
                        let Some(node) = node.upgrade() else { return };
                        if let Err(e) = ti.build(&node.engine, id, &index) {
                            tracing::error!(index = %index.spec.name, error = %e, "index build failed");
                        }
                    });
            }
        }
        tables.retain(|id, _| seen.contains(id));
    }
}
