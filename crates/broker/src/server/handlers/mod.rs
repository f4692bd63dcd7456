//! One module per group of Kafka APIs. `dispatch` decodes the body with the codec
//! crate, calls the handler with the decoded request, and frames the response.
//! Handlers turn wire structs into domain calls (`server::topics`, `log`) and back.

mod admin;
mod api_versions;
mod cluster;
mod configs;
mod consumer_group;

pub use consumer_group::BrokerTopics;
mod fetch;
mod group;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
pub mod produce;

use super::Broker;
use crate::protocol::fetch_response::{self, ResponseChunk};
use crate::protocol::{self, DecodeError, EncodeError, RawRequest};
use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Kafka closes an acks=0 producer's connection on error, so it notices.
    #[error("acks=0 produce failed with error code {0}")]
    AcksZeroFailure(i16),
    /// The runtime stopped while a handler ran on the blocking pool.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// For each (topic, partition) entry of a request, in order, whether it is the last
/// that names its partition: Kafka's handlers collect a request's partitions into
/// maps, so one named twice is acted on once, with its last entry, and answered once.
fn last_entries<'a>(entries: impl Iterator<Item = (&'a str, i32)>) -> Vec<bool> {
    let entries: Vec<(&str, i32)> = entries.collect();
    // The common request, one partition (every produce of the benchmark): nothing can
    // repeat, so no map is built on the produce path.
    if entries.len() <= 1 {
        return vec![true; entries.len()];
    }
    let mut last_at = std::collections::HashMap::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        last_at.insert(*entry, i);
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| last_at.get(e) == Some(&i))
        .collect()
}

/// Handles one request; `None` when no response is sent (acks=0 produce).
pub async fn dispatch(
    broker: &Arc<Broker>,
    mut raw: RawRequest,
    client: &super::connection::Client,
) -> Result<Option<Vec<ResponseChunk>>, HandlerError> {
    let peer = client.peer;
    let mut version = raw.header.request_api_version;
    let correlation_id = raw.header.correlation_id;
    let key = raw.api_key;
    let response = match key {
        ApiKey::ApiVersions => {
            // A version Fjord lacks is answered undecoded (its body may have any shape).
            let request = if api_versions::is_supported(version) {
                Some(protocol::decode_body(&mut raw)?)
            } else {
                None
            };
            let (resp, v) = api_versions::handle(version, request.as_ref());
            version = v;
            ResponseKind::ApiVersions(resp)
        }
        ApiKey::Metadata => {
            let (req, listener) = (protocol::decode_body(&mut raw)?, client.listener.clone());
            ResponseKind::Metadata(
                off_network_thread(broker, move |b| metadata::handle(b, req, version, &listener)).await?,
            )
        }
        ApiKey::Produce => match produce::handle(
            broker,
            protocol::decode_body(&mut raw)?,
            version,
            raw.header.client_id.as_deref().unwrap_or_default(),
        )? {
            Some(r) => ResponseKind::Produce(r),
            None => return Ok(None),
        },
        ApiKey::Fetch => {
            // Framed by hand: records go out with sendfile, never copied.
            let data = fetch::handle(broker, protocol::decode_body(&mut raw)?, version).await;
            return Ok(Some(fetch_response::encode(version, correlation_id, &data).0));
        }
        ApiKey::ListOffsets => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::CreateTopics => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::CreateTopics(
                off_network_thread(broker, move |b| admin::create_topics(b, req, version)).await?,
            )
        }
        ApiKey::DeleteTopics => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::DeleteTopics(
                off_network_thread(broker, move |b| admin::delete_topics(b, req, version)).await?,
            )
        }
        ApiKey::CreatePartitions => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::CreatePartitions(off_network_thread(broker, move |b| admin::create_partitions(b, req)).await?)
        }
        ApiKey::DeleteRecords => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::DeleteRecords(off_network_thread(broker, move |b| admin::delete_records(b, req)).await?)
        }
        ApiKey::DescribeConfigs => {
            ResponseKind::DescribeConfigs(configs::describe(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::AlterConfigs => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::AlterConfigs(off_network_thread(broker, move |b| configs::alter(b, req)).await?)
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::IncrementalAlterConfigs(
                off_network_thread(broker, move |b| configs::incremental_alter(b, req)).await?,
            )
        }
        ApiKey::DescribeCluster => ResponseKind::DescribeCluster(cluster::describe_cluster(
            broker,
            protocol::decode_body(&mut raw)?,
            version,
            &client.listener,
        )),
        ApiKey::DescribeLogDirs => {
            ResponseKind::DescribeLogDirs(cluster::describe_log_dirs(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::FindCoordinator => {
            let (req, listener) = (protocol::decode_body(&mut raw)?, client.listener.clone());
            ResponseKind::FindCoordinator(
                off_network_thread(broker, move |b| group::find_coordinator(b, req, version, &listener)).await?,
            )
        }
        ApiKey::JoinGroup => {
            let client_id = raw.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::JoinGroup(
                group::join_group(broker, req, version, &client_id, &format!("/{}", peer.ip())).await,
            )
        }
        ApiKey::SyncGroup => {
            ResponseKind::SyncGroup(group::sync_group(broker, protocol::decode_body(&mut raw)?, version).await)
        }
        ApiKey::Heartbeat => ResponseKind::Heartbeat(group::heartbeat(broker, protocol::decode_body(&mut raw)?)),
        ApiKey::LeaveGroup => {
            ResponseKind::LeaveGroup(group::leave_group(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::OffsetCommit => {
            ResponseKind::OffsetCommit(group::offset_commit(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::OffsetFetch => {
            ResponseKind::OffsetFetch(group::offset_fetch(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::ListGroups => {
            ResponseKind::ListGroups(group::list_groups(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::DescribeGroups => {
            ResponseKind::DescribeGroups(group::describe_groups(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::DeleteGroups => {
            ResponseKind::DeleteGroups(group::delete_groups(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::OffsetDelete => {
            ResponseKind::OffsetDelete(group::offset_delete(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let client_id = raw.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::heartbeat(
                broker,
                req,
                version,
                &client_id,
                &format!("/{}", peer.ip()),
            ))
        }
        ApiKey::ConsumerGroupDescribe => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::InitProducerId => {
            let req = protocol::decode_body(&mut raw)?;
            ResponseKind::InitProducerId(off_network_thread(broker, move |b| cluster::init_producer_id(b, req)).await?)
        }
        ApiKey::OffsetForLeaderEpoch => ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(
            broker,
            protocol::decode_body(&mut raw)?,
        )),
        other => {
            return Err(DecodeError::UnsupportedVersion {
                api: other,
                version,
                correlation_id,
            }
            .into());
        }
    };
    let bytes = protocol::encode_response(key, version, correlation_id, &response)?;
    Ok(Some(vec![ResponseChunk::Bytes(bytes.freeze())]))
}

/// Runs a handler that may append to the metadata log on the blocking pool. That
/// append ends in an fdatasync, 0.1-1 s on this VM's disk (0.69 s seen for the
/// auto-creation of `__consumer_offsets`), and on the network thread it held every
/// other connection of the thread, producers' included, for as long. Kafka's network
/// threads likewise never wait for the controller. The handlers that can create
/// topics (Metadata, FindCoordinator) go too: their cost here is a thread hand-off.
async fn off_network_thread<T: Send + 'static>(
    broker: &Arc<Broker>,
    handler: impl FnOnce(&Broker) -> T + Send + 'static,
) -> Result<T, HandlerError> {
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || handler(&b)).await {
        Ok(response) => Ok(response),
        // A panic in the handler is the panic it would have been on this thread.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(HandlerError::ShuttingDown),
    }
}

/// Kafka's `AuthHelper.authorizedOperations` with no authorizer: every operation
/// `AclEntry.supportedOperations` lists for the resource type, as a bit field of
/// `AclOperation` codes (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12). Fjord
/// has no ACLs, so every client may do all of them; answered only when a request asks.
pub(crate) const TOPIC_AUTHORIZED_OPERATIONS: i32 = operations(&[3, 4, 5, 6, 7, 8, 10, 11]);
pub(crate) const GROUP_AUTHORIZED_OPERATIONS: i32 = operations(&[3, 6, 8, 10, 11]);
pub(crate) const CLUSTER_AUTHORIZED_OPERATIONS: i32 = operations(&[5, 7, 8, 9, 10, 11, 12]);

const fn operations(codes: &[u32]) -> i32 {
    let mut bits = 0;
    let mut i = 0;
    while i < codes.len() {
        bits |= 1 << codes[i];
        i += 1;
    }
    bits
}

pub(crate) fn s(x: impl Into<String>) -> StrBytes {
    StrBytes::from_string(x.into())
}

pub(crate) fn topic_name(x: impl Into<String>) -> TopicName {
    TopicName(s(x))
}
