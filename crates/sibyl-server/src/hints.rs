//! Hinted handoff: writes for a replica that is down are kept on the coordinator, one append-only
//! file per target node (length, CRC32C and postcard payload per entry, so a torn tail is
//! ignored), and replayed when gossip sees the node alive again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

use parking_lot::Mutex;
use sibyl_storage::model::Mutation;
use uuid::Uuid;

/// Hint files above this size stop accepting hints (the node is then repaired by read repair).
const MAX_HINT_FILE: u64 = 512 * 1024 * 1024;

pub struct Hints {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl Hints {
    pub fn open(dir: PathBuf) -> std::io::Result<Hints> {
        std::fs::create_dir_all(&dir)?;
        Ok(Hints {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, target: Uuid) -> PathBuf {
        self.dir.join(format!("{target}.hints"))
    }

    /// Appends a hint for `target`; false when its hint file is full.
    pub fn store(&self, target: Uuid, m: &Mutation) -> std::io::Result<bool> {
        let _g = self.lock.lock();
        let path = self.path(target);
        if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > MAX_HINT_FILE {
            return Ok(false);
        }
        let payload = postcard::to_allocvec(m).map_err(std::io::Error::other)?;
        let mut entry = Vec::with_capacity(payload.len() + 8);
        entry.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        entry.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        entry.extend_from_slice(&payload);
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(&entry)?;
        Ok(true)
    }

    /// Targets that have hints waiting.
    pub fn targets(&self) -> Vec<Uuid> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".hints")?.parse().ok())
            .collect()
    }

    /// Takes every intact hint for `target`, removing its file (the caller re-stores what it
    /// could not deliver).
    pub fn take(&self, target: Uuid) -> std::io::Result<Vec<Mutation>> {
        let _g = self.lock.lock();
        let path = self.path(target);
        let mut bytes = vec![];
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        }
        let mut out = vec![];
        let mut pos = 0;
        while pos + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap_or([0; 4])) as usize;
            let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap_or([0; 4]));
            let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
                break;
            };
            if crc32c::crc32c(payload) != crc {
                break;
            }
            match postcard::from_bytes::<Mutation>(payload) {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
            pos += 8 + len;
        }
        std::fs::remove_file(&path)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sibyl_storage::model::PartitionKey;

    fn mutation(k: u8) -> Mutation {
        let key = PartitionKey {
            token: k as i64,
            key: Bytes::from(vec![k]),
        };
        Mutation::new(Uuid::nil(), key)
    }

    #[test]
    fn store_take_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("sibyl-hints-{}", Uuid::new_v4()));
        let h = Hints::open(dir.clone()).unwrap();
        let target = Uuid::new_v4();
        for k in 0..3 {
            assert!(h.store(target, &mutation(k)).unwrap());
        }
        // A torn tail (half an entry) is ignored.
        let mut f = OpenOptions::new()
            .append(true)
            .open(h.path(target))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1]).unwrap();
        assert_eq!(h.targets(), vec![target]);
        let got = h.take(target).unwrap();
        assert_eq!(got, vec![mutation(0), mutation(1), mutation(2)]);
        assert!(h.targets().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
