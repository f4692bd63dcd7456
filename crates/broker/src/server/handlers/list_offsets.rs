//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! latest tiered (-5) and by timestamp (the first offset whose timestamp is at least it).

use crate::protocol::errors;
use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // leader_epoch exists from v4; the codec refuses a non-default value before that.
    let leader_epoch = if version >= 4 { 0 } else { -1 };
    let mut topics_out = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(leader_epoch);
            match topics::partition_log(broker, t.name.as_str(), p.partition_index) {
                Err(code) => r.error_code = code,
                Ok(log) => {
                    let (lso, hw, _) = log.offsets();
                    let found = match p.timestamp {
                        LATEST => Ok(Some((hw, -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((lso, -1))),
                        LATEST_TIERED => Ok(Some((-1, -1))),
                        MAX_TIMESTAMP => log.max_timestamp_offset(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => Ok(None),
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            r.offset = offset;
                            r.timestamp = ts;
                        }
                        Ok(None) => {}
                        Err(e) => r.error_code = errors::log_error_code(&e),
                    }
                }
            }
            parts.push(r);
        }
        topics_out.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics_out)
}
