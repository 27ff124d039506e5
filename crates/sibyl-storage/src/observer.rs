//! Hooks through which storage-attached indexes follow a table's data sources (memtables and
//! SSTables) without the engine knowing what an index is.

use std::path::Path;

use crate::error::Result;
use crate::model::{Mutation, PartitionKey, RowView};
use crate::sstable::SSTable;

/// Follows one table's sources. Calls come from the write, flush and compaction paths, so they
/// must not call back into the engine for the same table.
pub trait TableObserver: Send + Sync {
    /// `m` has entered memtable `memtable` (called while that memtable is still current).
    fn on_write(&self, memtable: u64, m: &Mutation);
    /// SSTable `gen` in `dir` is complete and about to become readable; `rows` visits its rows.
    /// The sources it replaces are announced afterwards through `on_sources_removed`.
    fn on_sstable_written(&self, gen: u64, dir: &Path, rows: &SSTableRows<'_>);
    /// These SSTables and memtables no longer hold live data of the table.
    fn on_sources_removed(&self, sstables: &[u64], memtables: &[u64]);
}

/// Read access to one SSTable's rows for index builders.
pub struct SSTableRows<'a> {
    pub(crate) sst: &'a SSTable,
    pub(crate) now: i64,
}

impl SSTableRows<'_> {
    /// Visits every row with a live cell or live liveness info (static rows have an empty
    /// clustering), ignoring deletions recorded at the partition level: a caller that uses this
    /// for candidates must re-read the merged data anyway.
    pub fn for_each(&self, mut f: impl FnMut(&PartitionKey, &RowView)) -> Result<()> {
        let mut sc = self.sst.scanner()?;
        let empty = bytes::Bytes::new();
        while let Some((key, header)) = sc.next_header()? {
            if let Some(st) = &header.static_row {
                if let Some(v) = st.resolve(&empty, None, self.now) {
                    f(&key, &v);
                }
            }
            while let Some((c, r)) = sc.next_row()? {
                if let Some(v) = r.resolve(&c, None, self.now) {
                    f(&key, &v);
                }
            }
        }
        Ok(())
    }
}
