//! CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

use super::{s, topic_name};
use crate::metadata::{MetadataError, CLUSTER_METADATA_TOPIC};
use crate::protocol::errors;
use crate::server::topics::{self, NewTopic};
use crate::server::Broker;
use indexmap::IndexSet;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The partitions a CreateTopics asks for, as Kafka's
/// `ReplicationControlManager.validateTotalNumberOfPartitions` counts them.
fn requested_partitions(broker: &Broker, req: &CreateTopicsRequest) -> i64 {
    req.topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => i64::from(broker.config.num_partitions),
            (0, n) => i64::from(n.max(0)),
            (assigned, _) => assigned as i64,
        })
        .sum()
}

/// Kafka's message for a request over `PARTITIONS_PER_REQUEST_MAX`.
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Every topic of a request refused with POLICY_VIOLATION, as Kafka refuses a request
/// for more than `PARTITIONS_PER_REQUEST_MAX` partitions.
fn too_many_partitions(req: &CreateTopicsRequest) -> CreateTopicsResponse {
    let results = req
        .topics
        .iter()
        .map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_error_code(errors::code(ResponseError::PolicyViolation))
                .with_error_message(Some(s(TOO_MANY_PARTITIONS)))
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Names that appear more than once in a request, in the order first repeated.
/// Kafka refuses every entry of such a name, and answers it once.
fn duplicate_names<'a>(names: impl Iterator<Item = &'a str>) -> IndexSet<String> {
    let mut seen = HashSet::new();
    let mut duplicates = IndexSet::new();
    for n in names {
        if !seen.insert(n) {
            duplicates.insert(n.to_string());
        }
    }
    duplicates
}

const DUPLICATE_TOPIC_NAME: &str = "Duplicate topic name.";

pub fn create_topics(broker: &Broker, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    if requested_partitions(broker, &req) > crate::metadata::PARTITIONS_PER_REQUEST_MAX {
        return too_many_partitions(&req);
    }
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.as_str()));
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics.iter().filter(|t| !duplicates.contains(t.name.as_str())) {
        // No message unless it failed: the codec's default is an empty one.
        let mut r = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_error_message(None)
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        match new_topic(broker, t).and_then(|nt| topics::create_topic(broker, nt, req.validate_only)) {
            Ok(created) => {
                r.topic_id = if req.validate_only {
                    uuid::Uuid::nil()
                } else {
                    created.topic_id
                };
                r.num_partitions = created.partitions;
                r.replication_factor = created.replication_factor;
                if version >= 5 {
                    r.configs = Some(topic_configs(broker, &created.configs));
                }
            }
            Err(e) => {
                r.error_code = errors::metadata_error_code(&e);
                r.error_message = errors::metadata_error_message(&e).map(s);
            }
        }
        results.push(r);
    }
    results.extend(duplicates.into_iter().map(|d| {
        CreatableTopicResult::default()
            .with_name(topic_name(d))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_error_code(errors::code(ResponseError::InvalidRequest))
            .with_error_message(Some(s(DUPLICATE_TOPIC_NAME)))
    }));
    CreateTopicsResponse::default().with_topics(results)
}

/// The topic a CreateTopics entry asks for, checked in the order Kafka's controller
/// checks: the name, whether the topic exists (so a re-create is TOPIC_ALREADY_EXISTS,
/// which `--if-not-exists` and Kafka Streams take as success, whatever else it asks),
/// the configs, then the assignment.
fn new_topic(broker: &Broker, t: &CreatableTopic) -> Result<NewTopic, MetadataError> {
    crate::metadata::validate_topic_name(t.name.as_str())?;
    if broker.topics.partition_count(t.name.as_str()).is_some() {
        return Err(MetadataError::TopicExists(t.name.to_string()));
    }
    if t.name.as_str() == CLUSTER_METADATA_TOPIC {
        return Err(MetadataError::InvalidRequest(format!(
            "Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."
        )));
    }
    let nulls: Vec<&str> = t
        .configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(MetadataError::InvalidConfig(format!(
            "Null value not supported for topic configs: {}",
            nulls.join(",")
        )));
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        if crate::config::TOPIC_CONFIG_KEYS
            .iter()
            .all(|k| k.name != c.name.as_str())
        {
            return Err(MetadataError::Config(crate::config::ConfigError::UnknownTopicConfig(
                c.name.to_string(),
            )));
        }
        configs.insert(c.name.to_string(), v);
    }
    let (partitions, replication_factor) = if t.assignments.is_empty() {
        (t.num_partitions, t.replication_factor)
    } else {
        manual_assignment(broker, t)?
    };
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        replication_factor,
        configs,
    })
}

/// The partition count and replication factor of a manual assignment, checked as
/// Kafka's `ReplicationControlManager` checks it, with its messages.
fn manual_assignment(broker: &Broker, t: &CreatableTopic) -> Result<(i32, i16), MetadataError> {
    let bad = |why: String| Err(MetadataError::InvalidReplicaAssignment(why));
    let which = if t.replication_factor != -1 {
        Some("replication factor")
    } else if t.num_partitions != -1 {
        Some("numPartitions")
    } else {
        None
    };
    if let Some(field) = which {
        return Err(MetadataError::InvalidRequest(format!(
            "A manual partition assignment was specified, but {field} was not set to -1."
        )));
    }
    let mut partitions = HashSet::with_capacity(t.assignments.len());
    let mut replication_factor = None;
    for a in &t.assignments {
        if !partitions.insert(a.partition_index) {
            return bad(format!(
                "Found multiple manual partition assignments for partition {}",
                a.partition_index
            ));
        }
        let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        topics::check_replica_assignment(broker, &ids, replication_factor)?;
        replication_factor = Some(ids.len());
    }
    if (0..partitions.len() as i32).any(|p| !partitions.contains(&p)) {
        return bad("partitions should be a consecutive 0-based integer sequence".into());
    }
    let rf = replication_factor.unwrap_or(0);
    Ok((partitions.len() as i32, i16::try_from(rf).unwrap_or(i16::MAX)))
}

fn topic_configs(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    let Ok(config) = broker.topic_defaults().and_then(|d| d.with_overrides(overrides)) else {
        return Vec::new();
    };
    let dynamic = crate::sync::read(&broker.dynamic_configs).clone();
    crate::config::TOPIC_CONFIG_KEYS
        .iter()
        .map(|k| {
            CreatableTopicConfigs::default()
                .with_name(s(k.name))
                .with_value(config.get(k.name).map(s))
                .with_config_source(super::configs::topic_config_source(k, overrides, &config, &dynamic))
        })
        .collect()
}

/// DeleteTopics, with Kafka's checks of what the request names (`ControllerApis
/// .deleteTopics`): deletion disabled refuses every topic (INVALID_REQUEST before v3);
/// an entry with neither or both of name and id, and a name or id given twice, are
/// INVALID_REQUEST and delete nothing.
pub fn delete_topics(broker: &Broker, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let result = |name: Option<String>, id: uuid::Uuid, code: ResponseError, message: Option<&str>| {
        DeletableTopicResult::default()
            .with_name(name.map(topic_name))
            .with_topic_id(id)
            .with_error_code(errors::code(code))
            .with_error_message(message.map(s))
    };
    let deleted = |name: &String| {
        let mut r = DeletableTopicResult::default().with_name(Some(topic_name(name.clone())));
        match topics::delete_topic(broker, name) {
            Ok(t) => r.topic_id = t.topic_id,
            Err(e) => {
                r.error_code = errors::metadata_error_code(&e);
                r.error_message = errors::metadata_error_message(&e).map(s);
            }
        }
        r
    };
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or id.
    let mut names: Vec<String> = req.topic_names.iter().map(|n| n.to_string()).collect();
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for t in &req.topics {
        match (&t.name, t.topic_id.is_nil()) {
            (None, true) => out.push(result(
                None,
                t.topic_id,
                ResponseError::InvalidRequest,
                Some("Neither topic name nor id were specified."),
            )),
            (None, false) => ids.push(t.topic_id),
            (Some(n), true) => names.push(n.to_string()),
            (Some(n), false) => out.push(result(
                Some(n.to_string()),
                t.topic_id,
                ResponseError::InvalidRequest,
                Some("You may not specify both topic name and topic id."),
            )),
        }
    }
    if !broker.config.delete_topic_enable {
        let code = if version < 3 {
            ResponseError::InvalidRequest
        } else {
            ResponseError::TopicDeletionDisabled
        };
        out.extend(
            names
                .into_iter()
                .map(|n| result(Some(n), uuid::Uuid::nil(), code, None)),
        );
        out.extend(ids.into_iter().map(|id| result(None, id, code, None)));
        return DeleteTopicsResponse::default().with_responses(out);
    }
    let (names, duplicate_names) = split_duplicates(names);
    let (ids, duplicate_ids) = split_duplicates(ids);
    for n in duplicate_names {
        out.push(result(
            Some(n),
            uuid::Uuid::nil(),
            ResponseError::InvalidRequest,
            Some("Duplicate topic name."),
        ));
    }
    for id in duplicate_ids {
        out.push(result(
            None,
            id,
            ResponseError::InvalidRequest,
            Some("Duplicate topic id."),
        ));
    }
    let mut by_id = Vec::with_capacity(ids.len());
    for id in ids {
        match broker.topics.by_id(id) {
            None => out.push(result(None, id, ResponseError::UnknownTopicId, None)),
            Some(t) => by_id.push(t.name),
        }
    }
    for name in &names {
        if by_id.contains(name) {
            // Named and given by id too: neither is deleted, as Kafka answers.
            let message = "The provided topic name maps to an ID that was already supplied.";
            out.push(result(
                Some(name.clone()),
                uuid::Uuid::nil(),
                ResponseError::InvalidRequest,
                Some(message),
            ));
        }
    }
    let named_twice = |n: &String| names.contains(n) && by_id.contains(n);
    out.extend(names.iter().chain(&by_id).filter(|n| !named_twice(n)).map(deleted));
    DeleteTopicsResponse::default().with_responses(out)
}

/// `(each value given once, each value given more than once)`, in request order.
fn split_duplicates<T: Eq + std::hash::Hash + Clone>(values: Vec<T>) -> (Vec<T>, Vec<T>) {
    let mut counts: HashMap<T, usize> = HashMap::new();
    for v in &values {
        *counts.entry(v.clone()).or_default() += 1;
    }
    let mut once = Vec::new();
    let mut twice = Vec::new();
    for v in values {
        match counts.get(&v) {
            Some(1) => once.push(v),
            Some(n) if *n > 1 => {
                twice.push(v.clone());
                counts.insert(v, 0); // reported once
            }
            _ => {}
        }
    }
    (once, twice)
}

pub fn create_partitions(broker: &Broker, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    // The partitions added, all topics together, are held to CreateTopics' limit.
    let added: i64 = req
        .topics
        .iter()
        .map(|t| {
            let now = broker.topics.get(t.name.as_str()).map_or(0, |m| m.partitions);
            i64::from(t.count) - i64::from(now)
        })
        .filter(|n| *n > 0)
        .sum();
    let too_many = added > crate::metadata::PARTITIONS_PER_REQUEST_MAX;
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.as_str()));
    let mut results: Vec<CreatePartitionsTopicResult> = req
        .topics
        .iter()
        .filter(|t| !duplicates.contains(t.name.as_str()))
        .map(|t| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if too_many {
                r.error_code = errors::code(ResponseError::PolicyViolation);
                r.error_message = Some(s(TOO_MANY_PARTITIONS));
            } else if let Err(e) = topics::create_partitions(
                broker,
                t.name.as_str(),
                t.count,
                assignments_of(t).as_deref(),
                req.validate_only,
            ) {
                r.error_code = errors::metadata_error_code(&e);
                r.error_message = errors::metadata_error_message(&e).map(s);
            }
            r
        })
        .collect();
    results.extend(duplicates.into_iter().map(|d| {
        CreatePartitionsTopicResult::default()
            .with_name(topic_name(d))
            .with_error_code(errors::code(ResponseError::InvalidRequest))
            .with_error_message(Some(s(DUPLICATE_TOPIC_NAME)))
    }));
    CreatePartitionsResponse::default().with_results(results)
}

/// The replicas of each new partition, as broker ids, if the request assigns them. An
/// empty list assigns nothing, as a null one: Java and librdkafka send null, and
/// encoders that default the field (the Rust codec crate's) send it empty.
fn assignments_of(t: &CreatePartitionsTopic) -> Option<Vec<Vec<i32>>> {
    let assignments = t.assignments.as_ref().filter(|a| !a.is_empty())?;
    Some(
        assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    )
}

pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    // Kafka's `handleDeleteRecordsRequest` collects the partitions into a map: a
    // partition named twice is acted on and answered once, with its last offset.
    let last = super::last_entries(
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.as_str(), p.partition_index))),
    );
    let mut position = 0usize;
    let topics_out = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .filter(|_| {
                    position += 1;
                    last[position - 1]
                })
                .map(|p| delete_partition_records(broker, t.name.as_str(), p.partition_index, p.offset))
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(parts)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics_out)
}

/// One partition's DeleteRecords, checked in Kafka's order: the partition exists, then
/// (`ReplicaManager.deleteRecordsOnLocalLog`) it is not an internal topic's, whose
/// records are the broker's own, then (`Partition.deleteRecordsOnLeader`) its topic has
/// the delete policy: compacted records are only ever removed by compaction.
fn delete_partition_records(broker: &Broker, topic: &str, partition: i32, offset: i64) -> DeleteRecordsPartitionResult {
    let mut r = DeleteRecordsPartitionResult::default()
        .with_partition_index(partition)
        .with_low_watermark(-1);
    match topics::partition_log(broker, topic, partition) {
        Err(code) => r.error_code = code,
        Ok(_) if crate::metadata::is_internal_topic(topic) => {
            r.error_code = errors::code(ResponseError::InvalidTopicException);
        }
        Ok(log) if !log.config().cleanup_policy_delete => {
            r.error_code = errors::code(ResponseError::PolicyViolation);
        }
        Ok(log) => {
            // -1 means "up to the high watermark", as in Kafka.
            let offset = if offset == -1 { log.high_watermark() } else { offset };
            match log.delete_records_before(offset) {
                Ok(low) => r.low_watermark = low,
                Err(e) => r.error_code = errors::log_error_code(&e),
            }
        }
    }
    r
}
