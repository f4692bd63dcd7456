//! Topic lifecycle on this broker: loading at start-up, creating (with their partition
//! logs), adding partitions, changing configs, deleting. Metadata is written first, then
//! logs, so a crash in between leaves a topic whose missing logs are created at start-up.

use super::{Broker, BrokerError};
use crate::config::{ConfigError, TopicConfig};
use crate::log::{LogError, TopicPartition, UnifiedLog};
use crate::metadata::{MetadataError, TopicMetadata};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Loads every partition found on disk and creates logs the metadata names but the
/// disk lacks. Returns the number of partitions loaded.
pub fn load_all(broker: &Broker) -> Result<usize, BrokerError> {
    let clean = broker.logs.take_clean_shutdown()?;
    let found = broker.logs.scan()?;
    let now = broker.time.now_ms();
    let defaults = broker.topic_defaults()?;
    // Partitions on disk whose topic the metadata lacks (metadata file lost): re-register.
    let mut orphans: HashMap<String, (i32, Option<uuid::Uuid>)> = HashMap::new();
    for f in &found {
        if broker.topics.get(&f.tp.topic).is_none() {
            let e = orphans.entry(f.tp.topic.clone()).or_insert((0, f.topic_id));
            e.0 = e.0.max(f.tp.partition + 1);
        }
    }
    for (name, (partitions, id)) in orphans {
        tracing::warn!(topic = %name, "topic found on disk but not in metadata; re-registering");
        let t = TopicMetadata {
            name,
            topic_id: id.unwrap_or_else(uuid::Uuid::new_v4),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        broker.topics.restore(t)?;
    }
    let mut count = 0;
    for f in &found {
        let Some(topic) = broker.topics.get(&f.tp.topic) else {
            continue;
        };
        let config = Arc::new(defaults.with_overrides(&topic.configs)?);
        let Some(log) = broker.logs.load(f, topic.topic_id, config, clean, now)? else {
            continue;
        };
        // This broker is the partition's only replica, so the whole ISR has everything
        // in its log: the high watermark is the log end, as Kafka's leader computes it.
        log.update_high_watermark(log.log_end_offset());
        become_leader(&log);
        count += 1;
    }
    for topic in broker.topics.list() {
        count += ensure_logs(broker, &topic, &defaults, false)?;
    }
    // Checkpoints only spare the next start some recovery, and the background task
    // writes them again: a dir that cannot take them (full, or gone offline) does not
    // stop this start.
    if let Err(e) = broker.logs.checkpoint() {
        tracing::warn!(error = %e, "writing checkpoints at start-up failed");
    }
    Ok(count)
}

/// Creates the logs of `topic` that do not exist yet; returns how many it created.
/// At start-up (`is_new` false) a missing log is not created while a log dir is
/// offline, as its data may be there: the partition is offline instead.
fn ensure_logs(
    broker: &Broker,
    topic: &TopicMetadata,
    defaults: &TopicConfig,
    is_new: bool,
) -> Result<usize, BrokerError> {
    let config = Arc::new(defaults.with_overrides(&topic.configs)?);
    let mut created = 0;
    for p in 0..topic.partitions {
        let tp = TopicPartition::new(topic.name.clone(), p);
        if broker.logs.get(&tp).is_some() {
            continue;
        }
        let now_ms = broker.time.now_ms();
        match broker
            .logs
            .get_or_create(&tp, topic.topic_id, config.clone(), is_new, now_ms)
        {
            Ok(log) => {
                become_leader(&log);
                created += 1
            }
            Err(LogError::LogDirOffline) if !is_new => {
                tracing::warn!(partition = %tp, "not created while a log dir is offline; the partition is offline")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(created)
}

/// Kafka's `validateManualPartitionAssignment` for one partition's replicas: not empty,
/// each a registered broker (only this one here), none twice (reported in id order, as
/// Kafka), and as many as `replication_factor` when the topic has one.
pub fn check_replica_assignment(
    broker: &Broker,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), MetadataError> {
    let bad = |why: String| Err(MetadataError::InvalidReplicaAssignment(why));
    if replicas.is_empty() {
        return bad("The manual partition assignment includes an empty replica list.".into());
    }
    let mut ids = replicas.to_vec();
    ids.sort_unstable();
    for (i, id) in ids.iter().enumerate() {
        if *id != broker.node_id() {
            return bad(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            ));
        }
        if i > 0 && ids[i - 1] == *id {
            return bad(format!(
                "The manual partition assignment includes the broker {id} more than once."
            ));
        }
    }
    match replication_factor {
        Some(rf) if rf != ids.len() => bad(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
            ids.len()
        )),
        _ => Ok(()),
    }
}

/// What this broker does on leading a partition's log, as Kafka's `Partition.makeLeader`:
/// its leader epoch starts at the log end. A checkpoint that cannot be written only
/// warns: the first append writes it again, and refuses to append without it.
fn become_leader(log: &UnifiedLog) {
    if let Err(e) = log.assign_epoch_start_offset(LEADER_EPOCH) {
        tracing::warn!(partition = %log.topic_partition, error = %e, "recording the leader epoch failed");
    }
}

/// A request to create one topic, as CreateTopics or auto-creation asks it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub fn create_topic(broker: &Broker, req: NewTopic, validate_only: bool) -> Result<TopicMetadata, MetadataError> {
    let _admin = crate::sync::lock(&broker.topic_admin);
    let partitions = if req.partitions == -1 {
        broker.config.num_partitions
    } else {
        req.partitions
    };
    let rf = if req.replication_factor == -1 {
        broker.config.default_replication_factor
    } else {
        req.replication_factor
    };
    // In the order of Kafka's `ReplicationControlManager.createTopics`: the configs,
    // then the replication factor and the partition count as given, then whether the
    // brokers can hold that many replicas; with Kafka's messages.
    let defaults = broker.topic_defaults()?;
    defaults.with_overrides(&req.configs)?.validate_values()?;
    let brokers = 1;
    if rf < 1 {
        return Err(MetadataError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    if partitions < 1 {
        return Err(MetadataError::InvalidPartitions(
            "Number of partitions was set to an invalid non-positive value.".into(),
        ));
    }
    if rf as i32 > brokers {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {brokers} broker(s) are registered."
        )));
    }
    let topic = TopicMetadata {
        name: req.name,
        topic_id: uuid::Uuid::new_v4(),
        partitions,
        replication_factor: rf,
        configs: req.configs,
    };
    let topic = broker.topics.create(topic, validate_only)?;
    if !validate_only {
        if let Err(e) = ensure_logs(broker, &topic, &defaults, true) {
            // Undone, so that the topic is not left registered without its logs:
            // Metadata would show it led while Produce answers UNKNOWN_TOPIC_OR_PARTITION
            // and a retried create TOPIC_ALREADY_EXISTS.
            tracing::warn!(topic = %topic.name, error = %e, "creating the topic's logs failed; rolling it back");
            if let Err(undo) = delete_topic_locked(broker, &topic.name) {
                tracing::error!(topic = %topic.name, error = %undo, "rolling back a failed creation failed; delete the topic");
            }
            return Err(to_metadata_error(e));
        }
        tracing::info!(topic = %topic.name, partitions, "created topic");
    }
    Ok(topic)
}

/// Deletes the topic's data, then its registration. In that order so that a full disk
/// can be recovered from: taking a partition's directory away needs no space, and
/// when the registry cannot be written for want of space, the topic's data is freed at
/// once (not `file.delete.delay.ms` later, gradually) and the write tried again, so one
/// DeleteTopics frees a full disk. Should that fail too, the topic stays listed,
/// without data, until a retried delete stores its removal (a restart in between
/// brings it back empty).
pub fn delete_topic(broker: &Broker, name: &str) -> Result<TopicMetadata, MetadataError> {
    let _admin = crate::sync::lock(&broker.topic_admin);
    delete_topic_locked(broker, name)
}

/// `delete_topic`, for a caller that holds `topic_admin`.
fn delete_topic_locked(broker: &Broker, name: &str) -> Result<TopicMetadata, MetadataError> {
    let topic = broker
        .topics
        .get(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    // A partition in an offline dir cannot be deleted until the dir is back: deleting
    // the rest would leave a topic whose data returns with the dir.
    if let Some(p) = (0..topic.partitions).find(|p| broker.logs.is_offline(&TopicPartition::new(name, *p))) {
        return Err(MetadataError::Io(std::io::Error::other(format!(
            "partition {name}-{p} is in an offline log dir"
        ))));
    }
    let mut renamed = Vec::new();
    for p in 0..topic.partitions {
        match broker.logs.delete(&TopicPartition::new(name, p), broker.time.now_ms()) {
            Ok(dir) => renamed.extend(dir),
            Err(e) => {
                // Stops before the registry: the partition's data stays (in service or
                // offline with its dir), and a topic deleted without it would come back
                // at the next start. The partitions deleted so far stay deleted; a
                // retried DeleteTopics finishes the job.
                tracing::error!(topic = name, partition = p, error = %e, "deleting log failed; the topic stays");
                return Err(to_metadata_error(e.into()));
            }
        }
    }
    let topic = match broker.topics.delete(name) {
        Err(MetadataError::Io(e)) if crate::log::is_out_of_space(&e) => {
            tracing::warn!(topic = name, error = %e, "no space to store a topic's deletion; freeing its data now");
            broker
                .logs
                .free_now(&renamed)
                .map_err(|e| to_metadata_error(e.into()))?;
            broker.topics.delete(name)?
        }
        deleted => deleted?,
    };
    // The deletion is stored; checkpoints without the topic follow at the next tick
    // if they cannot be written now (the background task writes them again).
    if let Err(e) = broker.logs.checkpoint() {
        tracing::warn!(topic = name, error = %e, "writing checkpoints after a topic deletion failed");
    }
    tracing::info!(topic = name, "deleted topic");
    Ok(topic)
}

/// Adds partitions to `name` up to `count`, each on the replicas `assignments` names if
/// given (one list per new partition), with the checks and messages of Kafka's
/// `ReplicationControlManager.createPartitions`.
pub fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), MetadataError> {
    let _admin = crate::sync::lock(&broker.topic_admin);
    let mut topic = broker
        .topics
        .get(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    if count == topic.partitions {
        return Err(MetadataError::InvalidPartitions(format!(
            "Topic already has {count} partition(s)."
        )));
    }
    if count < topic.partitions {
        return Err(MetadataError::InvalidPartitions(format!(
            "The topic {name} currently has {} partition(s); {count} would not be an increase.",
            topic.partitions
        )));
    }
    if let Some(assignments) = assignments {
        let additional = count - topic.partitions;
        if assignments.len() != additional as usize {
            return Err(MetadataError::InvalidReplicaAssignment(format!(
                "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            )));
        }
        let replication_factor = usize::try_from(topic.replication_factor).unwrap_or(0);
        for replicas in assignments {
            check_replica_assignment(broker, replicas, Some(replication_factor))?;
        }
    }
    if count > crate::metadata::PARTITIONS_PER_TOPIC_MAX {
        return Err(MetadataError::InvalidPartitions(format!("{count} exceeds the limit")));
    }
    if validate_only {
        return Ok(());
    }
    let before = topic.clone();
    topic.partitions = count;
    let defaults = broker.topic_defaults()?;
    broker.topics.update(topic.clone())?;
    if let Err(e) = ensure_logs(broker, &topic, &defaults, true) {
        tracing::warn!(topic = name, error = %e, "creating the new partitions' logs failed; rolling them back");
        roll_back_partitions(broker, &before, count);
        return Err(to_metadata_error(e));
    }
    Ok(())
}

/// Undoes a CreatePartitions whose logs could not all be made: the new partitions'
/// logs are deleted and the topic's old count stored again. What cannot be undone is
/// logged; the partitions then stay registered, as a failed creation left them.
fn roll_back_partitions(broker: &Broker, before: &TopicMetadata, count: i32) {
    for p in before.partitions..count {
        let tp = TopicPartition::new(before.name.clone(), p);
        if let Err(e) = broker.logs.delete(&tp, broker.time.now_ms()) {
            tracing::error!(partition = %tp, error = %e, "rolling back a new partition failed");
            return;
        }
    }
    if let Err(e) = broker.topics.roll_back(before.clone()) {
        tracing::error!(topic = %before.name, error = %e, "storing the old partition count failed");
    }
}

/// Replaces a topic's config overrides and applies them to its logs. The caller holds
/// `topic_admin` from reading the overrides it changes (IncrementalAlterConfigs) on.
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), MetadataError> {
    let mut topic = broker
        .topics
        .get(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let config = Arc::new(broker.topic_defaults()?.with_overrides(&configs)?);
    config.validate_values()?;
    if validate_only {
        return Ok(());
    }
    topic.configs = configs;
    broker.topics.update(topic.clone())?;
    for p in 0..topic.partitions {
        if let Some(log) = broker.logs.get(&TopicPartition::new(name, p)) {
            log.set_config(config.clone());
        }
    }
    Ok(())
}

/// Re-applies topic configs to every log after a broker default changed.
pub fn refresh_all_configs(broker: &Broker) -> Result<(), ConfigError> {
    let defaults = broker.topic_defaults()?;
    for topic in broker.topics.list() {
        let config = Arc::new(defaults.with_overrides(&topic.configs)?);
        for p in 0..topic.partitions {
            if let Some(log) = broker.logs.get(&TopicPartition::new(topic.name.clone(), p)) {
                log.set_config(config.clone());
            }
        }
    }
    Ok(())
}

/// The leader epoch of every partition on this single node: 0, the epoch Kafka gives a
/// new partition's first leader. Metadata reports it, appends stamp it on each batch
/// (so it is the log's only entry in `leader-epoch-checkpoint`), and requests naming
/// another get FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
pub const LEADER_EPOCH: i32 = 0;

/// The partition's log for a request made under `current_leader_epoch` (`None`: the
/// request names none), as Kafka's `Partition.getLocalLog` checks it: an older epoch is
/// fenced (the client's metadata is stale), a newer one unknown (this broker's is).
pub fn leader_log(
    broker: &Broker,
    topic: &str,
    partition: i32,
    current_leader_epoch: Option<i32>,
) -> Result<Arc<UnifiedLog>, i16> {
    use crate::protocol::errors::log_error_code;
    let log = partition_log(broker, topic, partition)?;
    match current_leader_epoch {
        Some(requested) if requested < LEADER_EPOCH => Err(log_error_code(&LogError::FencedLeaderEpoch {
            requested,
            current: LEADER_EPOCH,
        })),
        Some(requested) if requested > LEADER_EPOCH => Err(log_error_code(&LogError::UnknownLeaderEpoch {
            requested,
            current: LEADER_EPOCH,
        })),
        _ => Ok(log),
    }
}

/// The log of a partition this broker leads, or Kafka's error code for why not: a
/// partition whose log dir is offline is KAFKA_STORAGE_ERROR, as Kafka answers for an
/// offline replica.
pub fn partition_log(broker: &Broker, topic: &str, partition: i32) -> Result<Arc<UnifiedLog>, i16> {
    use crate::protocol::errors::log_error_code;
    let tp = TopicPartition::new(topic, partition);
    if let Some(log) = broker.logs.get(&tp) {
        return Ok(log);
    }
    if broker.logs.is_offline(&tp) {
        return Err(log_error_code(&LogError::LogDirOffline));
    }
    Err(log_error_code(&LogError::Deleted))
}

fn to_metadata_error(e: BrokerError) -> MetadataError {
    match e {
        BrokerError::Metadata(m) => m,
        BrokerError::Config(c) => MetadataError::Config(c),
        BrokerError::Log(LogError::Io(io)) => MetadataError::Io(io),
        other => MetadataError::Corrupt(other.to_string()),
    }
}
