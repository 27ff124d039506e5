//! Segments: the index of one source (a memtable or an SSTable) for one column, and their
//! on-disk components (`sai-<gen>-<index>.*` next to the SSTable).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sibyl_storage::{Cell, ColumnData, ColumnView, Mutation, RowView};
use sibyl_types::{clustering, CqlType};

use crate::vector::{decode_f32s, is_zero_vector, HnswGraph, Similarity, VectorGraph};
use crate::{IndexError, IndexSpec, RowKey, Target, TermQuery};

/// A column's data in either of the forms storage hands out.
pub(crate) enum ColumnRef<'a> {
    Simple(&'a [u8]),
    Complex(Vec<(&'a [u8], &'a [u8])>),
}

pub(crate) fn column_of_update<'a>(
    spec: &IndexSpec,
    cols: &'a [ColumnData],
) -> Option<ColumnRef<'a>> {
    cols.iter().find_map(|c| match c {
        ColumnData::Simple { column, cell } if *column == spec.column => {
            live_value(cell).map(ColumnRef::Simple)
        }
        ColumnData::Complex { column, cells, .. } if *column == spec.column => {
            Some(ColumnRef::Complex(
                cells
                    .iter()
                    .filter_map(|(p, c)| live_value(c).map(|v| (p.as_ref(), v)))
                    .collect(),
            ))
        }
        _ => None,
    })
}

fn live_value(c: &Cell) -> Option<&[u8]> {
    c.value.as_deref()
}

pub(crate) fn column_of_view<'a>(spec: &IndexSpec, row: &'a RowView) -> Option<ColumnRef<'a>> {
    row.columns.iter().find_map(|(name, v)| {
        if *name != spec.column {
            return None;
        }
        Some(match v {
            ColumnView::Simple(c) => ColumnRef::Simple(&c.value),
            ColumnView::Complex(cells) => ColumnRef::Complex(
                cells
                    .iter()
                    .map(|(p, c)| (p.as_ref(), c.value.as_ref()))
                    .collect(),
            ),
        })
    })
}

/// The order-preserving term of a scalar value.
pub(crate) fn scalar_term(spec: &IndexSpec, ty: &CqlType, v: &[u8]) -> Bytes {
    if matches!(ty, CqlType::Text | CqlType::Ascii) && !spec.analyzer.is_identity() {
        let s = String::from_utf8_lossy(v);
        let a = spec.analyzer.analyze(&s);
        return Bytes::from(clustering::encode_one(ty, a.as_bytes()));
    }
    Bytes::from(clustering::encode_one(ty, v))
}

/// The terms a column's data contributes to a term index.
pub(crate) fn terms(spec: &IndexSpec, col: &ColumnRef<'_>) -> Vec<Bytes> {
    match (col, spec.column_type.unfrozen(), spec.target) {
        (ColumnRef::Simple(v), _, Target::Full) => vec![Bytes::copy_from_slice(v)],
        (ColumnRef::Simple(v), ty, Target::Values) if !spec.column_type.is_multicell() => {
            vec![scalar_term(spec, ty, v)]
        }
        // Set elements and map keys are the cell paths, already in term form.
        (ColumnRef::Complex(cells), CqlType::Set(_), Target::Values)
        | (ColumnRef::Complex(cells), CqlType::Map(..), Target::Keys) => cells
            .iter()
            .map(|(p, _)| Bytes::copy_from_slice(p))
            .collect(),
        (ColumnRef::Complex(cells), CqlType::List(e), Target::Values)
        | (ColumnRef::Complex(cells), CqlType::Map(_, e), Target::Values) => {
            cells.iter().map(|(_, v)| scalar_term(spec, e, v)).collect()
        }
        _ => vec![],
    }
}

/// The term a query value is looked up by (the element type for collections).
pub(crate) fn query_term(spec: &IndexSpec, v: &[u8]) -> Bytes {
    match (spec.column_type.unfrozen(), spec.target) {
        (_, Target::Full) => Bytes::copy_from_slice(v),
        (CqlType::Set(e), _) | (CqlType::List(e), _) => scalar_term(spec, e, v),
        (CqlType::Map(k, _), Target::Keys) => scalar_term(spec, k, v),
        (CqlType::Map(_, e), _) => scalar_term(spec, e, v),
        (ty, _) => scalar_term(spec, ty, v),
    }
}

/// The vector of a column's data, if it can be indexed.
pub(crate) fn vector_of(spec: &IndexSpec, col: &ColumnRef<'_>) -> Option<Vec<f32>> {
    let ColumnRef::Simple(b) = col else {
        return None;
    };
    let g = spec.graph.as_ref()?;
    let v = decode_f32s(b)?;
    if v.len() != g.dimensions || (g.similarity == Similarity::Cosine && is_zero_vector(&v)) {
        return None;
    }
    Some(v)
}

#[derive(Default, Serialize, Deserialize)]
pub(crate) struct TermData {
    terms: BTreeMap<Bytes, Vec<u32>>,
    rows: Vec<RowKey>,
}

impl TermData {
    pub(crate) fn add(&mut self, row: RowKey, terms: Vec<Bytes>) {
        if terms.is_empty() {
            return;
        }
        let id = self.rows.len() as u32;
        self.rows.push(row);
        for t in terms {
            let ids = self.terms.entry(t).or_default();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
    }

    fn search(&self, lo: Bound<&Bytes>, hi: Bound<&Bytes>, out: &mut Vec<RowKey>) {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (lo, hi)
        {
            if a > b {
                return;
            }
        }
        for (_, ids) in self.terms.range::<Bytes, _>((lo, hi)) {
            out.extend(ids.iter().map(|&i| self.rows[i as usize].clone()));
        }
    }
}

pub(crate) struct VectorData {
    graph: Box<dyn VectorGraph>,
    rows: RwLock<Vec<RowKey>>,
}

/// The index of one source for one column.
pub(crate) enum Segment {
    Terms(RwLock<TermData>),
    Vectors(VectorData),
}

impl Segment {
    pub(crate) fn empty(spec: &IndexSpec) -> Result<Segment, IndexError> {
        Ok(match &spec.graph {
            Some(g) => Segment::Vectors(VectorData {
                graph: Box::new(HnswGraph::new(g, 1024)?),
                rows: RwLock::new(Vec::new()),
            }),
            None => Segment::Terms(RwLock::new(TermData::default())),
        })
    }

    /// Adds one row's data of the indexed column.
    pub(crate) fn add(
        &self,
        spec: &IndexSpec,
        row: RowKey,
        col: &ColumnRef<'_>,
    ) -> Result<(), IndexError> {
        match self {
            Segment::Terms(t) => {
                let ts = terms(spec, col);
                if !ts.is_empty() {
                    t.write().add(row, ts);
                }
            }
            Segment::Vectors(v) => {
                if let Some(vec) = vector_of(spec, col) {
                    let id = {
                        let mut rows = v.rows.write();
                        rows.push(row);
                        rows.len() as u64 - 1
                    };
                    v.graph.add(id, &vec)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn search_terms(&self, spec: &IndexSpec, q: &TermQuery, out: &mut Vec<RowKey>) {
        let Segment::Terms(t) = self else { return };
        let t = t.read();
        let map = |b: &Bound<Bytes>| match b {
            Bound::Included(v) => Bound::Included(query_term(spec, v)),
            Bound::Excluded(v) => Bound::Excluded(query_term(spec, v)),
            Bound::Unbounded => Bound::Unbounded,
        };
        match q {
            TermQuery::Eq(v) => {
                let term = query_term(spec, v);
                t.search(Bound::Included(&term), Bound::Included(&term), out)
            }
            TermQuery::Range(lo, hi) => {
                let (lo, hi) = (map(lo), map(hi));
                t.search(lo.as_ref(), hi.as_ref(), out)
            }
        }
    }

    pub(crate) fn search_vectors(
        &self,
        q: &[f32],
        k: usize,
        exact_limit: usize,
        out: &mut Vec<RowKey>,
    ) -> Result<(), IndexError> {
        let Segment::Vectors(v) = self else {
            return Ok(());
        };
        let ids = if v.graph.len() <= exact_limit {
            v.graph.exact_search(q, k)?
        } else {
            v.graph.search(q, k)?
        };
        let rows = v.rows.read();
        out.extend(ids.iter().filter_map(|&i| rows.get(i as usize).cloned()));
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Segment::Terms(t) => t.read().rows.len(),
            Segment::Vectors(v) => v.rows.read().len(),
        }
    }

    /// Writes the segment as the components of SSTable `gen`.
    pub(crate) fn save(&self, dir: &Path, gen: u64, index: &str) -> Result<(), IndexError> {
        match self {
            Segment::Terms(t) => write_checked(&component(dir, gen, index, "terms"), &*t.read()),
            Segment::Vectors(v) => {
                let graph_path = component(dir, gen, index, "graph");
                let tmp = graph_path.with_extension("graph.tmp");
                v.graph.save(&tmp)?;
                File::open(&tmp)?.sync_all()?;
                fs::rename(&tmp, &graph_path)?;
                // The row list is written last: its presence says the component is whole.
                write_checked(&component(dir, gen, index, "rows"), &*v.rows.read())
            }
        }
    }

    /// Loads the components of SSTable `gen`, if they are present and intact.
    pub(crate) fn load(spec: &IndexSpec, dir: &Path, gen: u64) -> Option<Segment> {
        match &spec.graph {
            None => {
                let t: TermData = read_checked(&component(dir, gen, &spec.name, "terms"))?;
                Some(Segment::Terms(RwLock::new(t)))
            }
            Some(g) => {
                let rows: Vec<RowKey> = read_checked(&component(dir, gen, &spec.name, "rows"))?;
                let graph = HnswGraph::load(g, &component(dir, gen, &spec.name, "graph")).ok()?;
                (graph.len() <= rows.len()).then(|| {
                    Segment::Vectors(VectorData {
                        graph: Box::new(graph),
                        rows: RwLock::new(rows),
                    })
                })
            }
        }
    }

    /// A segment for many rows at once (SSTable builds): vectors are added by all cores.
    pub(crate) fn bulk(
        spec: &IndexSpec,
        rows: Vec<(RowKey, Vec<Bytes>, Option<Vec<f32>>)>,
    ) -> Result<Segment, IndexError> {
        match &spec.graph {
            None => {
                let mut t = TermData::default();
                for (r, ts, _) in rows {
                    t.add(r, ts);
                }
                Ok(Segment::Terms(RwLock::new(t)))
            }
            Some(g) => {
                let (keys, vecs): (Vec<RowKey>, Vec<Vec<f32>>) = rows
                    .into_iter()
                    .filter_map(|(r, _, v)| v.map(|v| (r, v)))
                    .unzip();
                let graph = HnswGraph::new(g, keys.len())?;
                let threads = std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .max(1);
                let next = std::sync::atomic::AtomicUsize::new(0);
                let err = parking_lot::Mutex::new(None);
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= vecs.len() {
                                break;
                            }
                            if let Err(e) = graph.add_reserved(i as u64, &vecs[i]) {
                                *err.lock() = Some(e);
                                break;
                            }
                        });
                    }
                });
                if let Some(e) = err.into_inner() {
                    return Err(e);
                }
                Ok(Segment::Vectors(VectorData {
                    graph: Box::new(graph),
                    rows: RwLock::new(keys),
                }))
            }
        }
    }
}

pub(crate) fn sanitize(index: &str) -> String {
    index
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn component(dir: &Path, gen: u64, index: &str, kind: &str) -> PathBuf {
    dir.join(format!("sai-{gen}-{}.{kind}", sanitize(index)))
}

/// Deletes every component of `index` whose generation `keep` rejects.
pub(crate) fn remove_components(dir: &Path, index: &str, keep: impl Fn(u64) -> bool) {
    let want = sanitize(index);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // sai-<gen>-<index>.<kind>[.tmp]; sanitized index names hold no '.'.
        let Some((gen, tail)) = name.strip_prefix("sai-").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let Some((idx, _kind)) = tail.split_once('.') else {
            continue;
        };
        if idx != want {
            continue;
        }
        if let Ok(gen) = gen.parse::<u64>() {
            if !keep(gen) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

const MAGIC: &[u8; 4] = b"SAI1";

fn write_checked<T: Serialize>(path: &Path, v: &T) -> Result<(), IndexError> {
    let body = postcard::to_allocvec(v).map_err(|e| IndexError::Corrupt(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&crc32fast::hash(&body).to_le_bytes())?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    Ok(())
}

fn read_checked<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let data = fs::read(path).ok()?;
    if data.len() < 8 || &data[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(data[4..8].try_into().ok()?);
    if crc32fast::hash(&data[8..]) != crc {
        tracing::warn!(path = %path.display(), "index component fails its checksum; rebuilding");
        return None;
    }
    postcard::from_bytes(&data[8..]).ok()
}

pub(crate) fn row_key_of(m: &Mutation, clustering: &Bytes) -> RowKey {
    RowKey {
        partition: m.key.clone(),
        clustering: clustering.clone(),
    }
}
