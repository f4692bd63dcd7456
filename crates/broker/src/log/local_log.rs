//! `LocalLog`: the mutable state of one partition's log, guarded by its `UnifiedLog`'s
//! lock (the caller holds it for every method here): the segments, the offsets, the
//! producer state and leader-epoch cache, and how appends roll, flush and keep deleted
//! files. `UnifiedLog` validates and orders; this is what changes.

use super::checkpoint;
use super::deletion::DeletedFile;
use super::producer_state::ProducerStateManager;
use super::record_batch::BatchHeader;
use super::segment::{self, LogSegment};
use super::LogError;
use crate::config::TopicConfig;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) struct LocalLog {
    pub(super) segments: BTreeMap<i64, LogSegment>,
    pub(super) log_start_offset: i64,
    pub(super) log_end_offset: i64,
    pub(super) high_watermark: i64,
    pub(super) recovery_point: i64,
    pub(super) leader_epoch_cache: Vec<(i32, i64)>,
    pub(super) producer_state: ProducerStateManager,
    pub(super) unflushed_messages: i64,
    pub(super) last_flush_ms: i64,
    pub(super) deleted: bool,
    /// The file the next roll makes its segment, reserved ahead (`preallocate_next_segment`).
    pub(super) next_segment: Option<segment::PreallocatedFile>,
    /// The active segment appends with O_DIRECT (`enable_direct_io`).
    pub(super) direct_io: bool,
    /// Segment files renamed `.deleted` (retention, DeleteRecords, compaction), for the
    /// `LogManager` to free gradually (`log::deletion`) after `file.delete.delay.ms`.
    /// Limit: `DELETED_SEGMENT_FILES_MAX`; past it, files are removed at once (an
    /// unlink, which readers survive).
    pub(super) deleted_segment_files: Vec<DeletedFile>,
}

/// Limit: `.deleted` segment files a log holds until the `LogManager` takes them.
const DELETED_SEGMENT_FILES_MAX: usize = 30_000;

impl LocalLog {
    /// Kafka's `LeaderEpochFileCache.assign`: `epoch` starts at `start_offset`, if it is
    /// newer than every epoch in the cache. The checkpoint is written first and only
    /// then the cache changed, so a failed write changes nothing.
    pub(super) fn assign_epoch_start_offset(
        &mut self,
        dir: &Path,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), LogError> {
        if self.leader_epoch_cache.last().is_some_and(|(e, _)| epoch <= *e) {
            return Ok(());
        }
        let mut epochs = self.leader_epoch_cache.clone();
        epochs.push((epoch, start_offset));
        checkpoint::write_leader_epoch_checkpoint(&dir.join("leader-epoch-checkpoint"), &epochs)?;
        self.leader_epoch_cache = epochs;
        Ok(())
    }

    pub(super) fn keep_deleted_files(&mut self, files: Vec<DeletedFile>) -> Result<(), LogError> {
        for file in files {
            if self.deleted_segment_files.len() < DELETED_SEGMENT_FILES_MAX {
                self.deleted_segment_files.push(file);
            } else {
                fs::remove_file(file.path)?;
            }
        }
        Ok(())
    }

    pub(super) fn active_base_offset(&self) -> i64 {
        self.segments.keys().next_back().copied().unwrap_or(self.log_end_offset)
    }

    pub(super) fn active(&mut self) -> &mut LogSegment {
        match self.segments.values_mut().next_back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Appends batches given as `parts` (concatenated, they are whole batches; `headers`
    /// give each batch's position in that concatenation).
    pub(super) fn append_batches(
        &mut self,
        dir: &Path,
        config: &TopicConfig,
        parts: &[&[u8]],
        headers: &[(usize, BatchHeader)],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let bytes_len: usize = parts.iter().map(|p| p.len()).sum();
        let Some((_, first)) = headers.first() else {
            return Ok(());
        };
        let last = headers[headers.len() - 1].1;
        // As Kafka: the epoch's start offset is stored before its first batch is
        // appended, and only then taken into memory. A checkpoint that cannot be
        // written (a full disk) so fails the append before the segment changed,
        // instead of after, which would leave the segment ahead of `log_end_offset`.
        self.assign_epoch_start_offset(dir, leader_epoch, first.base_offset)?;
        self.maybe_roll(dir, config, bytes_len, first.base_offset, last.last_offset(), now_ms)?;
        self.active().append(parts, headers)?;
        for (_, h) in headers {
            self.producer_state.update(h);
        }
        assert!(last.next_offset() > self.log_end_offset, "log end offset must grow");
        self.log_end_offset = last.next_offset();
        self.unflushed_messages += last.next_offset() - first.base_offset;
        if self.unflushed_messages >= config.flush_messages {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Rolls to a new segment when the batch would not fit, the segment is older than
    /// `segment.ms`, the offset index is full, or relative offsets would overflow.
    pub(super) fn maybe_roll(
        &mut self,
        dir: &Path,
        config: &TopicConfig,
        bytes: usize,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let seg = self.active();
        if seg.is_empty() {
            return Ok(());
        }
        let full = seg.size() + bytes as u64 > config.segment_bytes as u64;
        let aged = now_ms - seg.rolling_base_ms() > config.segment_ms.saturating_sub(0);
        let index_full =
            (seg.offset_index_entries() + 1) * super::index::OFFSET_ENTRY_BYTES >= config.segment_index_bytes as usize;
        let overflow = last_offset - seg.base_offset > u32::MAX as i64 / 2;
        if !(full || aged || index_full || overflow) {
            return Ok(());
        }
        // As Kafka: the rolled segment is fsynced later, by `flush_rolled_segments` on
        // the background task, so a roll never makes a produce wait for the disk.
        let interval = config.index_interval_bytes as u64;
        // Before anything lands in the new segment: a rolled segment keeps no O_DIRECT
        // padding, so recovery never takes it for a torn tail.
        self.active().finish_direct_io();
        let mut new = match self.next_segment.take() {
            Some(next) => LogSegment::create_preallocated(dir, first_offset, next, interval, now_ms)?,
            None => LogSegment::create(dir, first_offset, interval, now_ms)?,
        };
        if self.direct_io {
            new.enable_direct_io()?;
        }
        self.segments.insert(first_offset, new);
        self.producer_state.write_snapshot(dir, first_offset, false)?;
        ProducerStateManager::clean_snapshots(dir, first_offset)?;
        Ok(())
    }

    pub(super) fn flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        for seg in self.segments.values_mut() {
            if seg.is_dirty() {
                seg.flush()?;
            }
        }
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }
}

/// The base offsets of a partition directory's segments, and its `.deleted` files
/// (left by a stop before they were freed; freed again gradually, `log::deletion`).
/// Other leftovers of an unfinished operation (`.tmp`, `.cleaned`, `.swap`) are removed.
pub(super) fn list_segment_files(dir: &Path) -> Result<(Vec<i64>, Vec<PathBuf>), LogError> {
    let mut bases = Vec::new();
    let mut deleted = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(segment::DELETED_SUFFIX) && deleted.len() < DELETED_SEGMENT_FILES_MAX {
            deleted.push(entry.path());
            continue;
        }
        // `.deleted` here only past the limit above: removed at once.
        if name.ends_with(".tmp") || name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".swap")
        {
            fs::remove_file(entry.path())?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(b) = stem.parse::<i64>() {
                bases.push(b);
            }
        }
    }
    bases.sort_unstable();
    Ok((bases, deleted))
}

#[cfg(test)]
mod tests {
    use super::super::unified_log::{LoadOffsets, UnifiedLog};
    use super::super::{checkpoint, record_batch, TopicPartition};
    use crate::config::TopicConfig;
    use std::sync::Arc;

    /// A new leader epoch is stored before its first batch lands. When the checkpoint
    /// cannot be written (here a directory where its temporary file goes; on a broker,
    /// a full disk), the append fails with the segment untouched, and the retry once
    /// the disk allows appends at the same offset. Appending first would have left the
    /// segment ahead of `log_end_offset`, and the retry would break its assertion.
    #[test]
    fn an_epoch_that_cannot_be_stored_fails_the_append_before_the_segment_changes() {
        let dir = std::env::temp_dir().join(format!("fjord-local-log-epoch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tp = TopicPartition::new("t", 0);
        let config = Arc::new(TopicConfig::default());
        let offsets = LoadOffsets {
            clean_shutdown: true,
            ..LoadOffsets::default()
        };
        let log = UnifiedLog::load(&dir, tp, config, offsets, 0).expect("load");
        let entries: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = (0..5)
            .map(|i| {
                (
                    bytes::Bytes::from(format!("k{i}")),
                    Some(bytes::Bytes::from(vec![7u8; 100])),
                )
            })
            .collect();
        let batch = record_batch::encode_keyed_batch(&entries, 1_000).expect("encode");
        log.append_as_leader(&batch, 0, 1_000).expect("first append");
        let size = log.size_bytes();
        let blocker = dir.join("leader-epoch-checkpoint.tmp");
        std::fs::create_dir(&blocker).expect("block the checkpoint");
        assert!(
            log.append_as_leader(&batch, 1, 1_000).is_err(),
            "an epoch that cannot be stored fails the append"
        );
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.size_bytes(), size, "the segment is untouched");
        assert_eq!(log.leader_epochs(), vec![(0, 0)], "the epoch is not taken into memory");
        std::fs::remove_dir(&blocker).expect("unblock");
        let info = log.append_as_leader(&batch, 1, 1_000).expect("the retry appends");
        assert_eq!((info.base_offset, log.log_end_offset()), (5, 10));
        assert_eq!(log.leader_epochs(), vec![(0, 0), (1, 5)]);
        let stored = checkpoint::read_leader_epoch_checkpoint(&dir.join("leader-epoch-checkpoint")).expect("read");
        assert_eq!(stored, vec![(0, 0), (1, 5)], "the checkpoint holds both epochs");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
