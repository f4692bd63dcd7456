//! Cluster metadata: the topics this broker knows, their ids, partition counts,
//! replication factors and config overrides.
//!
//! Contract: every change is stored (fsynced) before it is visible, so a topic a client
//! saw created survives a crash. Stored on a single node in the first log dir as a
//! snapshot, `fjord-metadata.json`, and the records since, `fjord-metadata.log` (see
//! `log.rs`); the Raft quorum of the cluster replaces these files as the source of
//! truth.

mod log;

use log::{MetadataImage, MetadataLog, MetadataRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
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
/// The name Kafka keeps for its own metadata log, which no client may create.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's internal topics (`Topic.isInternal`): exactly these names, not every name
/// that starts with `__` (a user may create `__foo`).
pub fn is_internal_topic(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}
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

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Kafka's words: each variant's message is the one Kafka's controller sends.
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{0}': {1}")]
    InvalidTopic(String, String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A request Kafka refuses whole as malformed (INVALID_REQUEST).
    #[error("{0}")]
    InvalidRequest(String),
    /// A topic config without a value, which CreateTopics cannot set.
    #[error("{0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("metadata I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file is corrupt: {0}")]
    Corrupt(String),
}

/// The topics, producer id blocks and dynamic broker configs of this broker.
///
/// Contract: a change is in the metadata log (fsynced) before any reader sees it, and
/// a change that cannot be stored changes nothing. Lock: `state`'s write lock is held
/// across the append and the change to the image, so readers see changes in log order.
#[derive(Debug)]
pub struct TopicRegistry {
    state: RwLock<State>,
    /// `(next, end)` of the producer id block in use.
    producer_ids: std::sync::Mutex<(i64, i64)>,
}

#[derive(Debug)]
struct State {
    image: MetadataImage,
    index: TopicIndex,
    log: MetadataLog,
}

/// Lookups the image's topics by other keys than their name.
#[derive(Debug, Default)]
struct TopicIndex {
    /// Topic id → name, so a lookup by id is not a scan of every topic.
    by_id: HashMap<uuid::Uuid, String>,
    /// Names with '.' or '_', by Kafka's `unifyCollisionChars` ('.' as '_'): two such
    /// names would share a metric name, so Kafka refuses the second topic.
    colliding: HashMap<String, BTreeSet<String>>,
}

/// Kafka's `Topic.unifyCollisionChars`, for names that have a collision char.
fn unified_name(name: &str) -> Option<String> {
    (name.contains('.') || name.contains('_')).then(|| name.replace('.', "_"))
}

impl TopicIndex {
    fn insert(&mut self, topic: &TopicMetadata) {
        self.by_id.insert(topic.topic_id, topic.name.clone());
        if let Some(u) = unified_name(&topic.name) {
            self.colliding.entry(u).or_default().insert(topic.name.clone());
        }
    }

    fn remove(&mut self, topic: &TopicMetadata) {
        self.by_id.remove(&topic.topic_id);
        if let Some(u) = unified_name(&topic.name) {
            if let Some(names) = self.colliding.get_mut(&u) {
                names.remove(&topic.name);
                if names.is_empty() {
                    self.colliding.remove(&u);
                }
            }
        }
    }
}

impl State {
    /// Stores `record`, then applies it. A full log is folded into a new snapshot; if
    /// that fails the log simply stays longer, and holds every change still.
    /// `may_use_reserve`: the change frees space or undoes one (see `MetadataLog`).
    fn commit(&mut self, record: MetadataRecord, may_use_reserve: bool) -> Result<(), MetadataError> {
        self.log.append(&record, may_use_reserve)?;
        let name = match &record {
            MetadataRecord::TopicRecord(t) => Some(&t.name),
            MetadataRecord::RemoveTopicRecord { name } => Some(name),
            _ => None,
        };
        if let Some(old) = name.and_then(|n| self.image.topics.get(n)) {
            self.index.remove(old);
        }
        if let MetadataRecord::TopicRecord(t) = &record {
            self.index.insert(t);
        }
        self.image.apply(record);
        if self.log.wants_snapshot() {
            if let Err(e) = self.log.snapshot(&self.image) {
                tracing::warn!(error = %e, "writing a metadata snapshot failed; the log keeps every change");
            }
        }
        Ok(())
    }
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
        let (log, image) = MetadataLog::open(log_dir)?;
        let mut index = TopicIndex::default();
        for t in image.topics.values() {
            index.insert(t);
        }
        Ok(TopicRegistry {
            state: RwLock::new(State { image, index, log }),
            producer_ids: std::sync::Mutex::new((0, 0)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        crate::sync::read(&self.state)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        crate::sync::write(&self.state)
    }

    pub fn get(&self, name: &str) -> Option<TopicMetadata> {
        self.read().image.topics.get(name).cloned()
    }

    /// The topic's partition count, without copying its entry.
    pub fn partition_count(&self, name: &str) -> Option<i32> {
        self.read().image.topics.get(name).map(|t| t.partitions)
    }

    pub fn by_id(&self, id: uuid::Uuid) -> Option<TopicMetadata> {
        let state = self.read();
        let name = state.index.by_id.get(&id)?;
        state.image.topics.get(name).cloned()
    }

    pub fn list(&self) -> Vec<TopicMetadata> {
        self.read().image.topics.values().cloned().collect()
    }

    /// Registers a new topic. `validate_only` checks everything and changes nothing.
    pub fn create(&self, topic: TopicMetadata, validate_only: bool) -> Result<TopicMetadata, MetadataError> {
        validate_topic_name(&topic.name)?;
        if topic.partitions < 1 || topic.partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetadataError::InvalidPartitions(if topic.partitions < 1 {
                "Number of partitions was set to an invalid non-positive value.".to_string()
            } else {
                format!(
                    "Number of partitions {} is above this broker's limit of {PARTITIONS_PER_TOPIC_MAX} per topic.",
                    topic.partitions
                )
            }));
        }
        let mut state = self.write();
        if state.image.topics.contains_key(&topic.name) {
            return Err(MetadataError::TopicExists(topic.name));
        }
        if let Some(other) = unified_name(&topic.name)
            .and_then(|u| state.index.colliding.get(&u))
            .and_then(|names| names.iter().next())
        {
            let why = format!("collides with existing topic: {other}");
            return Err(MetadataError::InvalidTopic(topic.name, why));
        }
        if state.image.topics.len() >= TOPICS_MAX {
            return Err(MetadataError::InvalidPartitions(format!(
                "the broker holds {TOPICS_MAX} topics already"
            )));
        }
        if !validate_only {
            state.commit(MetadataRecord::TopicRecord(topic.clone()), false)?;
        }
        Ok(topic)
    }

    /// Registers a topic found on disk but not in the metadata (the metadata lost):
    /// its data is there already, so no rule on new names refuses it.
    pub fn restore(&self, topic: TopicMetadata) -> Result<(), MetadataError> {
        let mut state = self.write();
        if state.image.topics.contains_key(&topic.name) {
            return Err(MetadataError::TopicExists(topic.name));
        }
        state.commit(MetadataRecord::TopicRecord(topic), false)
    }

    /// Removes a topic; if that cannot be stored (a full disk), nothing changes.
    pub fn delete(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        let mut state = self.write();
        let topic = state
            .image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        state.commit(MetadataRecord::RemoveTopicRecord { name: name.to_string() }, true)?;
        Ok(topic)
    }

    /// Replaces a topic's entry (partition count or configs changed).
    pub fn update(&self, topic: TopicMetadata) -> Result<(), MetadataError> {
        self.replace(topic, false)
    }

    /// Puts back a topic's entry as it was before an update whose logs failed (new
    /// partitions on a full disk): may use the space kept for such undoing.
    pub fn roll_back(&self, topic: TopicMetadata) -> Result<(), MetadataError> {
        self.replace(topic, true)
    }

    fn replace(&self, topic: TopicMetadata, undoing: bool) -> Result<(), MetadataError> {
        let mut state = self.write();
        // Another id is another topic under the same name (this one deleted and made
        // again since the caller read it): the topic the caller changes is gone.
        if state.image.topics.get(&topic.name).map(|t| t.topic_id) != Some(topic.topic_id) {
            return Err(MetadataError::UnknownTopic(topic.name));
        }
        state.commit(MetadataRecord::TopicRecord(topic), undoing)
    }

    /// Dynamic broker configs: the cluster default (`node_id` `None`) or a node's own.
    pub fn broker_configs(&self, node_id: Option<i32>) -> BTreeMap<String, String> {
        let state = self.read();
        match node_id {
            None => state.image.broker_configs.clone(),
            Some(node) => state.image.node_broker_configs.get(&node).cloned().unwrap_or_default(),
        }
    }

    pub fn set_broker_configs(
        &self,
        node_id: Option<i32>,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        self.write()
            .commit(MetadataRecord::BrokerConfigsRecord { node_id, configs }, false)
    }

    /// A producer id never handed out before, even across restarts.
    pub fn next_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = crate::sync::lock(&self.producer_ids);
        if ids.0 >= ids.1 {
            let mut state = self.write();
            let start = state.image.next_producer_id_block;
            let next_producer_id_block = start + PRODUCER_ID_BLOCK;
            state.commit(MetadataRecord::ProducerIdsRecord { next_producer_id_block }, false)?;
            *ids = (start, next_producer_id_block);
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

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fjord-metadata-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// Lookups by id and the collision rule follow creations, updates and deletions,
    /// and come back the same from the snapshot and the log after a reopen.
    #[test]
    fn ids_and_colliding_names_are_indexed_across_changes_and_reopens() {
        let dir = temp_dir("index");
        let registry = TopicRegistry::open(&dir).expect("open");
        let a = registry.create(topic("a.b"), false).expect("create");
        let collision = registry.create(topic("a_b"), false);
        assert!(
            matches!(&collision, Err(MetadataError::InvalidTopic(n, why)) if n == "a_b" && why.contains("a.b")),
            "{collision:?}"
        );
        assert!(
            registry.create(topic("a_b"), true).is_err(),
            "validate_only checks it too"
        );
        let c = registry.create(topic("c"), false).expect("create");
        let mut wider = c.clone();
        wider.partitions = 3;
        registry.update(wider).expect("update");
        let mut other = topic("c");
        other.partitions = 4;
        assert!(
            matches!(registry.update(other), Err(MetadataError::UnknownTopic(_))),
            "an update of another topic of the same name is refused"
        );
        assert_eq!(registry.by_id(c.topic_id).map(|t| t.partitions), Some(3));
        let reopened = TopicRegistry::open(&dir).expect("reopen");
        assert_eq!(reopened.by_id(a.topic_id).map(|t| t.name), Some("a.b".into()));
        assert_eq!(reopened.by_id(c.topic_id).map(|t| t.partitions), Some(3));
        reopened.delete("a.b").expect("delete");
        assert!(reopened.by_id(a.topic_id).is_none());
        reopened.create(topic("a_b"), false).expect("the name is free again");
        drop(reopened);
        let names: Vec<String> = TopicRegistry::open(&dir)
            .expect("reopen")
            .list()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["a_b", "c"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Many changes fold the log into snapshots; what a reopen gives is every change,
    /// and the log stays bounded by the snapshot's size.
    #[test]
    fn the_log_is_folded_into_snapshots_and_loses_nothing() {
        let dir = temp_dir("fold");
        let registry = TopicRegistry::open(&dir).expect("open");
        let mut ids = Vec::new();
        for i in 0..12_000 {
            ids.push(
                registry
                    .create(topic(&format!("topic-{i}")), false)
                    .expect("create")
                    .topic_id,
            );
            if i % 3 == 0 {
                registry.delete(&format!("topic-{i}")).expect("delete");
            }
        }
        let pid = registry.next_producer_id().expect("producer id");
        let snapshot = std::fs::metadata(dir.join("fjord-metadata.json"))
            .expect("snapshot")
            .len();
        let log = std::fs::metadata(dir.join("fjord-metadata.log")).expect("log").len();
        assert!(snapshot > 0, "a snapshot was written");
        assert!(
            log <= snapshot.max(log::SNAPSHOT_LOG_BYTES_MIN) + 4096,
            "log {log}, snapshot {snapshot}"
        );
        drop(registry);
        let reopened = TopicRegistry::open(&dir).expect("reopen");
        assert_eq!(reopened.list().len(), 8000);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(reopened.by_id(*id).is_some(), i % 3 != 0, "topic-{i}");
        }
        assert!(reopened.next_producer_id().expect("producer id") > pid);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
