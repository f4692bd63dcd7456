//! Kafka's wire protocol around the `kafka-protocol` codecs: size-delimited frames,
//! request headers (and, in `produce_prefix`, where a Produce request's records sit
//! before it has arrived), the table of APIs and versions Fjord serves, response framing, and
//! (in `errors`) the one place domain errors become Kafka error codes.

pub mod errors;
pub mod fetch_response;
pub mod frame;
pub mod produce_prefix;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The APIs Fjord serves and the versions of each, intersected with what the codec
/// crate knows. Order is Kafka's API key order.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The lowest version advertised in ApiVersions. Kafka 4 refuses Produce v0-2 but still
/// advertises Produce from v0 (KAFKA-18659): librdkafka before 2.x enables compression
/// only when v0 is in the range.
pub fn advertised_min_version(key: ApiKey) -> Option<i16> {
    if key == ApiKey::Produce {
        return Some(0);
    }
    supported_versions(key).map(|(min, _)| min)
}

/// The version range Fjord serves for `key`, if it serves it at all.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    let (_, min, max) = SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key)?;
    let codec = key.valid_versions();
    let (min, max) = ((*min).max(codec.min), (*max).min(codec.max));
    (min <= max).then_some((min, max))
}

/// Why a request could not even be decoded. The connection is closed after it, as Kafka
/// does for an invalid request, except for ApiVersions (answered with UNSUPPORTED_VERSION).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request shorter than its header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

/// A request whose header is decoded and whose body is still raw bytes.
#[derive(Debug)]
pub struct RawRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Decodes the request header; the body stays raw for the handler to decode.
pub fn decode_header(mut frame: Bytes) -> Result<RawRequest, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
    let supported = supported_versions(api_key);
    if !supported.is_some_and(|(min, max)| (min..=max).contains(&version)) {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer with v0 and the supported list, so the client can pick.
            let header = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id);
            return Ok(RawRequest {
                api_key,
                header,
                body: Bytes::new(),
            });
        }
        return Err(DecodeError::UnsupportedVersion {
            api: api_key,
            version,
            correlation_id,
        });
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| DecodeError::Malformed {
        api: api_key,
        version,
        reason: e.to_string(),
    })?;
    Ok(RawRequest {
        api_key,
        header,
        body: frame,
    })
}

/// Decodes a request body of type `T`; trailing bytes are an error.
pub fn decode_body<T: Decodable>(raw: &mut RawRequest) -> Result<T, DecodeError> {
    let version = raw.header.request_api_version;
    let body = T::decode(&mut raw.body, version).map_err(|e| DecodeError::Malformed {
        api: raw.api_key,
        version,
        reason: e.to_string(),
    })?;
    Ok(body)
}

/// Decodes the body of any request Fjord serves, as its handler would (used by the
/// fuzz target; handlers decode their own type).
pub fn decode_any_body(raw: &mut RawRequest) -> Result<(), DecodeError> {
    let version = raw.header.request_api_version;
    kafka_protocol::messages::RequestKind::decode(raw.api_key, &mut raw.body, version)
        .map(|_| ())
        .map_err(|e| DecodeError::Malformed {
            api: raw.api_key,
            version,
            reason: e.to_string(),
        })
}

/// The codec crate failed to encode a response (a field out of its version's range).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode response: {0}")]
pub struct EncodeError(pub String);

/// Encodes a response with its header and the 4-byte size prefix.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let header_version = api_key.response_header_version(version);
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| EncodeError(e.to_string()))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| EncodeError(e.to_string()))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}
