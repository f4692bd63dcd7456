//! ApiVersions: the APIs and versions Fjord serves. A client asking a version Fjord
//! lacks gets a v0 response with UNSUPPORTED_VERSION and the list (KIP-511), so it can
//! retry with one it finds there.

use crate::protocol::{self, errors};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::ApiKey;

/// Returns the response and the version to encode it with.
pub fn handle(version: i16) -> (ApiVersionsResponse, i16) {
    let mut api_keys = Vec::new();
    for (key, _, _) in protocol::SUPPORTED_APIS {
        if let (Some(min), Some((_, max))) = (
            protocol::advertised_min_version(*key),
            protocol::supported_versions(*key),
        ) {
            api_keys.push(
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            );
        }
    }
    let supported =
        protocol::supported_versions(ApiKey::ApiVersions).is_some_and(|(min, max)| (min..=max).contains(&version));
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_keys);
    if !supported {
        resp.error_code = errors::code(ResponseError::UnsupportedVersion);
        return (resp, 0);
    }
    (resp, version)
}
