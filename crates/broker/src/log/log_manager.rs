//! `LogManager`: every partition log in every `log.dirs` directory, their checkpoints,
//! recovery at start-up and the clean-shutdown marker.
//!
//! Per log dir: `meta.properties`, `recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`, and
//! `.kafka_cleanshutdown` while the broker is stopped cleanly (removed at start-up, so a
//! kill -9 leaves none and the next start recovers past the recovery points).
//! Lock: `logs` is a `RwLock` over the map only; each log has its own lock. Held
//! together, the maps are taken in the order `logs`, `placement`, `offline_logs`.

use super::checkpoint;
use super::deletion::{DeletedFile, PendingDeletion};
use super::log_dir_failure::LogDirFailureChannel;
use super::unified_log::LoadOffsets;
use super::{LogError, TopicPartition, UnifiedLog};
use crate::config::TopicConfig;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const LOG_START_FILE: &str = "log-start-offset-checkpoint";
const REPLICATION_FILE: &str = "replication-offset-checkpoint";

/// Limit: deleted partition directories and segment files waiting to be freed
/// (`log::deletion`); past it, one is removed at once.
const PENDING_DELETIONS_MAX: usize = 100_000;

#[derive(Debug)]
pub struct LogManager {
    pub log_dirs: Vec<PathBuf>,
    /// Which dirs are offline after an I/O failure (`log_dir_failure`).
    failure: Arc<LogDirFailureChannel>,
    /// Partitions whose log is in an offline dir: never created elsewhere meanwhile.
    offline_logs: RwLock<HashSet<TopicPartition>>,
    logs: RwLock<HashMap<TopicPartition, Arc<UnifiedLog>>>,
    /// Which log dir holds each partition.
    placement: RwLock<HashMap<TopicPartition, usize>>,
    /// Renamed directories of deleted partitions and `.deleted` segment files, each
    /// with when it may be freed (`free_deleted`). Any left at a restart are removed by
    /// `scan` and the logs' load.
    pending_deletions: std::sync::Mutex<VecDeque<PendingDeletion>>,
    /// Every log but the internal topics' appends with O_DIRECT (`fjord.log.direct.io`).
    pub direct_io: bool,
    /// Per log dir: an append there failed for want of space since its deleted data was
    /// last freed (`dirs_out_of_space`, `free_deleted`).
    out_of_space: Vec<AtomicBool>,
}

/// A partition directory found at start-up, before its topic's config is known.
#[derive(Debug)]
pub struct FoundLog {
    pub tp: TopicPartition,
    pub dir_index: usize,
    pub topic_id: Option<uuid::Uuid>,
}

impl LogManager {
    /// Creates the log dirs and `meta.properties`; refuses a dir that belongs to another
    /// node. A dir that cannot be created or read is offline from the start, as in
    /// Kafka, unless it is the first (it holds the cluster metadata) or the only one left.
    pub fn new(log_dirs: Vec<PathBuf>, cluster_id: &str, node_id: i32) -> Result<LogManager, LogError> {
        if log_dirs.is_empty() {
            return Err(LogError::NoLogDir);
        }
        let failure = Arc::new(LogDirFailureChannel::new(log_dirs.clone()));
        for (i, dir) in log_dirs.iter().enumerate() {
            match validate_log_dir(dir, cluster_id, node_id) {
                Ok(()) => {}
                Err(LogError::Io(e)) if i > 0 => {
                    failure.maybe_add_offline_log_dir(i, &format!("cannot be created or validated: {e}"))
                }
                Err(e) => return Err(e),
            }
        }
        if failure.online_count() == 0 {
            return Err(LogError::NoLogDir);
        }
        Ok(LogManager {
            failure,
            offline_logs: RwLock::new(HashSet::new()),
            logs: RwLock::new(HashMap::new()),
            placement: RwLock::new(HashMap::new()),
            pending_deletions: std::sync::Mutex::new(VecDeque::new()),
            out_of_space: log_dirs.iter().map(|_| AtomicBool::new(false)).collect(),
            log_dirs,
            direct_io: false,
        })
    }

    /// The channel logs report I/O failures to, for the broker's handler.
    pub fn failure_channel(&self) -> &Arc<LogDirFailureChannel> {
        &self.failure
    }

    pub fn is_dir_offline(&self, index: usize) -> bool {
        self.failure.has_offline_log_dir(index)
    }

    /// Whether `tp`'s log is in an offline dir (or could not be placed while one was).
    pub fn is_offline(&self, tp: &TopicPartition) -> bool {
        crate::sync::read(&self.offline_logs).contains(tp)
    }

    /// Takes the logs of dir `index`, gone offline, out of service (Kafka's
    /// `handleLogDirFailure`): requests for them get KAFKA_STORAGE_ERROR from now on,
    /// and nothing flushes or checkpoints them; their files stay as they are for the
    /// next start to recover. Returns whether the broker can go on: not when the dir
    /// holds the cluster metadata (the first) or no dir is left online.
    pub fn handle_log_dir_failure(&self, index: usize) -> bool {
        assert!(self.is_dir_offline(index), "only an offline dir's logs are taken out");
        let mut logs = crate::sync::write(&self.logs);
        let mut placement = crate::sync::write(&self.placement);
        let mut offline = crate::sync::write(&self.offline_logs);
        let taken: Vec<TopicPartition> = placement
            .iter()
            .filter(|(_, i)| **i == index)
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut removed = Vec::with_capacity(taken.len());
        for tp in taken {
            removed.extend(logs.remove(&tp));
            placement.remove(&tp);
            offline.insert(tp);
        }
        let count = offline.len();
        drop((logs, placement, offline));
        // Their waiting fetches answer now, with KAFKA_STORAGE_ERROR.
        for log in removed {
            log.wake_fetch_waiters();
        }
        tracing::error!(dir = %self.log_dirs[index].display(), partitions = count, "stopped serving the partitions of an offline log dir");
        index != 0 && self.failure.online_count() > 0
    }

    /// The cluster id stored in the first log dir, if any.
    pub fn stored_cluster_id(log_dirs: &[PathBuf]) -> Option<String> {
        let dir = log_dirs.first()?;
        checkpoint::read_meta_properties(&dir.join("meta.properties"))
            .ok()
            .flatten()?
            .get("cluster.id")
            .cloned()
    }

    /// Partition directories present on disk; deleted ones (`-delete`) are scheduled
    /// to be freed.
    pub fn scan(&self) -> Result<Vec<FoundLog>, LogError> {
        let mut out = Vec::new();
        for i in 0..self.log_dirs.len() {
            if self.is_dir_offline(i) {
                continue;
            }
            match self.scan_dir(i) {
                Ok(found) => out.extend(found),
                Err(LogError::Io(e)) if i > 0 => self.failure.maybe_add_offline_log_dir(i, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn scan_dir(&self, i: usize) -> Result<Vec<FoundLog>, LogError> {
        let mut out = Vec::new();
        let dir = &self.log_dirs[i];
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with("-delete") {
                // Left by a stop before it was freed: freed gradually from now.
                self.schedule_deletion(PendingDeletion::dir(entry.path(), i64::MIN))?;
                continue;
            }
            if let Some(tp) = TopicPartition::from_dir_name(&name) {
                let topic_id = checkpoint::read_partition_metadata(&entry.path())?;
                out.push(FoundLog {
                    tp,
                    dir_index: i,
                    topic_id,
                });
            }
        }
        Ok(out)
    }

    /// Whether the previous run stopped cleanly (every dir has the marker). Removes the
    /// markers: from here on a crash must be recovered from.
    pub fn take_clean_shutdown(&self) -> Result<bool, LogError> {
        let mut clean = true;
        for (i, dir) in self.log_dirs.iter().enumerate() {
            if self.is_dir_offline(i) {
                continue;
            }
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            if !marker.exists() {
                clean = false;
                continue;
            }
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if i > 0 => self.failure.maybe_add_offline_log_dir(i, &e),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(clean)
    }

    /// Loads one found log with its topic's config.
    /// `None` when the log's dir is offline, or goes offline because the log cannot be
    /// read (an I/O error; in the first dir, which holds the metadata, that is an error).
    pub fn load(
        &self,
        found: &FoundLog,
        topic_id: uuid::Uuid,
        config: Arc<TopicConfig>,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Option<Arc<UnifiedLog>>, LogError> {
        let i = found.dir_index;
        let loaded = if self.is_dir_offline(i) {
            Err(LogError::LogDirOffline)
        } else {
            let offsets = self.checkpointed_offsets(found, clean_shutdown);
            self.load_found(found, topic_id, config, offsets, now_ms)
        };
        match loaded {
            Ok(log) => Ok(Some(log)),
            Err(LogError::Io(e)) if i > 0 => {
                let error = format!("loading {}: {e}", found.tp);
                self.failure.maybe_add_offline_log_dir(i, &error);
                crate::sync::write(&self.offline_logs).insert(found.tp.clone());
                Ok(None)
            }
            Err(LogError::LogDirOffline) => {
                crate::sync::write(&self.offline_logs).insert(found.tp.clone());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// What the dir's checkpoints say of a found log (missing or unreadable: from 0).
    fn checkpointed_offsets(&self, found: &FoundLog, clean_shutdown: bool) -> LoadOffsets {
        let dir = &self.log_dirs[found.dir_index];
        let key = (found.tp.topic.clone(), found.tp.partition);
        let recovery = checkpoint::read_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE)).unwrap_or_default();
        let starts = checkpoint::read_offset_checkpoint(&dir.join(LOG_START_FILE)).unwrap_or_default();
        let hws = checkpoint::read_offset_checkpoint(&dir.join(REPLICATION_FILE)).unwrap_or_default();
        LoadOffsets {
            recovery_point: recovery.get(&key).copied().unwrap_or(0),
            log_start_offset: starts.get(&key).copied().unwrap_or(0),
            high_watermark: hws.get(&key).copied(),
            clean_shutdown,
        }
    }

    fn load_found(
        &self,
        found: &FoundLog,
        topic_id: uuid::Uuid,
        config: Arc<TopicConfig>,
        offsets: LoadOffsets,
        now_ms: i64,
    ) -> Result<Arc<UnifiedLog>, LogError> {
        let path = self.log_dirs[found.dir_index].join(found.tp.dir_name());
        let log = Arc::new(UnifiedLog::load(&path, found.tp.clone(), config, offsets, now_ms)?);
        if found.topic_id != Some(topic_id) {
            checkpoint::write_partition_metadata(&path, topic_id)?;
        }
        self.insert(found.tp.clone(), found.dir_index, log.clone())?;
        Ok(log)
    }

    /// Puts a loaded log in service; `LogDirOffline` (and the partition offline) when its
    /// dir went offline meanwhile.
    fn insert(&self, tp: TopicPartition, dir_index: usize, log: Arc<UnifiedLog>) -> Result<(), LogError> {
        log.set_failure_channel(self.failure.clone(), dir_index);
        // Internal topics (`__consumer_offsets`) stay buffered: their appends are small and
        // frequent (one per OffsetCommit), and a direct write of a 4 KiB block each would
        // cap a partition at the device's write latency (measured: 16,800 commits/s
        // direct, 76,000 buffered).
        if self.direct_io && !tp.topic.starts_with("__") {
            match log.enable_direct_io() {
                Ok(true) => {}
                Ok(false) => tracing::debug!(partition = %tp, "O_DIRECT refused by the filesystem; buffered appends"),
                Err(e) => tracing::warn!(partition = %tp, error = %e, "O_DIRECT failed; buffered appends"),
            }
        }
        self.put_in_service(tp, dir_index, log)
    }

    /// Under the maps' locks, in their order: a dir that went offline meanwhile (its
    /// handler may already have taken the dir's logs out) gets this log as offline too;
    /// a dir going offline later is seen by its handler, which takes these locks after
    /// the flag is set.
    fn put_in_service(&self, tp: TopicPartition, dir_index: usize, log: Arc<UnifiedLog>) -> Result<(), LogError> {
        let mut logs = crate::sync::write(&self.logs);
        let mut placement = crate::sync::write(&self.placement);
        if self.is_dir_offline(dir_index) {
            crate::sync::write(&self.offline_logs).insert(tp);
            return Err(LogError::LogDirOffline);
        }
        logs.insert(tp.clone(), log);
        placement.insert(tp, dir_index);
        Ok(())
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<UnifiedLog>> {
        crate::sync::read(&self.logs).get(tp).cloned()
    }

    /// The log of `tp`, created in the least-used online log dir when it does not
    /// exist. As Kafka's `getOrCreateLog`: a partition that is not new (`is_new`) is
    /// never created while a dir is offline, since its log may be in that dir; it is
    /// offline then, until the dir is back.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: uuid::Uuid,
        config: Arc<TopicConfig>,
        is_new: bool,
        now_ms: i64,
    ) -> Result<Arc<UnifiedLog>, LogError> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        if self.is_offline(tp) {
            return Err(LogError::LogDirOffline);
        }
        if !is_new && self.failure.online_count() < self.log_dirs.len() {
            crate::sync::write(&self.offline_logs).insert(tp.clone());
            return Err(LogError::LogDirOffline);
        }
        let dir_index = {
            let placement = crate::sync::read(&self.placement);
            (0..self.log_dirs.len())
                .filter(|i| !self.is_dir_offline(*i))
                .min_by_key(|i| placement.values().filter(|d| *d == i).count())
                .ok_or(LogError::NoLogDir)?
        };
        let path = self.log_dirs[dir_index].join(tp.dir_name());
        let existed = path.exists();
        let offsets = LoadOffsets {
            clean_shutdown: true,
            ..Default::default()
        };
        let created = UnifiedLog::load(&path, tp.clone(), config, offsets, now_ms).and_then(|log| {
            checkpoint::write_partition_metadata(&path, topic_id)?;
            Ok(Arc::new(log))
        });
        let log = created.inspect_err(|e| {
            self.report_io_failure(dir_index, e);
            // A directory left half made (a full disk refused its files) would be
            // found at the next start and bring its topic back as an orphan.
            let removed = if existed { Ok(()) } else { fs::remove_dir_all(&path) };
            match removed {
                Err(undo) if undo.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(dir = %path.display(), error = %undo, "removing a partially created log failed")
                }
                _ => {}
            }
        })?;
        self.insert(tp.clone(), dir_index, log.clone())?;
        Ok(log)
    }

    /// Takes dir `index` offline for an I/O error, but for a full disk's.
    fn report_io_failure(&self, index: usize, e: &LogError) {
        if let LogError::Io(io) = e {
            if !super::is_refused(io) {
                self.failure
                    .maybe_add_offline_log_dir(index, &format!("{}: {io}", self.log_dirs[index].display()));
            }
        }
    }

    pub fn all(&self) -> Vec<Arc<UnifiedLog>> {
        crate::sync::read(&self.logs).values().cloned().collect()
    }

    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        crate::sync::read(&self.placement)
            .get(tp)
            .map(|i| self.log_dirs[*i].clone())
    }

    /// Deletes the partition: its directory is renamed at once and freed
    /// `file.delete.delay.ms` later (`free_deleted`), so a DeleteTopics never waits for
    /// the filesystem to free a partition's data. Returns the renamed directory, if the
    /// partition had a log.
    pub fn delete(&self, tp: &TopicPartition, now_ms: i64) -> Result<Option<PathBuf>, LogError> {
        let log = crate::sync::write(&self.logs).remove(tp);
        let placement = crate::sync::write(&self.placement).remove(tp);
        let Some(log) = log else {
            return Ok(None);
        };
        if let Some(i) = placement {
            // A dir that cannot take one more full segment is short of space, whether
            // or not an append has failed there yet (another program may have filled
            // it): the deleted partition's data is freed without waiting out its delay.
            let segment_bytes = u64::try_from(log.config().segment_bytes).unwrap_or(0);
            let short = volume_bytes(&self.log_dirs[i]).is_ok_and(|(_, usable)| usable < segment_bytes);
            if log.take_out_of_space() || short {
                self.out_of_space[i].store(true, Ordering::Relaxed);
            }
        }
        let due_ms = now_ms.saturating_add(log.config().file_delete_delay_ms);
        let (renamed, handles) = match log.delete() {
            Ok(deleted) => deleted,
            // Removed by someone else: nothing is left to come back.
            Err(LogError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(partition = %tp, "the partition's directory was already gone");
                return Ok(None);
            }
            Err(e) => {
                // The directory stayed, the log whole: back in service, or offline with
                // its dir when the failure takes the dir offline. Never out of both,
                // serving nothing while its data stays on disk.
                if let Some(i) = placement {
                    self.report_io_failure(i, &e);
                    let _ = self.put_in_service(tp.clone(), i, log);
                }
                return Err(e);
            }
        };
        self.schedule_deletion(PendingDeletion::dir(renamed.clone(), due_ms).holding(handles))?;
        Ok(Some(renamed))
    }

    /// Frees the deleted directories or files at `paths` now, in one go, without
    /// waiting out their delay or pacing: for a full disk, whose space they are. A
    /// reader still holding one of their files reads on; that file's blocks are freed
    /// when its last handle closes. Blocking.
    pub fn free_now(&self, paths: &[PathBuf]) -> Result<(), LogError> {
        crate::sync::lock(&self.pending_deletions).retain(|d| !paths.iter().any(|p| p == d.path()));
        for path in paths {
            remove_now(path)?;
        }
        Ok(())
    }

    fn schedule_deletion(&self, deletion: PendingDeletion) -> Result<(), LogError> {
        let mut pending = crate::sync::lock(&self.pending_deletions);
        if pending.len() < PENDING_DELETIONS_MAX {
            pending.push_back(deletion);
            return Ok(());
        }
        drop(pending);
        remove_now(deletion.path())
    }

    /// Takes the segment files each log renamed `.deleted` (retention, DeleteRecords,
    /// compaction) to be freed `file.delete.delay.ms` from `now_ms`.
    pub fn collect_deleted_segments(&self, now_ms: i64) -> Result<(), LogError> {
        for log in self.all() {
            let files = log.take_deleted_segment_files();
            if files.is_empty() {
                continue;
            }
            let due_ms = now_ms.saturating_add(log.config().file_delete_delay_ms);
            self.schedule_deleted_files(files, due_ms)?;
        }
        Ok(())
    }

    fn schedule_deleted_files(&self, files: Vec<DeletedFile>, due_ms: i64) -> Result<(), LogError> {
        for file in files {
            let handles = file.handle.into_iter().collect();
            self.schedule_deletion(PendingDeletion::file(file.path, due_ms).holding(handles))?;
        }
        Ok(())
    }

    /// The log dirs where an append failed for want of space since their deleted data
    /// was last freed. Takes the marks of the logs into their dirs'.
    pub fn dirs_out_of_space(&self) -> Vec<PathBuf> {
        let logs = crate::sync::read(&self.logs);
        let placement = crate::sync::read(&self.placement);
        for (tp, log) in logs.iter() {
            if log.take_out_of_space() {
                if let Some(i) = placement.get(tp) {
                    self.out_of_space[*i].store(true, Ordering::Relaxed);
                }
            }
        }
        self.log_dirs
            .iter()
            .zip(&self.out_of_space)
            .filter(|(_, short)| short.load(Ordering::Relaxed))
            .map(|(dir, _)| dir.clone())
            .collect()
    }

    /// Frees some deleted data whose delay is over, or that lies in a dir out of space
    /// (`dirs_out_of_space`: there the delay gives way, since appends fail until space
    /// is freed), and that no reader holds any more: steps (`PendingDeletion::step`)
    /// until one frees blocks, at most `FILE_DELETE_CHUNK_BYTES`. Returns the bytes
    /// freed, 0 when nothing is due; then the dirs out of space have nothing more to
    /// free, and their logs' marks are cleared (an append that fails again sets them).
    /// Blocking; one caller at a time (the broker's deletion task), which paces the calls.
    pub fn free_deleted(&self, now_ms: i64) -> u64 {
        let out_of_space = self.dirs_out_of_space();
        let eligible = |d: &PendingDeletion| {
            !d.in_use() && (d.due_ms <= now_ms || out_of_space.iter().any(|dir| d.path().starts_with(dir)))
        };
        loop {
            let next = {
                let mut pending = crate::sync::lock(&self.pending_deletions);
                match pending.iter().position(eligible) {
                    Some(i) => pending.remove(i),
                    None => None,
                }
            };
            let Some(mut deletion) = next else {
                self.clear_out_of_space(&out_of_space);
                return 0;
            };
            match deletion.step() {
                Ok((freed, done)) => {
                    if !done {
                        crate::sync::lock(&self.pending_deletions).push_front(deletion);
                    }
                    if freed > 0 {
                        return freed;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %deletion.path().display(), error = %e, "freeing deleted data gradually failed; removing it at once");
                    if let Err(e) = remove_now(deletion.path()) {
                        tracing::error!(path = %deletion.path().display(), error = %e, "removing deleted data failed");
                    }
                }
            }
        }
    }

    fn clear_out_of_space(&self, dirs: &[PathBuf]) {
        for (dir, short) in self.log_dirs.iter().zip(&self.out_of_space) {
            if dirs.contains(dir) {
                short.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Writes the three offset checkpoints of every log dir.
    /// An offline dir is skipped; a dir whose checkpoints fail with an I/O error goes
    /// offline, the others are still written, and the first error is returned.
    pub fn checkpoint(&self) -> Result<(), LogError> {
        let mut first_error = None;
        for i in 0..self.log_dirs.len() {
            if self.is_dir_offline(i) {
                continue;
            }
            if let Err(e) = self.checkpoint_dir(i) {
                self.report_io_failure(i, &e);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn checkpoint_dir(&self, i: usize) -> Result<(), LogError> {
        let dir = &self.log_dirs[i];
        let logs = crate::sync::read(&self.logs).clone();
        let placement = crate::sync::read(&self.placement).clone();
        let mut recovery = BTreeMap::new();
        let mut starts = BTreeMap::new();
        let mut hws = BTreeMap::new();
        for (tp, log) in logs.iter().filter(|(tp, _)| placement.get(*tp) == Some(&i)) {
            let key = (tp.topic.clone(), tp.partition);
            let (lso, hw, _) = log.offsets();
            recovery.insert(key.clone(), log.recovery_point());
            starts.insert(key.clone(), lso);
            hws.insert(key, hw);
        }
        checkpoint::write_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE), &recovery)?;
        checkpoint::write_offset_checkpoint(&dir.join(LOG_START_FILE), &starts)?;
        checkpoint::write_offset_checkpoint(&dir.join(REPLICATION_FILE), &hws)?;
        Ok(())
    }

    /// Flushes and closes every log, writes checkpoints and the clean-shutdown markers.
    /// A log that fails to close (a full disk) does not stop the others from closing;
    /// its dir gets no marker, so the next start recovers it, and the first error is
    /// returned once the rest is done.
    pub fn shutdown(&self, now_ms: i64) -> Result<(), LogError> {
        let placement = crate::sync::read(&self.placement).clone();
        // An offline dir gets no marker: its logs were not closed.
        let mut failed_dirs: Vec<bool> = (0..self.log_dirs.len()).map(|i| self.is_dir_offline(i)).collect();
        let mut first_error = None;
        for log in self.all() {
            if let Err(e) = log.close(now_ms) {
                tracing::error!(partition = %log.topic_partition, error = %e, "closing log failed; it is recovered at the next start");
                if let Some(i) = placement.get(&log.topic_partition) {
                    failed_dirs[*i] = true;
                }
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint() {
            failed_dirs.iter_mut().for_each(|f| *f = true);
            first_error.get_or_insert(e);
        }
        for (dir, failed) in self.log_dirs.iter().zip(failed_dirs) {
            if !failed {
                if let Err(e) = fs::write(dir.join(CLEAN_SHUTDOWN_FILE), b"") {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Creates `dir` if needed and checks or writes its `meta.properties`.
fn validate_log_dir(dir: &std::path::Path, cluster_id: &str, node_id: i32) -> Result<(), LogError> {
    fs::create_dir_all(dir)?;
    let meta_path = dir.join("meta.properties");
    match checkpoint::read_meta_properties(&meta_path)? {
        Some(meta) => {
            let stored = meta
                .get("node.id")
                .or_else(|| meta.get("broker.id"))
                .cloned()
                .unwrap_or_default();
            if stored != node_id.to_string() {
                return Err(LogError::Corrupt(format!(
                    "{} belongs to node.id {stored}, not {node_id}",
                    meta_path.display()
                )));
            }
        }
        None => checkpoint::write_meta_properties(&meta_path, cluster_id, node_id, uuid::Uuid::new_v4())?,
    }
    Ok(())
}

/// The size of the volume `dir` is on and the bytes usable there, as DescribeLogDirs
/// v4+ reports them (Kafka's `FileStore.getTotalSpace` and `getUsableSpace`: the
/// blocks an unprivileged writer may still take).
pub fn volume_bytes(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let v = rustix::fs::statvfs(dir)?;
    Ok((
        v.f_blocks.saturating_mul(v.f_frsize),
        v.f_bavail.saturating_mul(v.f_frsize),
    ))
}

/// Removes a deleted directory or file in one go (the fallbacks of gradual freeing).
fn remove_now(path: &std::path::Path) -> Result<(), LogError> {
    let removed = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicConfig;
    use crate::log::unified_log::FetchIsolation;
    use bytes::Bytes;

    /// A log manager on a new temp dir, with one log `t-0` of `config`.
    /// Forty batches of ten keyed records each (timestamp 1,000: long past any
    /// retention), committed.
    fn append_forty_batches(log: &UnifiedLog) {
        for b in 0..40u64 {
            let entries: Vec<(Bytes, Option<Bytes>)> = (0..10)
                .map(|i| (Bytes::from(format!("k{b}-{i}")), Some(Bytes::from(vec![b as u8; 64]))))
                .collect();
            let batch = crate::log::record_batch::encode_keyed_batch(&entries, 1_000).expect("encode");
            let info = log.append_as_leader(&batch, 0, 1_000).expect("append");
            log.update_high_watermark(info.last_offset + 1);
        }
    }

    /// DeleteRecords moves the log start offset and removes only the segments wholly
    /// below it, whatever their timestamps. It used to run retention with a "now" of
    /// i64::MIN, which wrapped in release builds and deleted every rolled segment.
    #[test]
    fn delete_records_removes_only_what_lies_below_the_new_start() {
        let (dir, _manager, log) = manager_with_log(
            "delete-records",
            TopicConfig {
                segment_bytes: 4096,
                ..TopicConfig::default()
            },
        );
        append_forty_batches(&log);
        let segments = log.segment_count();
        assert!(segments >= 10, "{segments} segments");
        assert_eq!(log.delete_records_before(15).expect("delete records"), 15);
        assert_eq!(log.log_start_offset(), 15);
        let left = log.segment_count();
        assert!(
            left >= segments - 2,
            "{segments} segments, {left} left: only those below offset 15 may go"
        );
        let read = log
            .read(15, 1 << 20, FetchIsolation::HighWatermark, true)
            .expect("read from the new start");
        assert!(!read.records.read_to_bytes().expect("bytes").is_empty());
        let _ = fs::remove_dir_all(dir);
    }

    fn manager_with_log(name: &str, config: TopicConfig) -> (PathBuf, LogManager, Arc<UnifiedLog>) {
        let dir = std::env::temp_dir().join(format!("fjord-log-manager-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let manager = LogManager::new(vec![dir.clone()], "cluster", 1).expect("log manager");
        let log = manager
            .get_or_create(
                &TopicPartition::new("t", 0),
                uuid::Uuid::new_v4(),
                Arc::new(config),
                true,
                0,
            )
            .expect("log");
        (dir, manager, log)
    }

    /// A fetch's `FileRecords` is sent after the log's lock is gone, maybe long after:
    /// a segment deleted meanwhile must read back the same bytes until that reader is
    /// done, so it is freed only then (a punched hole would read as zeros). Segments no
    /// reader holds are freed once their delay is over.
    #[test]
    fn a_deleted_segment_is_freed_only_once_its_readers_are_done() {
        let (dir, manager, log) = manager_with_log(
            "readers",
            TopicConfig {
                segment_bytes: 4096,
                file_delete_delay_ms: 0,
                ..TopicConfig::default()
            },
        );
        append_forty_batches(&log);
        let held = log
            .read(0, 1 << 20, FetchIsolation::HighWatermark, true)
            .expect("read")
            .records;
        let bytes = held.read_to_bytes().expect("read held");
        assert!(!bytes.is_empty() && bytes.iter().any(|b| *b != 0));
        let (_, hw, _) = log.offsets();
        log.delete_records_before(hw).expect("delete records");
        // Only the segment a reader holds keeps its handle (and a file descriptor).
        let deleted = log.take_deleted_segment_files();
        let with_handle: Vec<_> = deleted.iter().filter(|d| d.handle.is_some()).map(|d| &d.path).collect();
        assert_eq!(with_handle.len(), 1, "{deleted:?}");
        assert!(
            with_handle[0].ends_with("00000000000000000000.log.deleted"),
            "{with_handle:?}"
        );
        manager.schedule_deleted_files(deleted, 0).expect("schedule");
        let first = dir.join("t-0").join("00000000000000000000.log.deleted");
        let second = dir.join("t-0").join(format!("{:020}.log.deleted", 40));
        assert!(first.exists() && second.exists(), "segments renamed .deleted");
        while manager.free_deleted(1) > 0 {}
        assert!(!second.exists(), "a segment no reader holds is freed");
        assert!(first.exists(), "the held segment waits for its reader");
        assert_eq!(
            held.read_to_bytes().expect("read held"),
            bytes,
            "the reader reads what it was given"
        );
        drop(held);
        while manager.free_deleted(1) > 0 {}
        assert!(!first.exists(), "freed once its reader is done");
        fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A batch header on disk that does not parse is corruption in one segment, as
    /// Kafka's `CorruptRecordException`: the read gets CORRUPT_MESSAGE, and the dir
    /// stays online for every other read and append (taking the first dir offline
    /// would stop the broker).
    #[test]
    fn a_corrupt_batch_on_disk_is_corrupt_message_not_a_failed_dir() {
        let (dir, manager, log) = manager_with_log("corrupt", TopicConfig::default());
        let mut batch_bytes = 0;
        for b in 0..3u8 {
            let entries: Vec<(Bytes, Option<Bytes>)> = vec![(Bytes::from(vec![b]), Some(Bytes::from(vec![b; 100])))];
            let batch = crate::log::record_batch::encode_keyed_batch(&entries, 1_000).expect("encode");
            batch_bytes = batch.len() as u64;
            let info = log.append_as_leader(&batch, 0, 1_000).expect("append");
            log.update_high_watermark(info.last_offset + 1);
        }
        // The second batch's magic byte (16 bytes into its header), on disk.
        let segment = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("t-0").join("00000000000000000000.log"))
            .expect("open segment");
        std::os::unix::fs::FileExt::write_all_at(&segment, &[9], batch_bytes + 16).expect("corrupt");
        let read = |offset| log.read(offset, 1 << 20, FetchIsolation::HighWatermark, true);
        let err = read(2).expect_err("the scan for offset 2 crosses the corrupt header");
        assert!(matches!(err, LogError::Corrupt(_)), "{err:?}");
        assert_eq!(
            crate::protocol::errors::log_error_code(&err),
            crate::protocol::errors::code(kafka_protocol::error::ResponseError::CorruptMessage)
        );
        assert_eq!(manager.failure_channel().online_count(), 1, "the dir stays online");
        assert!(read(0).is_ok(), "reads before the corrupt batch go on");
        let entries: Vec<(Bytes, Option<Bytes>)> = vec![(Bytes::from_static(b"k"), None)];
        let batch = crate::log::record_batch::encode_keyed_batch(&entries, 1_000).expect("encode");
        log.append_as_leader(&batch, 0, 1_000).expect("appends go on");
        fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A log loaded while its dir went offline (the dir's handler may have taken the
    /// other logs out already) is offline too, never put in service.
    #[test]
    fn a_log_loaded_while_its_dir_went_offline_is_offline() {
        let root = std::env::temp_dir().join(format!("fjord-log-manager-race-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dirs = vec![root.join("a"), root.join("b")];
        let manager = LogManager::new(dirs.clone(), "cluster", 1).expect("log manager");
        let tp = TopicPartition::new("t", 0);
        let config = Arc::new(TopicConfig::default());
        let log = UnifiedLog::load(&dirs[1].join("t-0"), tp.clone(), config, LoadOffsets::default(), 0).expect("load");
        manager
            .failure_channel()
            .maybe_add_offline_log_dir(1, &"an injected failure");
        assert!(matches!(
            manager.insert(tp.clone(), 1, Arc::new(log)),
            Err(LogError::LogDirOffline)
        ));
        assert!(manager.get(&tp).is_none() && manager.is_offline(&tp));
        fs::remove_dir_all(&root).expect("clean up");
    }

    /// A partition whose directory cannot be renamed for deletion (immutable, here;
    /// an I/O error on a failing disk) is not deleted: its log stays, offline with its
    /// dir, rather than vanishing from service while its data stays on disk (and comes
    /// back at the next start as a topic nobody deleted).
    #[test]
    fn a_partition_whose_rename_fails_is_not_deleted() {
        let (dir, manager, log) = manager_with_log("rename", TopicConfig::default());
        let partition_dir = dir.join("t-0");
        let immutable = |on: bool| {
            let flag = if on { "+i" } else { "-i" };
            std::process::Command::new("chattr")
                .arg(flag)
                .arg(&partition_dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !immutable(true) {
            eprintln!("skipped: chattr +i needs root and a filesystem with the flag");
            fs::remove_dir_all(&dir).expect("clean up");
            return;
        }
        let tp = TopicPartition::new("t", 0);
        let deleted = manager.delete(&tp, 0);
        assert!(immutable(false), "chattr -i");
        assert!(matches!(deleted, Err(LogError::Io(_))), "{deleted:?}");
        assert!(partition_dir.is_dir(), "the data stays where it was");
        assert!(manager.is_offline(&tp), "and the partition is offline with its dir");
        assert_eq!(manager.failure_channel().online_count(), 0);
        assert!(
            partition_dir.join("00000000000000000000.log").is_file(),
            "its segment too"
        );
        drop(log);
        fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A full disk reported by a write is spared (nothing was written), but not one
    /// reported by an fsync, which may have dropped acknowledged dirty pages.
    #[test]
    fn a_full_disk_reported_by_fsync_is_a_failed_dir() {
        let enospc = || std::io::Error::from_raw_os_error(28);
        assert!(crate::log::is_out_of_space(&enospc()));
        assert!(!crate::log::is_out_of_space(&crate::log::fsync_failed(enospc())));
        assert!(!LogError::Io(crate::log::fsync_failed(enospc())).is_out_of_space());
    }
}
