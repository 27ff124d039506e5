//! The tables drivers read to learn about the node and the schema: `system.local`, `system.peers`,
//! `system.peers_v2`, `system_schema.*` and `system_virtual_schema.*`. They are virtual: their
//! rows are generated from the live schema and the node's identity on every read.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use sibyl_types::{CqlType, Value};
use uuid::Uuid;

use crate::schema::{Column, ColumnKind, Keyspace, Schema, Table, TableOptions};

pub const RELEASE_VERSION: &str = "5.0.2";
pub const CQL_VERSION: &str = "3.4.7";
pub const PARTITIONER: &str = "org.apache.cassandra.dht.Murmur3Partitioner";

/// What the node knows of itself, for system.local.
#[derive(Debug, Clone)]
pub struct LocalInfo {
    pub cluster_name: String,
    pub dc: String,
    pub rack: String,
    pub host_id: Uuid,
    pub address: IpAddr,
    pub native_port: u16,
    pub storage_port: u16,
    pub tokens: Vec<i64>,
    pub gossip_generation: i32,
}

type Row = Vec<Option<Value>>;

/// Another node of the cluster, as system.peers shows it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: IpAddr,
    pub storage_port: u16,
    pub native_port: u16,
    pub dc: String,
    pub rack: String,
    pub host_id: Uuid,
    pub tokens: Vec<i64>,
    pub schema_version: Uuid,
    pub release_version: String,
}

fn text(s: &str) -> Option<Value> {
    Some(Value::Text(s.to_string()))
}

fn text_map(m: &BTreeMap<String, String>) -> Option<Value> {
    Some(Value::Map(
        m.iter()
            .map(|(k, v)| (Value::Text(k.clone()), Value::Text(v.clone())))
            .collect(),
    ))
}

fn text_list(v: impl IntoIterator<Item = String>) -> Option<Value> {
    Some(Value::List(v.into_iter().map(Value::Text).collect()))
}

fn frozen(t: CqlType) -> CqlType {
    CqlType::Frozen(Box::new(t))
}
fn map_tt() -> CqlType {
    frozen(CqlType::Map(
        Box::new(CqlType::Text),
        Box::new(CqlType::Text),
    ))
}
fn list_t() -> CqlType {
    frozen(CqlType::List(Box::new(CqlType::Text)))
}

/// Builds a virtual table definition; `pk` and `ck` name the key columns in order.
fn vtable(ks: &str, name: &str, pk: &[&str], ck: &[&str], cols: Vec<(&str, CqlType)>) -> Table {
    let mut columns = vec![];
    let ty_of = |n: &str| {
        cols.iter()
            .find(|(c, _)| *c == n)
            .map(|(_, t)| t.clone())
            .expect("key column declared")
    };
    for (i, n) in pk.iter().enumerate() {
        columns.push(Column {
            name: n.to_string(),
            ty: ty_of(n),
            kind: ColumnKind::PartitionKey,
            position: i as i32,
            reversed: false,
        });
    }
    for (i, n) in ck.iter().enumerate() {
        columns.push(Column {
            name: n.to_string(),
            ty: ty_of(n),
            kind: ColumnKind::Clustering,
            position: i as i32,
            reversed: false,
        });
    }
    for (n, t) in &cols {
        if !pk.contains(n) && !ck.contains(n) {
            columns.push(Column {
                name: n.to_string(),
                ty: t.clone(),
                kind: ColumnKind::Regular,
                position: -1,
                reversed: false,
            });
        }
    }
    let mut t = Table {
        keyspace: ks.into(),
        name: name.into(),
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{ks}.{name}").as_bytes()),
        columns,
        partition_key_count: pk.len(),
        clustering_count: ck.len(),
        options: TableOptions::default(),
        indexes: vec![],
        dropped: BTreeMap::new(),
        is_virtual: true,
    };
    t.normalize();
    t
}

fn table_option_columns() -> Vec<(&'static str, CqlType)> {
    use CqlType::*;
    vec![
        ("additional_write_policy", Text),
        ("allow_auto_snapshot", Boolean),
        ("bloom_filter_fp_chance", Double),
        ("caching", map_tt()),
        ("cdc", Boolean),
        ("comment", Text),
        ("compaction", map_tt()),
        ("compression", map_tt()),
        ("crc_check_chance", Double),
        ("default_time_to_live", Int),
        ("extensions", frozen(Map(Box::new(Text), Box::new(Blob)))),
        ("gc_grace_seconds", Int),
        ("id", Uuid),
        ("incremental_backups", Boolean),
        ("max_index_interval", Int),
        ("memtable", Text),
        ("memtable_flush_period_in_ms", Int),
        ("min_index_interval", Int),
        ("read_repair", Text),
        ("speculative_retry", Text),
    ]
}

/// Every virtual table, keyed by (keyspace, table).
/// Virtual tables by keyspace, then name (looked up by borrowed names on every execution).
pub type VirtualTables = BTreeMap<String, BTreeMap<String, Arc<Table>>>;

/// Every virtual table in a deterministic order.
pub fn all_virtual(v: &VirtualTables) -> impl Iterator<Item = &Arc<Table>> {
    v.values().flat_map(|tables| tables.values())
}

pub fn definitions() -> VirtualTables {
    use CqlType::*;
    let tables = vec![
        vtable(
            "system",
            "local",
            &["key"],
            &[],
            vec![
                ("key", Text),
                ("bootstrapped", Text),
                ("broadcast_address", Inet),
                ("broadcast_port", Int),
                ("cluster_name", Text),
                ("cql_version", Text),
                ("data_center", Text),
                ("gossip_generation", Int),
                ("host_id", Uuid),
                ("listen_address", Inet),
                ("listen_port", Int),
                ("native_protocol_version", Text),
                ("partitioner", Text),
                ("rack", Text),
                ("release_version", Text),
                ("rpc_address", Inet),
                ("rpc_port", Int),
                ("schema_version", Uuid),
                ("tokens", CqlType::Set(Box::new(Text))),
                ("truncated_at", CqlType::Map(Box::new(Uuid), Box::new(Blob))),
            ],
        ),
        vtable(
            "system",
            "peers",
            &["peer"],
            &[],
            vec![
                ("peer", Inet),
                ("data_center", Text),
                ("host_id", Uuid),
                ("preferred_ip", Inet),
                ("rack", Text),
                ("release_version", Text),
                ("rpc_address", Inet),
                ("schema_version", Uuid),
                ("tokens", CqlType::Set(Box::new(Text))),
            ],
        ),
        vtable(
            "system",
            "peers_v2",
            &["peer"],
            &["peer_port"],
            vec![
                ("peer", Inet),
                ("peer_port", Int),
                ("data_center", Text),
                ("host_id", Uuid),
                ("native_address", Inet),
                ("native_port", Int),
                ("preferred_ip", Inet),
                ("preferred_port", Int),
                ("rack", Text),
                ("release_version", Text),
                ("schema_version", Uuid),
                ("tokens", CqlType::Set(Box::new(Text))),
            ],
        ),
        vtable(
            "system_schema",
            "keyspaces",
            &["keyspace_name"],
            &[],
            vec![
                ("keyspace_name", Text),
                ("durable_writes", Boolean),
                ("replication", map_tt()),
            ],
        ),
        {
            let mut cols = vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("flags", frozen(CqlType::Set(Box::new(Text)))),
            ];
            cols.extend(table_option_columns());
            vtable(
                "system_schema",
                "tables",
                &["keyspace_name"],
                &["table_name"],
                cols,
            )
        },
        {
            let mut cols = vec![
                ("keyspace_name", Text),
                ("view_name", Text),
                ("base_table_id", Uuid),
                ("base_table_name", Text),
                ("include_all_columns", Boolean),
                ("where_clause", Text),
            ];
            cols.extend(table_option_columns());
            vtable(
                "system_schema",
                "views",
                &["keyspace_name"],
                &["view_name"],
                cols,
            )
        },
        vtable(
            "system_schema",
            "columns",
            &["keyspace_name"],
            &["table_name", "column_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("clustering_order", Text),
                ("column_name_bytes", Blob),
                ("kind", Text),
                ("position", Int),
                ("type", Text),
            ],
        ),
        vtable(
            "system_schema",
            "dropped_columns",
            &["keyspace_name"],
            &["table_name", "column_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("dropped_time", Timestamp),
                ("kind", Text),
                ("type", Text),
            ],
        ),
        vtable(
            "system_schema",
            "types",
            &["keyspace_name"],
            &["type_name"],
            vec![
                ("keyspace_name", Text),
                ("type_name", Text),
                ("field_names", list_t()),
                ("field_types", list_t()),
            ],
        ),
        vtable(
            "system_schema",
            "functions",
            &["keyspace_name"],
            &["function_name", "argument_types"],
            vec![
                ("keyspace_name", Text),
                ("function_name", Text),
                ("argument_types", list_t()),
                ("argument_names", list_t()),
                ("body", Text),
                ("called_on_null_input", Boolean),
                ("language", Text),
                ("return_type", Text),
            ],
        ),
        vtable(
            "system_schema",
            "aggregates",
            &["keyspace_name"],
            &["aggregate_name", "argument_types"],
            vec![
                ("keyspace_name", Text),
                ("aggregate_name", Text),
                ("argument_types", list_t()),
                ("final_func", Text),
                ("initcond", Text),
                ("return_type", Text),
                ("state_func", Text),
                ("state_type", Text),
            ],
        ),
        vtable(
            "system_schema",
            "indexes",
            &["keyspace_name"],
            &["table_name", "index_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("index_name", Text),
                ("kind", Text),
                ("options", map_tt()),
            ],
        ),
        vtable(
            "system_schema",
            "triggers",
            &["keyspace_name"],
            &["table_name", "trigger_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("trigger_name", Text),
                ("options", map_tt()),
            ],
        ),
        vtable(
            "system_views",
            "sai_column_indexes",
            &["keyspace_name"],
            &["index_name"],
            vec![
                ("keyspace_name", Text),
                ("index_name", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("is_queryable", Boolean),
                ("is_built", Boolean),
                ("is_string", Boolean),
                ("analyzer", Text),
            ],
        ),
        vtable(
            "system_virtual_schema",
            "keyspaces",
            &["keyspace_name"],
            &[],
            vec![("keyspace_name", Text)],
        ),
        vtable(
            "system_virtual_schema",
            "tables",
            &["keyspace_name"],
            &["table_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("comment", Text),
            ],
        ),
        vtable(
            "system_virtual_schema",
            "columns",
            &["keyspace_name"],
            &["table_name", "column_name"],
            vec![
                ("keyspace_name", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("clustering_order", Text),
                ("column_name_bytes", Blob),
                ("kind", Text),
                ("position", Int),
                ("type", Text),
            ],
        ),
    ];
    // The virtual-schema keyspaces describe the tables above; system_schema.* is listed as a
    // regular keyspace so that drivers show it in their metadata.
    let mut out = VirtualTables::new();
    for t in tables {
        out.entry(t.keyspace.clone())
            .or_default()
            .insert(t.name.clone(), Arc::new(t));
    }
    out
}

/// Keyspaces that exist only virtually and their replication as system_schema reports it.
pub fn system_keyspaces() -> Vec<(&'static str, &'static str)> {
    vec![
        ("system", "org.apache.cassandra.locator.LocalStrategy"),
        (
            "system_schema",
            "org.apache.cassandra.locator.LocalStrategy",
        ),
    ]
}

fn option_values(o: &TableOptions, id: Uuid) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("additional_write_policy", text(&o.additional_write_policy)),
        (
            "allow_auto_snapshot",
            Some(Value::Boolean(o.allow_auto_snapshot)),
        ),
        (
            "bloom_filter_fp_chance",
            Some(Value::Double(o.bloom_filter_fp_chance)),
        ),
        ("caching", text_map(&o.caching)),
        ("cdc", Some(Value::Boolean(o.cdc))),
        ("comment", text(&o.comment)),
        ("compaction", text_map(&o.compaction)),
        ("compression", text_map(&o.compression)),
        ("crc_check_chance", Some(Value::Double(o.crc_check_chance))),
        (
            "default_time_to_live",
            Some(Value::Int(o.default_time_to_live)),
        ),
        (
            "extensions",
            Some(Value::Map(
                o.extensions
                    .iter()
                    .map(|(k, v)| (Value::Text(k.clone()), Value::Blob(v.clone())))
                    .collect(),
            )),
        ),
        ("gc_grace_seconds", Some(Value::Int(o.gc_grace_seconds))),
        ("id", Some(Value::Uuid(id))),
        (
            "incremental_backups",
            Some(Value::Boolean(o.incremental_backups)),
        ),
        ("max_index_interval", Some(Value::Int(o.max_index_interval))),
        ("memtable", text(&o.memtable)),
        (
            "memtable_flush_period_in_ms",
            Some(Value::Int(o.memtable_flush_period_in_ms)),
        ),
        ("min_index_interval", Some(Value::Int(o.min_index_interval))),
        ("read_repair", text(&o.read_repair)),
        ("speculative_retry", text(&o.speculative_retry)),
    ]
}

/// Fills a row in the table's column order from (name, value) pairs; missing columns are null.
fn row_of(def: &Table, values: Vec<(&str, Option<Value>)>) -> Row {
    let mut row = vec![None; def.columns.len()];
    for (n, v) in values {
        if let Some(i) = def.column_index(n) {
            row[i] = v;
        }
    }
    row
}

fn column_rows(def: &Table, t: &Table) -> Vec<Row> {
    t.columns
        .iter()
        .map(|c| {
            row_of(
                def,
                vec![
                    ("keyspace_name", text(&t.keyspace)),
                    ("table_name", text(&t.name)),
                    ("column_name", text(&c.name)),
                    (
                        "clustering_order",
                        text(if c.kind != ColumnKind::Clustering {
                            "none"
                        } else if c.reversed {
                            "desc"
                        } else {
                            "asc"
                        }),
                    ),
                    (
                        "column_name_bytes",
                        Some(Value::Blob(c.name.as_bytes().to_vec())),
                    ),
                    ("kind", text(c.kind.schema_name())),
                    ("position", Some(Value::Int(c.position))),
                    ("type", text(&c.ty.cql_name())),
                ],
            )
        })
        .collect()
}

fn all_keyspaces(schema: &Schema) -> Vec<Arc<Keyspace>> {
    schema.keyspaces.values().cloned().collect()
}

/// Generates the rows of virtual table `def`.
pub fn rows(
    def: &Table,
    schema: &Schema,
    local: &LocalInfo,
    peers: &[PeerInfo],
    vtables: &VirtualTables,
) -> Vec<Row> {
    let tokens = || {
        Some(Value::Set(
            local
                .tokens
                .iter()
                .map(|t| Value::Text(t.to_string()))
                .collect(),
        ))
    };
    match (def.keyspace.as_str(), def.name.as_str()) {
        ("system", "local") => vec![row_of(
            def,
            vec![
                ("key", text("local")),
                ("bootstrapped", text("COMPLETED")),
                ("broadcast_address", Some(Value::Inet(local.address))),
                (
                    "broadcast_port",
                    Some(Value::Int(local.storage_port as i32)),
                ),
                ("cluster_name", text(&local.cluster_name)),
                ("cql_version", text(CQL_VERSION)),
                ("data_center", text(&local.dc)),
                (
                    "gossip_generation",
                    Some(Value::Int(local.gossip_generation)),
                ),
                ("host_id", Some(Value::Uuid(local.host_id))),
                ("listen_address", Some(Value::Inet(local.address))),
                ("listen_port", Some(Value::Int(local.storage_port as i32))),
                ("native_protocol_version", text("5")),
                ("partitioner", text(PARTITIONER)),
                ("rack", text(&local.rack)),
                ("release_version", text(RELEASE_VERSION)),
                ("rpc_address", Some(Value::Inet(local.address))),
                ("rpc_port", Some(Value::Int(local.native_port as i32))),
                ("schema_version", Some(Value::Uuid(schema.version))),
                ("tokens", tokens()),
            ],
        )],
        ("system", "peers") | ("system", "peers_v2") => peers
            .iter()
            .map(|p| {
                row_of(
                    def,
                    vec![
                        ("peer", Some(Value::Inet(p.addr))),
                        ("peer_port", Some(Value::Int(p.storage_port as i32))),
                        ("data_center", text(&p.dc)),
                        ("host_id", Some(Value::Uuid(p.host_id))),
                        ("rack", text(&p.rack)),
                        ("release_version", text(&p.release_version)),
                        ("rpc_address", Some(Value::Inet(p.addr))),
                        ("native_address", Some(Value::Inet(p.addr))),
                        ("native_port", Some(Value::Int(p.native_port as i32))),
                        ("schema_version", Some(Value::Uuid(p.schema_version))),
                        (
                            "tokens",
                            Some(Value::Set(
                                p.tokens
                                    .iter()
                                    .map(|t| Value::Text(t.to_string()))
                                    .collect(),
                            )),
                        ),
                    ],
                )
            })
            .collect(),
        ("system_schema", "keyspaces") => {
            let mut out: Vec<Row> = system_keyspaces()
                .into_iter()
                .map(|(k, class)| {
                    row_of(
                        def,
                        vec![
                            ("keyspace_name", text(k)),
                            ("durable_writes", Some(Value::Boolean(true))),
                            (
                                "replication",
                                text_map(
                                    &[("class".to_string(), class.to_string())]
                                        .into_iter()
                                        .collect(),
                                ),
                            ),
                        ],
                    )
                })
                .collect();
            for ks in all_keyspaces(schema) {
                out.push(row_of(
                    def,
                    vec![
                        ("keyspace_name", text(&ks.name)),
                        ("durable_writes", Some(Value::Boolean(ks.durable_writes))),
                        ("replication", text_map(&ks.replication)),
                    ],
                ));
            }
            out
        }
        ("system_schema", "tables") => {
            let mut out = vec![];
            let virt_schema_tables = all_virtual(vtables)
                .filter(|t| t.keyspace == "system_schema" || t.keyspace == "system");
            for t in virt_schema_tables.chain(schema.tables()) {
                let mut vals = vec![
                    ("keyspace_name", text(&t.keyspace)),
                    ("table_name", text(&t.name)),
                    (
                        "flags",
                        Some(Value::Set(vec![Value::Text("compound".into())])),
                    ),
                ];
                vals.extend(option_values(&t.options, t.id));
                out.push(row_of(def, vals));
            }
            out
        }
        ("system_schema", "columns") => {
            let virt = all_virtual(vtables)
                .filter(|t| t.keyspace == "system_schema" || t.keyspace == "system");
            virt.chain(schema.tables())
                .flat_map(|t| column_rows(def, t))
                .collect()
        }
        ("system_schema", "dropped_columns") => schema
            .tables()
            .flat_map(|t| {
                t.dropped.iter().map(move |(c, (when, ty))| {
                    row_of(
                        def,
                        vec![
                            ("keyspace_name", text(&t.keyspace)),
                            ("table_name", text(&t.name)),
                            ("column_name", text(c)),
                            ("dropped_time", Some(Value::Timestamp(when / 1000))),
                            ("kind", text("regular")),
                            ("type", text(&ty.cql_name())),
                        ],
                    )
                })
            })
            .collect(),
        ("system_schema", "types") => all_keyspaces(schema)
            .iter()
            .flat_map(|ks| {
                ks.types
                    .values()
                    .map(|u| {
                        row_of(
                            def,
                            vec![
                                ("keyspace_name", text(&ks.name)),
                                ("type_name", text(&u.name)),
                                (
                                    "field_names",
                                    text_list(u.fields.iter().map(|(n, _)| n.clone())),
                                ),
                                (
                                    "field_types",
                                    text_list(u.fields.iter().map(|(_, t)| t.cql_name())),
                                ),
                            ],
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        ("system_schema", "indexes") => schema
            .tables()
            .flat_map(|t| {
                t.indexes.iter().map(move |i| {
                    row_of(
                        def,
                        vec![
                            ("keyspace_name", text(&t.keyspace)),
                            ("table_name", text(&t.name)),
                            ("index_name", text(&i.name)),
                            ("kind", text(&i.kind)),
                            ("options", text_map(&i.options)),
                        ],
                    )
                })
            })
            .collect(),
        ("system_virtual_schema", "keyspaces") => ["system_views", "system_virtual_schema"]
            .iter()
            .map(|k| row_of(def, vec![("keyspace_name", text(k))]))
            .collect(),
        ("system_virtual_schema", "tables") => all_virtual(vtables)
            .filter(|t| t.keyspace == "system_virtual_schema" || t.keyspace == "system_views")
            .map(|t| {
                row_of(
                    def,
                    vec![
                        ("keyspace_name", text(&t.keyspace)),
                        ("table_name", text(&t.name)),
                        ("comment", text("")),
                    ],
                )
            })
            .collect(),
        ("system_virtual_schema", "columns") => all_virtual(vtables)
            .filter(|t| t.keyspace == "system_virtual_schema" || t.keyspace == "system_views")
            .flat_map(|t| column_rows(def, t))
            .collect(),
        _ => vec![],
    }
}

/// Rows of `system_views.sai_column_indexes`; `built` tells whether an index of a table is
/// built on this node (None: not attached here).
pub fn sai_rows(
    def: &Table,
    schema: &Schema,
    built: &dyn Fn(uuid::Uuid, &str) -> Option<bool>,
) -> Vec<Row> {
    let mut rows = vec![];
    for t in schema.tables() {
        for i in &t.indexes {
            let Some((column, _)) = crate::indexes::parse_target(i) else {
                continue;
            };
            let is_built = built(t.id, &i.name).unwrap_or(false);
            let is_string = t
                .column(&column)
                .is_some_and(|c| matches!(c.ty, CqlType::Text | CqlType::Ascii));
            let analyzer = if ["case_sensitive", "normalize", "ascii"]
                .iter()
                .any(|o| i.options.contains_key(*o))
            {
                "NonTokenizingAnalyzer"
            } else {
                "NoOpAnalyzer"
            };
            rows.push(row_of(
                def,
                vec![
                    ("keyspace_name", text(&t.keyspace)),
                    ("index_name", text(&i.name)),
                    ("table_name", text(&t.name)),
                    ("column_name", text(&column)),
                    ("is_queryable", Some(Value::Boolean(is_built))),
                    ("is_built", Some(Value::Boolean(is_built))),
                    ("is_string", Some(Value::Boolean(is_string))),
                    ("analyzer", text(analyzer)),
                ],
            ));
        }
    }
    rows.sort_by(|a, b| format!("{:?}{:?}", a[0], a[1]).cmp(&format!("{:?}{:?}", b[0], b[1])));
    rows
}
