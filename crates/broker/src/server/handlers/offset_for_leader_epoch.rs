//! OffsetForLeaderEpoch (KIP-101, KIP-320): the end offset of a leader epoch in a
//! partition's log. Consumers ask it to check their position after a leader change
//! (was the log truncated below it?); replicas to find where to truncate to.
//!
//! As Kafka's `ReplicaManager.lastOffsetForLeaderEpoch`: the request's
//! `current_leader_epoch` is checked first (-1 names none), and an epoch the log cannot
//! answer gets no error and `(-1, -1)`.

use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};

/// Kafka's RecordBatch.NO_PARTITION_LEADER_EPOCH: the request names no current epoch.
const NO_PARTITION_LEADER_EPOCH: i32 = -1;

pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics_out = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default().with_partition(p.partition);
                    let current =
                        (p.current_leader_epoch != NO_PARTITION_LEADER_EPOCH).then_some(p.current_leader_epoch);
                    match topics::leader_log(broker, t.topic.as_str(), p.partition, current) {
                        Err(code) => r.error_code = code,
                        Ok(log) => {
                            if let Some((epoch, end_offset)) = log.end_offset_for_epoch(p.leader_epoch) {
                                r.leader_epoch = epoch;
                                r.end_offset = end_offset;
                            }
                        }
                    }
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics_out)
}
