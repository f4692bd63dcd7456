//! `LogCleaner`: compaction of `cleanup.policy=compact` logs, Kafka's way.
//!
//! One pass over a log: build the offset map (key -> latest offset) over every segment
//! but the active one, then rewrite each of those segments keeping, per key, only the
//! record at the latest offset, and dropping tombstones (null values) older than
//! `delete.retention.ms`. Each segment is written to `<base>.log.cleaned` and swapped
//! in with one rename, so appends and reads never wait on the cleaner and a reader sees,
//! for every key, its latest value or a later one. Offsets never change.
//!
//! Limits: the offset map holds at most `dedupe_buffer_bytes` of keys (a log whose keys
//! do not fit is cleaned up to the segment where the map filled, as Kafka does), and
//! reads and writes are throttled to `io_max_bytes_per_second`.

use super::record_batch::BatchIter;
use super::segment::{self, SCAN_CHUNK_BYTES};
use super::{LogError, UnifiedLog};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `log.cleaner.*` limits.
#[derive(Debug, Clone, Copy)]
pub struct CleanerConfig {
    pub dedupe_buffer_bytes: usize,
    pub io_max_bytes_per_second: f64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct CleanStats {
    pub segments: usize,
    pub records_read: u64,
    pub records_kept: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Sleeps so that bytes moved stay under the rate.
struct Throttle {
    started: Instant,
    bytes: f64,
    rate: f64,
}

impl Throttle {
    fn add(&mut self, n: usize) {
        self.bytes += n as f64;
        if self.rate.is_finite() && self.rate > 0.0 {
            let due = Duration::from_secs_f64(self.bytes / self.rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Calls `f` with every record batch (decoded) of a segment's first `size` bytes.
/// Called with each batch's raw bytes and its decoded records; `None` for a batch that
/// does not decode within `compression::expanded_bytes_max` (a producer's batch is
/// stored without being decompressed, and may be a bomb) or at all: it is kept whole,
/// and its keys replace nothing, so compaction goes on around it and loses no record.
type BatchVisitor<'a> = dyn FnMut(&[u8], Option<Vec<Record>>) -> Result<(), LogError> + 'a;

fn decode(raw: &[u8]) -> Option<Vec<Record>> {
    let mut buf = Bytes::copy_from_slice(raw);
    match super::compression::decode_bounded(&mut buf, super::compression::expanded_bytes_max(raw.len())) {
        Ok(set) => Some(set.records),
        Err(e) => {
            tracing::warn!(error = %e, "a batch the cleaner cannot decode is kept whole");
            None
        }
    }
}

fn for_each_batch(file: &File, size: u64, throttle: &mut Throttle, f: &mut BatchVisitor<'_>) -> Result<(), LogError> {
    let mut pos = 0u64;
    while pos < size {
        let len = (size - pos).min(SCAN_CHUNK_BYTES as u64) as usize;
        let chunk = segment::read_exact_at(file, pos, len)?;
        throttle.add(chunk.len());
        let mut consumed = 0;
        for (at, h) in BatchIter::new(&chunk) {
            let raw = &chunk[at..at + h.size_bytes()];
            f(raw, decode(raw))?;
            consumed = at + h.size_bytes();
        }
        if consumed == 0 {
            // A batch larger than the chunk.
            let head = segment::read_exact_at(file, pos, super::record_batch::BATCH_HEADER_BYTES.min(len))?;
            let h = super::record_batch::BatchHeader::parse(&head)?;
            let raw = segment::read_exact_at(file, pos, h.size_bytes())?;
            f(&raw, decode(&raw))?;
            consumed = h.size_bytes();
        }
        pos += consumed as u64;
    }
    Ok(())
}

/// Compacts `log` once. Returns what it did (nothing when there is nothing to clean).
pub fn clean(log: &UnifiedLog, config: &CleanerConfig, now_ms: i64) -> Result<CleanStats, LogError> {
    let topic_config = log.config();
    if !topic_config.cleanup_policy_compact {
        return Ok(CleanStats::default());
    }
    let segments = log.cleanable_segments();
    let mut throttle = Throttle {
        started: Instant::now(),
        bytes: 0.0,
        rate: config.io_max_bytes_per_second,
    };
    let (latest, mapped) = offset_map(&segments, config.dedupe_buffer_bytes, &mut throttle)?;
    // Rewrite the mapped segments.
    let tombstone_horizon = now_ms - topic_config.delete_retention_ms;
    let mut stats = CleanStats::default();
    let mut written: Vec<(i64, std::path::PathBuf, File)> = Vec::new();
    for (base, file, size) in segments.into_iter().take(mapped) {
        let (out, changed) = rewrite_segment(&file, size, &latest, tombstone_horizon, &mut throttle, &mut stats)?;
        stats.bytes_before += size;
        stats.bytes_after += out.len() as u64;
        if !changed {
            continue;
        }
        let cleaned = log.dir.join(segment::file_name(base, ".log.cleaned"));
        let mut f = File::create(&cleaned)?;
        f.write_all(&out)?;
        throttle.add(out.len());
        written.push((base, cleaned, f));
    }
    // Durable before any swap (a crash must never leave a renamed, unwritten segment),
    // synced together: the first fsync's journal commit covers the rest, where one each
    // would wait for a commit apiece on a busy disk.
    for (_, _, f) in &written {
        super::device_flush::sync_all(f)?;
    }
    for (base, cleaned, _) in written {
        log.replace_segment(base, &cleaned, now_ms)?;
        stats.segments += 1;
    }
    Ok(stats)
}

/// The offset map (each key's latest offset), over as many of `segments` as
/// `dedupe_buffer_bytes` holds (at least one): returns it and how many segments it covers.
fn offset_map(
    segments: &[(i64, Arc<File>, u64)],
    dedupe_buffer_bytes: usize,
    throttle: &mut Throttle,
) -> Result<(HashMap<Bytes, i64>, usize), LogError> {
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let mut map_bytes = 0usize;
    let mut mapped = 0;
    for (_, file, size) in segments {
        let mut full = false;
        for_each_batch(file, *size, throttle, &mut |_, records| {
            for r in records.into_iter().flatten() {
                if let Some(k) = r.key {
                    map_bytes += if latest.contains_key(&k) { 0 } else { k.len() + 24 };
                    latest.insert(k, r.offset);
                }
            }
            full = map_bytes > dedupe_buffer_bytes;
            Ok(())
        })?;
        mapped += 1;
        if full {
            break;
        }
    }
    Ok((latest, mapped))
}

/// One segment's batches with only the records `latest` keeps (and tombstones younger
/// than `tombstone_horizon`); untouched batches are copied as they are. Returns the new
/// bytes and whether any record went.
fn rewrite_segment(
    file: &File,
    size: u64,
    latest: &HashMap<Bytes, i64>,
    tombstone_horizon: i64,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
) -> Result<(BytesMut, bool), LogError> {
    let mut out = BytesMut::new();
    let mut changed = false;
    for_each_batch(file, size, throttle, &mut |raw, records| {
        let Some(records) = records else {
            out.extend_from_slice(raw);
            return Ok(());
        };
        let total = records.len();
        stats.records_read += total as u64;
        let keep: Vec<Record> = records
            .into_iter()
            .filter(|r| match &r.key {
                None => true,
                Some(k) => latest.get(k) == Some(&r.offset) && !(r.value.is_none() && r.timestamp < tombstone_horizon),
            })
            .collect();
        stats.records_kept += keep.len() as u64;
        if keep.len() == total {
            out.extend_from_slice(raw);
            return Ok(());
        }
        changed = true;
        if keep.is_empty() {
            return Ok(());
        }
        encode_kept(&mut out, keep)
    })?;
    Ok((out, changed))
}

/// Appends the kept records of one batch to `out` as a new uncompressed batch.
fn encode_kept(out: &mut BytesMut, keep: Vec<Record>) -> Result<(), LogError> {
    // The encoder starts a new batch wherever offset - sequence changes; give records
    // without a producer sequences that keep them in one batch.
    let first = keep[0].offset;
    let keep: Vec<Record> = keep
        .into_iter()
        .map(|mut r| {
            if r.producer_id < 0 {
                r.sequence = (r.offset - first) as i32 - 1;
            }
            r
        })
        .collect();
    RecordBatchEncoder::encode(
        out,
        &keep,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| LogError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topic::TopicConfig;
    use crate::log::unified_log::{FetchIsolation, LoadOffsets};
    use crate::log::TopicPartition;
    use std::sync::Arc;

    /// One batch of `n` updates starting at sequence `first`: every tenth to the key
    /// "hot", the others each to a key of its own.
    fn updates(first: u64, n: u64) -> BytesMut {
        let entries: Vec<(Bytes, Option<Bytes>)> = (first..first + n)
            .map(|seq| {
                let key = match seq % 10 {
                    0 => "hot".to_string(),
                    _ => format!("key-{seq}"),
                };
                (Bytes::from(key), Some(Bytes::from(seq.to_string())))
            })
            .collect();
        crate::log::record_batch::encode_keyed_batch(&entries, 1_000).expect("encode")
    }

    /// Every (offset, key, sequence) of the log, read through the log's own fetch path
    /// one batch at a time, so every read looks its position up in the offset index.
    fn read_all(log: &UnifiedLog) -> Vec<(i64, String, u64)> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let info = log.read(offset, 1, FetchIsolation::HighWatermark, true).expect("read");
            if info.records.is_empty() {
                return out;
            }
            let mut bytes = info.records.read_to_bytes().expect("bytes");
            for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decode") {
                for r in set.records.into_iter().filter(|r| r.offset >= offset) {
                    let key = String::from_utf8(r.key.expect("key").to_vec()).expect("utf8");
                    let seq = std::str::from_utf8(&r.value.expect("value"))
                        .expect("utf8")
                        .parse()
                        .expect("seq");
                    out.push((r.offset, key, seq));
                }
            }
            offset = out.last().map(|(o, _, _)| o + 1).unwrap_or(offset);
        }
    }

    /// `clean_shutdown` loads the index files as written; otherwise every segment is
    /// recovered (checked and reindexed), as after kill -9.
    fn open(dir: &std::path::Path, config: &Arc<TopicConfig>, clean_shutdown: bool) -> UnifiedLog {
        let offsets = LoadOffsets {
            recovery_point: 0,
            log_start_offset: 0,
            high_watermark: None,
            clean_shutdown,
        };
        let tp = TopicPartition {
            topic: "compacted".into(),
            partition: 0,
        };
        UnifiedLog::load(dir, tp, config.clone(), offsets, 1_000).expect("load")
    }

    /// One unthrottled pass that must clean something: the config and what it did.
    fn clean_once(log: &UnifiedLog) -> (CleanerConfig, CleanStats) {
        let cleaner = CleanerConfig {
            dedupe_buffer_bytes: 1 << 20,
            io_max_bytes_per_second: f64::INFINITY,
        };
        let stats = clean(log, &cleaner, 1_000).expect("clean");
        assert!(
            stats.segments > 0 && stats.records_kept < stats.records_read,
            "{stats:?}"
        );
        (cleaner, stats)
    }

    /// 200 batches of 10 updates, one of each to a hot key, in segments of ~4 KiB:
    /// cleaning keeps each key's latest update in the rolled segments, offsets unchanged,
    /// and the cleaned log reads back the same after a reload, clean or crash-style. Each
    /// cleaned segment is a little shorter than the old one, so index files describing the
    /// old bytes would point into the middle of batches.
    #[test]
    fn keeps_the_latest_value_per_key_and_survives_a_reload() {
        let dir = std::env::temp_dir().join(format!("fjord-cleaner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Arc::new(TopicConfig {
            cleanup_policy_compact: true,
            segment_bytes: 4096,
            index_interval_bytes: 64,
            ..TopicConfig::default()
        });
        let log = open(&dir, &config, false);
        for b in 0..200 {
            let info = log.append_as_leader(&updates(b * 10, 10), 0, 1_000).expect("append");
            log.update_high_watermark(info.last_offset + 1);
        }
        let before = read_all(&log);
        assert_eq!(before.len(), 2_000);
        // Index files on disk for the segments about to be replaced.
        log.flush_rolled_segments().expect("flush");
        let (cleaner, stats) = clean_once(&log);
        let after = read_all(&log);
        assert!(after.len() < before.len(), "{} records left", after.len());
        // The replaced bytes stay linked as `.log.deleted`, handed over to be freed
        // gradually (`log::deletion`), never freed under the log's lock.
        let deleted = log.take_deleted_segment_files();
        assert_eq!(deleted.len(), stats.segments, "{deleted:?}");
        // No reader held the old files, so no handle goes along (`DeletedFile::new`).
        assert!(deleted
            .iter()
            .all(|d| d.path.exists() && d.path.to_string_lossy().ends_with(".log.deleted") && d.handle.is_none()));
        // Offsets unchanged, every record is the one written at its offset, and every
        // key's latest value is still there.
        let written: HashMap<i64, (String, u64)> = before.iter().map(|(o, k, s)| (*o, (k.clone(), *s))).collect();
        let mut latest: HashMap<&String, u64> = HashMap::new();
        for (o, k, s) in &after {
            assert_eq!(written.get(o), Some(&(k.clone(), *s)), "offset {o}");
            latest.insert(k, *s);
        }
        for (_, k, s) in &before {
            assert!(latest.get(k) >= Some(s), "key {k} lost its latest value");
        }
        log.flush_rolled_segments().expect("flush");
        drop(log);
        let reloaded = open(&dir, &config, true);
        assert_eq!(read_all(&reloaded), after, "through the index files the flush wrote");
        drop(reloaded);
        let reloaded = open(&dir, &config, false);
        assert_eq!(read_all(&reloaded), after, "through indexes rebuilt by recovery");
        // A second pass over a clean log rewrites nothing.
        assert_eq!(clean(&reloaded, &cleaner, 1_000).expect("clean").segments, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A producer's zstd batch that expands to 256 MiB (a few kilobytes stored) is not
    /// decoded: the cleaner keeps it whole, byte for byte, and compacts around it.
    #[test]
    fn a_batch_that_expands_past_the_limit_is_kept_whole() {
        let dir = std::env::temp_dir().join(format!("fjord-cleaner-bomb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Arc::new(TopicConfig {
            cleanup_policy_compact: true,
            segment_bytes: 4096,
            ..TopicConfig::default()
        });
        let log = open(&dir, &config, false);
        let bomb = crate::log::compression::tests::zstd_bomb(256 << 20, 1_000);
        let mut bomb_offset = None;
        for b in 0..40 {
            let info = log.append_as_leader(&updates(b * 10, 10), 0, 1_000).expect("append");
            log.update_high_watermark(info.last_offset + 1);
            if b == 10 {
                // Already in the log (a producer may no longer store it in a compacted
                // topic, whose records are decoded for the key check; a log written
                // before, or copied from a Kafka broker, can hold one): appended with
                // its offsets, as a follower appends.
                let base = log.offsets().2;
                let mut batch = bomb.clone();
                crate::log::record_batch::set_base_offset(&mut batch, base);
                log.append_as_follower(&batch, 1_000).expect("the batch is stored");
                log.update_high_watermark(base + 1);
                bomb_offset = Some(base);
            }
        }
        let bomb_offset = bomb_offset.expect("appended");
        clean_once(&log);
        let info = log
            .read(bomb_offset, 1, FetchIsolation::HighWatermark, true)
            .expect("read");
        let bytes = info.records.read_to_bytes().expect("bytes");
        let (at, h) = crate::log::record_batch::BatchIter::new(&bytes)
            .find(|(_, h)| h.base_offset == bomb_offset)
            .expect("the batch is still there");
        // Bytes 21 on are the CRC-covered part, which no append or cleaning changes.
        assert_eq!(&bytes[at + 21..at + h.size_bytes()], &bomb[21..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
