//! The indexes of one table: which segments exist, keeping them in step with the table's
//! sources (the storage observer), building them for existing data, and searching them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;
use sibyl_storage::{Engine, Mutation, SSTableRows, TableId, TableObserver};

use crate::segment::{self, column_of_update, column_of_view, row_key_of, Segment};
use crate::{IndexError, IndexSpec, RowKey, TermQuery};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Memtable(u64),
    SSTable(u64),
}

/// One index of the table.
pub struct ColumnIndex {
    pub spec: IndexSpec,
    built: AtomicBool,
    segments: RwLock<HashMap<Source, Arc<Segment>>>,
    /// Rows indexed by the build so far (for progress reporting).
    build_rows: AtomicU64,
}

/// What `system_views.sai_column_indexes` shows of an index.
#[derive(Debug, Clone)]
pub struct IndexStatus {
    pub name: String,
    pub built: bool,
    pub segments: usize,
    pub rows: usize,
}

impl ColumnIndex {
    fn new(spec: IndexSpec) -> ColumnIndex {
        ColumnIndex {
            spec,
            built: AtomicBool::new(false),
            segments: RwLock::new(HashMap::new()),
            build_rows: AtomicU64::new(0),
        }
    }

    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::Acquire)
    }

    pub fn status(&self) -> IndexStatus {
        let segs = self.segments.read();
        IndexStatus {
            name: self.spec.name.clone(),
            built: self.is_built(),
            segments: segs.len(),
            rows: segs.values().map(|s| s.len()).sum(),
        }
    }

    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// Candidate rows whose indexed value may satisfy `q`, sorted and without duplicates.
    pub fn search_terms(&self, q: &TermQuery) -> Vec<RowKey> {
        let mut out = Vec::new();
        for s in self.snapshot() {
            s.search_terms(&self.spec, q, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    /// Candidate rows near `q`: about `k` from every segment, without duplicates.
    pub fn search_vectors(&self, q: &[f32], k: usize) -> Result<Vec<RowKey>, IndexError> {
        let mut out = Vec::new();
        let exact_limit = self.spec.graph.map_or(0, |g| g.exact_limit);
        for s in self.snapshot() {
            s.search_vectors(q, k, exact_limit, &mut out)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn segment_for_memtable(&self, id: u64) -> Option<Arc<Segment>> {
        if let Some(s) = self.segments.read().get(&Source::Memtable(id)) {
            return Some(s.clone());
        }
        let mut w = self.segments.write();
        if let Some(s) = w.get(&Source::Memtable(id)) {
            return Some(s.clone());
        }
        match Segment::empty(&self.spec) {
            Ok(s) => {
                let s = Arc::new(s);
                w.insert(Source::Memtable(id), s.clone());
                Some(s)
            }
            Err(e) => {
                tracing::error!(index = %self.spec.name, error = %e, "cannot create memtable index");
                None
            }
        }
    }

    /// The segment of SSTable `gen`: from its components, or built from its rows and saved.
    fn segment_for_sstable(
        &self,
        gen: u64,
        dir: &Path,
        rows: &SSTableRows<'_>,
    ) -> Result<Segment, IndexError> {
        if let Some(s) = Segment::load(&self.spec, dir, gen) {
            return Ok(s);
        }
        let mut collected = Vec::new();
        rows.for_each(|key, row| {
            if let Some(col) = column_of_view(&self.spec, row) {
                let r = RowKey {
                    partition: key.clone(),
                    clustering: row.clustering.clone(),
                };
                let ts = if self.spec.graph.is_some() {
                    vec![]
                } else {
                    segment::terms(&self.spec, &col)
                };
                let v = segment::vector_of(&self.spec, &col);
                if !ts.is_empty() || v.is_some() {
                    collected.push((r, ts, v));
                }
            }
        })?;
        self.build_rows
            .fetch_add(collected.len() as u64, Ordering::Relaxed);
        let s = Segment::bulk(&self.spec, collected)?;
        s.save(dir, gen, &self.spec.name)?;
        Ok(s)
    }
}

/// The indexes of one table; registered with the engine as the table's observer.
#[derive(Default)]
pub struct TableIndexes {
    indexes: RwLock<Vec<Arc<ColumnIndex>>>,
    dir: RwLock<Option<PathBuf>>,
}

impl TableIndexes {
    pub fn new() -> TableIndexes {
        TableIndexes::default()
    }

    pub fn get(&self, name: &str) -> Option<Arc<ColumnIndex>> {
        self.indexes
            .read()
            .iter()
            .find(|i| i.spec.name == name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ColumnIndex>> {
        self.indexes.read().clone()
    }

    pub fn is_empty(&self) -> bool {
        self.indexes.read().is_empty()
    }

    /// Makes the set of indexes `specs`: unchanged ones are kept, removed ones lose their
    /// components; returns the new ones, which `build` must then cover existing data for.
    pub fn set_specs(&self, specs: Vec<IndexSpec>) -> Vec<Arc<ColumnIndex>> {
        let mut w = self.indexes.write();
        let mut added = vec![];
        let mut next = vec![];
        for spec in specs {
            match w.iter().find(|i| i.spec == spec) {
                Some(i) => next.push(i.clone()),
                None => {
                    let i = Arc::new(ColumnIndex::new(spec));
                    added.push(i.clone());
                    next.push(i);
                }
            }
        }
        let dir = self.dir.read().clone();
        for old in w.iter() {
            if !next.iter().any(|n| Arc::ptr_eq(n, old)) {
                if let Some(d) = &dir {
                    segment::remove_components(d, &old.spec.name, |_| false);
                }
            }
        }
        *w = next;
        added
    }

    /// Covers the data already in the table for `index`: flushes the memtable (whose writes
    /// from before the index existed are not in any segment), then loads or builds the
    /// components of every SSTable. Logs progress; marks the index built.
    pub fn build(
        &self,
        engine: &Engine,
        table: TableId,
        index: &Arc<ColumnIndex>,
    ) -> Result<(), IndexError> {
        let started = Instant::now();
        tracing::info!(index = %index.spec.name, "index build started");
        engine.flush(Some(table))?;
        let mut live = HashSet::new();
        engine.visit_sstables(table, |gen, dir, rows| {
            live.insert(gen);
            *self.dir.write() = Some(dir.to_path_buf());
            if index.segments.read().contains_key(&Source::SSTable(gen)) {
                return;
            }
            match index.segment_for_sstable(gen, dir, rows) {
                Ok(s) => {
                    index.segments.write().insert(Source::SSTable(gen), Arc::new(s));
                }
                Err(e) => tracing::error!(index = %index.spec.name, gen, error = %e, "index build failed for an SSTable"),
            }
            tracing::info!(index = %index.spec.name, gen, rows = index.build_rows.load(Ordering::Relaxed), "index build progress");
        })?;
        // SSTables compacted away since the build began keep no segment.
        let current: HashSet<u64> = engine.sstable_generations(table)?.into_iter().collect();
        index.segments.write().retain(
            |s, _| !matches!(s, Source::SSTable(g) if !current.contains(g) && live.contains(g)),
        );
        if let Some(d) = self.dir.read().as_ref() {
            segment::remove_components(d, &index.spec.name, |g| current.contains(&g));
        }
        index.built.store(true, Ordering::Release);
        tracing::info!(
            index = %index.spec.name,
            rows = index.build_rows.load(Ordering::Relaxed),
            millis = started.elapsed().as_millis() as u64,
            "index build finished"
        );
        Ok(())
    }
}

impl TableObserver for TableIndexes {
    fn on_write(&self, memtable: u64, m: &Mutation) {
        for index in self.indexes.read().iter() {
            let rows = m.rows.iter().map(|r| (&r.clustering, &r.columns));
            let empty = Bytes::new();
            let stat = m.static_row.iter().map(|r| (&empty, &r.columns));
            let mut seg = None;
            for (clustering, cols) in rows.chain(stat) {
                let Some(col) = column_of_update(&index.spec, cols) else {
                    continue;
                };
                if seg.is_none() {
                    seg = index.segment_for_memtable(memtable);
                }
                let Some(s) = &seg else { return };
                if let Err(e) = s.add(&index.spec, row_key_of(m, clustering), &col) {
                    tracing::error!(index = %index.spec.name, error = %e, "memtable index write failed");
                }
            }
        }
    }

    fn on_sstable_written(&self, gen: u64, dir: &Path, rows: &SSTableRows<'_>) {
        *self.dir.write() = Some(dir.to_path_buf());
        for index in self.indexes.read().iter() {
            match index.segment_for_sstable(gen, dir, rows) {
                Ok(s) => {
                    index
                        .segments
                        .write()
                        .insert(Source::SSTable(gen), Arc::new(s));
                }
                Err(e) => {
                    tracing::error!(index = %index.spec.name, gen, error = %e, "index build failed for a new SSTable")
                }
            }
        }
    }

    fn on_sources_removed(&self, sstables: &[u64], memtables: &[u64]) {
        let dir = self.dir.read().clone();
        let gone: HashSet<u64> = sstables.iter().copied().collect();
        for index in self.indexes.read().iter() {
            {
                let mut w = index.segments.write();
                for g in sstables {
                    w.remove(&Source::SSTable(*g));
                }
                for m in memtables {
                    w.remove(&Source::Memtable(*m));
                }
            }
            if let (Some(d), false) = (&dir, gone.is_empty()) {
                segment::remove_components(d, &index.spec.name, |g| !gone.contains(&g));
            }
        }
    }
}
