//! The one place domain errors become Kafka error codes, chosen as Kafka chooses them.

use crate::log::producer_state::ProducerError;
use crate::log::record_batch::BatchError;
use crate::log::LogError;
use crate::metadata::MetadataError;
use kafka_protocol::error::ResponseError;

pub const NONE: i16 = 0;

pub fn code(e: ResponseError) -> i16 {
    e.code()
}

pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Batch(b) => batch_error_code(b),
        LogError::Producer(ProducerError::InvalidProducerEpoch { .. }) => code(ResponseError::InvalidProducerEpoch),
        LogError::Producer(ProducerError::OutOfOrderSequence { .. }) => code(ResponseError::OutOfOrderSequenceNumber),
        LogError::OffsetOutOfRange { .. } => code(ResponseError::OffsetOutOfRange),
        LogError::Deleted => code(ResponseError::UnknownTopicOrPartition),
        LogError::Io(_) | LogError::NoLogDir => code(ResponseError::KafkaStorageError),
        LogError::Corrupt(_) => code(ResponseError::CorruptMessage),
    }
}

pub fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::CrcMismatch { .. } | BatchError::Truncated(_) => code(ResponseError::CorruptMessage),
        // Kafka's ProduceRequest.validateRecords: magic < 2 and batch counts are InvalidRecord.
        BatchError::UnsupportedMagic(_) | BatchError::Invalid(_) => code(ResponseError::InvalidRecord),
        BatchError::TooLarge { .. } => code(ResponseError::MessageTooLarge),
        BatchError::InvalidTimestamp { .. } => code(ResponseError::InvalidTimestamp),
    }
}

pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicExists(_) => code(ResponseError::TopicAlreadyExists),
        MetadataError::UnknownTopic(_) => code(ResponseError::UnknownTopicOrPartition),
        MetadataError::InvalidTopic(..) => code(ResponseError::InvalidTopicException),
        MetadataError::InvalidPartitions(_) => code(ResponseError::InvalidPartitions),
        MetadataError::InvalidReplicationFactor(_) => code(ResponseError::InvalidReplicationFactor),
        MetadataError::Config(_) => code(ResponseError::InvalidConfig),
        MetadataError::Io(_) | MetadataError::Corrupt(_) => code(ResponseError::KafkaStorageError),
    }
}
