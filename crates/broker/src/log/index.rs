//! `OffsetIndex` and `TimeIndex`: Kafka's sparse per-segment indexes.
//!
//! On-disk formats (big endian), exactly Kafka's:
//! - `.index`: entries of 8 bytes, `relative_offset: u32, position: u32`, where
//!   `relative_offset = batch.last_offset - segment.base_offset`.
//! - `.timeindex`: entries of 12 bytes, `timestamp: i64, relative_offset: u32`.
//!
//! Entries are kept in memory (a `Vec`) and written whole when the segment is flushed,
//! rolled or closed, so the files of a closed segment hold exactly the entries and no
//! preallocated tail. Both are owned by their `LogSegment`, under the log's lock.

use std::fs;
use std::io;
use std::path::Path;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn new(base_offset: i64) -> Self {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Loads an index file; `None` when it is corrupt (size not a multiple of the entry
    /// size, or entries not increasing), so the caller rebuilds it from the segment.
    pub fn load(path: &Path, base_offset: i64, segment_bytes: u64) -> io::Result<Option<Self>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if bytes.len() % OFFSET_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if let Some(&(last_rel, last_pos)) = entries.last() {
                if rel <= last_rel || pos <= last_pos {
                    return Ok(None);
                }
            }
            if pos as u64 >= segment_bytes {
                return Ok(None);
            }
            entries.push((rel, pos));
        }
        Ok(Some(OffsetIndex { base_offset, entries }))
    }

    pub fn append(&mut self, offset: i64, position: u32) {
        let rel = self.relative(offset);
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            assert!(
                rel > last_rel && position > last_pos,
                "offset index entries must increase"
            );
        }
        self.entries.push((rel, position));
    }

    fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            (0..=u32::MAX as i64).contains(&rel),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        rel as u32
    }

    /// Position of the last indexed batch whose last offset is below `target`: a safe
    /// place to start scanning for `target`. 0 when none is.
    pub fn lookup(&self, target: i64) -> u32 {
        if target <= self.base_offset {
            return 0;
        }
        let rel = (target - self.base_offset).min(u32::MAX as i64) as u32;
        let i = self.entries.partition_point(|&(r, _)| r < rel);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn last_position(&self) -> u32 {
        self.entries.last().map(|e| e.1).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries at or past `position` (truncation).
    pub fn truncate_to_position(&mut self, position: u32) {
        self.entries.retain(|&(_, p)| p < position);
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        fs::write(path, self.to_bytes())
    }

    /// The file's contents: `relative_offset u32, position u32` per entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for &(rel, pos) in &self.entries {
            buf.extend_from_slice(&rel.to_be_bytes());
            buf.extend_from_slice(&pos.to_be_bytes());
        }
        buf
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn new(base_offset: i64) -> Self {
        TimeIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    pub fn load(path: &Path, base_offset: i64) -> io::Result<Option<Self>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if bytes.len() % TIME_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
        for c in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let ts = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(&(last_ts, last_rel)) = entries.last() {
                if ts < last_ts || rel < last_rel {
                    return Ok(None);
                }
            }
            entries.push((ts, rel));
        }
        Ok(Some(TimeIndex { base_offset, entries }))
    }

    /// Appends when the timestamp grew, as Kafka's `maybeAppend`.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let rel = (offset - self.base_offset) as u32;
        match self.entries.last() {
            Some(&(ts, _)) if timestamp <= ts => {}
            _ => self.entries.push((timestamp, rel)),
        }
    }

    /// Offset to start a scan for the first record with timestamp >= `target`.
    pub fn lookup(&self, target: i64) -> i64 {
        let i = self.entries.partition_point(|&(ts, _)| ts < target);
        if i == 0 {
            self.base_offset
        } else {
            self.base_offset + self.entries[i - 1].1 as i64
        }
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + rel as i64))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn truncate_to_offset(&mut self, offset: i64) {
        let base = self.base_offset;
        self.entries.retain(|&(_, rel)| base + (rel as i64) < offset);
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        fs::write(path, self.to_bytes())
    }

    /// The file's contents: `timestamp i64, relative_offset u32` per entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for &(ts, rel) in &self.entries {
            buf.extend_from_slice(&ts.to_be_bytes());
            buf.extend_from_slice(&rel.to_be_bytes());
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_below_target() {
        let mut idx = OffsetIndex::new(100);
        idx.append(109, 4096);
        idx.append(119, 8192);
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(109), 0);
        assert_eq!(idx.lookup(110), 4096);
        assert_eq!(idx.lookup(125), 8192);
    }

    #[test]
    fn files_round_trip() {
        let dir = std::env::temp_dir().join(format!("fjord-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut idx = OffsetIndex::new(0);
        idx.append(5, 100);
        idx.write(&dir.join("a.index")).unwrap();
        assert_eq!(OffsetIndex::load(&dir.join("a.index"), 0, 1000).unwrap().unwrap(), idx);
        let mut t = TimeIndex::new(0);
        t.maybe_append(10, 5);
        t.maybe_append(9, 6);
        t.write(&dir.join("a.timeindex")).unwrap();
        assert_eq!(TimeIndex::load(&dir.join("a.timeindex"), 0).unwrap().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
