//! Metadata: brokers, cluster id, controller, and topics with their partitions.
//! Unknown topics are created when `auto.create.topics.enable` and the client allows it.

use super::{s, topic_name};
use crate::metadata::TopicMetadata;
use crate::protocol::errors;
use crate::server::topics::{self, NewTopic};
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::BrokerId;
use std::collections::BTreeMap;

/// `listener`: the one the request came through. Its advertised address is the one
/// listed; a listener that is not advertised lists no broker, and its partitions no
/// leader (LISTENER_NOT_FOUND), as Kafka answers.
pub fn handle(broker: &Broker, mut req: MetadataRequest, version: i16, listener: &str) -> MetadataResponse {
    if let Some(refused) = invalid_topic_ids(&req, version) {
        return refused;
    }
    // Kafka's `handleTopicMetadataRequest`: a request naming any topic by id is answered
    // by id alone; its entries with a name only are dropped.
    if let Some(topics) = req.topics.as_mut() {
        if topics.iter().any(|t| !t.topic_id.is_nil()) {
            topics.retain(|t| !t.topic_id.is_nil());
            for t in topics.iter_mut() {
                t.name = None;
            }
        }
    }
    let node = broker.node_id();
    let advertised = broker.advertised(listener);
    let brokers: Vec<MetadataResponseBroker> = advertised
        .iter()
        .map(|(host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(s(host.clone()))
                .with_port(*port)
        })
        .collect();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics: Vec<MetadataResponseTopic> = if all {
        broker.topics.list().iter().map(|t| topic_entry(broker, t)).collect()
    } else {
        let allow_create = req.allow_auto_topic_creation || version < 4;
        // Each topic once, as Kafka answers (a set): a request naming one topic many
        // times must not be answered many times over.
        let mut seen = std::collections::HashSet::new();
        // The partitions this request may still auto-create (see
        // `PARTITIONS_PER_REQUEST_MAX`).
        let mut budget = crate::metadata::PARTITIONS_PER_REQUEST_MAX;
        req.topics
            .unwrap_or_default()
            .iter()
            .filter(|t| seen.insert((t.name.as_ref().map(|n| n.as_str()), t.topic_id)))
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.to_string());
                requested_topic(broker, name, t.topic_id, allow_create, &mut budget)
            })
            .collect()
    };
    if req.include_topic_authorized_operations {
        for t in &mut topics {
            t.topic_authorized_operations = super::TOPIC_AUTHORIZED_OPERATIONS;
        }
    }
    if advertised.is_none() {
        // Kafka's `KafkaApis`: LISTENER_NOT_FOUND from v6, LEADER_NOT_AVAILABLE before
        // it, and no leader either way (`KRaftMetadataCache`).
        let code = if version >= 6 {
            errors::code(ResponseError::ListenerNotFound)
        } else {
            errors::code(ResponseError::LeaderNotAvailable)
        };
        for p in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.error_code == 0 {
                p.error_code = code;
                p.leader_id = BrokerId(-1);
            }
        }
    }
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics);
    // A field of v8-v10 only; the codec refuses it elsewhere.
    if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
        resp.cluster_authorized_operations = super::CLUSTER_AUTHORIZED_OPERATIONS;
    }
    resp
}

/// Kafka's check before v12, which has no topic ids: a topic without a name, or with
/// an id, makes the whole request INVALID_REQUEST (`MetadataRequest.getErrorResponse`:
/// every topic named back with the error, and nothing else).
fn invalid_topic_ids(req: &MetadataRequest, version: i16) -> Option<MetadataResponse> {
    let topics = req.topics.as_ref()?;
    let invalid = version < 12 && topics.iter().any(|t| t.name.is_none() || !t.topic_id.is_nil());
    if !invalid {
        return None;
    }
    let refused = topics
        .iter()
        .map(|t| {
            MetadataResponseTopic::default()
                .with_name(Some(t.name.clone().unwrap_or_else(|| topic_name(String::new()))))
                .with_topic_id(t.topic_id)
                .with_error_code(errors::code(ResponseError::InvalidRequest))
        })
        .collect();
    Some(MetadataResponse::default().with_topics(refused))
}

fn requested_topic(
    broker: &Broker,
    name: Option<String>,
    id: uuid::Uuid,
    allow_create: bool,
    budget: &mut i64,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        return match broker.topics.by_id(id) {
            Some(t) => topic_entry(broker, &t),
            // No name, as Kafka answers an id it does not know (the codec's default
            // is an empty one).
            None => MetadataResponseTopic::default()
                .with_name(None)
                .with_topic_id(id)
                .with_error_code(errors::code(ResponseError::UnknownTopicId)),
        };
    };
    if let Some(t) = broker.topics.get(&name) {
        return topic_entry(broker, &t);
    }
    let error = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name.clone())))
            .with_error_code(code)
            .with_is_internal(crate::metadata::is_internal_topic(&name))
    };
    if let Err(e) = crate::metadata::validate_topic_name(&name) {
        return error(errors::metadata_error_code(&e));
    }
    if !(allow_create && broker.config.auto_create_topics_enable) {
        return error(errors::code(ResponseError::UnknownTopicOrPartition));
    }
    // Internal topics are made as their owners need them, never as plain topics (Kafka's
    // `AutoTopicCreationManager.creatableTopic`): `__consumer_offsets` by the group
    // coordinator's rules. The others have no owner in Fjord yet (no transactions, no
    // share groups), and `__cluster_metadata` is Kafka's own: none is auto-created.
    if crate::metadata::is_internal_topic(&name) || name == crate::metadata::CLUSTER_METADATA_TOPIC {
        if name != crate::group::OFFSETS_TOPIC {
            return error(errors::code(ResponseError::UnknownTopicOrPartition));
        }
        *budget -= i64::from(broker.groups.config.offsets_topic_num_partitions);
        if *budget < 0 {
            return error(errors::code(ResponseError::LeaderNotAvailable));
        }
        return match crate::server::groups::ensure_offsets_topic(broker).map(|()| broker.topics.get(&name)) {
            Ok(Some(t)) => topic_entry(broker, &t),
            Ok(None) => error(errors::code(ResponseError::LeaderNotAvailable)),
            Err(e) => error(errors::metadata_error_code(&e)),
        };
    }
    // Past the request's budget: LEADER_NOT_AVAILABLE, Kafka's answer while a topic
    // is being made, and made by a later request.
    *budget -= i64::from(broker.config.num_partitions);
    if *budget < 0 {
        return error(errors::code(ResponseError::LeaderNotAvailable));
    }
    let req = NewTopic {
        name: name.clone(),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
    };
    match topics::create_topic(broker, req, false) {
        Ok(t) => topic_entry(broker, &t),
        // Another request created it first.
        Err(crate::metadata::MetadataError::TopicExists(_)) => match broker.topics.get(&name) {
            Some(t) => topic_entry(broker, &t),
            None => error(errors::code(ResponseError::LeaderNotAvailable)),
        },
        Err(e) => error(errors::metadata_error_code(&e)),
    }
}

fn topic_entry(broker: &Broker, t: &TopicMetadata) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    let partitions = (0..t.partitions)
        .map(|p| {
            let partition = MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(topics::LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            // Its only replica is in an offline log dir: no leader, as Kafka reports a
            // partition whose replicas are all offline.
            if broker
                .logs
                .is_offline(&crate::log::TopicPartition::new(t.name.clone(), p))
            {
                return partition
                    .with_error_code(errors::code(ResponseError::LeaderNotAvailable))
                    .with_leader_id(BrokerId(-1))
                    .with_offline_replicas(vec![node]);
            }
            partition
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(t.name.clone())))
        .with_topic_id(t.topic_id)
        .with_is_internal(crate::metadata::is_internal_topic(&t.name))
        .with_partitions(partitions)
}
