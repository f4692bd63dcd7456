//! CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

use super::{s, topic_name};
use crate::metadata::MetadataError;
use crate::protocol::errors;
use crate::server::topics::{self, NewTopic};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
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
use std::collections::BTreeMap;

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

/// Every topic of a request refused with POLICY_VIOLATION, as Kafka refuses a request
/// for more than `PARTITIONS_PER_REQUEST_MAX` partitions.
fn too_many_partitions(req: &CreateTopicsRequest) -> CreateTopicsResponse {
    let message = "Excessively large number of partitions per request.";
    let results = req
        .topics
        .iter()
        .map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_error_code(errors::code(ResponseError::PolicyViolation))
                .with_error_message(Some(s(message)))
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub fn create_topics(broker: &Broker, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    if requested_partitions(broker, &req) > crate::metadata::PARTITIONS_PER_REQUEST_MAX {
        return too_many_partitions(&req);
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.to_string();
        let mut r = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !seen.insert(name.clone()) {
            r.error_code = errors::code(ResponseError::InvalidRequest);
            r.error_message = Some(s(format!("topic '{name}' appears more than once in the request")));
            results.push(r);
            continue;
        }
        match new_topic(broker, &t).and_then(|nt| topics::create_topic(broker, nt, req.validate_only)) {
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
                r.error_message = Some(s(e.to_string()));
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn new_topic(broker: &Broker, t: &CreatableTopic) -> Result<NewTopic, MetadataError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(v) = &c.value else { continue };
        if crate::config::TOPIC_CONFIG_KEYS
            .iter()
            .all(|k| k.name != c.name.as_str())
        {
            return Err(MetadataError::Config(crate::config::ConfigError::InvalidValue {
                key: c.name.to_string(),
                value: v.to_string(),
                reason: "unknown topic config".into(),
            }));
        }
        configs.insert(c.name.to_string(), v.to_string());
    }
    let mut partitions = t.num_partitions;
    let mut rf = t.replication_factor;
    if !t.assignments.is_empty() {
        if partitions != -1 || rf != -1 {
            return Err(MetadataError::InvalidPartitions(
                "give either assignments or partitions and replication factor".into(),
            ));
        }
        partitions = t.assignments.len() as i32;
        rf = t.assignments[0].broker_ids.len() as i16;
        let node = broker.node_id();
        if t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node)) {
            return Err(MetadataError::InvalidReplicationFactor(
                "assignment names a broker that does not exist".into(),
            ));
        }
    }
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        replication_factor: rf,
        configs,
    })
}

fn topic_configs(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    let Ok(config) = broker.topic_defaults().and_then(|d| d.with_overrides(overrides)) else {
        return Vec::new();
    };
    crate::config::TOPIC_CONFIG_KEYS
        .iter()
        .map(|k| {
            let source = if overrides.contains_key(k.name) {
                1
            } else if config.broker_set.contains(k.name) {
                4
            } else {
                5
            };
            CreatableTopicConfigs::default()
                .with_name(s(k.name))
                .with_value(config.get(k.name).map(s))
                .with_config_source(source)
        })
        .collect()
}

pub fn delete_topics(broker: &Broker, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or id.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id)),
    );
    let mut out = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| broker.topics.by_id(id).map(|t| t.name));
        let mut r = DeletableTopicResult::default()
            .with_topic_id(id)
            .with_name(name.clone().map(topic_name));
        match name {
            None => r.error_code = errors::code(ResponseError::UnknownTopicId),
            Some(_) if !broker.config.delete_topic_enable => {
                r.error_code = errors::code(ResponseError::TopicDeletionDisabled)
            }
            Some(n) => match topics::delete_topic(broker, &n) {
                Ok(t) => r.topic_id = t.topic_id,
                Err(e) => {
                    r.error_code = errors::metadata_error_code(&e);
                    r.error_message = Some(s(e.to_string()));
                }
            },
        }
        out.push(r);
    }
    DeleteTopicsResponse::default().with_responses(out)
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
    let results = req
        .topics
        .iter()
        .map(|t| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if too_many {
                r.error_code = errors::code(ResponseError::PolicyViolation);
                r.error_message = Some(s("Excessively large number of partitions per request."));
            } else if let Err(e) = topics::create_partitions(broker, t.name.as_str(), t.count, req.validate_only) {
                r.error_code = errors::metadata_error_code(&e);
                r.error_message = Some(s(e.to_string()));
            }
            r
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics_out = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    match topics::partition_log(broker, t.name.as_str(), p.partition_index) {
                        Err(code) => r.error_code = code,
                        Ok(log) => {
                            // -1 means "up to the high watermark", as in Kafka.
                            let offset = if p.offset == -1 { log.high_watermark() } else { p.offset };
                            match log.delete_records_before(offset) {
                                Ok(low) => r.low_watermark = low,
                                Err(e) => r.error_code = errors::log_error_code(&e),
                            }
                        }
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(parts)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics_out)
}
