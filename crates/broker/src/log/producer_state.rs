//! `ProducerStateManager`: per-partition state of idempotent producers (KIP-98), so a
//! retried batch is never written twice and a gap in sequences is refused.
//!
//! Contract: `check` decides for one incoming batch (append, duplicate, or error) without
//! mutating; `update` records a batch after it is in the log. Owned by a `UnifiedLog`,
//! under its lock. Snapshot files `<20-digit offset>.snapshot` use Kafka's v1 layout:
//! `version i16 = 1, crc u32 (CRC-32C of what follows), count i32, entries of
//! producer_id i64, epoch i16, last_sequence i32, last_offset i64, offset_delta i32,
//! timestamp i64, coordinator_epoch i32, current_txn_first_offset i64`.

use super::record_batch::{crc32c, BatchHeader};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Kafka keeps the metadata of the last five batches per producer (max.in.flight = 5).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;
/// Limit: producers remembered per partition; the one whose last batch is oldest in the
/// log is evicted (Kafka has no such limit, only `producer.id.expiration.ms`, which
/// Fjord applies too: `remove_expired`).
pub const PRODUCERS_MAX: usize = 50_000;
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_offset(&self) -> i64 {
        self.last_offset - self.offset_delta as i64
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProducerStateEntry {
    pub producer_epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProducerCheck {
    Append,
    /// Already in the log: answer with the original offsets, write nothing.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
}

/// Invariant (asserted): `by_last_offset` holds exactly one entry per producer, keyed
/// by the last offset of its newest batch, so the producer to evict is its first.
#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
    by_last_offset: BTreeMap<i64, i64>,
}

/// Each producer keyed by the last offset of its newest batch.
fn order_of(producers: &HashMap<i64, ProducerStateEntry>) -> BTreeMap<i64, i64> {
    producers
        .iter()
        .filter_map(|(id, e)| Some((e.batches.back()?.last_offset, *id)))
        .collect()
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateManager {
    pub fn check(&self, h: &BatchHeader) -> Result<ProducerCheck, ProducerError> {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired): accept any first sequence.
            return Ok(ProducerCheck::Append);
        };
        if h.producer_epoch < entry.producer_epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.producer_epoch,
            });
        }
        if h.producer_epoch > entry.producer_epoch {
            if h.base_sequence != 0 {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            return Ok(ProducerCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(ProducerCheck::Duplicate(*dup));
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_seq(b.last_seq))
            .unwrap_or(h.base_sequence);
        if h.base_sequence != expected {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(ProducerCheck::Append)
    }

    /// Records a batch now in the log (offsets assigned). Also used on replay.
    pub fn update(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.is_control() {
            return;
        }
        if !self.producers.contains_key(&h.producer_id) && self.producers.len() >= PRODUCERS_MAX {
            self.evict_oldest();
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if let Some(last) = entry.batches.back() {
            self.by_last_offset.remove(&last.last_offset);
        }
        if h.producer_epoch != entry.producer_epoch {
            entry.batches.clear();
            entry.producer_epoch = h.producer_epoch;
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            last_offset: h.last_offset(),
            offset_delta: h.last_offset_delta,
            timestamp: h.max_timestamp,
        });
        self.by_last_offset.insert(h.last_offset(), h.producer_id);
        assert_eq!(
            self.by_last_offset.len(),
            self.producers.len(),
            "one order entry per producer"
        );
    }

    /// Forgets the producer whose newest batch is oldest in the log: O(log n).
    fn evict_oldest(&mut self) {
        if let Some((_, id)) = self.by_last_offset.pop_first() {
            self.producers.remove(&id);
        }
    }

    /// Kafka's `removeExpiredProducers`: forgets producers whose newest batch's
    /// timestamp is `expiration_ms` or more before `now_ms` (`producer.id.expiration.ms`).
    /// A walk of every producer, as Kafka's, run once per check interval. Returns how
    /// many were forgotten.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|b| now_ms.saturating_sub(b.timestamp) < expiration_ms)
        });
        self.rebuild_order();
        before - self.producers.len()
    }

    fn rebuild_order(&mut self) {
        self.by_last_offset = order_of(&self.producers);
        assert_eq!(
            self.by_last_offset.len(),
            self.producers.len(),
            "one order entry per producer"
        );
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
        self.by_last_offset.clear();
    }

    /// Forgets batches at or past `offset` (log truncation).
    pub fn truncate_to(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
        self.rebuild_order();
    }

    pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
        dir.join(format!("{offset:020}.snapshot"))
    }

    /// Writes the snapshot (Kafka's v1 layout, CRC-protected). `durable`: fsynced before
    /// it is renamed into place. A roll writes it without: a snapshot torn by a crash
    /// fails its CRC and recovery rebuilds the state from the log, so the roll need
    /// not wait for the disk.
    pub fn write_snapshot(&self, dir: &Path, offset: i64, durable: bool) -> io::Result<()> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * SNAPSHOT_ENTRY_BYTES);
        body.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (id, e) in &self.producers {
            let Some(last) = e.batches.back() else {
                continue;
            };
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.producer_epoch.to_be_bytes());
            body.extend_from_slice(&last.last_seq.to_be_bytes());
            body.extend_from_slice(&last.last_offset.to_be_bytes());
            body.extend_from_slice(&last.offset_delta.to_be_bytes());
            body.extend_from_slice(&last.timestamp.to_be_bytes());
            body.extend_from_slice(&(-1i32).to_be_bytes());
            body.extend_from_slice(&(-1i64).to_be_bytes());
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        let path = Self::snapshot_path(dir, offset);
        if durable {
            super::checkpoint::write_atomically(&path, &out)
        } else {
            super::checkpoint::write_replacing(&path, &out)
        }
    }

    /// Snapshot offsets present in `dir`, ascending.
    pub fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".snapshot") {
                if let Ok(o) = stem.parse::<i64>() {
                    out.push(o);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Loads the newest valid snapshot at or below `max_offset`; returns its offset.
    pub fn load_latest(&mut self, dir: &Path, max_offset: i64) -> io::Result<Option<i64>> {
        for offset in Self::list_snapshots(dir)?
            .into_iter()
            .rev()
            .filter(|o| *o <= max_offset)
        {
            if let Some(state) = Self::read_snapshot(&Self::snapshot_path(dir, offset))? {
                *self = state;
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    fn read_snapshot(path: &Path) -> io::Result<Option<ProducerStateManager>> {
        let b = fs::read(path)?;
        if b.len() < 10 || i16::from_be_bytes([b[0], b[1]]) != 1 {
            return Ok(None);
        }
        let crc = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
        let body = &b[6..];
        if crc32c(body) != crc {
            return Ok(None);
        }
        let count = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let entries = &body[4..];
        if count < 0 || entries.len() != count as usize * SNAPSHOT_ENTRY_BYTES {
            return Ok(None);
        }
        let mut state = ProducerStateManager::default();
        for e in entries.chunks_exact(SNAPSHOT_ENTRY_BYTES) {
            let id = i64::from_be_bytes(e[0..8].try_into().unwrap_or_default());
            let epoch = i16::from_be_bytes([e[8], e[9]]);
            let last_seq = i32::from_be_bytes(e[10..14].try_into().unwrap_or_default());
            let last_offset = i64::from_be_bytes(e[14..22].try_into().unwrap_or_default());
            let offset_delta = i32::from_be_bytes(e[22..26].try_into().unwrap_or_default());
            let timestamp = i64::from_be_bytes(e[26..34].try_into().unwrap_or_default());
            let first_seq = last_seq.wrapping_sub(offset_delta).max(0);
            let mut batches = VecDeque::new();
            batches.push_back(BatchMetadata {
                first_seq,
                last_seq,
                last_offset,
                offset_delta,
                timestamp,
            });
            state.producers.insert(
                id,
                ProducerStateEntry {
                    producer_epoch: epoch,
                    batches,
                },
            );
        }
        // A producer listed twice, or two at one offset: not a snapshot Fjord wrote, so
        // the state is rebuilt from the log instead.
        state.by_last_offset = order_of(&state.producers);
        if state.producers.len() != count as usize || state.by_last_offset.len() != state.producers.len() {
            return Ok(None);
        }
        Ok(Some(state))
    }

    /// Deletes snapshots above `offset` (truncation) and all but the newest two below.
    pub fn clean_snapshots(dir: &Path, keep_up_to: i64) -> io::Result<()> {
        let all = Self::list_snapshots(dir)?;
        let kept: Vec<i64> = all.iter().copied().filter(|o| *o <= keep_up_to).collect();
        let keep_from = kept.len().saturating_sub(2);
        for o in all.iter().filter(|o| **o > keep_up_to).chain(kept[..keep_from].iter()) {
            let _ = fs::remove_file(Self::snapshot_path(dir, *o));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn duplicate_and_gap() {
        let mut s = ProducerStateManager::default();
        let b0 = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&b0), Ok(ProducerCheck::Append));
        s.update(&b0);
        assert!(matches!(s.check(&header(7, 0, 0, 3, 99)), Ok(ProducerCheck::Duplicate(m)) if m.first_offset() == 0));
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, 99)),
            Err(ProducerError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(s.check(&header(7, 0, 3, 1, 99)), Ok(ProducerCheck::Append));
        assert!(matches!(
            s.check(&header(7, -1, 3, 1, 99)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = std::env::temp_dir().join(format!("fjord-pstate-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut s = ProducerStateManager::default();
        s.update(&header(7, 1, 10, 2, 40));
        s.write_snapshot(&dir, 42, true).unwrap();
        let mut t = ProducerStateManager::default();
        assert_eq!(t.load_latest(&dir, 100).unwrap(), Some(42));
        assert!(matches!(
            t.check(&header(7, 1, 10, 2, 0)),
            Ok(ProducerCheck::Duplicate(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Past the limit, the producer whose newest batch is oldest in the log goes, in
    /// O(log n) (it was a scan of all 50,000); producers idle past the expiration go at
    /// the check.
    #[test]
    fn eviction_takes_the_oldest_and_expiration_the_idle() {
        let mut s = ProducerStateManager::default();
        let mut offset = 0;
        let mut batch = |pid: i64, timestamp: i64| {
            let mut h = header(pid, 0, 0, 1, offset);
            h.max_timestamp = timestamp;
            offset += 1;
            h
        };
        for pid in 0..PRODUCERS_MAX as i64 {
            s.update(&batch(pid, 1_000));
        }
        // Producer 0 writes again, so producer 1 is now the oldest.
        let mut again = batch(0, 1_000);
        again.base_sequence = 1;
        s.update(&again);
        s.update(&batch(1_000_000, 5_000));
        assert_eq!(s.len(), PRODUCERS_MAX);
        assert_eq!(
            s.check(&header(1, 0, 7, 1, 0)),
            Ok(ProducerCheck::Append),
            "1 forgotten: any sequence"
        );
        assert!(s.check(&header(0, 0, 7, 1, 0)).is_err(), "0 remembered");
        assert!(s.check(&header(2, 0, 7, 1, 0)).is_err(), "2 remembered");
        // At 4,000 with a 3,000 expiration, everyone but the producer seen at 5,000 is idle.
        assert_eq!(s.remove_expired(4_000, 3_000), PRODUCERS_MAX - 1);
        assert_eq!(s.len(), 1);
        s.update(&batch(7, 4_000));
        s.update(&batch(8, 4_000));
        assert_eq!(s.len(), 3);
    }
}
