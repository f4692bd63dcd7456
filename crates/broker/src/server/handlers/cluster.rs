//! DescribeCluster, DescribeLogDirs, InitProducerId.

use super::{s, topic_name};
use crate::log::TopicPartition;
use crate::protocol::errors;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::{BrokerId, ProducerId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Lists this broker at the address advertised for `listener` (none if it is not
/// advertised, as Kafka lists only brokers reachable through the request's listener).
/// A request for another kind of endpoint is refused as Kafka's
/// `AuthHelper.computeDescribeClusterResponse` refuses it: Fjord's listeners are
/// brokers' (endpoint type 1), so an admin client told to bootstrap from controllers
/// learns it was pointed at a broker.
pub fn describe_cluster(
    broker: &Broker,
    req: DescribeClusterRequest,
    version: i16,
    listener: &str,
) -> DescribeClusterResponse {
    const BROKER_ENDPOINT: i8 = 1;
    const CONTROLLER_ENDPOINT: i8 = 2;
    let refused = |error: ResponseError, message: String| {
        let code = if version == 0 {
            ResponseError::InvalidRequest
        } else {
            error
        };
        DescribeClusterResponse::default()
            .with_error_code(errors::code(code))
            .with_error_message(Some(s(message)))
    };
    match req.endpoint_type {
        BROKER_ENDPOINT => {}
        CONTROLLER_ENDPOINT => {
            return refused(
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
                    .into(),
            )
        }
        other => {
            return refused(
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {other}"),
            )
        }
    }
    let brokers = broker
        .advertised(listener)
        .into_iter()
        .map(|(host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_host(s(host))
                .with_port(port)
        })
        .collect();
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(s(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(brokers);
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = super::CLUSTER_AUTHORIZED_OPERATIONS;
    }
    resp
}

pub fn describe_log_dirs(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Looked up per log: a set, not a list scanned for each of them.
    let wanted: Option<HashMap<&str, HashSet<i32>>> = req.topics.as_ref().map(|ts| {
        let mut wanted: HashMap<&str, HashSet<i32>> = HashMap::new();
        for t in ts {
            wanted
                .entry(t.topic.as_str())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        wanted
    });
    let is_wanted = |tp: &TopicPartition| {
        wanted
            .as_ref()
            .is_none_or(|w| w.get(tp.topic.as_str()).is_some_and(|ps| ps.contains(&tp.partition)))
    };
    let mut results = Vec::new();
    for (i, dir) in broker.logs.log_dirs.iter().enumerate() {
        if broker.logs.is_dir_offline(i) {
            results.push(
                DescribeLogDirsResult::default()
                    .with_error_code(errors::code(ResponseError::KafkaStorageError))
                    .with_log_dir(s(absolute(dir)))
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1),
            );
            continue;
        }
        let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for log in broker.logs.all() {
            let tp = &log.topic_partition;
            if broker.logs.dir_of(tp).as_ref() != Some(dir) || !is_wanted(tp) {
                continue;
            }
            let (_, hw, leo) = log.offsets();
            by_topic.entry(tp.topic.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(log.size_bytes() as i64)
                    // Kafka's `getLogEndOffsetLag` for a current log: how far its end is
                    // behind the high watermark, which a leader's never is.
                    .with_offset_lag((hw - leo).max(0)),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect();
        // -1 when unknown, as Kafka answers.
        let (total, usable) = crate::log::log_manager::volume_bytes(dir)
            .map(|(t, u)| (t.min(i64::MAX as u64) as i64, u.min(i64::MAX as u64) as i64))
            .unwrap_or((-1, -1));
        results.push(
            DescribeLogDirsResult::default()
                .with_log_dir(s(absolute(dir)))
                .with_topics(topics)
                .with_total_bytes(total)
                .with_usable_bytes(usable),
        );
    }
    DescribeLogDirsResponse::default().with_results(results)
}

/// A log dir as Kafka's `ReplicaManager.describeLogDirs` names it: its absolute path
/// (`log.dirs` may be relative, as the default `data` is).
fn absolute(dir: &std::path::Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

pub fn init_producer_id(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which Fjord does not have yet.
        return resp.with_error_code(errors::code(ResponseError::InvalidRequest));
    }
    // As Kafka's `KafkaApis` and `TransactionCoordinator`: an id without an epoch (or
    // the reverse) is INVALID_REQUEST; otherwise a producer without a transactional id
    // always gets a new id at epoch 0, even one bumping its epoch (KIP-360). Handing
    // back the id it named with the epoch raised let any client fence another
    // producer by naming its id.
    if (req.producer_id.0 < 0) != (req.producer_epoch < 0) {
        return resp.with_error_code(errors::code(ResponseError::InvalidRequest));
    }
    match broker.topics.next_producer_id() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => resp.with_error_code(errors::metadata_error_code(&e)),
    }
}
