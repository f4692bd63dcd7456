//! Storage in Kafka's on-disk format.
//!
//! - `record_batch`: record batch v2 as raw bytes (validate, patch offsets, walk).
//! - `log_validator`: Kafka's `LogValidator` for produced batches, on raw bytes.
//! - `compression`: recompression to a topic's `compression.type`, bounded.
//! - `index`: `OffsetIndex` and `TimeIndex`.
//! - `direct_io`: `DirectWriter`, O_DIRECT appends to the active segment.
//! - `device_flush`: fsyncs of log files, counted: O_DIRECT appends step aside meanwhile.
//! - `segment`: `LogSegment`, one `.log` file with its indexes.
//! - `file_records`: `FileRecords`, a slice of a segment that a fetch sends.
//! - `producer_state`: `ProducerStateManager` for idempotent producers.
//! - `checkpoint`: Kafka's checkpoint and metadata text files.
//! - `leader_epoch_cache`: Kafka's `LeaderEpochFileCache` lookups (end offset of an epoch).
//! - `local_log`: `LocalLog`, a partition log's state under its lock (segments, offsets).
//! - `unified_log`: `UnifiedLog`, one partition's log.
//! - `offset_lookup`: `UnifiedLog`'s lookups by time and by leader epoch.
//! - `cleaner`: `LogCleaner`, compaction of `cleanup.policy=compact` logs.
//! - `deletion`: deleted segments and partitions freed gradually, after their readers.
//! - `log_dir_failure`: `LogDirFailureChannel`, log dirs taken offline after I/O failures.
//! - `log_manager`: `LogManager`, every log in every `log.dirs` directory.

pub mod checkpoint;
pub mod cleaner;
pub mod compression;
pub mod deletion;
pub mod device_flush;
pub mod direct_io;
pub mod file_records;
pub mod index;
pub mod leader_epoch_cache;
mod local_log;
pub mod log_dir_failure;
pub mod log_manager;
pub mod log_validator;
pub mod offset_lookup;
pub mod producer_state;
pub mod record_batch;
pub mod segment;
pub mod unified_log;

pub use file_records::FileRecords;
pub use log_manager::LogManager;
pub use offset_lookup::TimestampAndOffset;
pub use unified_log::{AppendInfo, FetchDataInfo, FetchIsolation, UnifiedLog};

use std::fmt;

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Kafka's directory name: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a partition directory name; `None` for anything else.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok()?;
        if topic.is_empty() || partition < 0 {
            return None;
        }
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Storage errors. Mapped to Kafka error codes in `protocol::errors`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Batch(#[from] record_batch::BatchError),
    #[error(transparent)]
    Producer(#[from] producer_state::ProducerError),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// The request's leader epoch is older than the partition's (Kafka's
    /// `checkCurrentLeaderEpoch`): the client's metadata is stale.
    #[error("leader epoch {requested} is older than the current leader epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// The request's leader epoch is newer than the partition's: this broker is behind.
    #[error("leader epoch {requested} is newer than the current leader epoch {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    /// Kafka's `RecordBatchTooLargeException` (RECORD_LIST_TOO_LARGE).
    #[error("Message batch size is {size} bytes in append to partition {partition} which exceeds the maximum configured segment size of {segment_bytes}.")]
    RecordBatchTooLarge {
        size: usize,
        partition: String,
        segment_bytes: i32,
    },
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("the log was deleted")]
    Deleted,
    #[error("no log directory is usable")]
    NoLogDir,
    #[error("the log's directory is offline after an I/O failure")]
    LogDirOffline,
}

impl LogError {
    /// Whether a write failed for want of space (a full disk, or a quota on it).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, LogError::Io(e) if is_out_of_space(e))
    }
}

/// An fsync's error, made one that takes the log dir offline whatever its kind
/// (`UnifiedLog::guard` spares a full disk). Why: a refused write changed nothing, but
/// a failed fsync may have dropped the dirty pages it could not write, acknowledged
/// data among them, and Linux reports that once: the next fsync succeeds, the recovery
/// point would move past bytes that are not on disk, and a restart would trust them.
/// Kafka halts the dir on any flush failure for the same reason.
pub fn fsync_failed(e: std::io::Error) -> std::io::Error {
    std::io::Error::other(format!("fsync failed: {e}"))
}

/// An error that refused one operation and says nothing of the disk: no space, or no
/// file descriptor left (the process's or the system's), so it takes no log dir
/// offline. A partition created past the open-file limit failed alone; it used to take
/// the first dir offline, which stops the broker.
pub fn is_refused(e: &std::io::Error) -> bool {
    let descriptors = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE].map(|e| Some(e.raw_os_error()));
    is_out_of_space(e) || descriptors.contains(&e.raw_os_error())
}

/// Whether an I/O error is a full disk or an exhausted quota.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
