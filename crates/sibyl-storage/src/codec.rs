//! Compact binary encoding shared by the commit log and SSTables.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::error::{Result, StorageError};
use crate::model::{Cell, DeletionTime, LivenessInfo, PartitionKey, RangeTombstone};
use crate::partition::{ColData, PartitionData, RowData};
use crate::sorted_map::{RowMap, VecMap};

#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn ivar(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn key(&mut self, k: &PartitionKey) {
        self.ivar(k.token);
        self.bytes(&k.key);
    }
    pub fn deletion(&mut self, d: &Option<DeletionTime>) {
        match d {
            None => self.u8(0),
            Some(d) => {
                self.u8(1);
                self.ivar(d.timestamp);
                self.ivar(d.local_deletion_time);
            }
        }
    }
    pub fn liveness(&mut self, l: &Option<LivenessInfo>) {
        match l {
            None => self.u8(0),
            Some(l) => {
                self.u8(1);
                self.ivar(l.timestamp);
                self.ivar(l.ttl as i64);
                self.ivar(l.expires_at);
            }
        }
    }
    /// Value tag: 0 tombstone, 1 value; 2 is reserved for counter cells (not implemented).
    pub fn cell(&mut self, c: &Cell) {
        self.ivar(c.timestamp);
        match &c.value {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.bytes(v);
            }
        }
        self.ivar(c.ttl as i64);
        self.ivar(c.local_deletion_time);
    }
    pub fn bound(&mut self, b: &Bound<Bytes>) {
        match b {
            Bound::Unbounded => self.u8(0),
            Bound::Included(v) => {
                self.u8(1);
                self.bytes(v);
            }
            Bound::Excluded(v) => {
                self.u8(2);
                self.bytes(v);
            }
        }
    }
    pub fn range_tombstones(&mut self, rts: &[RangeTombstone]) {
        self.var(rts.len() as u64);
        for rt in rts {
            self.bound(&rt.start);
            self.bound(&rt.end);
            self.deletion(&Some(rt.deletion));
        }
    }
    pub fn row(&mut self, r: &RowData) {
        self.liveness(&r.liveness);
        self.deletion(&r.deletion);
        self.var(r.columns.len() as u64);
        for (name, cd) in &r.columns {
            self.bytes(name);
            match cd {
                ColData::Simple(c) => {
                    self.u8(0);
                    self.cell(c);
                }
                ColData::Complex { deletion, cells } => {
                    self.u8(1);
                    self.deletion(deletion);
                    self.var(cells.len() as u64);
                    for (p, c) in cells {
                        self.bytes(p);
                        self.cell(c);
                    }
                }
            }
        }
    }
    pub fn opt_row(&mut self, r: Option<&RowData>) {
        match r {
            None => self.u8(0),
            Some(r) => {
                self.u8(1);
                self.row(r);
            }
        }
    }
    /// A whole partition (commit log entries).
    pub fn partition(&mut self, p: &PartitionData) {
        self.deletion(&p.deletion);
        self.range_tombstones(&p.range_tombstones);
        self.opt_row(p.static_row.as_deref());
        self.var(p.rows.len() as u64);
        for (c, r) in &p.rows {
            self.bytes(c);
            self.row(r);
        }
    }
}

pub struct Dec<'a> {
    /// The buffer being decoded; `Bytes` values are copied out of it.
    pub data: &'a [u8],
    pub pos: usize,
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("truncated or invalid {what}"))
}

impl<'a> Dec<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Dec { data, pos: 0 }
    }
    pub fn u8(&mut self) -> Result<u8> {
        let v = *self.data.get(self.pos).ok_or_else(|| corrupt("byte"))?;
        self.pos += 1;
        Ok(v)
    }
    #[inline]
    pub fn var(&mut self) -> Result<u64> {
        // Most varints here (lengths, flags, small timestamps deltas) fit one byte.
        if let Some(&b) = self.data.get(self.pos) {
            if b & 0x80 == 0 {
                self.pos += 1;
                return Ok(b as u64);
            }
        }
        self.var_long()
    }
    fn var_long(&mut self) -> Result<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift >= 64 {
                return Err(corrupt("varint"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }
    pub fn ivar(&mut self) -> Result<i64> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(corrupt("bytes"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn bytes(&mut self) -> Result<Bytes> {
        let n = self.var()? as usize;
        Ok(Bytes::copy_from_slice(self.raw(n)?))
    }
    /// A column name, as the shared copy (`names::intern`).
    pub fn name(&mut self) -> Result<Bytes> {
        let n = self.var()? as usize;
        Ok(crate::names::intern(self.raw(n)?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.raw(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.raw(8)?.try_into().unwrap()))
    }
    pub fn key(&mut self) -> Result<PartitionKey> {
        Ok(PartitionKey {
            token: self.ivar()?,
            key: self.bytes()?,
        })
    }
    pub fn deletion(&mut self) -> Result<Option<DeletionTime>> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(DeletionTime {
                timestamp: self.ivar()?,
                local_deletion_time: self.ivar()?,
            }),
            _ => return Err(corrupt("deletion")),
        })
    }
    pub fn liveness(&mut self) -> Result<Option<LivenessInfo>> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(LivenessInfo {
                timestamp: self.ivar()?,
                ttl: self.ivar()? as i32,
                expires_at: self.ivar()?,
            }),
            _ => return Err(corrupt("liveness")),
        })
    }
    pub fn cell(&mut self) -> Result<Cell> {
        let timestamp = self.ivar()?;
        let value = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?),
            _ => return Err(corrupt("cell")),
        };
        Ok(Cell {
            timestamp,
            value,
            ttl: self.ivar()? as i32,
            local_deletion_time: self.ivar()?,
        })
    }
    pub fn bound(&mut self) -> Result<Bound<Bytes>> {
        Ok(match self.u8()? {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.bytes()?),
            2 => Bound::Excluded(self.bytes()?),
            _ => return Err(corrupt("bound")),
        })
    }
    pub fn range_tombstones(&mut self) -> Result<Vec<RangeTombstone>> {
        let n = self.var()? as usize;
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let start = self.bound()?;
            let end = self.bound()?;
            let deletion = self.deletion()?.ok_or_else(|| corrupt("range tombstone"))?;
            v.push(RangeTombstone {
                start,
                end,
                deletion,
            });
        }
        Ok(v)
    }
    /// Moves past a byte string without copying it.
    fn skip_bytes(&mut self) -> Result<()> {
        let n = self.var()? as usize;
        self.raw(n).map(|_| ())
    }
    fn skip_cell(&mut self) -> Result<()> {
        self.var()?;
        match self.u8()? {
            0 => {}
            1 => self.skip_bytes()?,
            _ => return Err(corrupt("cell")),
        }
        self.var()?;
        self.var().map(|_| ())
    }
    /// Moves past an encoded row (what `row` decodes) without building it: no allocation,
    /// for rows a slice starts after.
    pub fn skip_row(&mut self) -> Result<()> {
        self.liveness()?;
        self.deletion()?;
        let n = self.var()?;
        for _ in 0..n {
            self.skip_bytes()?;
            match self.u8()? {
                0 => self.skip_cell()?,
                1 => {
                    self.deletion()?;
                    for _ in 0..self.var()? {
                        self.skip_bytes()?;
                        self.skip_cell()?;
                    }
                }
                _ => return Err(corrupt("column")),
            }
        }
        Ok(())
    }
    pub fn row(&mut self) -> Result<RowData> {
        let liveness = self.liveness()?;
        let deletion = self.deletion()?;
        let n = self.var()? as usize;
        // At least two bytes per column: a corrupt count cannot reserve more than the data.
        let mut columns = VecMap::with_capacity(n.min((self.data.len() - self.pos) / 2));
        for _ in 0..n {
            let name = self.name()?;
            let cd = match self.u8()? {
                0 => ColData::Simple(self.cell()?),
                1 => {
                    let deletion = self.deletion()?;
                    let m = self.var()? as usize;
                    let mut cells = BTreeMap::new();
                    for _ in 0..m {
                        let p = self.bytes()?;
                        cells.insert(p, self.cell()?);
                    }
                    ColData::Complex { deletion, cells }
                }
                _ => return Err(corrupt("column")),
            };
            columns.insert(name, cd);
        }
        Ok(RowData {
            liveness,
            deletion,
            columns,
        })
    }
    pub fn opt_row(&mut self) -> Result<Option<RowData>> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(self.row()?),
            _ => return Err(corrupt("row")),
        })
    }
    pub fn partition(&mut self) -> Result<PartitionData> {
        let deletion = self.deletion()?;
        let range_tombstones = self.range_tombstones()?;
        let static_row = self.opt_row()?;
        let n = self.var()? as usize;
        // Bounded by the input: a corrupt count must not reserve unbounded memory.
        let mut rows = RowMap::with_capacity(n.min(self.data.len() - self.pos));
        for _ in 0..n {
            let c = self.bytes()?;
            rows.insert(c, self.row()?);
        }
        Ok(PartitionData {
            deletion,
            range_tombstones,
            static_row: static_row.map(Box::new),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_truncation_and_overflow() {
        let values = [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX >> 1, u64::MAX];
        let mut e = Enc::default();
        for v in values {
            e.var(v);
        }
        for v in [0i64, -1, 63, -64, i64::MIN, i64::MAX] {
            e.ivar(v);
        }
        let mut d = Dec::new(&e.buf);
        for v in values {
            assert_eq!(d.var().unwrap(), v);
        }
        for v in [0i64, -1, 63, -64, i64::MIN, i64::MAX] {
            assert_eq!(d.ivar().unwrap(), v);
        }
        assert!(d.var().is_err(), "nothing left");
        assert!(Dec::new(&[0x80, 0x80]).var().is_err(), "truncated");
        assert!(Dec::new(&[0xff; 10]).var().is_err(), "more than 64 bits");
        let mut max = Enc::default();
        max.var(u64::MAX);
        assert_eq!(max.buf.len(), 10);
    }
}
