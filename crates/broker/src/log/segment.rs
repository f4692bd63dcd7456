//! `LogSegment`: one `<base_offset>.log` file of whole record batches with its
//! `.index` and `.timeindex`.
//!
//! Contract: the file holds `size` bytes of whole, CRC-valid batches with increasing
//! offsets starting at or after `base_offset`; bytes past `size` (a torn write) are
//! ignored and cut off on recovery. Owned by a `UnifiedLog`, mutated under its lock;
//! readers clone the `Arc<File>` and read positions below a `size` they saw.

use super::device_flush;
use super::direct_io::{self, DirectWriter, DIRECT_IO_BLOCK_BYTES};
use super::index::{OffsetIndex, TimeIndex};
use super::record_batch::{self, BatchHeader, BatchIter};
use super::LogError;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read at a time when scanning a segment (recovery, position lookups).
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

#[derive(Debug)]
pub struct LogSegment {
    pub base_offset: i64,
    dir: PathBuf,
    file: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    bytes_since_last_index_entry: u64,
    /// Largest batch max_timestamp so far, and the last offset of that batch.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Next offset after the last batch; `base_offset` when empty.
    next_offset: i64,
    /// Timestamp of the first batch (for time-based roll), or the creation time.
    rolling_base_ms: i64,
    indexes_dirty: bool,
    /// Data appended since the last fsync.
    data_dirty: bool,
    /// Page cache advice (`UnifiedLog::drop_page_cache_behind`): bytes before
    /// `page_cache_advised_to` were advised away at least once, before
    /// `page_cache_dropped_to` twice (so they are gone).
    pub page_cache_advised_to: u64,
    pub page_cache_dropped_to: u64,
    /// The file holds blocks past `size` to give back once the segment rolled (`trim`):
    /// preallocated ones (`create_preallocated`), or O_DIRECT padding.
    trim_pending: bool,
    direct: Option<DirectWriter>,
    /// Bytes appended through the page cache while a device flush ran, whose writeback
    /// is not started yet: each O_DIRECT append starts it for a step
    /// (`start_pending_writeback`), so the device never has more than a step of it
    /// queued ahead of the next append. Left alone, the kernel wrote them back in bulk
    /// (the page-cache drop's fadvise, 50-100 MB at once, or the flusher after 30 s),
    /// and the O_DIRECT append after each bulk waited behind it: 20-30 ms at half the
    /// peak rate, five times after every roll (perf trace, 2026-12-05).
    writeback_pending: Option<std::ops::Range<u64>>,
}

/// Limit: the least writeback an O_DIRECT append starts of `writeback_pending`. At
/// least as much as the append itself wrote, so the backlog of one flush (what
/// arrived during it) is written back before the next flush at any append rate.
pub const PENDING_WRITEBACK_STEP_MIN_BYTES: u64 = 1 << 20;

/// A segment file allocated ahead of its roll (`UnifiedLog::preallocate_next_segment`):
/// `fallocate(FALLOC_FL_KEEP_SIZE)` reserves `bytes` of blocks while the file's size
/// stays 0, so appends to it later allocate nothing. Why: an O_DIRECT append allocates
/// its blocks in the write itself, holding the inode's block-map lock (ext4's
/// `i_data_sem`), sometimes while it reads a block bitmap from a busy disk (seen in
/// perf's off-CPU stacks). Named `PREALLOCATED_FILE_NAME` until a roll renames it to
/// `<base_offset>.log`; a leftover one is deleted at load with the other `.tmp` files.
#[derive(Debug)]
pub struct PreallocatedFile {
    path: PathBuf,
    file: File,
}

pub const PREALLOCATED_FILE_NAME: &str = "preallocated.log.tmp";

/// Kafka's suffix for a segment file deleted but not yet removed; any found at load are
/// freed gradually like the rest (`log::deletion`).
pub const DELETED_SUFFIX: &str = ".deleted";
/// A segment's `.log` file so renamed (or linked, by compaction).
pub const DELETED_SUFFIX_LOG: &str = ".log.deleted";

impl PreallocatedFile {
    /// Creates the file in `dir` with `bytes` reserved. Fails where the filesystem
    /// cannot preallocate (`Unsupported`), or lacks the space.
    pub fn create(dir: &Path, bytes: u64) -> io::Result<PreallocatedFile> {
        let path = dir.join(PREALLOCATED_FILE_NAME);
        let file = create_empty(&path)?;
        let reserved = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, bytes);
        if let Err(e) = reserved {
            drop(fs::remove_file(&path));
            return Err(e.into());
        }
        Ok(PreallocatedFile { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates (or empties) a file for reading and writing.
fn create_empty(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Where a read starts and how far it may go, taken under the log's lock.
#[derive(Debug, Clone)]
pub struct SegmentReadView {
    pub file: Arc<File>,
    pub start_position: u64,
    pub end_position: u64,
}

impl LogSegment {
    pub fn create(dir: &Path, base_offset: i64, index_interval_bytes: u64, now_ms: i64) -> io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, ".log"));
        let file = create_empty(&path)?;
        let mut seg = LogSegment::create_from(dir, base_offset, file, index_interval_bytes, now_ms);
        // A new segment's (empty) index files are written at its first flush.
        seg.indexes_dirty = true;
        Ok(seg)
    }

    /// Opens an existing segment. With `recover`, every batch is read and checked and the
    /// indexes rebuilt; otherwise the index files are trusted (clean shutdown) and only
    /// the tail after the last index entry is walked. Returns bytes truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        recover: bool,
        now_ms: i64,
    ) -> io::Result<(LogSegment, u64)> {
        let path = dir.join(file_name(base_offset, ".log"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let file_bytes = file.metadata()?.len();
        let mut seg = LogSegment::create_from(dir, base_offset, file, index_interval_bytes, now_ms);
        if !recover {
            let oi = OffsetIndex::load(&seg.path(".index"), base_offset, file_bytes)?;
            let ti = TimeIndex::load(&seg.path(".timeindex"), base_offset)?;
            if let (Some(oi), Some(ti)) = (oi, ti) {
                seg.offset_index = oi;
                seg.time_index = ti;
                seg.indexes_dirty = false;
                if let Some((ts, off)) = seg.time_index.last_entry() {
                    seg.max_timestamp = ts;
                    seg.offset_of_max_timestamp = off;
                }
                let from = seg.offset_index.last_position() as u64;
                let truncated = seg.scan_from(from, file_bytes, false)?;
                return Ok((seg, truncated));
            }
        }
        seg.offset_index = OffsetIndex::new(base_offset);
        seg.time_index = TimeIndex::new(base_offset);
        seg.indexes_dirty = true;
        let truncated = seg.scan_from(0, file_bytes, true)?;
        Ok((seg, truncated))
    }

    /// Opens the cleaner's output `cleaned` as segment `base_offset` of `dir`, checking
    /// every batch and building its indexes in memory (dirty: the next flush writes them).
    /// The caller renames `cleaned` to `path(".log")` afterwards; the open handle follows
    /// the rename. Reads the whole file, so call it without the log's lock.
    pub fn open_cleaned(
        dir: &Path,
        base_offset: i64,
        cleaned: &Path,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<LogSegment> {
        let file = OpenOptions::new().read(true).write(true).open(cleaned)?;
        let file_bytes = file.metadata()?.len();
        let mut seg = LogSegment::create_from(dir, base_offset, file, index_interval_bytes, now_ms);
        seg.indexes_dirty = true;
        let cut = seg.scan_from(0, file_bytes, true)?;
        if cut > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "cleaned segment {} has {cut} bytes that are not whole batches",
                    cleaned.display()
                ),
            ));
        }
        Ok(seg)
    }

    fn create_from(dir: &Path, base_offset: i64, file: File, index_interval_bytes: u64, now_ms: i64) -> LogSegment {
        LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            size: 0,
            offset_index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            rolling_base_ms: now_ms,
            indexes_dirty: false,
            data_dirty: false,
            page_cache_advised_to: 0,
            page_cache_dropped_to: 0,
            trim_pending: false,
            direct: None,
            writeback_pending: None,
        }
    }

    /// A new, empty segment in the file `next` reserved: renamed to `<base>.log`.
    pub fn create_preallocated(
        dir: &Path,
        base_offset: i64,
        next: PreallocatedFile,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<LogSegment> {
        fs::rename(&next.path, dir.join(file_name(base_offset, ".log")))?;
        let mut seg = LogSegment::create_from(dir, base_offset, next.file, index_interval_bytes, now_ms);
        seg.indexes_dirty = true;
        seg.trim_pending = true;
        Ok(seg)
    }

    /// Appends from now on with O_DIRECT (see `DirectWriter`). Returns whether the
    /// filesystem allows it.
    pub fn enable_direct_io(&mut self) -> io::Result<bool> {
        if self.direct.is_none() {
            self.direct = DirectWriter::open(&self.path(".log"))?;
        }
        Ok(self.direct.is_some())
    }

    /// Whether appends go through O_DIRECT.
    pub fn direct_io(&self) -> bool {
        self.direct.is_some()
    }

    /// Ends O_DIRECT appends (the segment rolled, or the log closes): the padding past
    /// `size` is left for `trim`, so a roll does no I/O.
    pub fn finish_direct_io(&mut self) {
        if self.direct.take().is_some() {
            self.trim_pending = true;
        }
    }

    /// Gives back the blocks past `size` (preallocated, or O_DIRECT padding) of a segment
    /// that takes no more appends. A truncate to the same size is how ext4 and XFS free
    /// blocks past the end of file; it rewrites the last partial block, so a caller
    /// holding the log's lock reads that block first without it (`last_block`).
    pub fn trim(&mut self) -> io::Result<()> {
        if self.trim_pending && self.direct.is_none() {
            self.file.set_len(self.size)?;
            self.trim_pending = false;
        }
        Ok(())
    }

    pub fn trim_pending(&self) -> bool {
        self.trim_pending
    }

    /// Walks batches from `from` to `file_bytes`; with `check`, verifies CRCs and indexes
    /// every batch. Cuts the file at the first bad or partial batch; returns bytes cut.
    fn scan_from(&mut self, from: u64, file_bytes: u64, check: bool) -> io::Result<u64> {
        let mut pos = from;
        self.size = from;
        'chunks: while pos < file_bytes {
            let chunk_len = (file_bytes - pos).min(SCAN_CHUNK_BYTES as u64) as usize;
            let chunk = read_exact_at(&self.file, pos, chunk_len)?;
            let mut consumed = 0usize;
            for (at, header) in BatchIter::new(&chunk) {
                let batch = &chunk[at..at + header.size_bytes()];
                let in_order = header.base_offset >= self.next_offset && header.batch_length > 0;
                if !in_order || (check && record_batch::verify_crc(&header, batch).is_err()) {
                    pos += consumed as u64;
                    break 'chunks;
                }
                self.track_batch(&header, pos + at as u64, check);
                consumed = at + header.size_bytes();
            }
            if consumed == 0 {
                // A batch larger than the chunk, or a torn tail.
                match self.read_one_large_batch(pos, file_bytes, check)? {
                    Some(n) => pos += n,
                    None => break,
                }
                continue;
            }
            pos += consumed as u64;
        }
        self.size = pos;
        let truncated = file_bytes - pos;
        if truncated > 0 {
            // O_DIRECT padding (see `DirectWriter`) is less than a block of zeros, and
            // no torn write: cut it without reporting one.
            let padding = truncated < DIRECT_IO_BLOCK_BYTES as u64
                && read_exact_at(&self.file, pos, truncated as usize)?
                    .iter()
                    .all(|b| *b == 0);
            self.file.set_len(pos)?;
            self.indexes_dirty = true;
            if padding {
                return Ok(0);
            }
        }
        Ok(truncated)
    }

    fn read_one_large_batch(&mut self, pos: u64, file_bytes: u64, check: bool) -> io::Result<Option<u64>> {
        let head = read_exact_at(
            &self.file,
            pos,
            (file_bytes - pos).min(record_batch::BATCH_HEADER_BYTES as u64) as usize,
        )?;
        let header = match BatchHeader::parse(&head) {
            Ok(h)
                if h.batch_length > 0
                    && pos + h.size_bytes() as u64 <= file_bytes
                    && h.base_offset >= self.next_offset =>
            {
                h
            }
            _ => return Ok(None),
        };
        if check {
            let batch = read_exact_at(&self.file, pos, header.size_bytes())?;
            if record_batch::verify_crc(&header, &batch).is_err() {
                return Ok(None);
            }
        }
        self.track_batch(&header, pos, check);
        Ok(Some(header.size_bytes() as u64))
    }

    /// Updates size, offsets, timestamps and (when `index`) the indexes for a batch
    /// that now sits at `position`.
    fn track_batch(&mut self, header: &BatchHeader, position: u64, index: bool) {
        let size = header.size_bytes() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.size == 0 && position == 0 && header.max_timestamp >= 0 {
            self.rolling_base_ms = header.max_timestamp;
        }
        if index && self.bytes_since_last_index_entry > self.index_interval_bytes {
            self.offset_index.append(header.last_offset(), position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
            self.indexes_dirty = true;
        }
        self.bytes_since_last_index_entry += size;
        self.next_offset = header.next_offset();
        self.size = position + size;
    }

    /// Appends whole, offset-assigned batches given as `parts` (one pwritev);
    /// `headers` describe the batches at their positions in the concatenation.
    pub fn append(&mut self, parts: &[&[u8]], headers: &[(usize, BatchHeader)]) -> io::Result<()> {
        let bytes_len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(
            self.size + bytes_len as u64 <= u32::MAX as u64,
            "segment position overflows the index"
        );
        match &mut self.direct {
            // A device flush runs: an O_DIRECT write would wait behind it, so this
            // append goes through the page cache (see `device_flush`).
            Some(d) if device_flush::in_flight() => {
                device_flush::count_append(true);
                d.append_buffered(&self.file, parts, self.size)?;
                let from = self.size - self.size % DIRECT_IO_BLOCK_BYTES as u64;
                let from = self.writeback_pending.as_ref().map_or(from, |r| r.start.min(from));
                self.writeback_pending = Some(from..self.size + bytes_len as u64);
            }
            Some(d) => {
                device_flush::count_append(false);
                match d.append(&self.file, parts, self.size) {
                    // A filesystem that opened O_DIRECT but refuses its writes (alignment
                    // it does not announce): buffered from here on, the padding trimmed
                    // at roll.
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        tracing::warn!(path = %self.path(".log").display(), error = %e, "O_DIRECT write refused; buffered appends");
                        self.direct = None;
                        self.trim_pending = true;
                        write_all_vectored_at(&self.file, parts, self.size)?;
                    }
                    written => written?,
                }
                self.start_pending_writeback(bytes_len as u64);
            }
            None => write_all_vectored_at(&self.file, parts, self.size)?,
        }
        self.data_dirty = true;
        let start = self.size;
        for (at, header) in headers {
            assert!(
                header.base_offset >= self.next_offset,
                "offsets must increase within a segment"
            );
            self.track_batch(header, start + *at as u64, true);
        }
        assert_eq!(
            self.size,
            start + bytes_len as u64,
            "batch headers must cover the appended bytes"
        );
        Ok(())
    }

    /// The position of the first batch that holds `offset` or a later one, scanning
    /// from the index entry below it; `None` when the segment ends first. A header that
    /// does not parse is `LogError::Corrupt` (Kafka's `CorruptRecordException`, answered
    /// CORRUPT_MESSAGE), not an I/O error: bad bytes in one segment say nothing of the
    /// disk, so they must not take the log dir offline.
    pub fn position_of(&self, offset: i64, size_limit: u64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut pos = self.offset_index.lookup(offset) as u64;
        let mut head = [0u8; record_batch::BATCH_HEADER_BYTES];
        while pos + record_batch::BATCH_HEADER_BYTES as u64 <= size_limit {
            self.file.read_exact_at(&mut head, pos)?;
            let header = BatchHeader::parse(&head).map_err(|e| {
                LogError::Corrupt(format!(
                    "{}: batch header at position {pos}: {e}",
                    self.path(".log").display()
                ))
            })?;
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos += header.size_bytes() as u64;
        }
        Ok(None)
    }

    pub fn read_view(&self, start_position: u64) -> SegmentReadView {
        SegmentReadView {
            file: self.file.clone(),
            start_position,
            end_position: self.size,
        }
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn rolling_base_ms(&self) -> i64 {
        self.rolling_base_ms
    }
    pub fn offset_index_entries(&self) -> usize {
        self.offset_index.len()
    }
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(file_name(self.base_offset, suffix))
    }

    /// Starts the writeback of the next step of `writeback_pending`, at least
    /// `appended` bytes, without waiting for it: `fadvise(DONTNEED)` hands a range's dirty
    /// pages to writeback (WB_SYNC_NONE) and drops the clean ones; pages still under
    /// writeback stay cached until the page-cache drop passes them.
    fn start_pending_writeback(&mut self, appended: u64) {
        let Some(pending) = self.writeback_pending.take() else {
            return;
        };
        let end = pending
            .end
            .min(pending.start + appended.max(PENDING_WRITEBACK_STEP_MIN_BYTES));
        let len = std::num::NonZeroU64::new(end - pending.start);
        match rustix::fs::fadvise(&*self.file, pending.start, len, rustix::fs::Advice::DontNeed) {
            // The flusher writes the rest back; the next flush of the segment makes it durable.
            Err(e) => tracing::debug!(path = %self.path(".log").display(), error = %e, "starting writeback failed"),
            Ok(()) if end < pending.end => self.writeback_pending = Some(end..pending.end),
            Ok(()) => {}
        }
    }

    /// Where the bytes whose writeback the appends still have to start begin
    /// (`writeback_pending`): the page-cache drop stops short of them, as its advice
    /// would start their writeback all at once.
    pub fn writeback_pending_start(&self) -> Option<u64> {
        self.writeback_pending.as_ref().map(|r| r.start)
    }

    /// Whether `flush` has anything to do.
    pub fn is_dirty(&self) -> bool {
        self.data_dirty || self.indexes_dirty
    }

    /// The segment's file, for an fsync outside the log's lock.
    pub fn file_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// The index files to write (path, contents), when they changed: serialized under
    /// the log's lock, written outside it.
    pub fn index_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        if !self.indexes_dirty {
            return Vec::new();
        }
        vec![
            (self.path(".index"), self.offset_index.to_bytes()),
            (self.path(".timeindex"), self.time_index.to_bytes()),
        ]
    }

    /// After an fsync of `file_handle` and a write of `index_files`, for a rolled
    /// segment (which takes no more appends): marks it clean.
    pub fn mark_flushed(&mut self) {
        self.data_dirty = false;
        self.indexes_dirty = false;
        self.writeback_pending = None;
    }

    /// fsyncs the data and writes the index files.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.data_dirty {
            device_flush::sync_data(&self.file).map_err(super::fsync_failed)?;
            self.data_dirty = false;
            self.writeback_pending = None;
        }
        if self.indexes_dirty {
            self.offset_index.write(&self.path(".index"))?;
            self.time_index.write(&self.path(".timeindex"))?;
            self.indexes_dirty = false;
        }
        Ok(())
    }

    /// Removes every batch at or after `offset` (a batch straddling it goes too).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let cut = match self.position_of(offset, self.size)? {
            Some((pos, header)) if header.base_offset >= offset => pos,
            Some((pos, header)) => pos + header.size_bytes() as u64,
            None => return Ok(()),
        };
        self.file.set_len(cut)?;
        if let Some(d) = &mut self.direct {
            d.forget_tail();
        }
        let file_bytes = cut;
        self.offset_index.truncate_to_position(cut as u32);
        self.time_index.truncate_to_offset(offset);
        self.max_timestamp = -1;
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.indexes_dirty = true;
        // Re-walk the tail after the last kept index entry to restore next_offset.
        let from = self.offset_index.last_position() as u64;
        if let Some((ts, off)) = self.time_index.last_entry() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = off;
        }
        self.scan_from(from, file_bytes, false)?;
        Ok(())
    }

    /// Renames the segment's files `<name>.deleted`, as Kafka does before it deletes
    /// them; returns the renamed paths (files that were missing are skipped).
    pub fn rename_deleted(&self) -> io::Result<Vec<PathBuf>> {
        let mut renamed = Vec::with_capacity(3);
        for suffix in [".log", ".index", ".timeindex"] {
            let to = self.path(&format!("{suffix}{DELETED_SUFFIX}"));
            match fs::rename(self.path(suffix), &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(renamed)
    }

    pub fn delete_files(&self) -> io::Result<()> {
        for suffix in [".log", ".index", ".timeindex"] {
            super::deletion::remove_if_present(&self.path(suffix))?;
        }
        Ok(())
    }
}

/// Reads `len` bytes at `pos`; `len` is bounded by the caller (a segment's size).
pub fn read_exact_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

/// pwritev of `parts` at `pos`, continuing after short writes.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], pos: u64) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    direct_io::write_all_vectored_at(file, &mut slices, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::tests::make_batch;

    /// A fresh segment in a temp dir named `name`, appending with O_DIRECT; `None` (the
    /// test is skipped) where the filesystem refuses O_DIRECT.
    fn direct_segment(name: &str) -> Option<(PathBuf, LogSegment)> {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let mut seg = LogSegment::create(&dir, 0, 4096, 0).expect("create");
        if !seg.enable_direct_io().expect("open") {
            eprintln!("skipped: the temp dir's filesystem refuses O_DIRECT");
            return None;
        }
        Some((dir, seg))
    }

    /// Appends a batch of `n` records of `value_len` bytes at `offset` to `seg` and to
    /// `written`; returns the next offset.
    fn append_batch(seg: &mut LogSegment, n: i32, value_len: usize, offset: i64, written: &mut Vec<u8>) -> i64 {
        let mut batch = make_batch(n, value_len, 1_000);
        record_batch::set_base_offset(&mut batch, offset);
        let header = BatchHeader::parse(&batch).expect("header");
        seg.append(&[&batch], &[(0, header)]).expect("append");
        written.extend_from_slice(&batch);
        header.next_offset()
    }

    /// Appends batches of odd sizes with O_DIRECT: the file reads back exactly, ends in
    /// less than a block of zero padding, recovery takes that padding for no torn write,
    /// and `finish_direct_io` cuts it.
    #[test]
    fn direct_io_appends_read_back_and_recover() {
        let Some((dir, mut seg)) = direct_segment("fjord-direct") else {
            return;
        };
        let mut written = Vec::new();
        let mut offset = 0i64;
        for (n, value_len) in [(1, 10), (3, 5000), (2, 1), (40, 300), (1, 9000)] {
            offset = append_batch(&mut seg, n, value_len, offset, &mut written);
            let file_bytes = fs::metadata(seg.path(".log")).expect("stat").len();
            assert_eq!(file_bytes % DIRECT_IO_BLOCK_BYTES as u64, 0, "whole blocks");
            assert!(file_bytes >= seg.size() && file_bytes - seg.size() < DIRECT_IO_BLOCK_BYTES as u64);
        }
        assert_eq!(seg.size(), written.len() as u64);
        assert_eq!(read_exact_at(seg.file(), 0, written.len()).expect("read"), written);
        // As after kill -9: the padding is cut, and is no torn write.
        let (recovered, truncated) = LogSegment::open(&dir, 0, 4096, true, 0).expect("recover");
        assert_eq!(
            (recovered.size(), truncated, recovered.next_offset()),
            (written.len() as u64, 0, offset)
        );
        // Appends continue after a reopen (the partial block is read back).
        let mut seg = recovered;
        assert!(seg.enable_direct_io().expect("open"));
        append_batch(&mut seg, 2, 77, offset, &mut written);
        assert_eq!(read_exact_at(seg.file(), 0, written.len()).expect("read"), written);
        seg.finish_direct_io();
        seg.trim().expect("trim");
        assert_eq!(
            fs::metadata(seg.path(".log")).expect("stat").len(),
            written.len() as u64
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// While a device flush runs, an O_DIRECT segment appends through the page cache;
    /// appends that alternate between the two ways leave exactly the batches on the
    /// device (read back past the page cache), and recovery and trim work as ever.
    #[test]
    fn appends_during_a_device_flush_go_through_the_page_cache() {
        let Some((dir, mut seg)) = direct_segment("fjord-direct-flush") else {
            return;
        };
        let mut written = Vec::new();
        let mut offset = 0i64;
        let sizes = [(1, 10), (3, 5000), (2, 1), (40, 300), (1, 9000), (5, 4096), (1, 3)];
        for (i, (n, value_len)) in sizes.into_iter().enumerate() {
            let flush = (i % 2 == 1).then(device_flush::InFlight::enter);
            offset = append_batch(&mut seg, n, value_len, offset, &mut written);
            drop(flush);
            assert_eq!(seg.size(), written.len() as u64);
            assert!(seg.direct_io(), "O_DIRECT resumes once the flush is over");
        }
        // What the device holds: written back, the cached pages dropped, read again.
        seg.flush().expect("flush");
        let len = std::num::NonZeroU64::new(0);
        rustix::fs::fadvise(seg.file().as_ref(), 0, len, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(read_exact_at(seg.file(), 0, written.len()).expect("read"), written);
        let (recovered, truncated) = LogSegment::open(&dir, 0, 4096, true, 0).expect("recover");
        assert_eq!(
            (recovered.size(), truncated, recovered.next_offset()),
            (written.len() as u64, 0, offset)
        );
        seg.finish_direct_io();
        seg.trim().expect("trim");
        assert_eq!(
            fs::metadata(seg.path(".log")).expect("stat").len(),
            written.len() as u64
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// What was appended through the page cache during a flush is handed to writeback a
    /// step at a time by the O_DIRECT appends after it (each at least
    /// `PENDING_WRITEBACK_STEP_MIN_BYTES`), not left for a bulk writeback; a flush of
    /// the segment settles it at once. The bytes on the device are exactly the batches.
    #[test]
    fn writeback_of_stepped_aside_appends_is_started_a_step_per_append() {
        let Some((dir, mut seg)) = direct_segment("fjord-direct-writeback") else {
            return;
        };
        let step = PENDING_WRITEBACK_STEP_MIN_BYTES;
        let mut written = Vec::new();
        let mut offset = 0i64;
        let flush = device_flush::InFlight::enter();
        while (written.len() as u64) < 3 * step + 1000 {
            offset = append_batch(&mut seg, 20, 10_000, offset, &mut written);
        }
        drop(flush);
        let stepped_aside = written.len() as u64;
        assert_eq!(seg.writeback_pending_start(), Some(0));
        // Small O_DIRECT appends: each starts one step's writeback.
        for k in 1..=3u64 {
            offset = append_batch(&mut seg, 1, 10, offset, &mut written);
            assert_eq!(seg.writeback_pending_start(), Some(k * step), "append {k}");
        }
        offset = append_batch(&mut seg, 1, 10, offset, &mut written);
        assert_eq!(
            seg.writeback_pending_start(),
            None,
            "all of {stepped_aside} bytes handed over"
        );
        // A large append hands over at least as much as it wrote.
        let flush = device_flush::InFlight::enter();
        let from = seg.size() - seg.size() % DIRECT_IO_BLOCK_BYTES as u64;
        for _ in 0..15 {
            offset = append_batch(&mut seg, 20, 10_000, offset, &mut written);
        }
        drop(flush);
        assert_eq!(seg.writeback_pending_start(), Some(from));
        let before = seg.size();
        offset = append_batch(&mut seg, 40, 40_000, offset, &mut written);
        let appended = seg.size() - before;
        assert!(appended > step && appended < seg.size() - from - appended);
        assert_eq!(seg.writeback_pending_start(), Some(from + appended));
        // A flush of the segment writes the rest.
        seg.flush().expect("flush");
        assert_eq!(seg.writeback_pending_start(), None);
        let len = std::num::NonZeroU64::new(0);
        rustix::fs::fadvise(seg.file().as_ref(), 0, len, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(read_exact_at(seg.file(), 0, written.len()).expect("read"), written);
        assert_eq!(seg.next_offset(), offset);
        let _ = fs::remove_dir_all(&dir);
    }
}
