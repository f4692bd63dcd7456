//! The group coordinator's I/O: `__consumer_offsets` (created on first use, compacted,
//! `offsets.topic.num.partitions` partitions), commits written there before they are
//! visible, and the offsets loaded back at start-up.

use super::topics::{self, NewTopic};
use super::Broker;
use crate::group::offsets::{self, OffsetAndMetadata};
use crate::group::{partition_for, OFFSETS_TOPIC};
use crate::log::{FetchIsolation, UnifiedLog};
use crate::protocol::errors;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bytes read at a time while loading `__consumer_offsets`.
const LOAD_CHUNK_BYTES: usize = 8 << 20;

/// The `__consumer_offsets` partition that holds `group_id`, created if needed.
pub fn offsets_log(broker: &Broker, group_id: &str) -> Result<Arc<UnifiedLog>, i16> {
    ensure_offsets_topic(broker).map_err(|_| errors::code(ResponseError::CoordinatorNotAvailable))?;
    let partitions = broker.groups.config.offsets_topic_num_partitions;
    let n = broker.topics.partition_count(OFFSETS_TOPIC).unwrap_or(partitions);
    topics::partition_log(broker, OFFSETS_TOPIC, partition_for(group_id, n))
}

/// Creates `__consumer_offsets` as the group coordinator needs it, if it does not exist:
/// `offsets.topic.num.partitions` partitions, compacted, as Kafka's
/// `groupMetadataTopicConfigs`. Every creator goes through here (the coordinator, and a
/// Metadata request that auto-creates it, as Kafka's `AutoTopicCreationManager` does),
/// so the topic is never made as a plain one.
pub fn ensure_offsets_topic(broker: &Broker) -> Result<(), crate::metadata::MetadataError> {
    // The topic is visible in metadata before its logs exist: creators and readers
    // serialize on this lock so nobody sees it half made.
    let _creating = crate::sync::lock(&broker.offsets_topic_creation);
    if broker.topics.partition_count(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    configs.insert("segment.bytes".to_string(), "104857600".to_string());
    let req = NewTopic {
        name: OFFSETS_TOPIC.into(),
        partitions: broker.groups.config.offsets_topic_num_partitions,
        replication_factor: 1,
        configs,
    };
    match topics::create_topic(broker, req, false) {
        Ok(_) | Err(crate::metadata::MetadataError::TopicExists(_)) => Ok(()),
        Err(e) => {
            // Every FindCoordinator asks again (a full disk fails each): logged at
            // most once per interval.
            if super::due_to_log(&broker.offsets_topic_error_logged_ms, broker.time.now_ms()) {
                tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC} (repeats are logged every 10 s)");
            }
            Err(e)
        }
    }
}

/// Whether `group_id`'s `__consumer_offsets` partition exists but this broker cannot
/// serve it (its log dir offline, from start-up or since). Its commits and members may
/// not be loaded (start-up skips a partition it cannot read), and an answer from what
/// is loaded would send consumers back to `auto.offset.reset`; Kafka answers
/// NOT_COORDINATOR for a partition it has not loaded, and so does Fjord, while
/// FindCoordinator answers COORDINATOR_NOT_AVAILABLE. Creates nothing.
///
/// Only an offline partition counts: one not made yet is being created (the group
/// tick's first write makes the topic, its 50 logs one by one, while requests go on)
/// and holds nothing to load, so its groups are served; their writes wait for the
/// creation in `offsets_log`.
pub fn coordinator_unavailable(broker: &Broker, group_id: &str) -> bool {
    let Some(partitions) = broker.topics.partition_count(OFFSETS_TOPIC) else {
        return false;
    };
    let tp = crate::log::TopicPartition::new(OFFSETS_TOPIC, partition_for(group_id, partitions));
    broker.logs.is_offline(&tp)
}

/// Writes the commits (or tombstones, `None`) of one group as one record batch.
pub fn write_offsets(
    broker: &Broker,
    group_id: &str,
    entries: &[((String, i32), Option<OffsetAndMetadata>)],
) -> Result<(), i16> {
    let records: Vec<(Bytes, Option<Bytes>)> = entries
        .iter()
        .map(|((topic, partition), value)| {
            (
                offsets::offset_key(group_id, topic, *partition),
                value.as_ref().map(offsets::offset_value),
            )
        })
        .collect();
    write_records(broker, group_id, &records)
}

/// Appends keyed records of one group to its `__consumer_offsets` partition, as one
/// batch, and advances the high watermark (this broker is the only replica).
pub fn write_records(broker: &Broker, group_id: &str, entries: &[(Bytes, Option<Bytes>)]) -> Result<(), i16> {
    if entries.is_empty() {
        return Ok(());
    }
    let log = offsets_log(broker, group_id).map_err(errors::coordinator_append_error_code)?;
    let now = broker.time.now_ms();
    let buf = crate::log::record_batch::encode_keyed_batch(entries, now)
        .map_err(|_| errors::code(ResponseError::UnknownServerError))?;
    match log.append_as_leader(&buf, crate::server::topics::LEADER_EPOCH, now) {
        Ok(info) => {
            log.update_high_watermark(info.last_offset + 1);
            Ok(())
        }
        Err(e) => {
            tracing::error!(group = group_id, error = %e, "writing offsets failed");
            Err(errors::coordinator_append_error_code(errors::log_error_code(&e)))
        }
    }
}

/// Loads every committed offset from `__consumer_offsets`. Returns records applied.
pub fn load(broker: &Broker) -> usize {
    let Some(topic) = broker.topics.get(OFFSETS_TOPIC) else {
        return 0;
    };
    let mut applied = 0;
    for p in 0..topic.partitions {
        let Ok(log) = topics::partition_log(broker, OFFSETS_TOPIC, p) else {
            continue;
        };
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let Ok(info) = log.read(offset, LOAD_CHUNK_BYTES, FetchIsolation::LogEnd, true) else {
                break;
            };
            let Ok(bytes) = info.records.read_to_bytes() else { break };
            let mut whole = 0;
            let mut next = offset;
            for (at, h) in crate::log::record_batch::BatchIter::new(&bytes) {
                whole = at + h.size_bytes();
                next = h.next_offset();
            }
            if whole == 0 {
                break;
            }
            let mut batches = Bytes::copy_from_slice(&bytes[..whole]);
            while !batches.is_empty() {
                // The broker's own batches, but the bound costs nothing and keeps a
                // damaged one from allocating without limit.
                let limit = crate::log::compression::expanded_bytes_max(batches.len());
                let Ok(set) = crate::log::compression::decode_bounded(&mut batches, limit) else {
                    break;
                };
                for r in set.records {
                    if broker.groups.load_raw(r.key, r.value) {
                        applied += 1;
                    }
                }
            }
            offset = next;
        }
    }
    broker
        .groups
        .finish_consumer_load(&crate::server::handlers::BrokerTopics(broker));
    applied
}

/// Writes tombstones for the committed offsets past `offsets.retention.minutes`, then
/// forgets them; then deletes the empty groups left with no offsets, as Kafka's
/// cleanup does.
pub fn expire_offsets(broker: &Broker) {
    for (group, _) in broker.groups.expired_offsets() {
        let _commits = broker.groups.commit_lock(&group);
        let partitions = broker.groups.expired_offsets_of(&group);
        let tombstones: Vec<_> = partitions.iter().map(|k| (k.clone(), None)).collect();
        match write_offsets(broker, &group, &tombstones) {
            Ok(()) => {
                broker.groups.remove_offsets(&group, &partitions);
                tracing::info!(group = %group, partitions = partitions.len(), "expired committed offsets");
            }
            Err(code) => tracing::warn!(group = %group, code, "expiring offsets failed"),
        }
    }
    for group in broker.groups.deletable_groups() {
        let _commits = broker.groups.commit_lock(&group);
        let Some(tombstones) = broker.groups.take_deletable(&group) else {
            continue;
        };
        // Gone from memory either way: if the write failed, a restart loads the group
        // again and the next cleanup deletes it then.
        match write_records(broker, &group, &tombstones) {
            Ok(()) => tracing::info!(group = %group, "deleted an empty group with no committed offsets"),
            Err(code) => tracing::warn!(group = %group, code, "writing a deleted group's tombstones failed"),
        }
    }
}
