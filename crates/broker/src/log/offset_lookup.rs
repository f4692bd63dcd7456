//! Lookups of `UnifiedLog` offsets by time and by leader epoch, as Kafka's
//! `UnifiedLog.fetchOffsetByTimestamp` and `endOffsetForEpoch` answer them (ListOffsets,
//! OffsetForLeaderEpoch, Fetch's divergence check).
//!
//! Lock: the batch that answers a lookup is found under the log's lock (the time index,
//! then a few batch headers); its records are read and decoded after the lock is let
//! go, so a lookup into a large compressed batch never holds an append up. The cloned
//! file handle keeps those bytes readable if the segment is deleted or cleaned meanwhile
//! (both replace the file, never rewrite it in place).

use super::leader_epoch_cache;
use super::record_batch::{self, BatchHeader};
use super::segment::{self, LogSegment};
use super::unified_log::for_each_batch_from;
use super::{LogError, UnifiedLog};
use bytes::Bytes;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

/// What a lookup by time found (Kafka's `FileRecords.TimestampAndOffset`): a record's
/// offset and timestamp, and the leader epoch of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

/// A batch located under the lock, to be read after it.
struct LocatedBatch {
    file: Arc<File>,
    position: u64,
    header: BatchHeader,
    segment: PathBuf,
}

impl LocatedBatch {
    fn locate(seg: &LogSegment, header: BatchHeader) -> Result<Option<LocatedBatch>, LogError> {
        let Some((position, _)) = seg.position_of(header.base_offset, seg.size())? else {
            return Ok(None);
        };
        Ok(Some(LocatedBatch {
            file: seg.file().clone(),
            position,
            header,
            segment: seg.path(".log"),
        }))
    }

    /// The answer when the batch's records cannot say more: `offset` and `timestamp`
    /// taken from its header.
    fn answer(&self, offset: i64, timestamp: i64) -> TimestampAndOffset {
        TimestampAndOffset {
            timestamp,
            offset,
            leader_epoch: epoch_of(&self.header),
        }
    }

    /// Decodes the batch to find the first record matching `pred(timestamp, offset)`.
    fn exact_record(&self, pred: impl Fn(i64, i64) -> bool) -> Result<Matched, LogError> {
        let h = &self.header;
        let bytes = segment::read_exact_at(&self.file, self.position, h.size_bytes())?;
        let mut buf = Bytes::from(bytes);
        let limit = super::compression::expanded_bytes_max(h.size_bytes());
        let set = match super::compression::decode_bounded(&mut buf, limit) {
            Ok(set) => set,
            // Past the limit (or not decodable), the batch's own offsets and timestamp answer.
            Err(e) => {
                tracing::warn!(segment = %self.segment.display(), offset = h.base_offset, error = %e, "a batch not decoded for a timestamp lookup");
                return Ok(Matched::Undecoded);
            }
        };
        // In a LogAppendTime batch every record's timestamp is the batch's (the append
        // time), as Kafka's `DefaultRecordBatch` reads it; the records keep the producer's
        // create time, which no lookup may see.
        let log_append_time = h.attributes & record_batch::ATTR_LOG_APPEND_TIME != 0;
        let timestamp_of = |r: &kafka_protocol::records::Record| {
            if log_append_time {
                h.max_timestamp
            } else {
                r.timestamp
            }
        };
        Ok(set
            .records
            .iter()
            .find(|r| pred(timestamp_of(r), r.offset))
            .map_or(Matched::NoRecord, |r| {
                Matched::Record(self.answer(r.offset, timestamp_of(r)))
            }))
    }
}

/// What `LocatedBatch::exact_record` found.
enum Matched {
    Record(TimestampAndOffset),
    /// The batch decoded, and none of its records matched.
    NoRecord,
    /// The batch could not be decoded within its bound.
    Undecoded,
}

/// A batch's leader epoch, if it has one (-1 is Kafka's NO_PARTITION_LEADER_EPOCH).
fn epoch_of(h: &BatchHeader) -> Option<i32> {
    (h.partition_leader_epoch >= 0).then_some(h.partition_leader_epoch)
}

impl UnifiedLog {
    /// The first record whose timestamp is at least `timestamp`, below the high
    /// watermark.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampAndOffset>, LogError> {
        self.guard(|| {
            // As Kafka's `FileRecords.searchForTimestamp`, batch after batch: a batch
            // whose matching records all lie below the log start (DeleteRecords cut it
            // in the middle) holds no answer, and the search goes on after it.
            let mut from = i64::MIN;
            loop {
                let Some((batch, start)) = self.locate_by_timestamp(timestamp, from)? else {
                    return Ok(None);
                };
                let h = batch.header;
                match batch.exact_record(|ts, off| ts >= timestamp && off >= start)? {
                    Matched::Record(found) => return Ok(Some(found)),
                    Matched::NoRecord => from = h.last_offset() + 1,
                    Matched::Undecoded => return Ok(Some(batch.answer(h.base_offset.max(start), h.max_timestamp))),
                }
            }
        })
    }

    /// The first batch below the high watermark holding a timestamp at least
    /// `timestamp` and an offset at least `from`, and the offset the lookup may start
    /// from (the log start, or `from`).
    fn locate_by_timestamp(&self, timestamp: i64, from: i64) -> Result<Option<(LocatedBatch, i64)>, LogError> {
        let inner = self.lock();
        for seg in inner.segments.values() {
            if seg.max_timestamp() < timestamp || seg.next_offset() <= from {
                continue;
            }
            let start = seg.time_index().lookup(timestamp).max(inner.log_start_offset).max(from);
            let mut found = None;
            for_each_batch_from(seg, start, &mut |h| {
                if h.base_offset >= inner.high_watermark {
                    return ControlFlow::Break(());
                }
                if h.max_timestamp >= timestamp && h.last_offset() >= start {
                    found = Some(*h);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
            if let Some(h) = found {
                return Ok(LocatedBatch::locate(seg, h)?.map(|b| (b, start)));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first of equals).
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampAndOffset>, LogError> {
        self.guard(|| {
            let (ts, last_offset, batch) = {
                let inner = self.lock();
                // The first segment holding the largest timestamp, as Kafka's `maxBy`:
                // `max_by_key` answers the last of equals, so it walks newest first.
                let best = inner
                    .segments
                    .values()
                    .rev()
                    .filter(|s| !s.is_empty())
                    .max_by_key(|s| s.max_timestamp());
                let Some(seg) = best else { return Ok(None) };
                let (ts, last_offset) = (seg.max_timestamp(), seg.offset_of_max_timestamp());
                let mut batch = None;
                for_each_batch_from(seg, last_offset, &mut |h| {
                    if h.last_offset() >= last_offset {
                        batch = Some(*h);
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })?;
                let located = match batch {
                    Some(h) => LocatedBatch::locate(seg, h)?,
                    None => None,
                };
                (ts, last_offset, located)
            };
            let Some(batch) = batch else {
                return Ok(Some(TimestampAndOffset {
                    timestamp: ts,
                    offset: last_offset,
                    leader_epoch: None,
                }));
            };
            Ok(Some(match batch.exact_record(|t, _| t == ts)? {
                Matched::Record(found) => found,
                Matched::NoRecord | Matched::Undecoded => batch.answer(last_offset, ts),
            }))
        })
    }

    /// Kafka's `endOffsetForEpoch`: `(epoch, end offset)` of `leader_epoch` in this
    /// log's leader-epoch cache (`leader_epoch_cache::end_offset_for`).
    pub fn end_offset_for_epoch(&self, leader_epoch: i32) -> Option<(i32, i64)> {
        let inner = self.lock();
        leader_epoch_cache::end_offset_for(&inner.leader_epoch_cache, leader_epoch, inner.log_end_offset)
    }

    /// The epoch of the log's first record (Kafka's answer to ListOffsets EARLIEST):
    /// the cache's first epoch, if it began at or before the log start.
    pub fn earliest_epoch(&self) -> Option<i32> {
        let inner = self.lock();
        let (epoch, start) = *inner.leader_epoch_cache.first()?;
        (start <= inner.log_start_offset).then_some(epoch)
    }

    /// Kafka's `Partition.makeLeader` (`maybeAssignEpochStartOffset`): the leader's
    /// epoch starts at the log end, if it is new to this log, so even an empty
    /// partition answers for its current epoch (OffsetForLeaderEpoch, a consumer's
    /// position validation) before its first append.
    pub fn assign_epoch_start_offset(&self, leader_epoch: i32) -> Result<(), LogError> {
        self.guard(|| {
            let mut inner = self.lock();
            let log_end_offset = inner.log_end_offset;
            inner.assign_epoch_start_offset(&self.dir, leader_epoch, log_end_offset)
        })
    }
}
