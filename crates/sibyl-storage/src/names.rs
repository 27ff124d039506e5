//! Column names shared by every row that stores them.
//!
//! A memtable row keeps the names of its columns. Copying the name into each row cost an
//! allocation per cell on the write path, another free when the memtable was dropped, and
//! ~64 bytes of memtable per cell. Names come from table schemas, so there are few of them:
//! each distinct name is allocated once for the life of the process and every row refers
//! to that copy through a static `Bytes` (cloning and dropping it touch no counter).

use std::cell::RefCell;
use std::collections::HashSet;

use bytes::Bytes;
use parking_lot::Mutex;

/// Distinct names kept before interning stops (a guard against a runaway schema churn; past
/// it names are copied per row, as before).
const MAX_NAMES: usize = 1 << 20;

type NameSet = HashSet<&'static [u8], foldhash::fast::FixedState>;

static GLOBAL: Mutex<Option<NameSet>> = Mutex::new(None);

/// Slots of the by-address cache.
const RECENT: usize = 64;

thread_local! {
    /// Names this thread has seen, so the common lookup takes no lock.
    static LOCAL: RefCell<NameSet> = RefCell::new(NameSet::default());
    /// Shared copies by address: a name that already is the shared copy (most are, coming
    /// from the schema) is recognised without hashing it.
    static BY_ADDRESS: RefCell<[&'static [u8]; RECENT]> = const { RefCell::new([&[]; RECENT]) };
}

fn address_slot(name: &[u8]) -> usize {
    (name.as_ptr() as usize >> 4) % RECENT
}

/// The shared copy of `name`.
pub fn intern(name: &[u8]) -> Bytes {
    if name.is_empty() {
        return Bytes::new();
    }
    let slot = address_slot(name);
    let known = BY_ADDRESS.with_borrow(|r| {
        let s = r[slot];
        std::ptr::eq(s, name).then_some(s)
    });
    if let Some(s) = known {
        return Bytes::from_static(s);
    }
    let Some(shared) = LOCAL.with_borrow_mut(|local| shared_copy(local, name)) else {
        return Bytes::copy_from_slice(name);
    };
    BY_ADDRESS.with_borrow_mut(|r| r[address_slot(shared)] = shared);
    Bytes::from_static(shared)
}

/// The shared copy from this thread's set, else the process's (made if new); None past
/// `MAX_NAMES`.
fn shared_copy(local: &mut NameSet, name: &[u8]) -> Option<&'static [u8]> {
    if let Some(s) = local.get(name) {
        return Some(*s);
    }
    let shared = {
        let mut g = GLOBAL.lock();
        let global = g.get_or_insert_with(NameSet::default);
        match global.get(name) {
            Some(s) => *s,
            None if global.len() >= MAX_NAMES => return None,
            None => {
                let s: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
                global.insert(s);
                s
            }
        }
    };
    local.insert(shared);
    Some(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_name() {
        let a = intern(b"temperature");
        let b = std::thread::spawn(|| intern(b"temperature"))
            .join()
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_ptr(), b.as_ptr());
        let c = intern(b"humidity");
        assert_eq!(&c[..], b"humidity");
        assert_ne!(a.as_ptr(), c.as_ptr());
        assert!(intern(b"").is_empty());
        // The shared copy itself is recognised (by address) and stays the same copy.
        let again = intern(&a);
        assert_eq!(again.as_ptr(), a.as_ptr());
        let copy = intern(a.to_vec().as_slice());
        assert_eq!(copy.as_ptr(), a.as_ptr());
    }
}
