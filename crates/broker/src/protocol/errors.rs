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
        LogError::FencedLeaderEpoch { .. } => code(ResponseError::FencedLeaderEpoch),
        LogError::UnknownLeaderEpoch { .. } => code(ResponseError::UnknownLeaderEpoch),
        LogError::Io(_) | LogError::NoLogDir | LogError::LogDirOffline => code(ResponseError::KafkaStorageError),
        LogError::Corrupt(_) => code(ResponseError::CorruptMessage),
        LogError::RecordBatchTooLarge { .. } => code(ResponseError::RecordListTooLarge),
    }
}

/// The code a group coordinator answers when writing its records failed with
/// `append_code`, as Kafka's coordinator turns a log append's error into one its
/// clients act on: a storage error says "find the coordinator again"
/// (NOT_COORDINATOR), a missing partition "try later" (COORDINATOR_NOT_AVAILABLE),
/// and a size limit is the coordinator's own fault (UNKNOWN_SERVER_ERROR). Clients
/// retry the first two; KAFKA_STORAGE_ERROR itself means nothing to a committer.
pub fn coordinator_append_error_code(append_code: i16) -> i16 {
    use ResponseError as E;
    match ResponseError::try_from_code(append_code) {
        Some(
            E::UnknownTopicOrPartition | E::NotEnoughReplicas | E::NotEnoughReplicasAfterAppend | E::RequestTimedOut,
        ) => code(E::CoordinatorNotAvailable),
        Some(E::KafkaStorageError | E::NotLeaderOrFollower) => code(E::NotCoordinator),
        Some(E::MessageTooLarge | E::RecordListTooLarge | E::InvalidFetchSize) => code(E::UnknownServerError),
        _ => append_code,
    }
}

pub fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::CrcMismatch { .. } | BatchError::Truncated(_) | BatchError::Corrupt(_) => {
            code(ResponseError::CorruptMessage)
        }
        // Kafka's ProduceRequest.validateRecords: magic < 2 and batch counts are InvalidRecord.
        BatchError::UnsupportedMagic(_) | BatchError::Invalid(_) => code(ResponseError::InvalidRecord),
        BatchError::TooLarge { .. } => code(ResponseError::MessageTooLarge),
        BatchError::UnsupportedCompressionType(_) => code(ResponseError::UnsupportedCompressionType),
        BatchError::RecordErrors {
            invalid_timestamp: true,
            ..
        } => code(ResponseError::InvalidTimestamp),
        BatchError::RecordErrors { .. } => code(ResponseError::InvalidRecord),
    }
}

pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicExists(_) => code(ResponseError::TopicAlreadyExists),
        MetadataError::UnknownTopic(_) => code(ResponseError::UnknownTopicOrPartition),
        MetadataError::InvalidTopic(..) => code(ResponseError::InvalidTopicException),
        MetadataError::InvalidPartitions(_) => code(ResponseError::InvalidPartitions),
        MetadataError::InvalidReplicationFactor(_) => code(ResponseError::InvalidReplicationFactor),
        MetadataError::InvalidReplicaAssignment(_) => code(ResponseError::InvalidReplicaAssignment),
        MetadataError::InvalidRequest(_) => code(ResponseError::InvalidRequest),
        MetadataError::Config(_) | MetadataError::InvalidConfig(_) => code(ResponseError::InvalidConfig),
        MetadataError::Io(_) | MetadataError::Corrupt(_) => code(ResponseError::KafkaStorageError),
    }
}

/// The error message sent with `metadata_error_code`: Kafka's controller's words, or
/// none where Kafka sends none (an unknown topic: `new UnknownTopicOrPartitionException()`).
pub fn metadata_error_message(e: &MetadataError) -> Option<String> {
    match e {
        MetadataError::UnknownTopic(_) => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit that a full disk refuses tells the client to look for the coordinator
    /// again, which it retries, rather than KAFKA_STORAGE_ERROR, which a committer
    /// takes as final.
    #[test]
    fn coordinator_append_errors_are_the_ones_kafka_answers() {
        let full_disk = log_error_code(&LogError::Io(std::io::Error::from_raw_os_error(28)));
        assert_eq!(full_disk, code(ResponseError::KafkaStorageError));
        let cases = [
            (full_disk, ResponseError::NotCoordinator),
            (
                code(ResponseError::UnknownTopicOrPartition),
                ResponseError::CoordinatorNotAvailable,
            ),
            (code(ResponseError::MessageTooLarge), ResponseError::UnknownServerError),
            (code(ResponseError::CorruptMessage), ResponseError::CorruptMessage),
        ];
        for (append, want) in cases {
            assert_eq!(
                coordinator_append_error_code(append),
                code(want),
                "append code {append}"
            );
        }
        assert_eq!(coordinator_append_error_code(NONE), NONE);
    }
}
