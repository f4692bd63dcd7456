//! The single node's metadata log: every change to the cluster metadata as a record
//! appended to `fjord-metadata.log`, on top of the snapshot `fjord-metadata.json`.
//!
//! Why a log: the registry used to rewrite (and fsync) the whole snapshot for every
//! change, so creating N topics wrote O(N²) bytes (2,000 topics: 351 MB). A change now
//! appends one record; the snapshot is rewritten once the log outgrows it, so each
//! byte of it is written a bounded number of times (amortised O(1) per change).
//!
//! On-disk format of the log, one entry per change:
//! `length: u32 BE | crc: u32 BE | payload: JSON MetadataRecord`, where `crc` is the
//! CRC-32C of the length's 4 bytes and the payload, and `length` is at least 2 (the
//! shortest JSON value). Zeros (a file whose size reached the disk before its data,
//! or the reserve below) never pass: the CRC-32C of nothing is 0, but of a zero length
//! field it is not, and length 0 is refused anyway.
//!
//! Contract:
//! - `append` returns once the record is on disk (fdatasync); a failed write leaves
//!   the log as it was (the torn tail is cut off, and the next append overwrites it).
//!   A failed fsync leaves it unknown what the disk holds (Linux may have dropped the
//!   pages, and reports that once): the log is then failed, and every later change
//!   refused until a restart replays what the disk has, as Kafka halts on a failed
//!   flush of its metadata log.
//! - Records are idempotent (a `TopicRecord` replaces, a `RemoveTopicRecord` of an
//!   absent topic is a no-op, producer id blocks only grow), so replaying a log over
//!   a snapshot that already holds its records (a crash between writing the snapshot
//!   and emptying the log) gives the same image.
//! - Blocks for `RESERVE_BYTES` past the log's end are kept allocated
//!   (`fallocate(KEEP_SIZE)`, so the file's size and its replay are unchanged): on a
//!   full disk, removals (a DeleteTopics, the rollback of a creation whose logs did not
//!   fit) are still recorded. A record that takes space (a new topic, a config) must
//!   leave half the reserve, so repeated refused creations cannot use it up.
//! - Opening stops at the first entry that is torn (short, or its CRC fails), as
//!   Kafka's log recovery does, and cuts the file there; an entry whose CRC holds but
//!   whose JSON does not parse is corruption, and refuses the open.
//!
//! The caller (`TopicRegistry`) holds its write lock across `append` and `apply`.

use super::{MetadataError, TopicMetadata};
use crate::log::checkpoint;
use crate::log::device_flush;
use crate::log::record_batch::crc32c;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Limit: bytes of one record's payload. A topic's configs come from one request,
/// which `socket.request.max.bytes` (100 MiB) bounds; the largest sane record (a
/// broker's config overrides) is a few KB.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The log is folded into a new snapshot once it is larger than the snapshot and
/// than this.
pub const SNAPSHOT_LOG_BYTES_MIN: u64 = 1024 * 1024;
const HEADER_BYTES: usize = 8;
/// The shortest payload: the shortest JSON value has 2 bytes (`{}`, `""`).
const PAYLOAD_BYTES_MIN: usize = 2;
/// Blocks kept allocated past the log's end for removals: some 400 topic removals.
pub const RESERVE_BYTES: u64 = 64 * 1024;

/// The metadata image: what the snapshot stores and the records change.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicMetadata>,
    pub next_producer_id_block: i64,
    /// Dynamic broker configs at the cluster-default level (resource name "").
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
    /// Dynamic broker configs of each node (resource name = its id).
    #[serde(default)]
    pub node_broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
}

/// One change, named as Kafka's metadata records (hence the common suffix).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MetadataRecord {
    /// A topic created, or its partition count or configs changed: the whole entry.
    TopicRecord(TopicMetadata),
    RemoveTopicRecord {
        name: String,
    },
    /// The start of the next block of producer ids.
    ProducerIdsRecord {
        next_producer_id_block: i64,
    },
    /// Dynamic broker configs of one level, all of them: `node_id` `None` for the
    /// cluster default, else that node's own.
    BrokerConfigsRecord {
        #[serde(default)]
        node_id: Option<i32>,
        configs: BTreeMap<String, String>,
    },
}

impl MetadataImage {
    /// Applies one record. Idempotent, so a replay over a newer snapshot is harmless.
    pub fn apply(&mut self, record: MetadataRecord) {
        match record {
            MetadataRecord::TopicRecord(t) => {
                self.topics.insert(t.name.clone(), t);
            }
            MetadataRecord::RemoveTopicRecord { name } => {
                self.topics.remove(&name);
            }
            MetadataRecord::ProducerIdsRecord { next_producer_id_block } => {
                self.next_producer_id_block = self.next_producer_id_block.max(next_producer_id_block);
            }
            MetadataRecord::BrokerConfigsRecord { node_id: None, configs } => self.broker_configs = configs,
            MetadataRecord::BrokerConfigsRecord {
                node_id: Some(node),
                configs,
            } => {
                if configs.is_empty() {
                    self.node_broker_configs.remove(&node);
                } else {
                    self.node_broker_configs.insert(node, configs);
                }
            }
        }
    }
}

/// The open log and its snapshot. Not thread-safe by itself: its owner's lock
/// serialises every call.
#[derive(Debug)]
pub struct MetadataLog {
    snapshot_path: PathBuf,
    file: File,
    /// Bytes of whole, durable entries; the next append goes here.
    log_bytes: u64,
    snapshot_bytes: u64,
    /// Blocks are allocated (or were when last topped up) up to here; `None` when the
    /// file system has no `fallocate`, so there is no reserve to keep.
    allocated_until: Option<u64>,
    /// Set by a failed fsync: why every later append is refused.
    failed: Option<String>,
}

/// The CRC of an entry: its length field and its payload.
fn entry_crc(length: [u8; 4], payload: &[u8]) -> u32 {
    let mut covered = Vec::with_capacity(4 + payload.len());
    covered.extend_from_slice(&length);
    covered.extend_from_slice(payload);
    crc32c(&covered)
}

/// One entry as written: header and payload.
fn encode_entry(payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut entry = Vec::with_capacity(HEADER_BYTES + payload.len());
    entry.extend_from_slice(&length);
    entry.extend_from_slice(&entry_crc(length, payload).to_be_bytes());
    entry.extend_from_slice(payload);
    entry
}

impl MetadataLog {
    /// Opens (creating if absent) the log in `dir` and returns it with the image the
    /// snapshot and the log's records give.
    pub fn open(dir: &Path) -> Result<(MetadataLog, MetadataImage), MetadataError> {
        let snapshot_path = dir.join("fjord-metadata.json");
        let (mut image, snapshot_bytes) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => (
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt(e.to_string()))?,
                bytes.len() as u64,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (MetadataImage::default(), 0),
            Err(e) => return Err(e.into()),
        };
        let log_path = dir.join("fjord-metadata.log");
        let existed = log_path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)?;
        if !existed {
            checkpoint::sync_dir(dir)?;
        }
        let bytes = std::fs::read(&log_path)?;
        let (records, valid) = decode_entries(&bytes)?;
        if valid < bytes.len() {
            tracing::warn!(
                path = %log_path.display(),
                dropped_bytes = bytes.len() - valid,
                "metadata log ends in a torn entry; cutting it off"
            );
            file.set_len(valid as u64)?;
            device_flush::sync_all(&file)?;
        }
        for r in records {
            image.apply(r);
        }
        let mut log = MetadataLog {
            snapshot_path,
            file,
            log_bytes: valid as u64,
            snapshot_bytes,
            allocated_until: Some(valid as u64),
            failed: None,
        };
        log.top_up_reserve();
        Ok((log, image))
    }

    /// Appends `record` durably. On failure nothing was appended, unless the fsync
    /// failed: then the log is failed (see the contract). `may_use_reserve`: the record
    /// frees space or undoes a change (a removal, a rollback), and may take the whole
    /// reserve; any other must leave half of it.
    pub fn append(&mut self, record: &MetadataRecord, may_use_reserve: bool) -> Result<(), MetadataError> {
        if let Some(why) = &self.failed {
            return Err(std::io::Error::other(why.clone()).into());
        }
        let payload = serde_json::to_vec(record).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        if payload.len() > RECORD_BYTES_MAX {
            return Err(MetadataError::Corrupt(format!(
                "a metadata record of {} bytes is over the {RECORD_BYTES_MAX} byte limit",
                payload.len()
            )));
        }
        assert!(payload.len() >= PAYLOAD_BYTES_MIN, "a record encodes to JSON");
        let entry = encode_entry(&payload);
        let end = self.log_bytes + entry.len() as u64;
        if !may_use_reserve && !self.leaves_half_the_reserve(end) {
            // Space may have been freed since the reserve last ran short.
            self.top_up_reserve();
            if !self.leaves_half_the_reserve(end) {
                return Err(std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()).into());
            }
        }
        if let Err(e) = self.file.write_all_at(&entry, self.log_bytes) {
            // Cut the torn entry so it cannot hold space; should that fail too, the
            // next append overwrites it from `log_bytes` and a reopen cuts the rest.
            let _ = self.file.set_len(self.log_bytes);
            // Cutting the file freed the blocks past its end, the reserve's too.
            self.allocated_until = self.allocated_until.map(|_| self.log_bytes);
            self.top_up_reserve();
            return Err(e.into());
        }
        if let Err(e) = device_flush::sync_data(&self.file) {
            return Err(self.fail(e).into());
        }
        self.log_bytes = end;
        self.top_up_reserve();
        Ok(())
    }

    /// Whether a record ending at `end` leaves half the reserve allocated past it.
    fn leaves_half_the_reserve(&self, end: u64) -> bool {
        self.allocated_until
            .is_none_or(|allocated| end + RESERVE_BYTES / 2 <= allocated)
    }

    /// Fails the log after a failed fsync; returns the error to report.
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        let why = format!("the metadata log failed an fsync ({e}); restart the broker");
        tracing::error!("{why}");
        self.failed = Some(why.clone());
        std::io::Error::other(why)
    }

    /// Allocates the blocks of the reserve that are missing. A full disk leaves it
    /// short, which `append` sees; it is topped up again at the next append.
    fn top_up_reserve(&mut self) {
        let Some(allocated) = self.allocated_until else { return };
        let want = self.log_bytes + RESERVE_BYTES;
        if allocated >= want {
            return;
        }
        let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&self.file, flags, self.log_bytes, RESERVE_BYTES) {
            Ok(()) => self.allocated_until = Some(want),
            Err(rustix::io::Errno::OPNOTSUPP) => {
                tracing::warn!("the metadata log's file system has no fallocate: no space is reserved for removals");
                self.allocated_until = None;
            }
            // Blocks up to the log's end are allocated: they hold it.
            Err(e) => {
                tracing::debug!(error = %e, "reserving space for the metadata log failed");
                self.allocated_until = Some(allocated.max(self.log_bytes));
            }
        }
    }

    /// Whether the log has outgrown its snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.log_bytes > self.snapshot_bytes.max(SNAPSHOT_LOG_BYTES_MIN)
    }

    /// Writes `image` (which must hold every record appended) as the new snapshot
    /// and empties the log. A failure leaves the old snapshot and the whole log,
    /// which still give the same image.
    pub fn snapshot(&mut self, image: &MetadataImage) -> Result<(), MetadataError> {
        if let Some(why) = &self.failed {
            return Err(std::io::Error::other(why.clone()).into());
        }
        let bytes = serde_json::to_vec(image).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        checkpoint::write_atomically(&self.snapshot_path, &bytes)?;
        self.snapshot_bytes = bytes.len() as u64;
        self.file.set_len(0)?;
        // The file is empty now, its blocks (the reserve's too) freed, whether or not
        // the fsync below succeeds.
        self.log_bytes = 0;
        self.allocated_until = self.allocated_until.map(|_| 0);
        if let Err(e) = device_flush::sync_all(&self.file) {
            // Whether the disk has the empty file is unknown: new entries written from
            // 0 could be followed by old ones at a restart.
            return Err(self.fail(e).into());
        }
        self.top_up_reserve();
        Ok(())
    }
}

/// The records of the whole entries at the start of `bytes`, and the length they
/// take: decoding stops at the first torn entry.
fn decode_entries(bytes: &[u8]) -> Result<(Vec<MetadataRecord>, usize), MetadataError> {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER_BYTES {
        let header = &bytes[at..at + HEADER_BYTES];
        let length_field = [header[0], header[1], header[2], header[3]];
        let length = u32::from_be_bytes(length_field) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if !(PAYLOAD_BYTES_MIN..=RECORD_BYTES_MAX).contains(&length) || bytes.len() - at - HEADER_BYTES < length {
            break;
        }
        let payload = &bytes[at + HEADER_BYTES..at + HEADER_BYTES + length];
        if entry_crc(length_field, payload) != crc {
            break;
        }
        let record = serde_json::from_slice(payload)
            .map_err(|e| MetadataError::Corrupt(format!("metadata record at byte {at}: {e}")))?;
        records.push(record);
        at += HEADER_BYTES + length;
    }
    Ok((records, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fjord-metadata-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn topic(name: &str, partitions: i32) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }

    /// A torn last entry (a crash mid-append) is cut off at open; the entries before it
    /// stay, and appends after the reopen are read back.
    #[test]
    fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
        let dir = temp_dir("torn");
        let (mut log, _) = MetadataLog::open(&dir).expect("open");
        log.append(&MetadataRecord::TopicRecord(topic("a", 1)), false)
            .expect("append");
        log.append(&MetadataRecord::TopicRecord(topic("b", 2)), false)
            .expect("append");
        drop(log);
        let path = dir.join("fjord-metadata.log");
        let len = std::fs::metadata(&path).expect("len").len();
        let file = OpenOptions::new().write(true).open(&path).expect("file");
        file.set_len(len - 3).expect("tear");
        drop(file);
        let (mut log, image) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), ["a"]);
        log.append(&MetadataRecord::RemoveTopicRecord { name: "a".into() }, true)
            .expect("append");
        log.append(&MetadataRecord::TopicRecord(topic("c", 3)), false)
            .expect("append");
        drop(log);
        let (_, image) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), ["c"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Zeros after the last entry (the file's size reached the disk before its data, as
    /// a power cut can leave it) are cut off like any torn tail: they never pass as an
    /// entry.
    #[test]
    fn zeros_after_the_last_entry_are_cut_off() {
        let dir = temp_dir("zeros");
        let (mut log, _) = MetadataLog::open(&dir).expect("open");
        log.append(&MetadataRecord::TopicRecord(topic("a", 1)), false)
            .expect("append");
        drop(log);
        let path = dir.join("fjord-metadata.log");
        let len = std::fs::metadata(&path).expect("len").len();
        let file = OpenOptions::new().write(true).open(&path).expect("file");
        file.set_len(len + 4096).expect("zeros");
        drop(file);
        let (mut log, image) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            std::fs::metadata(&path).expect("len").len(),
            len,
            "the zeros are cut off"
        );
        log.append(&MetadataRecord::TopicRecord(topic("b", 1)), false)
            .expect("append");
        drop(log);
        let (_, image) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), ["a", "b"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A record whose CRC holds but whose content does not parse is corruption, not a
    /// torn write: the open is refused rather than the metadata silently cut short.
    #[test]
    fn a_whole_entry_that_does_not_parse_refuses_the_open() {
        let dir = temp_dir("corrupt");
        let entry = encode_entry(b"{\"NotARecord\":1}");
        std::fs::write(dir.join("fjord-metadata.log"), &entry).expect("write");
        assert!(matches!(MetadataLog::open(&dir), Err(MetadataError::Corrupt(_))));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Replaying a log over a snapshot that already holds its records (a crash between
    /// the snapshot's rename and emptying the log) gives the same image.
    #[test]
    fn a_log_replayed_over_its_own_snapshot_changes_nothing() {
        let dir = temp_dir("replay");
        let (mut log, mut image) = MetadataLog::open(&dir).expect("open");
        let records = [
            MetadataRecord::TopicRecord(topic("a", 1)),
            MetadataRecord::TopicRecord(topic("b", 1)),
            MetadataRecord::RemoveTopicRecord { name: "a".into() },
            MetadataRecord::ProducerIdsRecord {
                next_producer_id_block: 2000,
            },
            MetadataRecord::ProducerIdsRecord {
                next_producer_id_block: 1000,
            },
        ];
        for r in records {
            log.append(&r, false).expect("append");
            image.apply(r);
        }
        let log_bytes = std::fs::read(dir.join("fjord-metadata.log")).expect("log");
        log.snapshot(&image).expect("snapshot");
        drop(log);
        std::fs::write(dir.join("fjord-metadata.log"), &log_bytes).expect("restore the log");
        let (_, replayed) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(replayed, image);
        assert_eq!(replayed.next_producer_id_block, 2000);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
