//! ApiVersions: the APIs and versions Fjord serves. As Kafka's
//! `KafkaApis.handleApiVersionsRequest`: a client asking a version Fjord lacks gets a
//! v0 response with UNSUPPORTED_VERSION and the ApiVersions entry alone (KIP-511), so
//! it can retry with a version it finds there; from v3, a client software name or
//! version that is not Kafka's pattern gets INVALID_REQUEST and no list.

use crate::protocol::{self, errors};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::ApiKey;

/// Returns the response and the version to encode it with. `request` is the decoded
/// body, `None` when its version is one Fjord lacks (then it was not decoded).
pub fn handle(version: i16, request: Option<&ApiVersionsRequest>) -> (ApiVersionsResponse, i16) {
    let Some(request) = request else {
        let own = entry(ApiKey::ApiVersions).into_iter().collect();
        let resp = ApiVersionsResponse::default()
            .with_error_code(errors::code(ResponseError::UnsupportedVersion))
            .with_api_keys(own);
        return (resp, 0);
    };
    if version >= 3
        && !(is_software_name(&request.client_software_name) && is_software_name(&request.client_software_version))
    {
        let resp = ApiVersionsResponse::default().with_error_code(errors::code(ResponseError::InvalidRequest));
        return (resp, version);
    }
    let api_keys = protocol::SUPPORTED_APIS
        .iter()
        .filter_map(|(key, _, _)| entry(*key))
        .collect();
    (ApiVersionsResponse::default().with_api_keys(api_keys), version)
}

/// Whether ApiVersions `version` is one Fjord serves (and so decodes).
pub fn is_supported(version: i16) -> bool {
    protocol::supported_versions(ApiKey::ApiVersions).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The advertised versions of `key`.
fn entry(key: ApiKey) -> Option<ApiVersion> {
    let min = protocol::advertised_min_version(key)?;
    let (_, max) = protocol::supported_versions(key)?;
    Some(
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max),
    )
}

/// Kafka's `ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN`:
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn is_software_name(s: &str) -> bool {
    let alphanumeric = |b: &u8| b.is_ascii_alphanumeric();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alphanumeric(first)
                && alphanumeric(last)
                && bytes.iter().all(|b| alphanumeric(b) || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_software_name;

    #[test]
    fn software_names_follow_kafkas_pattern() {
        for good in [
            "librdkafka",
            "2.12.1",
            "confluent-kafka-python",
            "a",
            "1.0-rdkafka-2.12.1",
        ] {
            assert!(is_software_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a.", "a b", "kafka_python", "é"] {
            assert!(!is_software_name(bad), "{bad}");
        }
    }
}
