//! Schema statements: turning CREATE/ALTER/DROP into a new `Schema`, with Cassandra's checks
//! and messages. Pure functions of (schema, statement); the caller persists and announces.

use std::collections::BTreeMap;
use std::sync::Arc;

use sibyl_cql::ast::{
    AlterTableOp, AlterTypeOp, CqlTypeAst, CreateIndex, CreateKeyspace, CreateTable,
    IndexTargetKind, Literal, OptionValue, QualifiedName,
};
use sibyl_protocol::messages::{SchemaChange, SchemaChangeTarget};
use sibyl_types::{CqlType, UdtDef};
use uuid::Uuid;

use crate::error::{invalid, QueryError, QueryResult};
use crate::schema::{Column, ColumnKind, IndexDef, Keyspace, Schema, Table, TableOptions};

pub const SYSTEM_KEYSPACES: &[&str] = &[
    "system",
    "system_schema",
    "system_auth",
    "system_distributed",
    "system_traces",
    "system_views",
    "system_virtual_schema",
];

pub fn is_system_keyspace(name: &str) -> bool {
    SYSTEM_KEYSPACES.contains(&name)
}

/// The outcome of a schema statement: the new schema (None when nothing changed, e.g. IF NOT EXISTS
/// on an existing object), the change to announce, and client warnings.
pub struct DdlOutcome {
    pub schema: Option<Schema>,
    pub change: Option<SchemaChange>,
    pub warnings: Vec<String>,
}

fn change(kind: &str, target: SchemaChangeTarget) -> Option<SchemaChange> {
    Some(SchemaChange {
        change_type: kind.to_string(),
        target,
    })
}

fn unchanged() -> DdlOutcome {
    DdlOutcome {
        schema: None,
        change: None,
        warnings: vec![],
    }
}

fn option_string(v: &OptionValue) -> QueryResult<String> {
    match v {
        OptionValue::Constant(l) => Ok(literal_text(l)),
        OptionValue::Map(_) => invalid("Expected a constant value, got a map"),
    }
}

pub fn literal_text(l: &Literal) -> String {
    match l {
        Literal::String(s)
        | Literal::Integer(s)
        | Literal::Float(s)
        | Literal::Uuid(s)
        | Literal::Duration(s) => s.clone(),
        Literal::Boolean(b) => b.to_string(),
        Literal::Blob(b) => format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Literal::Null => "null".into(),
    }
}

fn option_map(v: &OptionValue) -> QueryResult<BTreeMap<String, String>> {
    match v {
        OptionValue::Map(m) => Ok(m
            .iter()
            .map(|(k, v)| (literal_text(k), literal_text(v)))
            .collect()),
        OptionValue::Constant(_) => invalid("Expected a map value"),
    }
}

fn replication_from(options: &BTreeMap<String, String>) -> QueryResult<BTreeMap<String, String>> {
    let mut out = options.clone();
    let class = out
        .remove("class")
        .ok_or_else(|| QueryError::Config("Missing replication strategy class".into()))?;
    let full =
        match class.rsplit('.').next().unwrap_or(&class) {
            "SimpleStrategy" => "org.apache.cassandra.locator.SimpleStrategy",
            "NetworkTopologyStrategy" => "org.apache.cassandra.locator.NetworkTopologyStrategy",
            "LocalStrategy" => return Err(QueryError::Config(
                "Unable to use given strategy class: LocalStrategy is reserved for internal use."
                    .into(),
            )),
            _ => {
                let shown = if class.contains('.') {
                    class.clone()
                } else {
                    format!("org.apache.cassandra.locator.{class}")
                };
                return Err(QueryError::Config(format!(
                    "Unable to find replication strategy class '{shown}'"
                )));
            }
        };
    for (k, v) in &out {
        if full.ends_with("SimpleStrategy") && k != "replication_factor" {
            return Err(QueryError::Config(format!(
                "Unrecognized strategy option {{{k}}} passed to SimpleStrategy for keyspace"
            )));
        }
        validate_rf(v)?;
    }
    if full.ends_with("SimpleStrategy") && !out.contains_key("replication_factor") {
        return Err(QueryError::Config(
            "SimpleStrategy requires a replication_factor strategy option.".into(),
        ));
    }
    out.insert("class".into(), full.into());
    Ok(out)
}

fn validate_rf(v: &str) -> QueryResult<()> {
    let full = v.split('/').next().unwrap_or(v);
    match full.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(()),
        _ => Err(QueryError::Config(format!(
            "Replication factor must be non-negative integer; found {v}"
        ))),
    }
}

fn rf_warnings(
    ks: &str,
    replication: &BTreeMap<String, String>,
    view: &ClusterView,
) -> Vec<String> {
    let total: usize = view.nodes_per_dc.values().sum();
    let mut w = vec![];
    for (k, v) in replication {
        if k == "class" {
            continue;
        }
        let rf: usize = v.split('/').next().unwrap_or(v).trim().parse().unwrap_or(0);
        if k == "replication_factor" {
            if rf > total {
                w.push(format!("Your replication factor {rf} for keyspace {ks} is higher than the number of nodes {total}"));
            }
        } else {
            let in_dc = view.nodes_per_dc.get(k).copied().unwrap_or(0);
            if rf > in_dc {
                w.push(format!("Your replication factor {rf} for keyspace {ks} is higher than the number of nodes {in_dc} for datacenter {k}"));
            }
        }
    }
    w
}

/// NetworkTopologyStrategy's `replication_factor` is a default for every known data center
/// not named explicitly, expanded when the keyspace is created or altered (as Cassandra 4+ does).
fn expand_nts(replication: &mut BTreeMap<String, String>, view: &ClusterView) {
    if !replication
        .get("class")
        .is_some_and(|c| c.ends_with("NetworkTopologyStrategy"))
    {
        return;
    }
    if let Some(rf) = replication.remove("replication_factor") {
        for dc in view.nodes_per_dc.keys() {
            replication.entry(dc.clone()).or_insert_with(|| rf.clone());
        }
    }
}

/// What schema statements need to know of the cluster: the nodes in each data center.
pub struct ClusterView {
    pub nodes_per_dc: BTreeMap<String, usize>,
}

pub fn create_keyspace(
    schema: &Schema,
    st: &CreateKeyspace,
    view: &ClusterView,
) -> QueryResult<DdlOutcome> {
    if schema.keyspaces.contains_key(&st.name) || is_system_keyspace(&st.name) {
        if st.if_not_exists {
            return Ok(unchanged());
        }
        return Err(QueryError::AlreadyExists {
            keyspace: st.name.clone(),
            table: String::new(),
            message: format!("Cannot add existing keyspace \"{}\"", st.name),
        });
    }
    validate_name(&st.name, "Keyspace")?;
    let (mut replication, durable_writes) = keyspace_options(&st.options, None)?;
    expand_nts(&mut replication, view);
    let warnings = rf_warnings(&st.name, &replication, view);
    let mut s = schema.clone();
    s.keyspaces.insert(
        st.name.clone(),
        Arc::new(Keyspace {
            name: st.name.clone(),
            replication,
            durable_writes,
            tables: BTreeMap::new(),
            types: BTreeMap::new(),
        }),
    );
    Ok(DdlOutcome {
        schema: Some(s),
        change: change("CREATED", SchemaChangeTarget::Keyspace(st.name.clone())),
        warnings,
    })
}

fn validate_name(name: &str, what: &str) -> QueryResult<()> {
    if name.is_empty()
        || name.len() > 48
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return invalid(format!(
            "{what} name must not be empty, more than 48 characters long, or contain non-alphanumeric-underscore characters (got \"{name}\")"
        ));
    }
    Ok(())
}

fn keyspace_options(
    options: &[(String, OptionValue)],
    existing: Option<&Keyspace>,
) -> QueryResult<(BTreeMap<String, String>, bool)> {
    let mut replication = existing.map(|k| k.replication.clone());
    let mut durable = existing.map(|k| k.durable_writes).unwrap_or(true);
    for (k, v) in options {
        match k.as_str() {
            "replication" => replication = Some(replication_from(&option_map(v)?)?),
            "durable_writes" => {
                durable = match option_string(v)?.to_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(QueryError::Syntax(format!("Invalid boolean value {other}")))
                    }
                }
            }
            other => return Err(QueryError::Syntax(format!("Unknown property '{other}'"))),
        }
    }
    let replication = replication
        .ok_or_else(|| QueryError::Config("Missing mandatory option 'replication'".into()))?;
    Ok((replication, durable))
}

pub fn alter_keyspace(
    schema: &Schema,
    name: &str,
    if_exists: bool,
    options: &[(String, OptionValue)],
    view: &ClusterView,
) -> QueryResult<DdlOutcome> {
    let Some(ks) = schema.keyspaces.get(name) else {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!("Keyspace '{name}' does not exist"));
    };
    let (mut replication, durable_writes) = keyspace_options(options, Some(ks))?;
    expand_nts(&mut replication, view);
    let warnings = rf_warnings(name, &replication, view);
    let mut s = schema.clone();
    let mut k = (**ks).clone();
    k.replication = replication;
    k.durable_writes = durable_writes;
    s.keyspaces.insert(name.to_string(), Arc::new(k));
    Ok(DdlOutcome {
        schema: Some(s),
        change: change("UPDATED", SchemaChangeTarget::Keyspace(name.into())),
        warnings,
    })
}

pub fn drop_keyspace(schema: &Schema, name: &str, if_exists: bool) -> QueryResult<DdlOutcome> {
    if is_system_keyspace(name) {
        return Err(QueryError::Unauthorized(format!(
            "{name} keyspace is not user-modifiable"
        )));
    }
    if !schema.keyspaces.contains_key(name) {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!("Keyspace '{name}' doesn't exist"));
    }
    let mut s = schema.clone();
    s.keyspaces.remove(name);
    Ok(DdlOutcome {
        schema: Some(s),
        change: change("DROPPED", SchemaChangeTarget::Keyspace(name.into())),
        warnings: vec![],
    })
}

fn keyspace_for<'a>(
    schema: &'a Schema,
    name: &QualifiedName,
    current: Option<&str>,
) -> QueryResult<(&'a Arc<Keyspace>, String)> {
    let ks = resolve_keyspace(name, current)?;
    if is_system_keyspace(&ks) {
        return Err(QueryError::Unauthorized(format!(
            "{ks} keyspace is not user-modifiable"
        )));
    }
    match schema.keyspaces.get(&ks) {
        Some(k) => Ok((k, ks)),
        None => invalid(format!("Keyspace '{ks}' doesn't exist")),
    }
}

pub fn resolve_keyspace(name: &QualifiedName, current: Option<&str>) -> QueryResult<String> {
    keyspace_of(name, current).map(str::to_string)
}

/// The keyspace `name` refers to, borrowed (for lookups that run on every execution).
pub fn keyspace_of<'a>(name: &'a QualifiedName, current: Option<&'a str>) -> QueryResult<&'a str> {
    match name.keyspace.as_deref().or(current) {
        Some(k) => Ok(k),
        None => invalid("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename"),
    }
}

/// Resolves a parsed type against the keyspace's user types.
pub fn resolve_type(ast: &CqlTypeAst, ks: &Keyspace) -> QueryResult<CqlType> {
    Ok(match ast {
        CqlTypeAst::Native(n) => CqlType::parse_native(n)
            .ok_or_else(|| QueryError::Invalid(format!("Unknown type {n}")))?,
        CqlTypeAst::List(t) => CqlType::List(Box::new(resolve_inner(t, ks)?)),
        CqlTypeAst::Set(t) => CqlType::Set(Box::new(resolve_inner(t, ks)?)),
        CqlTypeAst::Map(k, v) => CqlType::Map(
            Box::new(resolve_inner(k, ks)?),
            Box::new(resolve_inner(v, ks)?),
        ),
        CqlTypeAst::Tuple(ts) => CqlType::Frozen(Box::new(CqlType::Tuple(
            ts.iter()
                .map(|t| resolve_inner(t, ks))
                .collect::<QueryResult<_>>()?,
        ))),
        CqlTypeAst::Frozen(t) => match resolve_type(t, ks)? {
            CqlType::Frozen(inner) => CqlType::Frozen(inner),
            other => CqlType::Frozen(Box::new(other)),
        },
        CqlTypeAst::Vector(t, n) => {
            if *n == 0 {
                return invalid("vectors may only have positive dimensions; given 0");
            }
            CqlType::Vector(Box::new(resolve_inner(t, ks)?), *n)
        }
        CqlTypeAst::Udt(q) => {
            if let Some(k) = &q.keyspace {
                if *k != ks.name {
                    return invalid(format!("Statement on keyspace {} cannot refer to a user type in keyspace {k}; user types can only be used in the keyspace they are defined in", ks.name));
                }
            }
            match ks.types.get(&q.name) {
                Some(def) => CqlType::Udt(def.clone()),
                None => return invalid(format!("Unknown type {}.{}", ks.name, q.name)),
            }
        }
        CqlTypeAst::Custom(c) => CqlType::Custom(c.clone()),
    })
}

/// Types nested in collections, tuples and UDTs are frozen.
fn resolve_inner(ast: &CqlTypeAst, ks: &Keyspace) -> QueryResult<CqlType> {
    let t = resolve_type(ast, ks)?;
    Ok(match t {
        CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt(_) => {
            CqlType::Frozen(Box::new(t))
        }
        other => other,
    })
}

fn apply_table_options(
    opts: &mut TableOptions,
    options: &[(String, OptionValue)],
) -> QueryResult<()> {
    for (k, v) in options {
        let num = |v: &OptionValue| -> QueryResult<f64> {
            option_string(v)?
                .parse::<f64>()
                .map_err(|_| QueryError::Syntax(format!("Invalid value for property '{k}'")))
        };
        match k.as_str() {
            "comment" => opts.comment = option_string(v)?,
            "bloom_filter_fp_chance" => {
                let x = num(v)?;
                if !(x > 0.0 && x <= 1.0) {
                    return Err(QueryError::Config(format!("bloom_filter_fp_chance must be larger than 0.0 and less than or equal to 1.0 (got {x})")));
                }
                opts.bloom_filter_fp_chance = x;
            }
            "crc_check_chance" => opts.crc_check_chance = num(v)?,
            "default_time_to_live" => {
                let x = num(v)? as i64;
                if !(0..=630720000).contains(&x) {
                    return Err(QueryError::Config(format!("default_time_to_live must be greater than or equal to 0 and less than 630720000 (got {x})")));
                }
                opts.default_time_to_live = x as i32;
            }
            "gc_grace_seconds" => {
                let x = num(v)? as i64;
                if x < 0 {
                    return Err(QueryError::Config(format!(
                        "gc_grace_seconds must be greater than or equal to 0 (got {x})"
                    )));
                }
                opts.gc_grace_seconds = x as i32;
            }
            "max_index_interval" => opts.max_index_interval = num(v)? as i32,
            "min_index_interval" => opts.min_index_interval = num(v)? as i32,
            "memtable_flush_period_in_ms" => opts.memtable_flush_period_in_ms = num(v)? as i32,
            "speculative_retry" => opts.speculative_retry = option_string(v)?,
            "additional_write_policy" => opts.additional_write_policy = option_string(v)?,
            "read_repair" => opts.read_repair = option_string(v)?.to_uppercase(),
            "memtable" => opts.memtable = option_string(v)?,
            "cdc" => opts.cdc = option_string(v)?.eq_ignore_ascii_case("true"),
            "allow_auto_snapshot" => {
                opts.allow_auto_snapshot = option_string(v)?.eq_ignore_ascii_case("true")
            }
            "incremental_backups" => {
                opts.incremental_backups = option_string(v)?.eq_ignore_ascii_case("true")
            }
            "caching" => opts.caching = option_map(v)?,
            "compaction" => {
                let mut m = option_map(v)?;
                let class = m.remove("class").ok_or_else(|| {
                    QueryError::Config(
                        "Missing sub-option 'class' for the 'compaction' option.".into(),
                    )
                })?;
                let full = match class.rsplit('.').next().unwrap_or(&class) {
                    "SizeTieredCompactionStrategy" => {
                        "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy"
                    }
                    "LeveledCompactionStrategy" => {
                        "org.apache.cassandra.db.compaction.LeveledCompactionStrategy"
                    }
                    "UnifiedCompactionStrategy" => {
                        "org.apache.cassandra.db.compaction.UnifiedCompactionStrategy"
                    }
                    "TimeWindowCompactionStrategy" => {
                        "org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy"
                    }
                    _ => {
                        return Err(QueryError::Config(format!(
                            "Unable to find compaction strategy class '{class}'"
                        )))
                    }
                };
                if full.ends_with("SizeTieredCompactionStrategy") {
                    m.entry("max_threshold".into())
                        .or_insert_with(|| "32".into());
                    m.entry("min_threshold".into())
                        .or_insert_with(|| "4".into());
                }
                m.insert("class".into(), full.into());
                opts.compaction = m;
            }
            "compression" => {
                let mut m = option_map(v)?;
                if m.get("enabled").map(|e| e == "false").unwrap_or(false) {
                    opts.compression = [("enabled".to_string(), "false".to_string())]
                        .into_iter()
                        .collect();
                    continue;
                }
                let class = m
                    .remove("class")
                    .or_else(|| m.remove("sstable_compression"));
                let full = match class.as_deref().map(|c| c.rsplit('.').next().unwrap_or(c)) {
                    None | Some("LZ4Compressor") => "org.apache.cassandra.io.compress.LZ4Compressor",
                    Some("SnappyCompressor") => "org.apache.cassandra.io.compress.SnappyCompressor",
                    Some("DeflateCompressor") => "org.apache.cassandra.io.compress.DeflateCompressor",
                    Some("ZstdCompressor") => "org.apache.cassandra.io.compress.ZstdCompressor",
                    Some("NoopCompressor") => "org.apache.cassandra.io.compress.NoopCompressor",
                    Some(other) => return Err(QueryError::Config(format!("Could not create Compression for type org.apache.cassandra.io.compress.{other}"))),
                };
                let chunk = m
                    .remove("chunk_length_in_kb")
                    .or_else(|| m.remove("chunk_length_kb"))
                    .unwrap_or_else(|| "16".into());
                m.insert("chunk_length_in_kb".into(), chunk);
                m.insert("class".into(), full.into());
                opts.compression = m;
            }
            "extensions" => {}
            "id" => {}
            other => return Err(QueryError::Syntax(format!("Unknown property '{other}'"))),
        }
    }
    Ok(())
}

pub fn create_table(
    schema: &Schema,
    st: &CreateTable,
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let (ks, ks_name) = keyspace_for(schema, &st.name, current)?;
    if ks.tables.contains_key(&st.name.name) {
        if st.if_not_exists {
            return Ok(unchanged());
        }
        return Err(QueryError::AlreadyExists {
            keyspace: ks_name.clone(),
            table: st.name.name.clone(),
            message: format!(
                "Cannot add already existing table \"{}\" to keyspace \"{}\"",
                st.name.name, ks_name
            ),
        });
    }
    validate_name(&st.name.name, "Table")?;
    // Primary key: from the PRIMARY KEY clause, or a single inline PRIMARY KEY column.
    let inline: Vec<&str> = st
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.as_str())
        .collect();
    let (pk, ck): (Vec<String>, Vec<String>) = if !st.partition_key.is_empty() {
        if !inline.is_empty() {
            return invalid("Multiple PRIMARY KEYs specified (exactly one required)");
        }
        (st.partition_key.clone(), st.clustering_key.clone())
    } else {
        match inline.as_slice() {
            [one] => (vec![one.to_string()], vec![]),
            [] => {
                return invalid(
                    "No PRIMARY KEY specifed for table '".to_string()
                        + &st.name.name
                        + "' (exactly one required)",
                )
            }
            _ => return invalid("Multiple PRIMARY KEYs specified (exactly one required)"),
        }
    };
    let mut seen = std::collections::HashSet::new();
    for c in &st.columns {
        if !seen.insert(c.name.clone()) {
            return invalid(format!(
                "Duplicate column '{}' declaration for table {}.{}",
                c.name, ks_name, st.name.name
            ));
        }
    }
    let find = |name: &str| st.columns.iter().find(|c| c.name == name);
    let mut columns = vec![];
    for (i, name) in pk.iter().enumerate() {
        let def = find(name).ok_or_else(|| {
            QueryError::Invalid(format!(
                "Unknown definition {name} referenced in PRIMARY KEY"
            ))
        })?;
        let ty = resolve_type(&def.ty, ks)?;
        check_key_type(&ty, name, "partition key")?;
        if def.is_static {
            return invalid(format!(
                "Static column {name} cannot be part of the PRIMARY KEY"
            ));
        }
        columns.push(Column {
            name: name.clone(),
            ty,
            kind: ColumnKind::PartitionKey,
            position: i as i32,
            reversed: false,
        });
    }
    for (i, name) in ck.iter().enumerate() {
        if pk.contains(name) || ck[..i].contains(name) {
            return invalid(format!("Duplicate column '{name}' in PRIMARY KEY"));
        }
        let def = find(name).ok_or_else(|| {
            QueryError::Invalid(format!(
                "Unknown definition {name} referenced in PRIMARY KEY"
            ))
        })?;
        let ty = resolve_type(&def.ty, ks)?;
        check_key_type(&ty, name, "clustering key")?;
        if def.is_static {
            return invalid(format!(
                "Static column {name} cannot be part of the PRIMARY KEY"
            ));
        }
        columns.push(Column {
            name: name.clone(),
            ty,
            kind: ColumnKind::Clustering,
            position: i as i32,
            reversed: false,
        });
    }
    // CLUSTERING ORDER BY must name clustering columns in order.
    for (i, (name, desc)) in st.clustering_order.iter().enumerate() {
        match ck.iter().position(|c| c == name) {
            Some(p) if p == i => columns[pk.len() + p].reversed = *desc,
            Some(_) => return invalid("The order of columns in the CLUSTERING ORDER directive must match that of the clustering columns"),
            None => return invalid(format!("Only clustering key columns can be defined in CLUSTERING ORDER directive: {name} is not a clustering column")),
        }
    }
    for def in &st.columns {
        if pk.contains(&def.name) || ck.contains(&def.name) {
            continue;
        }
        let ty = resolve_type(&def.ty, ks)?;
        if def.is_static && ck.is_empty() {
            return invalid("Static columns are only useful (and thus allowed) if the table has at least one clustering column".to_string());
        }
        let kind = if def.is_static {
            ColumnKind::Static
        } else {
            ColumnKind::Regular
        };
        columns.push(Column {
            name: def.name.clone(),
            ty,
            kind,
            position: -1,
            reversed: false,
        });
    }
    let counters = columns
        .iter()
        .filter(|c| !c.is_primary_key() && c.ty.is_counter())
        .count();
    let non_key = columns.iter().filter(|c| !c.is_primary_key()).count();
    if counters > 0 && counters != non_key {
        return invalid("Cannot mix counter and non counter columns in the same table");
    }
    let mut options = TableOptions::default();
    apply_table_options(&mut options, &st.options)?;
    if counters > 0 && options.default_time_to_live > 0 {
        return invalid("Cannot set default_time_to_live on a table with counters");
    }
    let mut table = Table {
        keyspace: ks_name.clone(),
        name: st.name.name.clone(),
        id: Uuid::new_v4(),
        columns,
        partition_key_count: pk.len(),
        clustering_count: ck.len(),
        options,
        indexes: vec![],
        dropped: BTreeMap::new(),
        is_virtual: false,
    };
    table.normalize();
    let mut s = schema.clone();
    let mut k = (**ks).clone();
    k.tables.insert(table.name.clone(), Arc::new(table));
    s.keyspaces.insert(ks_name.clone(), Arc::new(k));
    Ok(DdlOutcome {
        schema: Some(s),
        change: change(
            "CREATED",
            SchemaChangeTarget::Table(ks_name, st.name.name.clone()),
        ),
        warnings: vec![],
    })
}

fn check_key_type(ty: &CqlType, name: &str, what: &str) -> QueryResult<()> {
    if ty.is_multicell() {
        return invalid(format!(
            "Invalid non-frozen collection type {} for PRIMARY KEY component {name}",
            ty.cql_name()
        ));
    }
    if ty.is_counter() {
        return invalid(format!(
            "counter type is not supported for PRIMARY KEY column '{name}'"
        ));
    }
    if matches!(ty, CqlType::Duration) {
        return invalid(format!(
            "duration type is not supported for PRIMARY KEY column '{name}'"
        ));
    }
    let _ = what;
    Ok(())
}

fn table_for<'a>(
    schema: &'a Schema,
    name: &QualifiedName,
    current: Option<&str>,
) -> QueryResult<Option<(&'a Arc<Keyspace>, &'a Arc<Table>)>> {
    let (ks, _) = keyspace_for(schema, name, current)?;
    Ok(ks.tables.get(&name.name).map(|t| (ks, t)))
}

fn replace_table(schema: &Schema, table: Table) -> Schema {
    let mut s = schema.clone();
    let mut k = (*s.keyspaces[&table.keyspace]).clone();
    k.tables.insert(table.name.clone(), Arc::new(table));
    s.keyspaces.insert(k.name.clone(), Arc::new(k));
    s
}

pub fn alter_table(
    schema: &Schema,
    name: &QualifiedName,
    if_exists: bool,
    op: &AlterTableOp,
    current: Option<&str>,
    now_micros: i64,
) -> QueryResult<DdlOutcome> {
    let Some((ks, table)) = table_for(schema, name, current)? else {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!(
            "Table '{}.{}' doesn't exist",
            resolve_keyspace(name, current)?,
            name.name
        ));
    };
    let mut t = (**table).clone();
    match op {
        AlterTableOp::Add(defs, if_not_exists) => {
            for def in defs {
                if t.column(&def.name).is_some() {
                    // Cassandra skips an existing column under IF NOT EXISTS.
                    if *if_not_exists {
                        continue;
                    }
                    return invalid(format!("Column with name '{}' already exists", def.name));
                }
                let ty = resolve_type(&def.ty, ks)?;
                if def.is_static && t.clustering_count == 0 {
                    return invalid("Static columns are not allowed in COMPACT STORAGE tables or tables without clustering columns".to_string());
                }
                if t.is_counter_table() != ty.is_counter() && !t.regular_and_static().is_empty() {
                    return invalid("Cannot mix counter and non counter columns in the same table");
                }
                if let Some((_, old)) = t.dropped.get(&def.name) {
                    if old.is_multicell() != ty.is_multicell() {
                        return invalid(format!("Cannot re-add previously dropped column '{}' of type {}, incompatible with previous type {}", def.name, ty.cql_name(), old.cql_name()));
                    }
                }
                let kind = if def.is_static {
                    ColumnKind::Static
                } else {
                    ColumnKind::Regular
                };
                t.columns.push(Column {
                    name: def.name.clone(),
                    ty,
                    kind,
                    position: -1,
                    reversed: false,
                });
            }
        }
        AlterTableOp::Drop(names, if_exists) => {
            for n in names {
                let Some(i) = t.column_index(n) else {
                    if *if_exists {
                        continue;
                    }
                    return invalid(format!("Column {n} was not found in table {}", t.name));
                };
                if t.columns[i].is_primary_key() {
                    return invalid(format!("Cannot drop PRIMARY KEY part {n}"));
                }
                let c = t.columns.remove(i);
                t.dropped.insert(c.name, (now_micros, c.ty));
            }
        }
        AlterTableOp::Rename(pairs, if_exists) => {
            for (from, to) in pairs {
                let Some(i) = t.column_index(from) else {
                    if *if_exists {
                        continue;
                    }
                    return invalid(format!("Column {from} was not found in table {}", t.name));
                };
                if !t.columns[i].is_primary_key() {
                    return invalid(format!("Cannot rename non PRIMARY KEY column {from}"));
                }
                if t.column(to).is_some() {
                    return invalid(format!("Cannot rename column {from} to {to} in table {}; another column with that name already exists", t.name));
                }
                t.columns[i].name = to.clone();
            }
        }
        AlterTableOp::AlterType(..) => {
            return invalid("Altering column types is no longer supported")
        }
        AlterTableOp::With(options) => apply_table_options(&mut t.options, options)?,
    }
    if !matches!(op, AlterTableOp::With(_)) && t.columns == table.columns {
        // Every column was skipped by IF [NOT] EXISTS: no schema change, no event.
        return Ok(unchanged());
    }
    t.normalize();
    let change = change(
        "UPDATED",
        SchemaChangeTarget::Table(t.keyspace.clone(), t.name.clone()),
    );
    Ok(DdlOutcome {
        schema: Some(replace_table(schema, t)),
        change,
        warnings: vec![],
    })
}

pub fn drop_table(
    schema: &Schema,
    name: &QualifiedName,
    if_exists: bool,
    current: Option<&str>,
) -> QueryResult<(DdlOutcome, Option<Uuid>)> {
    let Some((_, table)) = table_for(schema, name, current)? else {
        if if_exists {
            return Ok((unchanged(), None));
        }
        return invalid(format!(
            "Table '{}.{}' doesn't exist",
            resolve_keyspace(name, current)?,
            name.name
        ));
    };
    let mut s = schema.clone();
    let mut k = (*s.keyspaces[&table.keyspace]).clone();
    k.tables.remove(&table.name);
    s.keyspaces.insert(k.name.clone(), Arc::new(k));
    let ch = change(
        "DROPPED",
        SchemaChangeTarget::Table(table.keyspace.clone(), table.name.clone()),
    );
    Ok((
        DdlOutcome {
            schema: Some(s),
            change: ch,
            warnings: vec![],
        },
        Some(table.id),
    ))
}

pub fn create_type(
    schema: &Schema,
    name: &QualifiedName,
    if_not_exists: bool,
    fields: &[(String, CqlTypeAst)],
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let (ks, ks_name) = keyspace_for(schema, name, current)?;
    if ks.types.contains_key(&name.name) {
        if if_not_exists {
            return Ok(unchanged());
        }
        return Err(QueryError::AlreadyExists {
            keyspace: ks_name.clone(),
            table: name.name.clone(),
            message: format!("A user type with name '{}' already exists", name.name),
        });
    }
    if CqlType::parse_native(&name.name).is_some() {
        return invalid(format!("User type name {} is reserved", name.name));
    }
    let mut resolved = vec![];
    for (f, t) in fields {
        if resolved.iter().any(|(n, _): &(String, CqlType)| n == f) {
            return invalid(format!("Duplicate field name {f} in type {}", name.name));
        }
        let ty = resolve_inner(t, ks)?;
        if ty.is_counter() {
            return invalid("A user type cannot contain counters");
        }
        resolved.push((f.clone(), ty));
    }
    let mut s = schema.clone();
    let mut k = (**ks).clone();
    k.types.insert(
        name.name.clone(),
        UdtDef {
            keyspace: ks_name.clone(),
            name: name.name.clone(),
            fields: resolved,
        },
    );
    s.keyspaces.insert(ks_name.clone(), Arc::new(k));
    Ok(DdlOutcome {
        schema: Some(s),
        change: change(
            "CREATED",
            SchemaChangeTarget::Type(ks_name, name.name.clone()),
        ),
        warnings: vec![],
    })
}

/// Replaces every use of a UDT in the keyspace's tables and types with its new definition.
fn propagate_udt(k: &mut Keyspace, def: &UdtDef) {
    fn fix(t: &CqlType, def: &UdtDef) -> CqlType {
        match t {
            CqlType::Udt(u) if u.name == def.name && u.keyspace == def.keyspace => {
                CqlType::Udt(def.clone())
            }
            CqlType::Udt(u) => CqlType::Udt(UdtDef {
                keyspace: u.keyspace.clone(),
                name: u.name.clone(),
                fields: u
                    .fields
                    .iter()
                    .map(|(n, t)| (n.clone(), fix(t, def)))
                    .collect(),
            }),
            CqlType::List(e) => CqlType::List(Box::new(fix(e, def))),
            CqlType::Set(e) => CqlType::Set(Box::new(fix(e, def))),
            CqlType::Map(a, b) => CqlType::Map(Box::new(fix(a, def)), Box::new(fix(b, def))),
            CqlType::Tuple(ts) => CqlType::Tuple(ts.iter().map(|t| fix(t, def)).collect()),
            CqlType::Frozen(e) => CqlType::Frozen(Box::new(fix(e, def))),
            CqlType::Vector(e, n) => CqlType::Vector(Box::new(fix(e, def)), *n),
            other => other.clone(),
        }
    }
    for t in k.tables.values_mut() {
        let mut nt = (**t).clone();
        for c in &mut nt.columns {
            c.ty = fix(&c.ty, def);
        }
        *t = Arc::new(nt);
    }
    let names: Vec<String> = k.types.keys().cloned().collect();
    for n in names {
        let u = k.types[&n].clone();
        if let CqlType::Udt(fixed) = fix(&CqlType::Udt(u), def) {
            k.types.insert(n, fixed);
        }
    }
}

pub fn alter_type(
    schema: &Schema,
    name: &QualifiedName,
    if_exists: bool,
    op: &AlterTypeOp,
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let (ks, ks_name) = keyspace_for(schema, name, current)?;
    let Some(old) = ks.types.get(&name.name) else {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!("No user type named {} exists.", name.name));
    };
    let mut def = old.clone();
    match op {
        AlterTypeOp::Add(f, t, if_not_exists) => {
            if def.fields.iter().any(|(n, _)| n == f) {
                if *if_not_exists {
                    return Ok(unchanged());
                }
                return invalid(format!("Cannot add new field {f} to type {ks_name}.{}: a field with name {f} already exists", name.name));
            }
            def.fields.push((f.clone(), resolve_inner(t, ks)?));
        }
        AlterTypeOp::Rename(pairs, if_exists) => {
            for (from, to) in pairs {
                let Some(p) = def.fields.iter().position(|(n, _)| n == from) else {
                    if *if_exists {
                        continue;
                    }
                    return invalid(format!(
                        "Unkown field {from} in user type {ks_name}.{}",
                        name.name
                    ));
                };
                def.fields[p].0 = to.clone();
            }
        }
    }
    let mut s = schema.clone();
    let mut k = (**ks).clone();
    k.types.insert(name.name.clone(), def.clone());
    propagate_udt(&mut k, &def);
    s.keyspaces.insert(ks_name.clone(), Arc::new(k));
    Ok(DdlOutcome {
        schema: Some(s),
        change: change(
            "UPDATED",
            SchemaChangeTarget::Type(ks_name, name.name.clone()),
        ),
        warnings: vec![],
    })
}

pub fn drop_type(
    schema: &Schema,
    name: &QualifiedName,
    if_exists: bool,
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let (ks, ks_name) = keyspace_for(schema, name, current)?;
    if !ks.types.contains_key(&name.name) {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!("Type '{ks_name}.{}' doesn't exist", name.name));
    }
    for t in ks.tables.values() {
        for c in &t.columns {
            if c.ty.references_udt(&ks_name, &name.name) {
                return invalid(format!(
                    "Cannot drop user type {ks_name}.{} as it is still used by table {}",
                    name.name, t.name
                ));
            }
        }
    }
    for (other, u) in &ks.types {
        if other != &name.name && CqlType::Udt(u.clone()).references_udt(&ks_name, &name.name) {
            return invalid(format!(
                "Cannot drop user type {ks_name}.{} as it is still used by user type {other}",
                name.name
            ));
        }
    }
    let mut s = schema.clone();
    let mut k = (**ks).clone();
    k.types.remove(&name.name);
    s.keyspaces.insert(ks_name.clone(), Arc::new(k));
    Ok(DdlOutcome {
        schema: Some(s),
        change: change(
            "DROPPED",
            SchemaChangeTarget::Type(ks_name, name.name.clone()),
        ),
        warnings: vec![],
    })
}

pub fn create_index(
    schema: &Schema,
    st: &CreateIndex,
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let Some((ks, table)) = table_for(schema, &st.table, current)? else {
        return invalid(format!(
            "Table '{}.{}' doesn't exist",
            resolve_keyspace(&st.table, current)?,
            st.table.name
        ));
    };
    let Some(col) = table.column(&st.column) else {
        return invalid(format!("Undefined column name {}", st.column));
    };
    let name = st
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_{}_idx", table.name, st.column));
    if ks
        .tables
        .values()
        .any(|t| t.indexes.iter().any(|i| i.name == name))
    {
        if st.if_not_exists {
            return Ok(unchanged());
        }
        return Err(QueryError::Invalid(format!(
            "Index '{name}' already exists"
        )));
    }
    let target = match st.kind {
        IndexTargetKind::Simple if col.ty.is_collection() && col.ty.is_multicell() => {
            format!("values({})", col.name)
        }
        IndexTargetKind::Simple => quote(&col.name),
        IndexTargetKind::Keys => format!("keys({})", col.name),
        IndexTargetKind::Values => format!("values({})", col.name),
        IndexTargetKind::Entries => format!("entries({})", col.name),
        IndexTargetKind::Full => format!("full({})", col.name),
    };
    let mut options: BTreeMap<String, String> = st.options.iter().cloned().collect();
    options.insert("target".into(), target);
    let kind = if st.custom || st.using.is_some() {
        let class = match st.using.as_deref().map(|u| u.to_ascii_lowercase()) {
            Some(u) if u == "sai" || u.ends_with("storageattachedindex") => {
                "org.apache.cassandra.index.sai.StorageAttachedIndex".to_string()
            }
            Some(_) => st.using.clone().unwrap_or_default(),
            None => return invalid("CUSTOM index requires specifying the index class"),
        };
        options.insert("class_name".into(), class);
        "CUSTOM"
    } else {
        "COMPOSITES"
    };
    validate_index(col, &options, kind == "CUSTOM", st.kind)?;
    let mut t = (**table).clone();
    t.indexes.push(IndexDef {
        name,
        kind: kind.into(),
        options,
    });
    let change = change(
        "UPDATED",
        SchemaChangeTarget::Table(t.keyspace.clone(), t.name.clone()),
    );
    Ok(DdlOutcome {
        schema: Some(replace_table(schema, t)),
        change,
        warnings: vec![],
    })
}

const INDEX_OPTIONS: &[&str] = &[
    "target",
    "class_name",
    "similarity_function",
    "maximum_node_connections",
    "construction_beam_width",
    "search_beam_width",
    "exact_search_limit",
    "source_model",
    "case_sensitive",
    "normalize",
    "ascii",
];

/// What Cassandra's StorageAttachedIndex accepts for a column and its options.
fn validate_index(
    col: &crate::schema::Column,
    options: &BTreeMap<String, String>,
    sai: bool,
    kind: IndexTargetKind,
) -> QueryResult<()> {
    let unknown: Vec<&String> = options
        .keys()
        .filter(|k| !INDEX_OPTIONS.contains(&k.as_str()))
        .collect();
    if sai && !unknown.is_empty() {
        return invalid(format!(
            "Invalid options were specified for the index: {}",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if kind == IndexTargetKind::Entries && sai {
        return invalid("Cannot create an SAI index on entries() of a map: use keys() or values()");
    }
    let vector = match col.ty.unfrozen() {
        CqlType::Vector(e, n) => Some((e.as_ref().clone(), *n)),
        _ => None,
    };
    for o in [
        "exact_search_limit",
        "similarity_function",
        "maximum_node_connections",
        "construction_beam_width",
        "search_beam_width",
        "source_model",
    ] {
        if options.contains_key(o) && vector.is_none() {
            return invalid(format!("{o} is only supported on vector columns"));
        }
    }
    let Some((elem, dims)) = vector else {
        return Ok(());
    };
    if !sai {
        return invalid("Vector columns can only be indexed with 'StorageAttachedIndex'");
    }
    if elem != CqlType::Float {
        return invalid("SAI ANN indexes are only allowed on vector columns with float elements");
    }
    let sim = match options.get("similarity_function") {
        Some(f) => sibyl_index::Similarity::parse(f).ok_or_else(|| {
            QueryError::Invalid(format!(
                "Similarity function {f} was not recognized for the vector similarity function, expected one of COSINE, DOT_PRODUCT, EUCLIDEAN"
            ))
        })?,
        None => sibyl_index::Similarity::Cosine,
    };
    if sim == sibyl_index::Similarity::Cosine && dims == 1 {
        return invalid("Cosine similarity is not supported for single-dimension vectors");
    }
    if let Some(v) = options.get("exact_search_limit") {
        if v.trim().parse::<usize>().is_err() {
            return invalid(format!(
                "exact_search_limit must be a non-negative integer, but was {v}"
            ));
        }
    }
    for (o, max) in [
        ("maximum_node_connections", 512usize),
        ("construction_beam_width", 3200),
        ("search_beam_width", 10_000),
    ] {
        if let Some(v) = options.get(o) {
            match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 && n <= max => {}
                _ => {
                    return invalid(format!(
                        "{o} must be an integer between 1 and {max}, but was {v}"
                    ))
                }
            }
        }
    }
    Ok(())
}

fn quote(name: &str) -> String {
    sibyl_cql::quote_identifier_if_needed(name)
}

pub fn drop_index(
    schema: &Schema,
    name: &QualifiedName,
    if_exists: bool,
    current: Option<&str>,
) -> QueryResult<DdlOutcome> {
    let ks_name = resolve_keyspace(name, current)?;
    let table = schema.keyspaces.get(&ks_name).and_then(|k| {
        k.tables
            .values()
            .find(|t| t.indexes.iter().any(|i| i.name == name.name))
    });
    let Some(table) = table else {
        if if_exists {
            return Ok(unchanged());
        }
        return invalid(format!("Index '{ks_name}.{}' doesn't exist", name.name));
    };
    let mut t = (**table).clone();
    t.indexes.retain(|i| i.name != name.name);
    let change = change(
        "UPDATED",
        SchemaChangeTarget::Table(t.keyspace.clone(), t.name.clone()),
    );
    Ok(DdlOutcome {
        schema: Some(replace_table(schema, t)),
        change,
        warnings: vec![],
    })
}

/// A schema version that depends only on the schema's content, so that nodes with the same
/// schema agree on it.
pub fn content_version(schema: &Schema) -> Uuid {
    use md5::{Digest, Md5};
    let mut s = schema.clone();
    s.version = Uuid::nil();
    let bytes = serde_json::to_vec(&s).unwrap_or_default();
    let digest: [u8; 16] = Md5::digest(&bytes).into();
    uuid::Builder::from_md5_bytes(digest).into_uuid()
}

/// The schema changes that turn `old` into `new`, as events for clients.
pub fn diff(old: &Schema, new: &Schema) -> Vec<SchemaChange> {
    let mut out = vec![];
    diff_named(
        &old.keyspaces,
        &new.keyspaces,
        &mut out,
        SchemaChangeTarget::Keyspace,
        |o, n| o.replication != n.replication || o.durable_writes != n.durable_writes,
    );
    for (name, ks) in &new.keyspaces {
        if let Some(o) = old.keyspaces.get(name) {
            let table = |t: String| SchemaChangeTarget::Table(name.clone(), t);
            diff_named(&o.tables, &ks.tables, &mut out, table, |a, b| a != b);
            let ty = |t: String| SchemaChangeTarget::Type(name.clone(), t);
            diff_named(&o.types, &ks.types, &mut out, ty, |a, b| a != b);
        }
    }
    out
}

/// CREATED / UPDATED / DROPPED events for the entries of two name-keyed maps.
fn diff_named<V>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    out: &mut Vec<SchemaChange>,
    target: impl Fn(String) -> SchemaChangeTarget,
    changed: impl Fn(&V, &V) -> bool,
) {
    for (name, v) in new {
        match old.get(name) {
            None => out.extend(change("CREATED", target(name.clone()))),
            Some(o) if changed(o, v) => out.extend(change("UPDATED", target(name.clone()))),
            _ => {}
        }
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        out.extend(change("DROPPED", target(name.clone())));
    }
}

#[cfg(test)]
mod diff_tests {
    use super::*;

    fn ks(name: &str, rf: &str) -> Arc<Keyspace> {
        let replication = [
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", rf),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Arc::new(Keyspace {
            name: name.into(),
            replication,
            durable_writes: true,
            tables: BTreeMap::new(),
            types: BTreeMap::new(),
        })
    }

    #[test]
    fn diff_names_created_updated_dropped() {
        let mut old = Schema::default();
        old.keyspaces.insert("a".into(), ks("a", "1"));
        old.keyspaces.insert("b".into(), ks("b", "1"));
        let mut new = Schema::default();
        new.keyspaces.insert("a".into(), ks("a", "3"));
        let mut c = (*ks("c", "1")).clone();
        c.types.insert(
            "t".into(),
            UdtDef {
                keyspace: "c".into(),
                name: "t".into(),
                fields: vec![],
            },
        );
        new.keyspaces.insert("c".into(), Arc::new(c.clone()));
        let mut changes: Vec<(String, SchemaChangeTarget)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.change_type, c.target))
            .collect();
        changes.sort_by_key(|(k, t)| format!("{k}{t:?}"));
        assert_eq!(
            changes,
            vec![
                (
                    "CREATED".to_string(),
                    SchemaChangeTarget::Keyspace("c".into())
                ),
                (
                    "DROPPED".to_string(),
                    SchemaChangeTarget::Keyspace("b".into())
                ),
                (
                    "UPDATED".to_string(),
                    SchemaChangeTarget::Keyspace("a".into())
                ),
            ]
        );
        // A type added to an existing keyspace is announced by itself.
        let mut newer = new.clone();
        c.types.insert(
            "u".into(),
            UdtDef {
                keyspace: "c".into(),
                name: "u".into(),
                fields: vec![],
            },
        );
        newer.keyspaces.insert("c".into(), Arc::new(c));
        let changes = diff(&new, &newer);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].target,
            SchemaChangeTarget::Type("c".into(), "u".into())
        );
    }
}
