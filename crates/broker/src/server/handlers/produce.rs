//! Produce: validate and append each partition's record batches (raw bytes, never
//! decoded record by record), then answer with base offsets. acks=0 gets no response.

use super::{s, HandlerError};
use crate::log::direct_io::DIRECT_IO_BLOCK_BYTES;
use crate::log::log_validator;
use crate::log::record_batch::{self, BatchError, BatchHeader};
use crate::log::{LogError, TopicPartition};
use crate::protocol::errors;
use crate::protocol::frame::Placement;
use crate::protocol::produce_prefix;
use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};

/// Kafka's `KafkaApis.handleProduceRequest` and `ReplicaManager.appendRecords`. The
/// checks run in Kafka's order, per partition: the topic exists, the request's records
/// are one v2 batch (`check_request_records`), acks is valid, the topic is not internal
/// (only Kafka's own `__admin_client` may write there), then the log's own checks.
pub fn handle(
    broker: &Broker,
    req: ProduceRequest,
    version: i16,
    client_id: &str,
) -> Result<Option<ProduceResponse>, HandlerError> {
    let acks = req.acks;
    // Transactional records need a transactional id, and without one the whole request
    // is refused. Fjord has no transaction coordinator yet, so with one they are
    // refused too; an id beside plain batches is ignored, as Kafka ignores it.
    let transactional = has_transactional_records(&req);
    let last = last_occurrences(&req);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut first_error = None;
    let mut position = 0usize;
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            position += 1;
            // A partition named twice: Kafka keeps the last (its request is a map).
            if !last[position - 1] {
                continue;
            }
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let records = p.records.as_deref().unwrap_or(&[]);
            let code = if transactional && req.transactional_id.is_none() {
                errors::code(ResponseError::TransactionalIdAuthorizationFailed)
            } else if transactional {
                resp.error_message = Some(s("transactions are not supported by this broker yet"));
                errors::code(ResponseError::InvalidRequest)
            } else {
                let partition = Partition {
                    topic: &name,
                    index: p.index,
                    records,
                };
                append_partition(broker, &partition, version, acks, client_id, &mut resp)
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

/// For each partition entry of the request, in order, whether it is the last that
/// names its partition. Kafka's `handleProduceRequest` collects the partitions into
/// maps, so a partition named twice is appended once, with its last records, and
/// answered once.
fn last_occurrences(req: &ProduceRequest) -> Vec<bool> {
    super::last_entries(
        req.topic_data
            .iter()
            .flat_map(|t| t.partition_data.iter().map(|p| (t.name.as_str(), p.index))),
    )
}

/// One partition's part of a Produce request.
struct Partition<'a> {
    topic: &'a str,
    index: i32,
    records: &'a [u8],
}

/// Whether any partition's batch has the transactional attribute, read in place.
fn has_transactional_records(req: &ProduceRequest) -> bool {
    req.topic_data.iter().flat_map(|t| &t.partition_data).any(|p| {
        let records = p.records.as_deref().unwrap_or(&[]);
        is_v2_batch(records) && BatchHeader::parse(records).is_ok_and(|h| h.is_transactional())
    })
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

/// Kafka's client id for its own admin writes (`AdminUtils.ADMIN_CLIENT_ID`): the only
/// one allowed to append to an internal topic.
const ADMIN_CLIENT_ID: &str = "__admin_client";

fn append_partition(
    broker: &Broker,
    p: &Partition<'_>,
    version: i16,
    acks: i16,
    client_id: &str,
    resp: &mut PartitionProduceResponse,
) -> i16 {
    let log = match topics::partition_log(broker, p.topic, p.index) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Err(e) = log_validator::check_request_records(p.records, version) {
        return errors::batch_error_code(&e);
    }
    if !(-1..=1).contains(&acks) {
        return errors::code(ResponseError::InvalidRequiredAcks);
    }
    if crate::metadata::is_internal_topic(p.topic) && client_id != ADMIN_CLIENT_ID {
        return errors::code(ResponseError::InvalidTopicException);
    }
    // acks=all needs min.insync.replicas of the ISR, but at most as many as there are
    // replicas (Kafka's `Partition.effectiveMinIsr`): a single replica, the leader,
    // always meets it.
    match log.append_as_leader(p.records, topics::LEADER_EPOCH, broker.time.now_ms()) {
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
            tracing::debug!(topic = p.topic, partition = p.index, error = %e, "produce refused");
            let code = errors::log_error_code(&e);
            if reports_log_start_offset(code) {
                resp.log_start_offset = log.log_start_offset();
            }
            if let LogError::Batch(BatchError::RecordErrors { errors, .. }) = &e {
                // Kafka's only error with a message of its own (`hasCustomErrorMessage`).
                resp.error_message = Some(s(e.to_string()));
                resp.record_errors = errors
                    .iter()
                    .map(|r| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(r.batch_index)
                            .with_batch_index_error_message(Some(s(r.message.clone())))
                    })
                    .collect();
            }
            code
        }
    }
}

/// Whether a refused append still reports the partition's log start offset: Kafka's
/// `appendToLocalLog` leaves it -1 only for the errors it expects of a client
/// (unknown partition, not leader, too large, corrupt) and a storage error.
fn reports_log_start_offset(code: i16) -> bool {
    use ResponseError as E;
    !matches!(
        ResponseError::try_from_code(code),
        Some(
            E::UnknownTopicOrPartition
                | E::NotLeaderOrFollower
                | E::MessageTooLarge
                | E::RecordListTooLarge
                | E::CorruptMessage
                | E::KafkaStorageError
        )
    )
}
