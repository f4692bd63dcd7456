//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! latest tiered (-5) and by timestamp (the first offset whose timestamp is at least it).
//!
//! As Kafka's `ReplicaManager.fetchOffset`: a partition named twice gets
//! INVALID_REQUEST (once), a special timestamp the request's version does not know
//! UNSUPPORTED_VERSION, and a `current_leader_epoch` other than the partition's
//! FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.

use crate::log::{TimestampAndOffset, UnifiedLog};
use crate::protocol::errors;
use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use std::collections::HashSet;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The first version that knows each special timestamp (Kafka's
/// `timestampMinSupportedVersion`); any other negative timestamp is unsupported.
const TIMESTAMP_MIN_VERSIONS: [(i64, i16); 5] = [
    (EARLIEST, 1),
    (LATEST, 1),
    (MAX_TIMESTAMP, 7),
    (EARLIEST_LOCAL, 8),
    (LATEST_TIERED, 9),
];

pub fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let duplicates = duplicate_partitions(&req);
    let mut answered = HashSet::new();
    let mut topics_out = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            // One answer per partition, as Kafka keys its answers by partition.
            if !answered.insert((t.name.as_str(), p.partition_index)) {
                continue;
            }
            let answer = if duplicates.contains(&(t.name.as_str(), p.partition_index)) {
                Err(errors::code(ResponseError::InvalidRequest))
            } else if timestamp_unsupported(p.timestamp, version) {
                Err(errors::code(ResponseError::UnsupportedVersion))
            } else {
                // -1 is "no epoch" here, as Kafka's ListOffsetsResponse.UNKNOWN_EPOCH.
                let epoch = (p.current_leader_epoch != -1).then_some(p.current_leader_epoch);
                topics::leader_log(broker, t.name.as_str(), p.partition_index, epoch)
                    .and_then(|log| lookup(&log, p).map_err(|e| errors::log_error_code(&e)))
            };
            parts.push(response(p, answer, version));
        }
        topics_out.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics_out)
}

/// The partitions the request names more than once.
fn duplicate_partitions(req: &ListOffsetsRequest) -> HashSet<(&str, i32)> {
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for t in &req.topics {
        for p in &t.partitions {
            if !seen.insert((t.name.as_str(), p.partition_index)) {
                duplicates.insert((t.name.as_str(), p.partition_index));
            }
        }
    }
    duplicates
}

fn timestamp_unsupported(timestamp: i64, version: i16) -> bool {
    timestamp < 0
        && !TIMESTAMP_MIN_VERSIONS
            .iter()
            .any(|(special, min)| *special == timestamp && version >= *min)
}

/// The partition's answer: the offset found (if any), or an error code.
fn lookup(log: &UnifiedLog, p: &ListOffsetsPartition) -> Result<Option<TimestampAndOffset>, crate::log::LogError> {
    let (lso, hw, _) = log.offsets();
    let special = |offset, leader_epoch| {
        Ok(Some(TimestampAndOffset {
            timestamp: -1,
            offset,
            leader_epoch,
        }))
    };
    match p.timestamp {
        // Up to the high watermark, with the partition's leader epoch (Kafka's
        // `Partition.fetchOffsetForTimestamp`: the last fetchable offset).
        LATEST => special(hw, Some(topics::LEADER_EPOCH)),
        EARLIEST | EARLIEST_LOCAL => special(lso, log.earliest_epoch()),
        // No tiered storage: Kafka's answer for a log without a remote part.
        LATEST_TIERED => special(-1, Some(-1)),
        MAX_TIMESTAMP => log.max_timestamp_offset(),
        ts => log.offset_for_timestamp(ts),
    }
}

fn response(
    p: &ListOffsetsPartition,
    answer: Result<Option<TimestampAndOffset>, i16>,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let mut r = ListOffsetsPartitionResponse::default()
        .with_partition_index(p.partition_index)
        .with_timestamp(-1)
        .with_offset(-1);
    match answer {
        Err(code) => r.error_code = code,
        Ok(None) => {}
        Ok(Some(found)) => {
            r.timestamp = found.timestamp;
            r.offset = found.offset;
            // The field exists from v4; the codec refuses a value in older versions.
            if let Some(epoch) = found.leader_epoch.filter(|_| version >= 4) {
                r.leader_epoch = epoch;
            }
        }
    }
    r
}
