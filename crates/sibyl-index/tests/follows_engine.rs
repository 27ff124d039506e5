//! The indexes follow a real engine through writes, flushes, compaction and reopen: candidates
//! cover every live row, and components come and go with their SSTables.

use std::sync::Arc;

use bytes::Bytes;
use sibyl_index::{
    Analyzer, GraphParams, IndexSpec, RowKey, Similarity, TableIndexes, Target, TermQuery,
};
use sibyl_storage::{
    Cell, ColumnData, Engine, EngineOptions, Mutation, PartitionKey, RowUpdate, TableObserver,
    TableParams,
};
use sibyl_types::CqlType;
use uuid::Uuid;

fn key(i: i32) -> PartitionKey {
    let key = Bytes::copy_from_slice(&i.to_be_bytes());
    PartitionKey {
        token: sibyl_types::murmur3::token(&key),
        key,
    }
}

fn write(e: &Engine, table: Uuid, i: i32, age: i32, v: [f32; 2]) {
    let cell = |b: Vec<u8>| Cell {
        timestamp: 1_000 + i as i64,
        value: Some(Bytes::from(b)),
        ttl: 0,
        local_deletion_time: 0,
    };
    let vec: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
    e.apply(&Mutation {
        rows: vec![RowUpdate {
            clustering: Bytes::new(),
            liveness: None,
            deletion: None,
            columns: vec![
                ColumnData::Simple {
                    column: Bytes::from_static(b"age"),
                    cell: cell(age.to_be_bytes().to_vec()),
                },
                ColumnData::Simple {
                    column: Bytes::from_static(b"v"),
                    cell: cell(vec),
                },
            ],
        }],
        ..Mutation::new(table, key(i))
    })
    .unwrap();
}

fn specs() -> Vec<IndexSpec> {
    vec![
        IndexSpec {
            name: "t_age".into(),
            column: Bytes::from_static(b"age"),
            column_type: CqlType::Int,
            target: Target::Values,
            analyzer: Analyzer::default(),
            graph: None,
        },
        IndexSpec {
            name: "t_v".into(),
            column: Bytes::from_static(b"v"),
            column_type: CqlType::Vector(Box::new(CqlType::Float), 2),
            target: Target::Values,
            analyzer: Analyzer::default(),
            graph: Some(GraphParams {
                dimensions: 2,
                similarity: Similarity::Euclidean,
                connectivity: 16,
                construction_beam: 64,
                search_beam: 64,
                exact_limit: 0,
            }),
        },
    ]
}

fn ages(ix: &TableIndexes, age: i32) -> Vec<PartitionKey> {
    ix.get("t_age")
        .unwrap()
        .search_terms(&TermQuery::Eq(Bytes::copy_from_slice(&age.to_be_bytes())))
        .into_iter()
        .map(|r: RowKey| r.partition)
        .collect()
}

fn components(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("tables"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sai-"))
        .collect();
    v.sort();
    v
}

/// Attaches the indexes to the table and builds them over what it holds.
fn attach(engine: &Engine, table: Uuid) -> Arc<TableIndexes> {
    let ix = Arc::new(TableIndexes::new());
    let added = ix.set_specs(specs());
    engine
        .set_observer(table, Some(ix.clone() as Arc<dyn TableObserver>))
        .unwrap();
    for a in &added {
        ix.build(engine, table, a).unwrap();
        assert!(a.is_built());
    }
    ix
}

#[test]
fn segments_follow_writes_flushes_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let table = Uuid::new_v4();
    let params = TableParams {
        name: "ks.t".into(),
        ..TableParams::default()
    };
    let engine = Engine::open(
        dir.path(),
        EngineOptions::default(),
        vec![(table, params.clone())],
    )
    .unwrap();
    for i in 0..10 {
        write(&engine, table, i, 30, [i as f32, 0.0]);
    }
    // Data written before the index exists is covered by the build.
    let ix = attach(&engine, table);
    assert_eq!(ages(&ix, 30).len(), 10);
    // Memtable writes are visible at once.
    for i in 10..20 {
        write(&engine, table, i, 40, [i as f32, 0.0]);
    }
    assert_eq!(ages(&ix, 40).len(), 10);
    let near = ix
        .get("t_v")
        .unwrap()
        .search_vectors(&[15.2, 0.0], 1)
        .unwrap();
    assert!(near.iter().any(|r| r.partition == key(15)), "{near:?}");
    engine.flush(None).unwrap();
    assert_eq!(ages(&ix, 40).len(), 10);
    assert_eq!(
        components(dir.path()).len(),
        2 * 3,
        "{:?}",
        components(dir.path())
    );
    engine.compact(table).unwrap();
    assert_eq!(ages(&ix, 30).len(), 10);
    assert_eq!(ages(&ix, 40).len(), 10);
    // One SSTable left: one term component, one graph and one row list.
    assert_eq!(
        components(dir.path()).len(),
        3,
        "{:?}",
        components(dir.path())
    );
    engine.shutdown().unwrap();
    drop(engine);

    // Reopen: components are loaded, not rebuilt, and answer the same.
    let engine = Engine::open(dir.path(), EngineOptions::default(), vec![(table, params)]).unwrap();
    let ix = attach(&engine, table);
    assert_eq!(ages(&ix, 30).len(), 10);
    let near = ix
        .get("t_v")
        .unwrap()
        .search_vectors(&[3.1, 0.0], 3)
        .unwrap();
    assert!(near.iter().any(|r| r.partition == key(3)));
    // Dropping the index removes its components.
    ix.set_specs(vec![]);
    assert!(components(dir.path()).is_empty());
    engine.shutdown().unwrap();
}
