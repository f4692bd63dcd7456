//! Produce: validate and append each partition's record batches (raw bytes, never
//! decoded record by record), then answer with base offsets. acks=0 gets no response.

use super::{s, HandlerError};
use crate::log::compression;
use crate::log::direct_io::DIRECT_IO_BLOCK_BYTES;
use crate::log::record_batch::{self, BatchHeader};
use crate::log::TopicPartition;
use crate::protocol::errors;
use crate::protocol::frame::Placement;
use crate::protocol::produce_prefix;
use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use kafka_protocol::records::Compression;

pub fn handle(broker: &Broker, req: ProduceRequest, version: i16) -> Result<Option<ProduceResponse>, HandlerError> {
    let acks = req.acks;
    // Kafka's `KafkaApis.handleProduceRequest`: transactional records need a
    // transactional id, and without one the whole request is refused.
    let unauthorized_transactional = req.transactional_id.is_none() && has_transactional_records(&req);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut first_error = None;
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let records = p.records.as_deref().unwrap_or(&[]);
            let code = if unauthorized_transactional {
                errors::code(ResponseError::TransactionalIdAuthorizationFailed)
            } else if req.transactional_id.is_some() {
                resp.error_message = Some(s("transactions are not supported by this broker yet"));
                errors::code(ResponseError::InvalidRequest)
            } else if !(-1..=1).contains(&acks) {
                errors::code(ResponseError::InvalidRequiredAcks)
            } else if version < 7 && is_zstd(records) {
                // Kafka's `ProduceRequest.validateRecords`: zstd needs Produce v7 (KIP-110).
                resp.error_message = Some(s(format!(
                    "Produce requests with version {version} are not allowed to use ZStandard compression"
                )));
                errors::code(ResponseError::UnsupportedCompressionType)
            } else {
                append_partition(broker, &name, p.index, records, acks, &mut resp)
            };
            resp.error_code = code;
            if code != errors::NONE && first_error.is_none() {
                first_error = Some(code);
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return match first_error {
            Some(code) => Err(HandlerError::AcksZeroFailure(code)),
            None => Ok(None),
        };
    }
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}

/// Whether any partition's batch has the transactional attribute, read in place.
fn has_transactional_records(req: &ProduceRequest) -> bool {
    req.topic_data.iter().flat_map(|t| &t.partition_data).any(|p| {
        let records = p.records.as_deref().unwrap_or(&[]);
        is_v2_batch(records) && BatchHeader::parse(records).is_ok_and(|h| h.is_transactional())
    })
}

/// Whether the batch at the front of `records` is a v2 batch compressed with zstd.
fn is_zstd(records: &[u8]) -> bool {
    is_v2_batch(records) && compression::batch_codec(records) == Some(Compression::Zstd)
}

fn is_v2_batch(records: &[u8]) -> bool {
    records
        .get(16)
        .is_some_and(|magic| *magic as i8 == record_batch::MAGIC_V2)
}

/// Where to place a large Produce request in memory (`frame::Placement`): so that its
/// records line up with the blocks of the partition's O_DIRECT appends, which then
/// write them without a copy. `None` for anything else, or when the log copies anyway.
pub fn placement(broker: &Broker, prefix: &[u8]) -> Option<Placement> {
    let at = produce_prefix::records_position(prefix)?;
    let log = broker.logs.get(&TopicPartition::new(at.topic, at.partition))?;
    let position = log.direct_append_position(at.records_bytes)?;
    let align = DIRECT_IO_BLOCK_BYTES as u64;
    let remainder = (position + align - at.records_offset as u64 % align) % align;
    Some(Placement {
        align: DIRECT_IO_BLOCK_BYTES,
        remainder: remainder as usize,
    })
}

fn append_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: &[u8],
    acks: i16,
    resp: &mut PartitionProduceResponse,
) -> i16 {
    let log = match topics::partition_log(broker, topic, partition) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // A single node is the whole ISR: acks=all fails only if min.insync.replicas > 1.
    if acks == -1 && log.config().min_insync_replicas > 1 {
        return errors::code(ResponseError::NotEnoughReplicas);
    }
    match log.append_as_leader(records, topics::LEADER_EPOCH, broker.time.now_ms()) {
        Ok(info) => {
            if info.records > 0 {
                // Also wakes the fetches waiting on this partition.
                log.update_high_watermark(info.last_offset + 1);
            }
            resp.base_offset = info.base_offset;
            resp.log_append_time_ms = info.log_append_time_ms;
            resp.log_start_offset = info.log_start_offset;
            errors::NONE
        }
        Err(e) => {
            tracing::debug!(topic, partition, error = %e, "produce refused");
            resp.error_message = Some(s(e.to_string()));
            errors::log_error_code(&e)
        }
    }
}
