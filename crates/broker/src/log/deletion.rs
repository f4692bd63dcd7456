//! Deleted data freed gradually: segment files past retention and the directories of
//! deleted partitions, once `file.delete.delay.ms` is over.
//!
//! Why not one unlink: freeing a file's blocks is where the filesystem tells the device
//! they are unused, and with online discard (ext4's `discard` mount option, common on
//! cloud VMs and set on this one) that happens synchronously, for every block, in the
//! unlink or the last close. Unlinking 4 GiB took 556 ms here (0.6 ms without
//! `discard`), and O_DIRECT appends queued behind those discards: 1 MiB writes that take
//! 0.5 ms took up to 36 ms. So a file is freed `FILE_DELETE_CHUNK_BYTES` at a time
//! (`fallocate` punching a hole, which frees and discards just that range), the caller
//! pausing between chunks (`FILE_DELETE_BYTES_PER_SECOND`); the unlink at the end frees
//! nothing. Kafka unlinks at once; RocksDB's rate-limited `DeleteScheduler` frees files in
//! chunks for the same reason.
//!
//! Readers: an unlinked file stays readable through the handles open on it, and Fjord's
//! reads rely on that (a fetch's `FileRecords` is sent after the log's lock is gone). A
//! punched hole would turn those bytes to zeros, so a deleted segment keeps the log's
//! shared handle on its `.log` (`DeletedFile`), and is freed only once no reader holds
//! a clone of it: no new reader can appear, the segment having left the log.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Limit: the most one step frees, so one step's discard holds the device briefly.
/// Smaller discards interleave better with appends: 1 MiB O_DIRECT writes at 200 MB/s
/// beside holes punched at 1 GiB/s had p99 17-43 ms with 16 MiB holes, 9-13 ms with
/// 4 MiB, 4.3-4.9 ms with none (two alternating rounds, 2026-12-04); 1 MiB holes gave
/// a lower p99 but a higher median, and four times the steps.
pub const FILE_DELETE_CHUNK_BYTES: u64 = 4 << 20;

/// The pace deleted data is freed at. Above any rate this broker appends at (the
/// network path tops out near 1.2 GB/s here), so deletion never falls behind retention;
/// at 4 MiB chunks, one chunk every 4 ms.
pub const FILE_DELETE_BYTES_PER_SECOND: u64 = 1 << 30;

/// A segment file renamed for deletion, with the log's shared read handle on it
/// (`LogSegment::file_handle`) while a reader still holds that.
#[derive(Debug)]
pub struct DeletedFile {
    pub path: PathBuf,
    pub handle: Option<Arc<File>>,
}

impl DeletedFile {
    /// `handle` is kept only if a reader shares it (the segment itself already
    /// dropped): with no reader now there can be none later, and an idle handle would
    /// hold a file descriptor until the file is freed.
    pub fn new(path: PathBuf, handle: Option<Arc<File>>) -> DeletedFile {
        DeletedFile {
            path,
            handle: handle.filter(shared),
        }
    }
}

/// A file or directory waiting to be freed; directories are freed file by file.
#[derive(Debug)]
pub struct PendingDeletion {
    /// When it may be freed (`file.delete.delay.ms` after its deletion).
    pub due_ms: i64,
    path: PathBuf,
    target: Target,
    /// The log's read handles on the files, held until freeing starts (`in_use`).
    handles: Vec<Arc<File>>,
    /// The file being freed, and how far.
    current: Option<Freeing>,
}

#[derive(Debug)]
enum Target {
    /// Whether the file is still to be opened.
    File { opened: bool },
    /// The directory's files not yet freed, listed at the first step.
    Dir { listed: bool, files: VecDeque<PathBuf> },
}

#[derive(Debug)]
struct Freeing {
    file: File,
    path: PathBuf,
    /// Holes are punched from here on...
    next_offset: u64,
    /// ...up to here: past the file's size and every block it holds, preallocated ones
    /// beyond its end included (`fallocate(KEEP_SIZE)`).
    end_offset: u64,
}

/// Whether a reader holds a clone of the log's handle besides the one kept here.
fn shared(handle: &Arc<File>) -> bool {
    Arc::strong_count(handle) > 1
}

impl PendingDeletion {
    pub fn file(path: PathBuf, due_ms: i64) -> PendingDeletion {
        PendingDeletion::new(path, due_ms, Target::File { opened: false })
    }

    pub fn dir(path: PathBuf, due_ms: i64) -> PendingDeletion {
        let target = Target::Dir {
            listed: false,
            files: VecDeque::new(),
        };
        PendingDeletion::new(path, due_ms, target)
    }

    fn new(path: PathBuf, due_ms: i64, target: Target) -> PendingDeletion {
        PendingDeletion {
            due_ms,
            path,
            target,
            handles: Vec::new(),
            current: None,
        }
    }

    /// Holds the log's read handles on the files that readers share, so freeing waits
    /// for those readers (the others are dropped, as in `DeletedFile::new`).
    pub fn holding(mut self, mut handles: Vec<Arc<File>>) -> PendingDeletion {
        handles.retain(shared);
        self.handles = handles;
        self
    }

    /// Whether a reader still holds one of the files (freeing must wait: a punched
    /// hole would read as zeros).
    pub fn in_use(&self) -> bool {
        self.handles.iter().any(shared)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees up to `FILE_DELETE_CHUNK_BYTES`. Returns the bytes freed, and whether
    /// everything is gone. Blocking. Something already gone counts as freed.
    pub fn step(&mut self) -> io::Result<(u64, bool)> {
        assert!(!self.in_use(), "a file is freed only once no reader holds it");
        if self.current.is_none() && !self.start_next_file()? {
            if matches!(self.target, Target::Dir { .. }) {
                match fs::remove_dir_all(&self.path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            return Ok((0, true));
        }
        let Some(freeing) = self.current.as_mut() else {
            return Ok((0, true));
        };
        let freed = freeing.punch_next()?;
        if freeing.next_offset >= freeing.end_offset {
            let path = freeing.path.clone();
            self.current = None;
            remove_if_present(&path)?;
        }
        Ok((freed, false))
    }

    /// Opens the next file to free; false when none is left.
    fn start_next_file(&mut self) -> io::Result<bool> {
        loop {
            let path = match &mut self.target {
                Target::File { opened: true } => return Ok(false),
                Target::File { opened } => {
                    *opened = true;
                    self.path.clone()
                }
                Target::Dir { listed, files } => {
                    if !*listed {
                        *listed = true;
                        list_files(&self.path, files)?;
                    }
                    match files.pop_front() {
                        Some(p) => p,
                        None => return Ok(false),
                    }
                }
            };
            match Freeing::open(path) {
                Ok(f) => {
                    self.current = Some(f);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The regular files directly in `dir` holding blocks (a partition directory has no
/// subdirectories; the rest goes with the directory).
fn list_files(dir: &Path, out: &mut VecDeque<PathBuf>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() && entry.metadata()?.blocks() > 0 {
            out.push_back(entry.path());
        }
    }
    Ok(())
}

impl Freeing {
    fn open(path: PathBuf) -> io::Result<Freeing> {
        let file = OpenOptions::new().write(true).open(&path)?;
        let meta = file.metadata()?;
        // Blocks are 512-byte units; the allocated range ends at most this far out.
        let end_offset = meta.len() + meta.blocks() * 512;
        if meta.blocks() * 512 > meta.len() + FILE_DELETE_CHUNK_BYTES {
            // More than a chunk reserved past the end (`fallocate(KEEP_SIZE)`), where
            // ext4 punches no holes: moving the end out (a sparse extension, allocating
            // nothing) brings it within reach. A smaller rest goes with the unlink.
            file.set_len(end_offset)?;
        }
        Ok(Freeing {
            file,
            path,
            next_offset: 0,
            end_offset,
        })
    }

    /// Punches the next hole; returns the bytes it freed. Where the filesystem cannot
    /// punch holes, the rest is left to the unlink.
    fn punch_next(&mut self) -> io::Result<u64> {
        use rustix::fs::FallocateFlags;
        let before = self.file.metadata()?.blocks();
        let len = FILE_DELETE_CHUNK_BYTES.min(self.end_offset - self.next_offset);
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&self.file, flags, self.next_offset, len) {
            Ok(()) => self.next_offset += len,
            Err(rustix::io::Errno::OPNOTSUPP) => self.next_offset = self.end_offset,
            Err(e) => return Err(e.into()),
        }
        let after = self.file.metadata()?.blocks();
        Ok(before.saturating_sub(after) * 512)
    }
}

/// Removes a file; one already gone counts as removed.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fjord-deletion-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_file(path: &Path, bytes: usize) {
        let mut f = File::create(path).unwrap();
        f.write_all(&vec![7u8; bytes]).unwrap();
        f.sync_all().unwrap();
    }

    fn free_all(p: &mut PendingDeletion) -> Vec<u64> {
        let mut steps = Vec::new();
        for _ in 0..1000 {
            let (freed, done) = p.step().unwrap();
            if done {
                return steps;
            }
            steps.push(freed);
        }
        panic!("never finished");
    }

    #[test]
    fn a_file_is_freed_a_chunk_at_a_time_then_unlinked() {
        let dir = temp_dir("file");
        let path = dir.join("00000000000000000000.log.deleted");
        write_file(&path, 40 << 20);
        let mut p = PendingDeletion::file(path.clone(), 0);
        let steps = free_all(&mut p);
        // A step punches one chunk of data; the file's block count may drop by a block
        // of the file system's own too (ext4's extent tree: 4 MiB + 4 KiB was seen).
        let metadata_slack = 64 * 1024;
        assert!(
            steps.iter().all(|&b| b <= FILE_DELETE_CHUNK_BYTES + metadata_slack),
            "{steps:?}"
        );
        let sum: u64 = steps.iter().sum();
        assert!(
            (40 << 20..=(40 << 20) + 65536).contains(&sum),
            "every block freed by a step: {steps:?}"
        );
        assert!(steps.len() >= 3, "40 MiB takes three chunks at least: {steps:?}");
        assert!(!path.exists());
        assert_eq!(p.step().unwrap(), (0, true), "done stays done");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn preallocated_blocks_past_the_end_are_freed_in_chunks_too() {
        let dir = temp_dir("prealloc");
        let path = dir.join("preallocated.log.tmp");
        write_file(&path, 1 << 20);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, 48 << 20).unwrap();
        drop(file);
        let mut p = PendingDeletion::file(path.clone(), 0);
        let steps = free_all(&mut p);
        // A step punches one chunk of data; the file's block count may drop by a block
        // of the file system's own too (ext4's extent tree: 4 MiB + 4 KiB was seen).
        let metadata_slack = 64 * 1024;
        assert!(
            steps.iter().all(|&b| b <= FILE_DELETE_CHUNK_BYTES + metadata_slack),
            "{steps:?}"
        );
        let sum: u64 = steps.iter().sum();
        assert!((48 << 20..=(48 << 20) + 65536).contains(&sum), "{steps:?}");
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_is_freed_file_by_file_then_removed() {
        let dir = temp_dir("dir");
        let partition = dir.join("t-0.abc-delete");
        fs::create_dir_all(&partition).unwrap();
        write_file(&partition.join("00000000000000000000.log"), 20 << 20);
        write_file(&partition.join("00000000000000000000.index"), 4096);
        write_file(&partition.join("partition.metadata"), 10);
        let mut p = PendingDeletion::dir(partition.clone(), 0);
        let steps = free_all(&mut p);
        // A step punches one chunk of data; the file's block count may drop by a block
        // of the file system's own too (ext4's extent tree: 4 MiB + 4 KiB was seen).
        let metadata_slack = 64 * 1024;
        assert!(
            steps.iter().all(|&b| b <= FILE_DELETE_CHUNK_BYTES + metadata_slack),
            "{steps:?}"
        );
        let sum: u64 = steps.iter().sum();
        assert!((20 << 20..=(20 << 20) + 65536).contains(&sum), "{steps:?}");
        assert!(!partition.exists());
        let mut gone = PendingDeletion::dir(dir.join("never-there"), 0);
        assert_eq!(gone.step().unwrap(), (0, true));
        fs::remove_dir_all(&dir).unwrap();
    }
}
