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
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
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
/// Called with each batch's raw bytes and its decoded records.
type BatchVisitor<'a> = dyn FnMut(&[u8], Vec<Record>) -> Result<(), LogError> + 'a;

fn for_each_batch(file: &File, size: u64, throttle: &mut Throttle, f: &mut BatchVisitor<'_>) -> Result<(), LogError> {
    let mut pos = 0u64;
    while pos < size {
        let len = (size - pos).min(SCAN_CHUNK_BYTES as u64) as usize;
        let chunk = segment::read_exact_at(file, pos, len)?;
        throttle.add(chunk.len());
        let mut consumed = 0;
        for (at, h) in BatchIter::new(&chunk) {
            let raw = &chunk[at..at + h.size_bytes()];
            let mut buf = Bytes::copy_from_slice(raw);
            let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Corrupt(e.to_string()))?;
            f(raw, set.records)?;
            consumed = at + h.size_bytes();
        }
        if consumed == 0 {
            // A batch larger than the chunk.
            let head = segment::read_exact_at(file, pos, super::record_batch::BATCH_HEADER_BYTES.min(len))?;
            let h = super::record_batch::BatchHeader::parse(&head)?;
            let raw = segment::read_exact_at(file, pos, h.size_bytes())?;
            let mut buf = Bytes::copy_from_slice(&raw);
            let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Corrupt(e.to_string()))?;
            f(&raw, set.records)?;
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
    // 1. The offset map, over as many segments as the dedupe buffer holds.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let mut map_bytes = 0usize;
    let mut mapped = 0;
    for (_, file, size) in &segments {
        let mut full = false;
        for_each_batch(file, *size, &mut throttle, &mut |_, records| {
            for r in records {
                if let Some(k) = r.key {
                    map_bytes += if latest.contains_key(&k) { 0 } else { k.len() + 24 };
                    latest.insert(k, r.offset);
                }
            }
            full = map_bytes > config.dedupe_buffer_bytes;
            Ok(())
        })?;
        mapped += 1;
        if full {
            break;
        }
    }
    // 2. Rewrite the mapped segments.
    let tombstone_horizon = now_ms - topic_config.delete_retention_ms;
    let mut stats = CleanStats::default();
    let mut written: Vec<(i64, std::path::PathBuf, File)> = Vec::new();
    for (base, file, size) in segments.into_iter().take(mapped) {
        let mut out = BytesMut::new();
        let mut changed = false;
        for_each_batch(&file, size, &mut throttle, &mut |raw, records| {
            let total = records.len();
            stats.records_read += total as u64;
            let keep: Vec<Record> = records
                .into_iter()
                .filter(|r| match &r.key {
                    None => true,
                    Some(k) => {
                        latest.get(k) == Some(&r.offset) && !(r.value.is_none() && r.timestamp < tombstone_horizon)
                    }
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
            // The encoder starts a new batch wherever offset - sequence changes; give
            // records without a producer sequences that keep them in one batch.
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
                &mut out,
                &keep,
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
            Ok(())
        })?;
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
        f.sync_all()?;
    }
    for (base, cleaned, _) in written {
        log.replace_segment(base, &cleaned, now_ms)?;
        stats.segments += 1;
    }
    Ok(stats)
}
