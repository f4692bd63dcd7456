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
            let (resp, v) = api_versions::handle(version);
            version = v;
            ResponseKind::ApiVersions(resp)
        }
        ApiKey::Metadata => ResponseKind::Metadata(metadata::handle(
            broker,
            protocol::decode_body(&mut raw)?,
            version,
            &client.listener,
        )),
        ApiKey::Produce => match produce::handle(broker, protocol::decode_body(&mut raw)?, version)? {
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
            ResponseKind::CreateTopics(admin::create_topics(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::DeleteTopics => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, protocol::decode_body(&mut raw)?, version))
        }
        ApiKey::CreatePartitions => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::DeleteRecords => {
            ResponseKind::DeleteRecords(admin::delete_records(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::DescribeConfigs => {
            ResponseKind::DescribeConfigs(configs::describe(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::AlterConfigs => ResponseKind::AlterConfigs(configs::alter(broker, protocol::decode_body(&mut raw)?)),
        ApiKey::IncrementalAlterConfigs => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::DescribeCluster => ResponseKind::DescribeCluster(cluster::describe_cluster(
            broker,
            protocol::decode_body(&mut raw)?,
            &client.listener,
        )),
        ApiKey::DescribeLogDirs => {
            ResponseKind::DescribeLogDirs(cluster::describe_log_dirs(broker, protocol::decode_body(&mut raw)?))
        }
        ApiKey::FindCoordinator => ResponseKind::FindCoordinator(group::find_coordinator(
            broker,
            protocol::decode_body(&mut raw)?,
            version,
            &client.listener,
        )),
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
            ResponseKind::InitProducerId(cluster::init_producer_id(broker, protocol::decode_body(&mut raw)?))
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
