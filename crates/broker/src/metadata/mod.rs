//! Cluster metadata: the topics this broker knows, their ids, partition counts,
//! replication factors and config overrides.
//!
//! Contract: every change is written (atomically, fsynced) before it is visible, so a
//! topic a client saw created survives a crash. Stored as JSON in
//! `<first log dir>/fjord-metadata.json` on a single node; the Raft quorum of the
//! cluster replaces this file as the source of truth.

use crate::log::checkpoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Limits on what one request may create.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;
/// Kafka's `MAX_PARTITIONS_PER_BATCH`: the partitions one CreateTopics may ask for, all
/// its topics together (more is POLICY_VIOLATION, the whole request refused). Fjord
/// holds CreatePartitions and auto-creation by one Metadata request to it too: each
/// partition is made on the network thread that serves the request.
pub const PARTITIONS_PER_REQUEST_MAX: i64 = 10_000;
pub const TOPICS_MAX: usize = 100_000;
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Producer ids are handed out in blocks; the next block's start is stored first.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    topics: BTreeMap<String, TopicMetadata>,
    next_producer_id_block: i64,
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{0}': {1}")]
    InvalidTopic(String, String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("metadata I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Debug)]
pub struct TopicRegistry {
    path: PathBuf,
    state: RwLock<Stored>,
    /// `(next, end)` of the producer id block in use.
    producer_ids: std::sync::Mutex<(i64, i64)>,
}

/// Kafka's rule: 1..249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let bad = |why: &str| Err(MetadataError::InvalidTopic(name.to_string(), why.to_string()));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl TopicRegistry {
    pub fn open(log_dir: &Path) -> Result<TopicRegistry, MetadataError> {
        let path = log_dir.join("fjord-metadata.json");
        let stored: Stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(TopicRegistry {
            path,
            state: RwLock::new(stored),
            producer_ids: std::sync::Mutex::new((0, 0)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Stored> {
        crate::sync::read(&self.state)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Stored> {
        crate::sync::write(&self.state)
    }

    fn persist(&self, stored: &Stored) -> Result<(), MetadataError> {
        let bytes = serde_json::to_vec_pretty(stored).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        checkpoint::write_atomically(&self.path, &bytes)?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<TopicMetadata> {
        self.read().topics.get(name).cloned()
    }

    pub fn by_id(&self, id: uuid::Uuid) -> Option<TopicMetadata> {
        self.read().topics.values().find(|t| t.topic_id == id).cloned()
    }

    pub fn list(&self) -> Vec<TopicMetadata> {
        self.read().topics.values().cloned().collect()
    }

    /// Registers a new topic. `validate_only` checks everything and changes nothing.
    pub fn create(&self, topic: TopicMetadata, validate_only: bool) -> Result<TopicMetadata, MetadataError> {
        validate_topic_name(&topic.name)?;
        if topic.partitions < 1 || topic.partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetadataError::InvalidPartitions(format!(
                "{} is not in 1..={PARTITIONS_PER_TOPIC_MAX}",
                topic.partitions
            )));
        }
        let mut state = self.write();
        if state.topics.contains_key(&topic.name) {
            return Err(MetadataError::TopicExists(topic.name));
        }
        if state.topics.len() >= TOPICS_MAX {
            return Err(MetadataError::InvalidPartitions(format!(
                "the broker holds {TOPICS_MAX} topics already"
            )));
        }
        if validate_only {
            return Ok(topic);
        }
        state.topics.insert(topic.name.clone(), topic.clone());
        if let Err(e) = self.persist(&state) {
            state.topics.remove(&topic.name);
            return Err(e);
        }
        Ok(topic)
    }

    /// Removes a topic; if that cannot be stored (a full disk), nothing changes.
    pub fn delete(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        let mut state = self.write();
        let removed = state
            .topics
            .remove(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if let Err(e) = self.persist(&state) {
            state.topics.insert(name.to_string(), removed);
            return Err(e);
        }
        Ok(removed)
    }

    /// Replaces a topic's entry (partition count or configs changed).
    pub fn update(&self, topic: TopicMetadata) -> Result<(), MetadataError> {
        let mut state = self.write();
        if !state.topics.contains_key(&topic.name) {
            return Err(MetadataError::UnknownTopic(topic.name));
        }
        let name = topic.name.clone();
        let old = state.topics.insert(name.clone(), topic);
        if let Err(e) = self.persist(&state) {
            if let Some(old) = old {
                state.topics.insert(name, old);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Dynamic broker config overrides.
    pub fn broker_configs(&self) -> BTreeMap<String, String> {
        self.read().broker_configs.clone()
    }

    pub fn set_broker_configs(&self, configs: BTreeMap<String, String>) -> Result<(), MetadataError> {
        let mut state = self.write();
        let old = std::mem::replace(&mut state.broker_configs, configs);
        if let Err(e) = self.persist(&state) {
            state.broker_configs = old;
            return Err(e);
        }
        Ok(())
    }

    /// A producer id never handed out before, even across restarts.
    pub fn next_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = crate::sync::lock(&self.producer_ids);
        if ids.0 >= ids.1 {
            let mut state = self.write();
            let start = state.next_producer_id_block;
            state.next_producer_id_block = start + PRODUCER_ID_BLOCK;
            self.persist(&state)?;
            *ids = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }

    /// A change that cannot be stored (a full disk; here a directory where the
    /// temporary file goes) changes nothing: not in memory, not on disk.
    #[test]
    fn a_change_that_cannot_be_stored_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("fjord-metadata-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let registry = TopicRegistry::open(&dir).expect("open");
        registry.create(topic("a"), false).expect("create");
        let blocker = dir.join("fjord-metadata.tmp");
        std::fs::create_dir(&blocker).expect("blocker");
        assert!(registry.delete("a").is_err());
        assert!(registry.get("a").is_some(), "a failed delete keeps the topic");
        let mut wider = registry.get("a").expect("a");
        wider.partitions = 5;
        assert!(registry.update(wider).is_err());
        assert_eq!(
            registry.get("a").map(|t| t.partitions),
            Some(1),
            "a failed update keeps the old entry"
        );
        assert!(registry.create(topic("b"), false).is_err());
        assert!(registry.get("b").is_none(), "a failed create adds nothing");
        std::fs::remove_dir(&blocker).expect("unblock");
        registry.delete("a").expect("delete");
        let reopened = TopicRegistry::open(&dir).expect("reopen");
        assert!(reopened.list().is_empty(), "{:?}", reopened.list());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
