//! Durable Paxos acceptor state, one entry per (table, partition key): an append-only log of
//! whole-state records (length, CRC32C, postcard), written before a reply leaves so a replica
//! restarted by kill -9 keeps its promises; fsynced too when the commit log is in batch mode
//! (the same guarantee the data has). Loaded at start-up (a torn tail is ignored) and rewritten
//! from the live states when it has grown well past them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;
use sibyl_paxos::AcceptorState;
use uuid::Uuid;

pub type PaxosKey = (Uuid, Bytes);

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    table: Uuid,
    key: Bytes,
    state: AcceptorState<Bytes>,
}

struct Inner {
    states: HashMap<PaxosKey, AcceptorState<Bytes>>,
    file: File,
    log_bytes: u64,
    live_bytes: u64,
}

pub struct PaxosStore {
    path: PathBuf,
    fsync: bool,
    inner: Mutex<Inner>,
}

const MIN_REWRITE: u64 = 16 * 1024 * 1024;

fn entry(rec: &Record) -> std::io::Result<Vec<u8>> {
    let payload = postcard::to_allocvec(rec).map_err(std::io::Error::other)?;
    let mut e = Vec::with_capacity(payload.len() + 8);
    e.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    e.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    e.extend_from_slice(&payload);
    Ok(e)
}

fn load(path: &Path) -> std::io::Result<HashMap<PaxosKey, AcceptorState<Bytes>>> {
    let mut states = HashMap::new();
    let mut bytes = vec![];
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(states),
        Err(e) => return Err(e),
    }
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(rec) = postcard::from_bytes::<Record>(payload) else {
            break;
        };
        states.insert((rec.table, rec.key), rec.state);
        pos += 8 + len;
    }
    Ok(states)
}

impl PaxosStore {
    pub fn open(dir: &Path, fsync: bool) -> std::io::Result<PaxosStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("paxos.log");
        let states = load(&path)?;
        let store = PaxosStore {
            path: path.clone(),
            fsync,
            inner: Mutex::new(Inner {
                states,
                file: OpenOptions::new().create(true).append(true).open(&path)?,
                log_bytes: 0,
                live_bytes: 0,
            }),
        };
        // Start from a compact log (drops torn tails and superseded records).
        store.rewrite(&mut store.inner.lock())?;
        Ok(store)
    }

    /// Runs `f` on the partition's state; when it reports a change, the new state is logged
    /// before this returns.
    pub fn update<R>(
        &self,
        table: Uuid,
        key: &Bytes,
        f: impl FnOnce(&mut AcceptorState<Bytes>) -> (R, bool),
    ) -> std::io::Result<R> {
        let mut inner = self.inner.lock();
        let k = (table, key.clone());
        let state = inner.states.entry(k).or_default();
        let (r, changed) = f(state);
        if changed {
            let e = entry(&Record {
                table,
                key: key.clone(),
                state: state.clone(),
            })?;
            inner.file.write_all(&e)?;
            if self.fsync {
                inner.file.sync_data()?;
            }
            inner.log_bytes += e.len() as u64;
            if inner.log_bytes > MIN_REWRITE.max(inner.live_bytes * 4) {
                self.rewrite(&mut inner)?;
            }
        }
        Ok(r)
    }

    #[cfg(test)]
    pub fn get(&self, table: Uuid, key: &Bytes) -> Option<AcceptorState<Bytes>> {
        self.inner.lock().states.get(&(table, key.clone())).cloned()
    }

    /// Forgets the state of a dropped table.
    pub fn drop_table(&self, table: Uuid) -> std::io::Result<()> {
        let mut inner = self.inner.lock();
        inner.states.retain(|(t, _), _| *t != table);
        self.rewrite(&mut inner)
    }

    fn rewrite(&self, inner: &mut Inner) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = Vec::new();
        for ((table, key), state) in &inner.states {
            out.extend(entry(&Record {
                table: *table,
                key: key.clone(),
                state: state.clone(),
            })?);
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        inner.file = OpenOptions::new().append(true).open(&self.path)?;
        inner.log_bytes = out.len() as u64;
        inner.live_bytes = out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sibyl_paxos::{Ballot, Proposal};

    #[test]
    fn promises_survive_a_reopen_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("sibyl-paxos-{}", Uuid::new_v4()));
        let table = Uuid::new_v4();
        let key = Bytes::from_static(b"k");
        let b = Ballot {
            micros: 42,
            node: 7,
        };
        {
            let s = PaxosStore::open(&dir, false).unwrap();
            s.update(table, &key, |st| st.prepare(b)).unwrap();
            s.update(table, &key, |st| {
                (
                    (),
                    st.propose(Proposal {
                        ballot: b,
                        value: Some(Bytes::from_static(b"v")),
                    }),
                )
            })
            .unwrap();
        }
        // A half-written record at the end must not hide what came before.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("paxos.log"))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let s = PaxosStore::open(&dir, false).unwrap();
        let st = s.get(table, &key).unwrap();
        assert_eq!(st.promised, b);
        assert_eq!(st.accepted.unwrap().value, Some(Bytes::from_static(b"v")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
