//! Server-side DESCRIBE (as Cassandra 4.0+ answers it for cqlsh): element lists and the CQL that
//! recreates keyspaces, tables and types.

use std::fmt::Write;

use bytes::Bytes;
use sibyl_cql::quote_identifier_if_needed as q;
use sibyl_protocol::messages::{ColumnSpec, ResultBody, Rows, RowsMetadata, RowsWriter};
use sibyl_types::{CqlType, UdtDef};

use crate::error::{invalid, QueryResult};
use crate::executor::Outcome;
use crate::node::Node;
use crate::schema::{ColumnKind, Keyspace, Table};

fn cql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn map_literal(m: &std::collections::BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}: {}", cql_string(k), cql_string(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub fn keyspace_cql(ks: &Keyspace) -> String {
    format!(
        "CREATE KEYSPACE {} WITH replication = {}  AND durable_writes = {};",
        q(&ks.name),
        map_literal(&ks.replication),
        ks.durable_writes
    )
}

pub fn type_cql(u: &UdtDef) -> String {
    let fields: Vec<String> = u
        .fields
        .iter()
        .map(|(n, t)| format!("    {} {}", q(n), t.cql_name()))
        .collect();
    format!(
        "CREATE TYPE {}.{} (\n{}\n);",
        q(&u.keyspace),
        q(&u.name),
        fields.join(",\n")
    )
}

pub fn table_cql(t: &Table) -> String {
    let mut s = format!("CREATE TABLE {}.{} (\n", q(&t.keyspace), q(&t.name));
    let single_pk = t.partition_key_count == 1 && t.clustering_count == 0;
    for c in &t.columns {
        let _ = write!(s, "    {} {}", q(&c.name), c.ty.cql_name());
        if c.kind == ColumnKind::Static {
            s.push_str(" static");
        }
        if single_pk && c.kind == ColumnKind::PartitionKey {
            s.push_str(" PRIMARY KEY");
        }
        s.push_str(",\n");
    }
    if single_pk {
        s.truncate(s.len() - 2);
        s.push('\n');
    } else {
        let pk: Vec<String> = t.partition_key().iter().map(|c| q(&c.name)).collect();
        let pk = if pk.len() == 1 {
            pk[0].clone()
        } else {
            format!("({})", pk.join(", "))
        };
        let mut parts = vec![pk];
        parts.extend(t.clustering().iter().map(|c| q(&c.name)));
        let _ = writeln!(s, "    PRIMARY KEY ({})", parts.join(", "));
    }
    s.push_str(") WITH ");
    let mut opts = vec![];
    if t.clustering_count > 0 {
        let order: Vec<String> = t
            .clustering()
            .iter()
            .map(|c| format!("{} {}", q(&c.name), if c.reversed { "DESC" } else { "ASC" }))
            .collect();
        opts.push(format!("CLUSTERING ORDER BY ({})", order.join(", ")));
    }
    let o = &t.options;
    opts.push(format!(
        "additional_write_policy = {}",
        cql_string(&o.additional_write_policy)
    ));
    opts.push(format!("allow_auto_snapshot = {}", o.allow_auto_snapshot));
    opts.push(format!(
        "bloom_filter_fp_chance = {}",
        o.bloom_filter_fp_chance
    ));
    opts.push(format!("caching = {}", map_literal(&o.caching)));
    opts.push(format!("cdc = {}", o.cdc));
    opts.push(format!("comment = {}", cql_string(&o.comment)));
    opts.push(format!("compaction = {}", map_literal(&o.compaction)));
    opts.push(format!("compression = {}", map_literal(&o.compression)));
    opts.push(format!("memtable = {}", cql_string(&o.memtable)));
    opts.push(format!("crc_check_chance = {}", o.crc_check_chance));
    opts.push(format!("default_time_to_live = {}", o.default_time_to_live));
    opts.push("extensions = {}".to_string());
    opts.push(format!("gc_grace_seconds = {}", o.gc_grace_seconds));
    opts.push(format!("incremental_backups = {}", o.incremental_backups));
    opts.push(format!("max_index_interval = {}", o.max_index_interval));
    opts.push(format!(
        "memtable_flush_period_in_ms = {}",
        o.memtable_flush_period_in_ms
    ));
    opts.push(format!("min_index_interval = {}", o.min_index_interval));
    opts.push(format!("read_repair = {}", cql_string(&o.read_repair)));
    opts.push(format!(
        "speculative_retry = {}",
        cql_string(&o.speculative_retry)
    ));
    s.push_str(&opts.join("\n    AND "));
    s.push(';');
    for i in &t.indexes {
        let target = i.options.get("target").cloned().unwrap_or_default();
        match i.options.get("class_name") {
            Some(class) => {
                let extra: Vec<String> = i
                    .options
                    .iter()
                    .filter(|(k, _)| *k != "target" && *k != "class_name")
                    .map(|(k, v)| format!("{}: {}", cql_string(k), cql_string(v)))
                    .collect();
                let with = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" WITH OPTIONS = {{{}}}", extra.join(", "))
                };
                let _ = write!(
                    s,
                    "\n\nCREATE CUSTOM INDEX {} ON {}.{} ({}) USING {}{};",
                    q(&i.name),
                    q(&t.keyspace),
                    q(&t.name),
                    target,
                    cql_string(class),
                    with
                );
            }
            None => {
                let _ = write!(
                    s,
                    "\n\nCREATE INDEX {} ON {}.{} ({});",
                    q(&i.name),
                    q(&t.keyspace),
                    q(&t.name),
                    target
                );
            }
        }
    }
    s
}

fn result(rows: Vec<(String, String, String, String)>) -> Outcome {
    let mut w = RowsWriter::new();
    for (ks, ty, name, stmt) in &rows {
        for v in [ks, ty, name, stmt] {
            w.push_cell(Some(v.as_bytes()));
        }
        w.finish_row();
    }
    let (row_count, content) = w.finish();
    let col = |n: &str| ColumnSpec {
        keyspace: String::new(),
        table: String::new(),
        name: n.into(),
        ty: CqlType::Text,
    };
    let metadata = RowsMetadata {
        columns: vec![
            col("keyspace_name"),
            col("type"),
            col("name"),
            col("create_statement"),
        ]
        .into(),
        paging_state: None,
        no_metadata: false,
        new_metadata_id: None,
    };
    Outcome {
        body: ResultBody::Rows(Rows {
            metadata,
            row_count,
            content,
        }),
        warnings: vec![],
        schema_change: None,
    }
}

fn ident(s: &str) -> String {
    if s.starts_with('"') && s.ends_with('"') && s.len() >= 2 {
        s[1..s.len() - 1].replace("\"\"", "\"")
    } else {
        s.to_lowercase()
    }
}

/// Answers DESCRIBE statements; None when the query is not one.
pub fn try_describe(
    node: &Node,
    keyspace: Option<&str>,
    query: &str,
) -> QueryResult<Option<Outcome>> {
    let text = query.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if !first.eq_ignore_ascii_case("describe") && !first.eq_ignore_ascii_case("desc") {
        return Ok(None);
    }
    let schema = node.schema();
    let what = words.get(1).map(|w| w.to_lowercase()).unwrap_or_default();
    let arg = words.get(2).copied();
    let split = |name: &str| -> (Option<String>, String) {
        match name.split_once('.') {
            Some((k, t)) => (Some(ident(k)), ident(t)),
            None => (None, ident(name)),
        }
    };
    let user_keyspaces = || schema.keyspaces.values().cloned().collect::<Vec<_>>();
    let system_names = ["system", "system_schema", "system_virtual_schema"];
    let out = match what.as_str() {
        "keyspaces" => {
            let mut rows: Vec<_> = system_names
                .iter()
                .map(|k| {
                    (
                        k.to_string(),
                        "keyspace".into(),
                        k.to_string(),
                        String::new(),
                    )
                })
                .collect();
            rows.extend(user_keyspaces().iter().map(|k| {
                (
                    k.name.clone(),
                    "keyspace".into(),
                    k.name.clone(),
                    String::new(),
                )
            }));
            rows.sort();
            result(rows)
        }
        "tables" | "columnfamilies" => {
            let mut rows = vec![];
            for ks in user_keyspaces() {
                if keyspace.is_some_and(|k| k != ks.name) {
                    continue;
                }
                rows.extend(
                    ks.tables
                        .keys()
                        .map(|t| (ks.name.clone(), "table".into(), t.clone(), String::new())),
                );
            }
            result(rows)
        }
        "types" => {
            let mut rows = vec![];
            for ks in user_keyspaces() {
                if keyspace.is_some_and(|k| k != ks.name) {
                    continue;
                }
                rows.extend(
                    ks.types
                        .keys()
                        .map(|t| (ks.name.clone(), "type".into(), t.clone(), String::new())),
                );
            }
            result(rows)
        }
        "functions" | "aggregates" => result(vec![]),
        "cluster" => {
            let mut w = RowsWriter::new();
            for v in [
                node.local.cluster_name.as_str(),
                crate::system_tables::PARTITIONER,
                "org.apache.cassandra.locator.SimpleSnitch",
            ] {
                w.push_cell(Some(v.as_bytes()));
            }
            w.finish_row();
            let (row_count, content) = w.finish();
            let col = |n: &str| ColumnSpec {
                keyspace: String::new(),
                table: String::new(),
                name: n.into(),
                ty: CqlType::Text,
            };
            let metadata = RowsMetadata {
                columns: vec![col("cluster"), col("partitioner"), col("snitch")].into(),
                paging_state: None,
                no_metadata: false,
                new_metadata_id: None,
            };
            Outcome {
                body: ResultBody::Rows(Rows {
                    metadata,
                    row_count,
                    content,
                }),
                warnings: vec![],
                schema_change: None,
            }
        }
        "keyspace" | "schema" | "full" => {
            let targets: Vec<_> = if what == "keyspace" {
                let name = arg.map(ident).or(keyspace.map(String::from));
                let Some(name) = name else {
                    return invalid("No keyspace specified and no current keyspace");
                };
                match schema.keyspaces.get(&name) {
                    Some(k) => vec![k.clone()],
                    None => return invalid(format!("'{name}' not found in keyspaces")),
                }
            } else {
                user_keyspaces()
            };
            let mut rows = vec![];
            for ks in targets {
                rows.push((
                    ks.name.clone(),
                    "keyspace".into(),
                    ks.name.clone(),
                    keyspace_cql(&ks),
                ));
                for u in ks.types.values() {
                    rows.push((ks.name.clone(), "type".into(), u.name.clone(), type_cql(u)));
                }
                for t in ks.tables.values() {
                    rows.push((
                        ks.name.clone(),
                        "table".into(),
                        t.name.clone(),
                        table_cql(t),
                    ));
                }
            }
            result(rows)
        }
        "table" | "columnfamily" => {
            let Some(arg) = arg else {
                return invalid("DESCRIBE TABLE requires a table name");
            };
            let (k, t) = split(arg);
            let Some(k) = k.or(keyspace.map(String::from)) else {
                return invalid("No keyspace specified and no current keyspace");
            };
            match schema.table(&k, &t) {
                Some(tab) => result(vec![(k.clone(), "table".into(), t.clone(), table_cql(tab))]),
                None => return invalid(format!("'{t}' not found in keyspace '{k}'")),
            }
        }
        "type" => {
            let Some(arg) = arg else {
                return invalid("DESCRIBE TYPE requires a type name");
            };
            let (k, t) = split(arg);
            let Some(k) = k.or(keyspace.map(String::from)) else {
                return invalid("No keyspace specified and no current keyspace");
            };
            match schema.keyspaces.get(&k).and_then(|ks| ks.types.get(&t)) {
                Some(u) => result(vec![(k.clone(), "type".into(), t.clone(), type_cql(u))]),
                None => return invalid(format!("'{t}' not found in keyspace '{k}'")),
            }
        }
        other if !other.is_empty() => {
            // DESCRIBE <name>: a keyspace or a table.
            let (k, t) = split(words[1]);
            if k.is_none() {
                if let Some(ks) = schema.keyspaces.get(&t) {
                    return try_describe(node, keyspace, &format!("DESCRIBE KEYSPACE {}", ks.name));
                }
            }
            let Some(k) = k.or(keyspace.map(String::from)) else {
                return invalid(format!("'{t}' not found in keyspaces"));
            };
            match schema.table(&k, &t) {
                Some(tab) => result(vec![(k.clone(), "table".into(), t.clone(), table_cql(tab))]),
                None => return invalid(format!("'{t}' not found in keyspace '{k}'")),
            }
        }
        _ => return invalid("line 1:8 mismatched input '<EOF>' expecting K_KEYSPACES"),
    };
    let _ = Bytes::new();
    Ok(Some(out))
}
