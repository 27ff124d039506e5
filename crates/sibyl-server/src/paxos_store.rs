//! Durable Paxos acceptor state, one entry per (table, partition key), in two tiers. Recently
//! used states live in memory, bounded by `paxos_cache_size`, and every change to them is
//! appended to a log of whole-state records (length, CRC32C, postcard) before a reply leaves,
//! so a replica restarted by kill -9 keeps its promises (fsynced too when the commit log is in
//! batch mode: the guarantee the data has). States pushed out of memory, oldest first, are
//! written to an internal storage-engine table (`system.paxos`, like Cassandra's) and read
//! back from it when their partition comes up again; nothing is forgotten before the
//! engine's TTL (ten days, Cassandra's default gc_grace_seconds). Every change is logged, so a
//! key's last record is its newest state; the log also records each hand-over, so a restart
//! brings back into memory only what was there. The log is loaded at start-up (a torn tail
//! is ignored) and rewritten from the in-memory states when it has grown well past them.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use sibyl_paxos::{AcceptorState, Proposal};
use sibyl_storage::{
    Cell, ColumnData, ColumnView, Engine, Mutation, PartitionKey, RowUpdate, Slice, TableParams,
};
use uuid::Uuid;

pub type PaxosKey = (Uuid, Bytes);
type State = AcceptorState<Bytes>;

/// The internal engine table spilled states go to. Not part of the schema: registered with
/// the engine at start-up so its commit log is replayed like any table's.
pub const SPILL_TABLE: Uuid = Uuid::from_u128(0x5ac1_0000_0000_4000_8000_7061_786f_7321);

pub fn spill_table_params() -> TableParams {
    TableParams {
        name: "system.paxos".into(),
        // The rows expire by TTL; their tombstones need no grace period (no replicas).
        gc_grace_seconds: 0,
        ..TableParams::default()
    }
}

/// Cassandra keeps Paxos state for gc_grace_seconds (ten days by default).
const SPILL_TTL_SECS: i32 = 864_000;

/// What an in-memory entry costs beyond its bytes: map and queue slots, allocation headers.
const ENTRY_OVERHEAD: usize = 192;

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    table: Uuid,
    key: Bytes,
    /// The whole state; the empty (default) state says "spilled to the engine".
    state: State,
}

struct Inner {
    states: HashMap<PaxosKey, State>,
    /// Every key of `states` once, in the order they came into memory: the spill order.
    order: VecDeque<PaxosKey>,
    /// Estimated memory of `states`.
    bytes: usize,
    file: File,
    log_bytes: u64,
    live_bytes: u64,
    last_spill_micros: i64,
}

pub struct PaxosStore {
    path: PathBuf,
    fsync: bool,
    budget: usize,
    inner: Mutex<Inner>,
}

const MIN_REWRITE: u64 = 16 * 1024 * 1024;

fn entry(table: Uuid, key: &Bytes, state: &State) -> std::io::Result<Vec<u8>> {
    let rec = Record {
        table,
        key: key.clone(),
        state: state.clone(),
    };
    let payload = postcard::to_allocvec(&rec).map_err(std::io::Error::other)?;
    let mut e = Vec::with_capacity(payload.len() + 8);
    e.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    e.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    e.extend_from_slice(&payload);
    Ok(e)
}

fn cost(key: &Bytes, s: &State) -> usize {
    let value = |p: &Option<Proposal<Bytes>>| {
        p.as_ref()
            .and_then(|p| p.value.as_ref())
            .map_or(0, |v| v.len())
    };
    ENTRY_OVERHEAD + key.len() + value(&s.accepted) + value(&s.committed)
}

fn load(path: &Path) -> std::io::Result<HashMap<PaxosKey, State>> {
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
        if rec.state == State::default() {
            states.remove(&(rec.table, rec.key));
        } else {
            states.insert((rec.table, rec.key), rec.state);
        }
        pos += 8 + len;
    }
    Ok(states)
}

fn now_secs() -> i64 {
    sibyl_types::timeuuid::micros_now() / 1_000_000
}

fn spill_key(table: Uuid, key: &Bytes) -> PartitionKey {
    let mut k = BytesMut::with_capacity(16 + key.len());
    k.put_slice(table.as_bytes());
    k.put_slice(key);
    let k = k.freeze();
    PartitionKey {
        token: sibyl_types::murmur3::token(&k),
        key: k,
    }
}

fn state_column() -> Bytes {
    sibyl_storage::names::intern(b"state")
}

/// The engine row holding one spilled state.
fn spill_mutation((table, key): &PaxosKey, state: Bytes, micros: i64) -> Mutation {
    Mutation {
        rows: vec![RowUpdate {
            clustering: Bytes::new(),
            liveness: None,
            deletion: None,
            columns: vec![ColumnData::Simple {
                column: state_column(),
                cell: Cell {
                    timestamp: micros,
                    value: Some(state),
                    ttl: SPILL_TTL_SECS,
                    local_deletion_time: now_secs() + SPILL_TTL_SECS as i64,
                },
            }],
        }],
        ..Mutation::new(SPILL_TABLE, spill_key(*table, key))
    }
}

fn read_spilled(engine: &Engine, table: Uuid, key: &Bytes) -> std::io::Result<Option<State>> {
    let view = engine
        .read(
            SPILL_TABLE,
            &spill_key(table, key),
            &Slice::all(),
            now_secs(),
        )
        .map_err(std::io::Error::other)?;
    let cell = view
        .into_iter()
        .flat_map(|v| v.rows)
        .flat_map(|r| r.columns)
        .find_map(|(_, c)| match c {
            ColumnView::Simple(c) => Some(c.value),
            ColumnView::Complex(_) => None,
        });
    cell.map(|v| postcard::from_bytes(&v).map_err(std::io::Error::other))
        .transpose()
}

impl PaxosStore {
    /// Opens the log under `dir`; at most `budget` bytes of states stay in memory.
    pub fn open(dir: &Path, fsync: bool, budget: usize) -> std::io::Result<PaxosStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("paxos.log");
        let states = load(&path)?;
        let order = states.keys().cloned().collect();
        let bytes = states.iter().map(|((_, k), s)| cost(k, s)).sum();
        let store = PaxosStore {
            path: path.clone(),
            fsync,
            budget,
            inner: Mutex::new(Inner {
                states,
                order,
                bytes,
                file: OpenOptions::new().create(true).append(true).open(&path)?,
                log_bytes: 0,
                live_bytes: 0,
                last_spill_micros: 0,
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
        engine: &Engine,
        table: Uuid,
        key: &Bytes,
        f: impl FnOnce(&mut State) -> (R, bool),
    ) -> std::io::Result<R> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let k = (table, key.clone());
        if !inner.states.contains_key(&k) {
            let state = read_spilled(engine, table, key)?.unwrap_or_default();
            inner.bytes += cost(key, &state);
            inner.states.insert(k.clone(), state);
            inner.order.push_back(k.clone());
        }
        let state = inner.states.get_mut(&k).expect("inserted above");
        let before = cost(key, state);
        let (r, changed) = f(state);
        if changed {
            inner.bytes = inner.bytes - before + cost(key, state);
            let e = entry(table, key, state)?;
            self.append(inner, &e)?;
        }
        self.spill(engine, inner)?;
        Ok(r)
    }

    /// Moves the oldest states to the engine until the rest fit the budget. The engine write
    /// comes first, then the log's "spilled" record: a crash in between leaves two equal
    /// copies.
    fn spill(&self, engine: &Engine, inner: &mut Inner) -> std::io::Result<()> {
        while inner.bytes > self.budget {
            let Some(k) = inner.order.front() else {
                break;
            };
            if let Some(state) = inner.states.get(k).filter(|s| **s != State::default()) {
                let micros = sibyl_types::timeuuid::micros_now()
                    .max(inner.last_spill_micros + 1)
                    .max(state.promised.micros);
                inner.last_spill_micros = micros;
                let value = postcard::to_allocvec(state).map_err(std::io::Error::other)?;
                engine
                    .apply_owned(spill_mutation(k, value.into(), micros))
                    .map_err(std::io::Error::other)?;
                let e = entry(k.0, &k.1, &State::default())?;
                self.append(inner, &e)?;
            }
            let k = inner.order.pop_front().expect("front exists");
            if let Some(state) = inner.states.remove(&k) {
                inner.bytes -= cost(&k.1, &state);
            }
        }
        Ok(())
    }

    fn append(&self, inner: &mut Inner, e: &[u8]) -> std::io::Result<()> {
        inner.file.write_all(e)?;
        if self.fsync {
            inner.file.sync_data()?;
        }
        inner.log_bytes += e.len() as u64;
        if inner.log_bytes > MIN_REWRITE.max(inner.live_bytes * 4) {
            self.rewrite(inner)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn in_memory(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.states.len(), inner.bytes)
    }

    /// Forgets the in-memory state of a dropped table (spilled states expire by TTL; a table
    /// re-created under the same name has a new id).
    pub fn drop_table(&self, table: Uuid) -> std::io::Result<()> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.states.retain(|(t, _), _| *t != table);
        inner.order.retain(|(t, _)| *t != table);
        inner.bytes = inner.states.iter().map(|((_, k), s)| cost(k, s)).sum();
        self.rewrite(inner)
    }

    fn rewrite(&self, inner: &mut Inner) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        let mut written = 0u64;
        for ((table, key), state) in &inner.states {
            if *state == State::default() {
                continue;
            }
            let e = entry(*table, key, state)?;
            f.write_all(&e)?;
            written += e.len() as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        inner.file = OpenOptions::new().append(true).open(&self.path)?;
        inner.log_bytes = written;
        inner.live_bytes = written;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sibyl_paxos::Ballot;
    use sibyl_storage::EngineOptions;

    fn b(micros: i64) -> Ballot {
        Ballot { micros, node: 7 }
    }

    fn engine(dir: &Path) -> Engine {
        Engine::open(
            &dir.join("storage"),
            EngineOptions::default(),
            vec![(SPILL_TABLE, spill_table_params())],
        )
        .unwrap()
    }

    fn get(s: &PaxosStore, e: &Engine, table: Uuid, key: &Bytes) -> State {
        s.update(e, table, key, |st| (st.clone(), false)).unwrap()
    }

    fn accept(s: &PaxosStore, e: &Engine, table: Uuid, key: &Bytes, ballot: Ballot, v: &[u8]) {
        s.update(e, table, key, |st| st.prepare(ballot)).unwrap();
        let value = Some(Bytes::copy_from_slice(v));
        let ok = s
            .update(e, table, key, |st| {
                let ok = st.propose(Proposal { ballot, value });
                (ok, ok)
            })
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn promises_survive_a_reopen_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("sibyl-paxos-{}", Uuid::new_v4()));
        let table = Uuid::new_v4();
        let key = Bytes::from_static(b"k");
        {
            let e = engine(&dir);
            let s = PaxosStore::open(&dir, false, 1 << 20).unwrap();
            accept(&s, &e, table, &key, b(42), b"v");
        }
        // A half-written record at the end must not hide what came before.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("paxos.log"))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let e = engine(&dir);
        let s = PaxosStore::open(&dir, false, 1 << 20).unwrap();
        let st = get(&s, &e, table, &key);
        assert_eq!(st.promised, b(42));
        assert_eq!(st.accepted.unwrap().value, Some(Bytes::from_static(b"v")));
        drop(e);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn states_beyond_the_budget_go_to_the_engine_and_come_back() {
        let dir = std::env::temp_dir().join(format!("sibyl-paxos-{}", Uuid::new_v4()));
        let table = Uuid::new_v4();
        let budget = 10 * ENTRY_OVERHEAD;
        let key = |i: u32| Bytes::from(format!("key{i}"));
        let value = |i: u32, round: u32| format!("value {i} round {round}").into_bytes();
        {
            let e = engine(&dir);
            let s = PaxosStore::open(&dir, false, budget).unwrap();
            for i in 0..300 {
                accept(&s, &e, table, &key(i), b(1_000 + i as i64), &value(i, 0));
                let (n, bytes) = s.in_memory();
                assert!(
                    bytes <= budget && n <= 10,
                    "{n} states, {bytes} bytes in memory"
                );
            }
            // Every state is still there, whether in memory or not; a second round changes
            // spilled ones after reading them back, so both tiers hold versions of them.
            for i in 0..300 {
                let st = get(&s, &e, table, &key(i));
                assert_eq!(st.promised, b(1_000 + i as i64));
                let v = st.accepted.unwrap().value.unwrap();
                assert_eq!(&v[..], &value(i, 0)[..]);
            }
            for i in (0..300).step_by(3) {
                accept(&s, &e, table, &key(i), b(5_000 + i as i64), &value(i, 1));
            }
            // No flush, no shutdown: like kill -9 (the commit log and paxos log have it all).
        }
        let e = engine(&dir);
        let s = PaxosStore::open(&dir, false, budget).unwrap();
        for i in 0..300 {
            let st = get(&s, &e, table, &key(i));
            let (ballot, round) = if i % 3 == 0 { (5_000, 1) } else { (1_000, 0) };
            assert_eq!(st.promised, b(ballot + i as i64), "key {i}");
            let v = st.accepted.unwrap().value.unwrap();
            assert_eq!(&v[..], &value(i, round)[..], "key {i}");
        }
        // A prepare below a spilled promise is refused.
        let refused = s
            .update(&e, table, &key(1), |st| st.prepare(b(1_000)))
            .unwrap();
        assert!(matches!(
            refused,
            sibyl_paxos::PrepareReply::Refused { promised } if promised == b(1_001)
        ));
        drop(e);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
