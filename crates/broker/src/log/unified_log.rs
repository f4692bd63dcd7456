//! `UnifiedLog`: one partition's log: its segments, `log_start_offset`, `log_end_offset`,
//! `high_watermark`, leader-epoch cache and producer state.
//!
//! Lock: one `Mutex<LocalLog>` per partition (`local_log`) guards everything mutable.
//! Appends hold it for their write (O_DIRECT to the device, or to the page cache where
//! that is off); reads hold it only to locate the start position and then read through
//! a cloned file handle. Invariants (asserted):
//! `log_start_offset <= high_watermark <= log_end_offset`, segments are contiguous and
//! ascending, the last segment ends at `log_end_offset`.

/// The page cache is dropped in steps of at least this much (one fadvise each).
const PAGE_CACHE_DROP_STEP_BYTES: u64 = 32 << 20;

/// Limit: fetches waiting on one partition.
const FETCH_WAITERS_MAX: usize = 10_000;

/// A read from dropped pages starts the readahead of this much.
const READAHEAD_BYTES: u64 = 16 << 20;

use super::checkpoint;
use super::deletion::DeletedFile;
use super::local_log::{list_segment_files, LocalLog};
use super::log_dir_failure::LogDirFailureChannel;
use super::log_validator::{self, ValidatedBatch, ValidationRules};
use super::producer_state::{ProducerCheck, ProducerStateManager};
use super::record_batch::{self, BatchError, BatchHeader, BatchIter};
use super::segment::{self, LogSegment};
use super::{LogError, TopicPartition};
use crate::config::TopicConfig;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Validates a produce request's records as Kafka's `LogValidator` does
/// (`log_validator`), then recompresses them (expansion bounded) to the topic's
/// `compression.type` if that names another codec, or with their own codec if they are
/// compressed with inner offsets out of order (Kafka rebuilds such a batch with its
/// offsets in order). Returns the recompressed bytes, if it did, and the batch to
/// append: produce v3+ carries exactly one per partition.
fn validate_for_leader(
    records: &[u8],
    tp: &TopicPartition,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<(Option<Bytes>, ValidatedBatch), LogError> {
    let rules = ValidationRules {
        topic: &tp.topic,
        partition: tp.partition,
        max_message_bytes: config.max_message_bytes.max(0) as usize,
        now_ms,
        timestamp_before_max_ms: config.message_timestamp_before_max_ms,
        timestamp_after_max_ms: config.message_timestamp_after_max_ms,
        log_append_time: config.message_timestamp_log_append_time,
        compacted: config.cleanup_policy_compact,
    };
    let batch = log_validator::validate_produce_records(records, &rules)?;
    let source = super::compression::batch_codec(records);
    let rebuild_to = match super::compression::target_codec(&config.compression_type) {
        Some(target) if source != Some(target) => Some(target),
        _ if batch.header.compression() != 0 && !batch.records.offsets_in_order => source,
        _ => None,
    };
    match rebuild_to {
        Some(target) => {
            let expanded_max = super::compression::expanded_bytes_max(rules.max_message_bytes);
            let levels = super::compression::CompressionLevels::of(config);
            let recompressed = super::compression::recompress(records, target, levels, expanded_max)?;
            // The same records, so the same findings; only the header is new.
            let header = BatchHeader::parse(&recompressed)?;
            if header.size_bytes() != recompressed.len() {
                return Err(BatchError::Invalid("recompression made more than one batch".into()).into());
            }
            // As Kafka's `UnifiedLog.append` when validation changed the size.
            if recompressed.len() > rules.max_message_bytes {
                return Err(BatchError::TooLarge {
                    size: recompressed.len(),
                    max: rules.max_message_bytes,
                }
                .into());
            }
            let recompressed_batch = ValidatedBatch {
                position: 0,
                header,
                records: batch.records,
            };
            Ok((Some(recompressed), recompressed_batch))
        }
        _ => Ok((None, batch)),
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batch for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub records: i64,
}

/// Records read for a fetch, with the offsets a FetchResponse reports.
#[derive(Debug, Clone)]
pub struct FetchDataInfo {
    pub records: super::FileRecords,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Which offset bounds what a fetch may see.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FetchIsolation {
    /// Consumers: up to the high watermark.
    HighWatermark,
    /// Followers: up to the log end offset.
    LogEnd,
}

#[derive(Debug)]
pub struct UnifiedLog {
    pub topic_partition: TopicPartition,
    pub dir: PathBuf,
    config: RwLock<Arc<TopicConfig>>,
    inner: Mutex<LocalLog>,
    /// Fetches waiting for this partition's high watermark to move (Kafka's fetch
    /// purgatory, keyed by partition): woken and cleared when it does. At most
    /// `FETCH_WAITERS_MAX`; a fetch that finds the list full waits out its max_wait.
    fetch_waiters: Mutex<Vec<std::sync::Weak<tokio::sync::Notify>>>,
    /// Set when this log's filesystem would not preallocate (unsupported, or no
    /// space): segments are then created as they roll, and preallocation is not retried.
    preallocation_failed: std::sync::atomic::AtomicBool,
    /// Where this log reports an I/O failure, and its dir's index there; set by the
    /// `LogManager` (a log made without one, in a unit test, reports nothing).
    failure: std::sync::OnceLock<(Arc<LogDirFailureChannel>, usize)>,
    /// Set when an append failed for want of space; the `LogManager` takes it to free
    /// the dir's deleted data at once (`free_deleted`).
    out_of_space: std::sync::atomic::AtomicBool,
}

/// Offsets a log starts from when loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOffsets {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: Option<i64>,
    pub clean_shutdown: bool,
}

impl UnifiedLog {
    /// Opens (or creates) the log in `dir`, recovering segments past the recovery point
    /// unless the broker shut down cleanly.
    pub fn load(
        dir: &Path,
        tp: TopicPartition,
        config: Arc<TopicConfig>,
        offsets: LoadOffsets,
        now_ms: i64,
    ) -> Result<UnifiedLog, LogError> {
        fs::create_dir_all(dir)?;
        let interval = config.index_interval_bytes as u64;
        let (mut bases, leftovers) = list_segment_files(dir)?;
        let deleted_segment_files = leftovers
            .into_iter()
            .map(|path| DeletedFile { path, handle: None })
            .collect();
        if bases.is_empty() {
            bases.push(offsets.log_start_offset.max(0));
            LogSegment::create(dir, bases[0], interval, now_ms)?;
        }
        let mut segments = BTreeMap::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let recover = !offsets.clean_shutdown && next_base > offsets.recovery_point;
            let (seg, truncated) = LogSegment::open(dir, base, interval, recover, now_ms)?;
            segments.insert(base, seg);
            if truncated > 0 {
                tracing::warn!(partition = %tp, base_offset = base, truncated, "truncated a corrupt or torn tail");
                for later in &bases[i + 1..] {
                    let (s, _) = LogSegment::open(dir, *later, interval, false, now_ms)?;
                    s.delete_files()?;
                }
                break;
            }
        }
        let log_end_offset = segments.values().next_back().map(|s| s.next_offset()).unwrap_or(0);
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_start_offset = offsets.log_start_offset.clamp(first_base, log_end_offset);
        let mut epochs =
            checkpoint::read_leader_epoch_checkpoint(&dir.join("leader-epoch-checkpoint")).unwrap_or_default();
        epochs.retain(|(_, start)| *start <= log_end_offset);
        let log = UnifiedLog {
            topic_partition: tp,
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            fetch_waiters: Mutex::new(Vec::new()),
            inner: Mutex::new(LocalLog {
                segments,
                log_start_offset,
                log_end_offset,
                high_watermark: offsets
                    .high_watermark
                    .unwrap_or(log_end_offset)
                    .clamp(log_start_offset, log_end_offset),
                recovery_point: log_end_offset,
                leader_epoch_cache: epochs,
                producer_state: ProducerStateManager::default(),
                unflushed_messages: 0,
                last_flush_ms: now_ms,
                deleted: false,
                next_segment: None,
                direct_io: false,
                deleted_segment_files,
            }),
            preallocation_failed: std::sync::atomic::AtomicBool::new(false),
            out_of_space: std::sync::atomic::AtomicBool::new(false),
            failure: std::sync::OnceLock::new(),
        };
        log.rebuild_producer_state()?;
        Ok(log)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, LocalLog> {
        crate::sync::lock(&self.inner)
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        crate::sync::read(&self.config).clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        *crate::sync::write(&self.config) = config;
    }

    /// Loads the newest producer snapshot and replays the batches after it.
    fn rebuild_producer_state(&self) -> Result<(), LogError> {
        let mut inner = self.lock();
        let leo = inner.log_end_offset;
        let mut state = ProducerStateManager::default();
        let from = state.load_latest(&self.dir, leo)?.unwrap_or(inner.log_start_offset);
        for seg in inner.segments.values() {
            if seg.next_offset() <= from {
                continue;
            }
            for_each_batch_from(seg, from, &mut |h| {
                state.update(h);
                ControlFlow::Continue(())
            })?;
        }
        inner.producer_state = state;
        ProducerStateManager::clean_snapshots(&self.dir, leo)?;
        Ok(())
    }

    /// Validates and appends a produce request's records as leader: assigns offsets,
    /// stamps the leader epoch (and LogAppendTime when configured), and drops batches
    /// an idempotent producer already wrote.
    pub fn append_as_leader(&self, records: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        self.guard(|| self.leader_append(records, leader_epoch, now_ms))
    }

    fn leader_append(&self, records: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let (recompressed, b) = validate_for_leader(records, &self.topic_partition, &config, now_ms)?;
        let records = recompressed.as_deref().unwrap_or(records);
        // Kafka's `UnifiedLog.append`: a batch no segment can hold (max.message.bytes
        // above segment.bytes) is refused, not written to an oversized segment.
        let size = b.header.size_bytes();
        if size > config.segment_bytes.max(0) as usize {
            return Err(LogError::RecordBatchTooLarge {
                size,
                partition: self.topic_partition.to_string(),
                segment_bytes: config.segment_bytes,
            });
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.deleted {
            return Err(LogError::Deleted);
        }
        if b.header.has_producer_id() && b.header.base_sequence >= 0 {
            if let ProducerCheck::Duplicate(m) = inner.producer_state.check(&b.header)? {
                tracing::debug!(partition = %self.topic_partition, first_offset = m.first_offset(), "duplicate batch");
                return Ok(AppendInfo {
                    base_offset: m.first_offset(),
                    last_offset: m.last_offset,
                    // The stored batch's timestamp, as Kafka's `UnifiedLog.append`
                    // answers a retry, on CreateTime topics too (its max timestamp).
                    log_append_time_ms: m.timestamp,
                    log_start_offset: inner.log_start_offset,
                    records: 0,
                });
            }
        }
        let log_append_time = config.message_timestamp_log_append_time;
        let append_time = if log_append_time { now_ms } else { -1 };
        // Kafka's `setMaxTimestamp`: the append time on a LogAppendTime topic, else the
        // records' own largest timestamp, whatever the producer's header claimed.
        let max_timestamp = if log_append_time {
            now_ms
        } else {
            b.records.max_timestamp
        };
        let base_offset = inner.log_end_offset;
        let mut header = b.header;
        header.base_offset = base_offset;
        header.partition_leader_epoch = leader_epoch;
        let original = &records[b.position..b.position + b.header.size_bytes()];
        let stamped = header.attributes & record_batch::ATTR_LOG_APPEND_TIME != 0;
        if stamped != log_append_time || header.max_timestamp != max_timestamp {
            // CRC-covered fields change: patch and re-sign a copy.
            header.max_timestamp = max_timestamp;
            header.attributes ^= record_batch::ATTR_LOG_APPEND_TIME * i16::from(stamped != log_append_time);
            let mut copy = original.to_vec();
            record_batch::set_base_offset(&mut copy, base_offset);
            record_batch::set_partition_leader_epoch(&mut copy, leader_epoch);
            record_batch::set_max_timestamp(&mut copy, log_append_time, max_timestamp);
            let appended = inner.append_batches(
                &self.dir,
                &config,
                &[copy.as_slice()],
                &[(0, header)],
                leader_epoch,
                now_ms,
            );
            self.note_out_of_space(appended)?;
        } else {
            // Only the 16 bytes before the CRC'd part change; the rest is written
            // straight from the request buffer (pwritev), never copied.
            let mut head = [0u8; 16];
            head.copy_from_slice(&original[..16]);
            record_batch::set_base_offset(&mut head, base_offset);
            record_batch::set_partition_leader_epoch(&mut head, leader_epoch);
            let parts = [head.as_slice(), &original[16..]];
            let appended = inner.append_batches(&self.dir, &config, &parts, &[(0, header)], leader_epoch, now_ms);
            self.note_out_of_space(appended)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms: append_time,
            log_start_offset: inner.log_start_offset,
            records: header.next_offset() - base_offset,
        })
    }

    /// Appends batches that already carry their offsets (a follower's fetch result).
    pub fn append_as_follower(&self, records: &[u8], now_ms: i64) -> Result<(), LogError> {
        self.guard(|| {
            let config = self.config();
            let mut inner = self.lock();
            let mut headers = Vec::new();
            let mut iter = BatchIter::new(records);
            for (at, h) in iter.by_ref() {
                if h.base_offset < inner.log_end_offset {
                    return Err(LogError::Corrupt(format!(
                        "follower append at {} below log end {}",
                        h.base_offset, inner.log_end_offset
                    )));
                }
                headers.push((at, h));
            }
            let end = iter.valid_bytes();
            let epoch = headers.last().map(|(_, h)| h.partition_leader_epoch).unwrap_or(0);
            if headers.is_empty() {
                return Ok(());
            }
            let dir = self.dir.clone();
            let appended = inner.append_batches(&dir, &config, &[&records[..end]], &headers, epoch, now_ms);
            self.note_out_of_space(appended)
        })
    }

    /// Reports this log's I/O failures to `channel`, as dir `index` there.
    pub fn set_failure_channel(&self, channel: Arc<LogDirFailureChannel>, index: usize) {
        let set = self.failure.set((channel, index));
        assert!(set.is_ok(), "a log reports to one failure channel");
    }

    /// Runs an operation on the log, as Kafka's `maybeHandleIOException`: refused
    /// while the log's dir is offline, and an I/O error (but a full disk's) takes the
    /// dir offline.
    pub(super) fn guard<T>(&self, operation: impl FnOnce() -> Result<T, LogError>) -> Result<T, LogError> {
        let Some((channel, index)) = self.failure.get() else {
            return operation();
        };
        if channel.has_offline_log_dir(*index) {
            return Err(LogError::LogDirOffline);
        }
        let result = operation();
        if let Err(LogError::Io(e)) = &result {
            if !super::is_refused(e) {
                let error = format!("{}: {e}", self.topic_partition);
                channel.maybe_add_offline_log_dir(*index, &error);
            }
        }
        result
    }

    /// Passes an append's result on, noting a failure for want of space.
    fn note_out_of_space(&self, appended: Result<(), LogError>) -> Result<(), LogError> {
        if appended.as_ref().is_err_and(LogError::is_out_of_space) {
            self.out_of_space.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        appended
    }

    /// Whether an append failed for want of space since the last call; clears the mark.
    pub fn take_out_of_space(&self) -> bool {
        self.out_of_space.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the slice of the log from the batch holding `offset`, at most
    /// `max_bytes` long, or the whole first batch when it alone is larger and
    /// `min_one_batch` (fetch v3+), never past the isolation bound. As in Kafka's
    /// `LogSegment.read`, the slice may end inside a batch.
    ///
    /// A slice of data whose pages were dropped (`drop_page_cache_behind`) also starts
    /// the readahead of what follows it, outside the lock, so a reader catching up
    /// reads at disk speed rather than one page fault at a time.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: FetchIsolation,
        min_one_batch: bool,
    ) -> Result<FetchDataInfo, LogError> {
        self.guard(|| {
            let (info, cold) = self.read_locked(offset, max_bytes, isolation, min_one_batch)?;
            if cold {
                if let Some(file) = info.records.file() {
                    let from = info.records.position();
                    let len = std::num::NonZeroU64::new(info.records.len().max(READAHEAD_BYTES));
                    // Only advice: a failure costs speed, never data.
                    let _ = rustix::fs::fadvise(&**file, from, len, rustix::fs::Advice::WillNeed);
                }
            }
            Ok(info)
        })
    }

    fn read_locked(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: FetchIsolation,
        min_one_batch: bool,
    ) -> Result<(FetchDataInfo, bool), LogError> {
        let inner = self.lock();
        let mut info = FetchDataInfo {
            records: super::FileRecords::empty(),
            high_watermark: inner.high_watermark,
            log_start_offset: inner.log_start_offset,
            log_end_offset: inner.log_end_offset,
        };
        if offset < inner.log_start_offset || offset > inner.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: inner.log_start_offset,
                log_end_offset: inner.log_end_offset,
            });
        }
        let limit = match isolation {
            FetchIsolation::HighWatermark => inner.high_watermark,
            FetchIsolation::LogEnd => inner.log_end_offset,
        };
        if offset >= limit {
            return Ok((info, false));
        }
        let floor = inner.segments.range(..=offset).next_back();
        for (_, seg) in floor.into_iter().chain(inner.segments.range(offset + 1..)) {
            let Some((start, first)) = seg.position_of(offset, seg.size())? else {
                continue;
            };
            if first.base_offset >= limit {
                return Ok((info, false));
            }
            // Stop before the first batch at or past the bound (the high watermark).
            let mut end = seg.size();
            if limit < seg.next_offset() {
                if let Some((pos, _)) = seg.position_of(limit, seg.size())? {
                    end = pos;
                }
            }
            // The first batch does not fit, and this read need not return one: nothing,
            // as Kafka answers (`firstEntryIncomplete`: empty records). A fragment of a
            // batch would be all the partition's records, and Java consumers fail on it.
            if !min_one_batch && max_bytes < first.size_bytes() {
                return Ok((info, false));
            }
            let want = if min_one_batch {
                max_bytes.max(first.size_bytes())
            } else {
                max_bytes
            };
            let end = end.min(start + want as u64);
            info.records = super::FileRecords::new(seg.file().clone(), start, end.saturating_sub(start));
            let cold = start < seg.page_cache_advised_to;
            return Ok((info, cold));
        }
        Ok((info, false))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.lock().log_end_offset
    }
    pub fn high_watermark(&self) -> i64 {
        self.lock().high_watermark
    }
    pub fn recovery_point(&self) -> i64 {
        self.lock().recovery_point
    }
    /// Where an append of `bytes` would land in the active segment's file, if that
    /// segment appends with O_DIRECT (0 if the append would roll it): the connection
    /// places a large produce request in memory to match (`DirectWriter`). A hint: an
    /// append or roll in between only makes the write copy.
    pub fn direct_append_position(&self, bytes: usize) -> Option<u64> {
        let segment_bytes = self.config().segment_bytes as u64;
        let inner = self.lock();
        let seg = inner.segments.values().next_back()?;
        if !seg.direct_io() {
            return None;
        }
        let rolls = !seg.is_empty() && seg.size() + bytes as u64 > segment_bytes;
        Some(if rolls { 0 } else { seg.size() })
    }
    /// The `.deleted` segment files renamed since the last call (`LogManager`).
    pub fn take_deleted_segment_files(&self) -> Vec<DeletedFile> {
        std::mem::take(&mut self.lock().deleted_segment_files)
    }

    /// `(log_start_offset, high_watermark, log_end_offset)` under one lock.
    pub fn offsets(&self) -> (i64, i64, i64) {
        let i = self.lock();
        (i.log_start_offset, i.high_watermark, i.log_end_offset)
    }

    /// Raises the high watermark (never lowers it; never past the log end).
    pub fn update_high_watermark(&self, hw: i64) -> i64 {
        let (moved, hw) = {
            let mut inner = self.lock();
            let hw = hw.min(inner.log_end_offset);
            let moved = hw > inner.high_watermark;
            if moved {
                inner.high_watermark = hw;
            }
            (moved, inner.high_watermark)
        };
        if moved {
            self.wake_fetch_waiters();
        }
        hw
    }

    /// Wakes the fetches waiting on this log: its high watermark moved, or it left
    /// service (deleted, its dir offline), which they answer at once, as Kafka's
    /// `DelayedFetch` completes on an unknown partition or a storage error.
    pub fn wake_fetch_waiters(&self) {
        let waiters = std::mem::take(&mut *crate::sync::lock(&self.fetch_waiters));
        for w in waiters.iter().filter_map(|w| w.upgrade()) {
            // notify_one keeps a permit: a fetch between its read and its wait still wakes.
            w.notify_one();
        }
    }

    /// Forgets idempotent producers idle for `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`); returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producer_state.remove_expired(now_ms, expiration_ms)
    }

    /// Registers a waiting fetch, woken at the next move of the high watermark.
    pub fn register_fetch_waiter(&self, waiter: &Arc<tokio::sync::Notify>) {
        let mut waiters = crate::sync::lock(&self.fetch_waiters);
        // Finished fetches leave dead entries; this one may be here from its last pass.
        waiters.retain(|w| w.strong_count() > 0 && w.as_ptr() != Arc::as_ptr(waiter));
        if waiters.len() < FETCH_WAITERS_MAX {
            waiters.push(Arc::downgrade(waiter));
        }
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().leader_epoch_cache.last().map(|e| e.0)
    }

    /// The (epoch, start offset) pairs of the leader-epoch cache.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.lock().leader_epoch_cache.clone()
    }

    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// The segments a cleaner may rewrite: every one but the active segment, as
    /// `(base_offset, file, valid bytes)`.
    pub fn cleanable_segments(&self) -> Vec<(i64, Arc<std::fs::File>, u64)> {
        let inner = self.lock();
        let n = inner.segments.len();
        inner
            .segments
            .iter()
            .take(n.saturating_sub(1))
            .map(|(b, s)| (*b, s.file().clone(), s.size()))
            .collect()
    }

    /// Swaps in a cleaned copy of segment `base_offset`, written (and fsynced) at
    /// `cleaned`: Kafka's `.cleaned` file becomes the `.log` with one atomic rename.
    /// Readers holding the old file keep reading the old bytes. The new segment's
    /// indexes are built before the lock is taken, so appends and reads wait only for
    /// the rename; they reach disk with the next flush of rolled segments. The old index
    /// files are removed before the rename: a crash in between rebuilds the indexes from
    /// the new `.log` instead of trusting ones that describe the old bytes.
    pub fn replace_segment(&self, base_offset: i64, cleaned: &Path, now_ms: i64) -> Result<(), LogError> {
        self.guard(|| {
            let interval = self.config().index_interval_bytes as u64;
            let seg = LogSegment::open_cleaned(&self.dir, base_offset, cleaned, interval, now_ms)?;
            let mut inner = self.lock();
            let Some(old) = inner.segments.get(&base_offset) else {
                // Deleted by retention meanwhile.
                drop(fs::remove_file(cleaned));
                return Ok(());
            };
            if inner.segments.keys().next_back() == Some(&base_offset) {
                return Err(LogError::Corrupt("the active segment is never cleaned".into()));
            }
            for suffix in [".index", ".timeindex"] {
                super::deletion::remove_if_present(&old.path(suffix))?;
            }
            // The old bytes stay linked as `.log.deleted` until freed gradually, so the
            // rename below frees nothing (`log::deletion`); a crash in between leaves the
            // old `.log` in place and the extra link is removed at load.
            let deleted = old.path(segment::DELETED_SUFFIX_LOG);
            let handle = old.file_handle();
            if let Err(e) = fs::hard_link(old.path(".log"), &deleted) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(e.into());
                }
                // An earlier cleaning of this segment, not yet freed: it goes at once.
                fs::remove_file(&deleted)?;
                fs::hard_link(old.path(".log"), &deleted)?;
            }
            fs::rename(cleaned, old.path(".log"))?;
            drop(inner.segments.insert(base_offset, seg));
            inner.keep_deleted_files(vec![DeletedFile::new(deleted, Some(handle))])?;
            Ok(())
        })
    }

    /// Deletes segments past retention (time, size) or wholly below `log_start_offset`.
    /// Returns the number of segments deleted.
    pub fn delete_old_segments(&self, now_ms: i64) -> Result<usize, LogError> {
        self.delete_segments(Some(now_ms))
    }

    /// Deletes the segments wholly below `log_start_offset` only (DeleteRecords), with
    /// `now_ms`: also those past the time and size retention.
    fn delete_segments(&self, now_ms: Option<i64>) -> Result<usize, LogError> {
        self.guard(|| {
            let config = self.config();
            let mut inner = self.lock();
            let mut deletable = Vec::new();
            let total: u64 = inner.segments.values().map(|s| s.size()).sum();
            let mut excess = if config.retention_bytes >= 0 && now_ms.is_some() {
                total.saturating_sub(config.retention_bytes as u64)
            } else {
                0
            };
            let bases: Vec<i64> = inner.segments.keys().copied().collect();
            for (i, base) in bases.iter().enumerate() {
                let Some(next_base) = bases.get(i + 1) else {
                    break;
                };
                let seg = &inner.segments[base];
                let below_start = *next_base <= inner.log_start_offset;
                let expired = now_ms.is_some_and(|now| {
                    config.cleanup_policy_delete
                        && config.retention_ms >= 0
                        && seg.max_timestamp() >= 0
                        && now.saturating_sub(seg.max_timestamp()) > config.retention_ms
                });
                let too_big = config.cleanup_policy_delete && excess >= seg.size() && excess > 0;
                if !(below_start || expired || too_big) || *next_base > inner.high_watermark {
                    break;
                }
                excess = excess.saturating_sub(seg.size());
                deletable.push(*base);
            }
            for base in &deletable {
                if let Some(seg) = inner.segments.remove(base) {
                    // Renamed, not removed: freeing the blocks is slow (see `log::deletion`)
                    // and must not happen under this lock. Readers keep their open files,
                    // and the `.log`'s handle goes along so that freeing waits for them.
                    let mut handle = Some(seg.file_handle());
                    let log_path = seg.path(segment::DELETED_SUFFIX_LOG);
                    let renamed = seg.rename_deleted()?;
                    drop(seg);
                    let renamed = renamed.into_iter().map(|path| {
                        // Moved, not cloned: `DeletedFile::new` counts the handle's holders.
                        let handle = if path == log_path { handle.take() } else { None };
                        DeletedFile::new(path, handle)
                    });
                    inner.keep_deleted_files(renamed.collect())?;
                }
            }
            if let Some(first) = inner.segments.keys().next().copied() {
                inner.log_start_offset = inner.log_start_offset.max(first);
            }
            Ok(deletable.len())
        })
    }

    /// DeleteRecords: moves `log_start_offset` up to `offset` (at most the high watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        self.guard(|| {
            let mut inner = self.lock();
            if offset > inner.high_watermark || offset < 0 {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: inner.log_end_offset,
                });
            }
            inner.log_start_offset = inner.log_start_offset.max(offset);
            let lso = inner.log_start_offset;
            drop(inner);
            // Only what lies below the new start: retention is the retention task's
            // (an i64::MIN "now" here once made every rolled segment look expired).
            let _ = self.delete_segments(None);
            Ok(lso)
        })
    }

    /// fsyncs everything written and moves the recovery point to the log end.
    pub fn flush(&self, now_ms: i64) -> Result<(), LogError> {
        self.guard(|| {
            let mut inner = self.lock();
            inner.flush(now_ms)
        })
    }

    /// Flushes when `flush.ms` has passed since the last flush.
    pub fn maybe_flush_by_time(&self, now_ms: i64) -> Result<(), LogError> {
        self.guard(|| {
            let flush_ms = self.config().flush_ms;
            let mut inner = self.lock();
            if inner.unflushed_messages > 0 && now_ms - inner.last_flush_ms >= flush_ms {
                inner.flush(now_ms)?;
            }
            Ok(())
        })
    }

    /// Appends with O_DIRECT from now on (`fjord.log.direct.io`; see `DirectWriter` in
    /// `segment`). Where the filesystem refuses it, appends stay buffered: returns whether
    /// direct I/O is on.
    pub fn enable_direct_io(&self) -> Result<bool, LogError> {
        let mut inner = self.lock();
        let on = inner.active().enable_direct_io()?;
        inner.direct_io = on;
        Ok(on)
    }

    /// Reserves the file of this log's next segment (see `PreallocatedFile`) once the
    /// active segment is half full, or at once with the topic's `preallocate`; only for a
    /// log appending with O_DIRECT. Limit: one reserved file per log, of `segment.bytes`.
    /// Blocking (allocation may read block bitmaps): the background task calls it, without
    /// the lock held while it allocates.
    pub fn preallocate_next_segment(&self) -> Result<(), LogError> {
        self.guard(|| self.reserve_next_segment())
    }

    fn reserve_next_segment(&self) -> Result<(), LogError> {
        use std::sync::atomic::Ordering;
        let config = self.config();
        let bytes = config.segment_bytes.max(0) as u64;
        if self.preallocation_failed.load(Ordering::Relaxed) || bytes == 0 {
            return Ok(());
        }
        {
            let mut inner = self.lock();
            // Only with O_DIRECT: its writes allocate blocks synchronously, where buffered
            // writes defer allocation to writeback anyway. (And a filesystem that
            // refuses O_DIRECT, tmpfs, would reserve memory.)
            if inner.deleted || inner.next_segment.is_some() || !inner.direct_io {
                return Ok(());
            }
            if !config.preallocate && inner.active().size() * 2 < bytes {
                return Ok(());
            }
        }
        let next = match segment::PreallocatedFile::create(&self.dir, bytes) {
            Ok(next) => next,
            // The partition was deleted meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                self.preallocation_failed.store(true, Ordering::Relaxed);
                tracing::warn!(partition = %self.topic_partition, error = %e, "cannot preallocate segments; creating them at each roll");
                return Ok(());
            }
        };
        let mut inner = self.lock();
        if inner.deleted || inner.next_segment.is_some() {
            drop(fs::remove_file(next.path()));
        } else {
            inner.next_segment = Some(next);
        }
        Ok(())
    }

    /// fsyncs the segments that rolled since their last flush, without holding the
    /// log's lock during the fsync, then moves the recovery point up to the active
    /// segment. Kafka schedules the same flush when it rolls.
    pub fn flush_rolled_segments(&self) -> Result<(), LogError> {
        self.guard(|| {
            let (files, active_base) = {
                let inner = self.lock();
                let active_base = inner.active_base_offset();
                type Rolled = (i64, std::sync::Arc<std::fs::File>, Vec<(PathBuf, Vec<u8>)>, Option<u64>);
                let files: Vec<Rolled> = inner
                    .segments
                    .range(..active_base)
                    .filter(|(_, s)| s.is_dirty() || s.trim_pending())
                    .map(|(b, s)| {
                        (
                            *b,
                            s.file_handle(),
                            s.index_files(),
                            s.trim_pending().then_some(s.size()),
                        )
                    })
                    .collect();
                (files, active_base)
            };
            if files.is_empty() {
                return Ok(());
            }
            for (_, f, indexes, trim_at) in &files {
                super::device_flush::sync_data(f).map_err(super::fsync_failed)?;
                // The trim below rewrites the last partial block: read it into the page cache
                // now, without the lock, so the trim under it does no read I/O.
                if let Some(size) = trim_at {
                    let from = size - size % super::direct_io::DIRECT_IO_BLOCK_BYTES as u64;
                    segment::read_exact_at(f, from, (size - from) as usize)?;
                }
                for (path, contents) in indexes {
                    match fs::write(path, contents) {
                        // The partition was deleted meanwhile.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        other => other?,
                    }
                }
            }
            let mut inner = self.lock();
            for (base, f, indexes, _) in &files {
                match inner.segments.get_mut(base) {
                    Some(seg) if std::sync::Arc::ptr_eq(seg.file(), f) => {
                        seg.mark_flushed();
                        // Under the lock: a truncation may shrink a rolled segment.
                        seg.trim()?;
                    }
                    // Deleted by retention, or replaced by the cleaner, while we wrote: take
                    // back the index files (a replacement, still dirty, writes its own).
                    _ => indexes.iter().for_each(|(path, _)| drop(fs::remove_file(path))),
                }
            }
            // Only forward: a truncation meanwhile may have moved it back on purpose.
            if inner.recovery_point < active_base && inner.log_end_offset >= active_base {
                inner.recovery_point = active_base;
            }
            Ok(())
        })
    }

    /// Keeps the log's page cache to its newest `retain_bytes`. Older data is advised
    /// away (`POSIX_FADV_DONTNEED`) twice, one call apart: the first starts its
    /// writeback without waiting and drops what is clean, the second drops the rest,
    /// clean by then. No fsync, so appends never wait on the journal. Steps of at
    /// least `PAGE_CACHE_DROP_STEP_BYTES`.
    ///
    /// Why: pages a log frees are what its next appends reuse while they are still
    /// hot; new page-cache pages cost several times more CPU to fill, and on a VM whose
    /// freed memory returns to the host (this one: 2.6 against 0.35 CPU-s per GiB)
    /// that decides the sustained produce rate. Readers of dropped data read it from
    /// disk again, as Kafka's readers do after the kernel evicts it.
    pub fn drop_page_cache_behind(&self, retain_bytes: u64) -> Result<(), LogError> {
        self.guard(|| {
            // (segment, file, range to advise, the segment's new writeback mark)
            let plan: Vec<(i64, std::sync::Arc<std::fs::File>, u64, u64, u64)> = {
                let inner = self.lock();
                let mut newer = 0u64;
                let mut plan = Vec::new();
                for (base, seg) in inner.segments.iter().rev() {
                    let keep = retain_bytes.saturating_sub(newer).min(seg.size());
                    let target = seg.size() - keep;
                    let target = seg.writeback_pending_start().map_or(target, |p| target.min(p));
                    newer += seg.size();
                    let (dropped, advised) = (seg.page_cache_dropped_to, seg.page_cache_advised_to);
                    if keep == 0 && dropped >= seg.size() {
                        // Dropped whole before, and so is everything older.
                        break;
                    }
                    let advance = (keep == 0 && target > advised) || target >= advised + PAGE_CACHE_DROP_STEP_BYTES;
                    let new_advised = if advance { target } else { advised };
                    if new_advised > dropped {
                        plan.push((*base, seg.file_handle(), dropped, new_advised, new_advised));
                    }
                }
                plan
            };
            for (_, file, from, to, _) in &plan {
                let len = std::num::NonZeroU64::new(to - from);
                rustix::fs::fadvise(&**file, *from, len, rustix::fs::Advice::DontNeed).map_err(std::io::Error::from)?;
            }
            let mut inner = self.lock();
            for (base, _, _, _, advised) in plan {
                if let Some(seg) = inner.segments.get_mut(&base) {
                    // What was advised before this call has now been advised twice.
                    seg.page_cache_dropped_to = seg.page_cache_dropped_to.max(seg.page_cache_advised_to);
                    seg.page_cache_advised_to = seg.page_cache_advised_to.max(advised);
                }
            }
            Ok(())
        })
    }

    /// Clean shutdown: flush, write indexes, checkpoints and a producer snapshot.
    pub fn close(&self, now_ms: i64) -> Result<(), LogError> {
        self.guard(|| {
            let mut inner = self.lock();
            if inner.deleted {
                return Ok(());
            }
            if let Some(next) = inner.next_segment.take() {
                fs::remove_file(next.path())?;
            }
            inner.active().finish_direct_io();
            inner.direct_io = false;
            for seg in inner.segments.values_mut() {
                seg.trim()?;
            }
            inner.flush(now_ms)?;
            inner
                .producer_state
                .write_snapshot(&self.dir, inner.log_end_offset, true)?;
            checkpoint::write_leader_epoch_checkpoint(
                &self.dir.join("leader-epoch-checkpoint"),
                &inner.leader_epoch_cache,
            )?;
            Ok(())
        })
    }

    /// Takes the log out of service (DeleteTopics): appends after this fail, and the
    /// directory is renamed `<topic>-<partition>.<uuid>-delete`, as Kafka does, for the
    /// `LogManager` to remove after `file.delete.delay.ms`. Returns the new path and the
    /// segments' shared read handles: readers holding a segment's file keep reading it
    /// until they are done, and freeing waits for them (`log::deletion`).
    /// A rename that fails leaves the log whole, as it was.
    pub fn delete(&self) -> Result<(PathBuf, Vec<Arc<fs::File>>), LogError> {
        let deleted = self.take_out_of_service();
        self.wake_fetch_waiters();
        deleted
    }

    fn take_out_of_service(&self) -> Result<(PathBuf, Vec<Arc<fs::File>>), LogError> {
        let mut inner = self.lock();
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let to = self
            .dir
            .with_file_name(format!("{name}.{}-delete", uuid::Uuid::new_v4().simple()));
        fs::rename(&self.dir, &to)?;
        inner.deleted = true;
        let handles = inner.segments.values().map(|s| s.file_handle()).collect();
        inner.segments.clear();
        inner.next_segment = None;
        Ok((to, handles))
    }

    /// Cuts the log back to `offset` (a follower diverging from its leader).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.guard(|| {
            let mut inner = self.lock();
            if offset >= inner.log_end_offset {
                return Ok(());
            }
            let later: Vec<i64> = inner.segments.range(offset + 1..).map(|(b, _)| *b).collect();
            for b in later {
                if inner.segments.len() > 1 {
                    if let Some(s) = inner.segments.remove(&b) {
                        s.delete_files()?;
                    }
                }
            }
            if let Some((_, seg)) = inner.segments.iter_mut().next_back() {
                seg.truncate_to(offset)?;
            }
            // A rolled segment may be the active one again: it appends as the log does.
            if inner.direct_io {
                inner.direct_io = inner.active().enable_direct_io()?;
            }
            let leo = inner
                .segments
                .values()
                .next_back()
                .map(|s| s.next_offset())
                .unwrap_or(offset);
            inner.log_end_offset = leo;
            inner.high_watermark = inner.high_watermark.min(leo);
            inner.recovery_point = inner.recovery_point.min(leo);
            inner.producer_state.truncate_to(leo);
            inner.leader_epoch_cache.retain(|(_, start)| *start < leo.max(1));
            Ok(())
        })
    }
}

/// Calls `f` with the header of every batch in `seg` that ends at or after `from`,
/// until it answers `Break`: a lookup stops at its batch instead of reading the rest of
/// a segment of up to `segment.bytes` under the log's lock.
pub(crate) fn for_each_batch_from(
    seg: &LogSegment,
    from: i64,
    f: &mut dyn FnMut(&BatchHeader) -> ControlFlow<()>,
) -> Result<(), LogError> {
    let Some((mut pos, _)) = seg.position_of(from, seg.size())? else {
        return Ok(());
    };
    while pos < seg.size() {
        let len = (seg.size() - pos).min(segment::SCAN_CHUNK_BYTES as u64) as usize;
        let chunk = segment::read_exact_at(seg.file(), pos, len)?;
        let mut consumed = 0;
        for (at, h) in BatchIter::new(&chunk) {
            if f(&h).is_break() {
                return Ok(());
            }
            consumed = at + h.size_bytes();
        }
        if consumed == 0 {
            let head = segment::read_exact_at(seg.file(), pos, record_batch::BATCH_HEADER_BYTES.min(len))?;
            let h = BatchHeader::parse(&head)?;
            if f(&h).is_break() {
                return Ok(());
            }
            consumed = h.size_bytes();
        }
        pos += consumed as u64;
    }
    Ok(())
}
