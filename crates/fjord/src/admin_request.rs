//! The few requests the rdkafka crate does not expose (OffsetDelete, topic ids from
//! Metadata), sent with the
//! kafka-protocol codecs over a blocking socket: FindCoordinator on a bootstrap broker,
//! then the request to the group's coordinator. Not a general client: one request, one
//! response, a size limit on the response and a timeout on every read.

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response larger than this is refused rather than allocated.
const RESPONSE_BYTES_MAX: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `body` and decodes the response.
fn request<Q: Encodable, R: Decodable>(addr: &str, key: ApiKey, version: i16, body: &Q) -> Result<R> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fjord-admin")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).context("reading the response")?;
    let n = usize::try_from(i32::from_be_bytes(len)).map_err(|_| anyhow!("negative response length"))?;
    if n > RESPONSE_BYTES_MAX {
        bail!("response of {n} bytes exceeds the {RESPONSE_BYTES_MAX}-byte limit");
    }
    let mut frame = vec![0u8; n];
    stream.read_exact(&mut frame)?;
    let mut frame = Bytes::from(frame);
    let rh = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    if rh.correlation_id != 1 {
        bail!(
            "response correlation id {} does not match the request",
            rh.correlation_id
        );
    }
    R::decode(&mut frame, version)
}

/// Sends `body` to the first bootstrap broker that answers.
pub fn to_any_broker<Q: Encodable, R: Decodable>(bootstrap: &str, key: ApiKey, version: i16, body: &Q) -> Result<R> {
    let mut last = anyhow!("no bootstrap server given");
    for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match request(addr, key, version, body) {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The coordinator of `group` (node id, host, port), found through the first bootstrap
/// broker that answers.
pub fn find_coordinator(bootstrap: &str, group: &str) -> Result<(i32, String, i32)> {
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let found: FindCoordinatorResponse = to_any_broker(bootstrap, ApiKey::FindCoordinator, 2, &find)?;
    if found.error_code != 0 {
        bail!(
            "finding the coordinator of group '{group}' failed: error code {}",
            found.error_code
        );
    }
    Ok((found.node_id.0, found.host.to_string(), found.port))
}

/// Sends `body` to the coordinator of `group`.
pub fn to_group_coordinator<Q: Encodable, R: Decodable>(
    bootstrap: &str,
    group: &str,
    key: ApiKey,
    version: i16,
    body: &Q,
) -> Result<R> {
    let (_, host, port) = find_coordinator(bootstrap, group)?;
    to_broker(&host, port, key, version, body)
}

/// Sends `body` to the broker at `host:port`.
pub fn to_broker<Q: Encodable, R: Decodable>(host: &str, port: i32, key: ApiKey, version: i16, body: &Q) -> Result<R> {
    request(&format!("{host}:{port}"), key, version, body)
}
