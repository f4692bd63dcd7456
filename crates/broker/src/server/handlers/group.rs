//! The classic group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups.
//! Wire structs become `group::coordinator` calls here and nowhere else.

use super::{s, topic_name};
use crate::group::classic_group::codes;
use crate::group::coordinator::{CommitParams, JoinOutcome, JoinParams, SyncParams};
use crate::group::offsets::OffsetAndMetadata;
use crate::server::{groups, Broker};
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{DeletableGroupResult, DeleteGroupsResponse};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{BrokerId, GroupId};
use std::time::Duration;

const KEY_TYPE_GROUP: i8 = 0;

/// `listener`: the one the request came through; the coordinator's address is the one
/// advertised for it, and COORDINATOR_NOT_AVAILABLE when it is not advertised, as
/// Kafka answers when the coordinator has no endpoint for the request's listener.
pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    let advertised = broker.advertised(listener);
    let node = BrokerId(broker.node_id());
    // This broker leads every __consumer_offsets partition, so it coordinates every group.
    // As in Kafka, the first lookup creates __consumer_offsets.
    let ok =
        req.key_type == KEY_TYPE_GROUP && advertised.is_some() && groups::offsets_log(broker, req.key.as_str()).is_ok();
    let (host, port) = advertised.unwrap_or_default();
    let code = if ok {
        codes::NONE
    } else {
        codes::COORDINATOR_NOT_AVAILABLE
    };
    if version < 4 {
        let r = FindCoordinatorResponse::default().with_error_code(code);
        return if ok {
            r.with_node_id(node).with_host(s(host)).with_port(port)
        } else {
            r.with_node_id(BrokerId(-1)).with_host(s("")).with_port(-1)
        };
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key).with_error_code(code);
            if ok {
                c.with_node_id(node).with_host(s(host.clone())).with_port(port)
            } else {
                let c = c.with_node_id(BrokerId(-1)).with_host(s("")).with_port(-1);
                if req.key_type == KEY_TYPE_GROUP {
                    c
                } else {
                    c.with_error_message(Some(s("transactions are not supported yet")))
                }
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

/// Limit: the least a JoinGroup waits for its rebalance before it gives up (the Java
/// consumer's default rebalance timeout, `max.poll.interval.ms`).
const JOIN_WAIT_MIN_MS: i64 = 300_000;

pub async fn join_group(
    broker: &Broker,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let params = JoinParams {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|x| x.to_string()),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms as i64,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms as i64
        } else {
            req.session_timeout_ms as i64
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        skip_assignment_supported: version >= 9,
    };
    // Only a safety net: the group answers every waiting join by its rebalance's
    // deadline, the longest rebalance timeout among its members, which may be another
    // member's (a JoinGroup answered UNKNOWN_MEMBER_ID at this member's own timeout
    // lost its place in a rebalance still running).
    let longest_ms = params
        .rebalance_timeout_ms
        .max(params.session_timeout_ms)
        .max(JOIN_WAIT_MIN_MS);
    let wait = Duration::from_millis((longest_ms as u64).saturating_add(5_000));
    let result = if groups::coordinator_unavailable(broker, &params.group_id) {
        crate::group::classic_group::JoinResult::error(codes::NOT_COORDINATOR, &params.member_id)
    } else {
        let write = |group: &str, records: &crate::group::consumer_records::RawRecords| {
            groups::write_records(broker, group, records)
        };
        match broker.groups.join(params.clone(), &write) {
            JoinOutcome::Now(immediate) => immediate,
            JoinOutcome::Wait(rx) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(r)) => r,
                _ => crate::group::classic_group::JoinResult::error(codes::UNKNOWN_MEMBER_ID, &params.member_id),
            },
        }
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(result.error_code)
        .with_generation_id(result.generation_id)
        .with_protocol_name(result.protocol_name.map(s).or_else(|| (version < 7).then(|| s(""))))
        .with_leader(s(result.leader))
        .with_member_id(s(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|(id, instance, meta)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(instance.filter(|_| version >= 5).map(s))
                        .with_metadata(meta)
                })
                .collect(),
        );
    if version >= 7 {
        resp.protocol_type = result.protocol_type.map(s);
    }
    resp.skip_assignment = result.skip_assignment && version >= 9;
    resp
}

pub async fn sync_group(broker: &Broker, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let params = SyncParams {
        group_id: req.group_id.as_str(),
        generation: req.generation_id,
        member_id: req.member_id.as_str(),
        group_instance_id: req.group_instance_id.as_deref(),
        protocol_type: req.protocol_type.as_deref().filter(|_| version >= 5),
        protocol_name: req.protocol_name.as_deref().filter(|_| version >= 5),
    };
    let result = match broker.groups.sync(params, assignments) {
        Err(immediate) => immediate,
        Ok(rx) => match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(r)) => r,
            _ => crate::group::classic_group::SyncResult {
                error_code: codes::REBALANCE_IN_PROGRESS,
                ..Default::default()
            },
        },
    };
    let mut resp = SyncGroupResponse::default()
        .with_error_code(result.error_code)
        .with_assignment(result.assignment);
    if version >= 5 {
        resp.protocol_type = result.protocol_type.map(s);
        resp.protocol_name = result.protocol_name.map(s);
    }
    resp
}

pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(broker.groups.heartbeat(
        req.group_id.as_str(),
        req.generation_id,
        req.member_id.as_str(),
        req.group_instance_id.as_deref(),
    ))
}

pub fn leave_group(broker: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if version < 3 {
        let codes = broker
            .groups
            .leave(req.group_id.as_str(), &[(req.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(codes[0]);
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|x| x.to_string()),
            )
        })
        .collect();
    let results = broker.groups.leave(req.group_id.as_str(), &members);
    LeaveGroupResponse::default().with_members(
        req.members
            .iter()
            .zip(results)
            .map(|(m, code)| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(code)
            })
            .collect(),
    )
}

pub fn offset_commit(broker: &Broker, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let group = req.group_id.to_string();
    let mut code = broker.groups.validate_commit(CommitParams {
        group_id: &group,
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.as_str(),
        group_instance_id: req.group_instance_id.as_deref(),
        version,
    });
    let now = broker.time.now_ms();
    let max_meta = broker.groups.config.offset_metadata_max_bytes;
    let mut entries = Vec::new();
    let mut too_large = std::collections::HashSet::new();
    let mut unknown = std::collections::HashSet::new();
    for t in &req.topics {
        // As Kafka's KafkaApis: a partition the cluster does not have is answered
        // UNKNOWN_TOPIC_OR_PARTITION and not stored, whatever the group's state.
        let partitions = broker.topics.partition_count(t.name.as_str()).unwrap_or(0);
        for p in &t.partitions {
            if !(0..partitions).contains(&p.partition_index) {
                unknown.insert((t.name.to_string(), p.partition_index));
                continue;
            }
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            if metadata.len() > max_meta {
                too_large.insert((t.name.to_string(), p.partition_index));
                continue;
            }
            let value = OffsetAndMetadata {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata,
                commit_timestamp_ms: now,
            };
            entries.push(((t.name.to_string(), p.partition_index), Some(value)));
        }
    }
    // Nothing to store (every partition refused): no write, and no group made.
    if code == codes::NONE && !entries.is_empty() {
        let _commits = broker.groups.commit_lock(&group);
        if let Err(c) = groups::write_offsets(broker, &group, &entries) {
            code = c;
        } else {
            broker.groups.store_offsets(
                &group,
                entries.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
            );
        }
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let key = (t.name.to_string(), p.partition_index);
                    let c = if unknown.contains(&key) {
                        codes::UNKNOWN_TOPIC_OR_PARTITION
                    } else if too_large.contains(&key) {
                        codes::OFFSET_METADATA_TOO_LARGE
                    } else {
                        code
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// `(topic, [(partition, offset, leader_epoch, metadata)])` for the requested topics, or
/// for every committed one when `topics` is `None`.
type Fetched = Vec<(String, Vec<(i32, i64, i32, String)>)>;

fn fetch_group(broker: &Broker, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Fetched {
    let committed = broker.groups.committed(group);
    let wanted = topics.unwrap_or_else(|| {
        let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for (t, p) in committed.keys() {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        by_topic.into_iter().collect()
    });
    wanted
        .into_iter()
        .map(|(t, parts)| {
            let rows = parts
                .into_iter()
                .map(|p| match committed.get(&(t.clone(), p)) {
                    Some(o) => (p, o.offset, o.leader_epoch, o.metadata.clone()),
                    None => (p, -1, -1, String::new()),
                })
                .collect();
            (t, rows)
        })
        .collect()
}

pub fn offset_fetch(broker: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version < 8 {
        if groups::coordinator_unavailable(broker, req.group_id.as_str()) {
            return offset_fetch_not_coordinator(req, version);
        }
        let topics = req.topics.map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let fetched = fetch_group(broker, req.group_id.as_str(), topics);
        let topics = fetched
            .into_iter()
            .map(|(t, rows)| {
                let parts = rows
                    .into_iter()
                    .map(|(p, o, e, m)| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                            .with_committed_leader_epoch(if version >= 5 { e } else { -1 })
                            .with_metadata(Some(s(m)))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(parts)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = req
        .groups
        .iter()
        .map(|g| {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            if groups::coordinator_unavailable(broker, g.group_id.as_str()) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(codes::NOT_COORDINATOR);
            }
            let fetched = fetch_group(broker, g.group_id.as_str(), topics);
            let topics = fetched
                .into_iter()
                .map(|(t, rows)| {
                    let parts = rows
                        .into_iter()
                        .map(|(p, o, e, m)| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(e)
                                .with_metadata(Some(s(m)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(t))
                        .with_partitions(parts)
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// OffsetFetch v0-7's NOT_COORDINATOR: the response's error from v2, each asked
/// partition's before (v0 and v1 have no other place for it), as Kafka's.
fn offset_fetch_not_coordinator(req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(codes::NOT_COORDINATOR);
    }
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let parts = t
                .partition_indexes
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_error_code(codes::NOT_COORDINATOR)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub fn list_groups(broker: &Broker, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let filter: Vec<String> = req
        .states_filter
        .iter()
        .map(|x| x.to_string().to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|x| x.to_string().to_ascii_lowercase())
        .collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|g| filter.is_empty() || filter.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|l| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(s(l.group_id)))
                .with_protocol_type(s(l.protocol_type));
            if version >= 4 {
                g.group_state = s(l.state);
            }
            if version >= 5 {
                g.group_type = s(l.group_type);
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups: Vec<DescribedGroup> = req
        .groups
        .iter()
        .map(|id| match broker.groups.describe(id.as_str()) {
            None => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(s("Dead")),
            Some(d) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(s(d.state))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(s))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        })
        .collect();
    if req.include_authorized_operations {
        for g in &mut groups {
            g.authorized_operations = super::GROUP_AUTHORIZED_OPERATIONS;
        }
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .iter()
        .map(|g| {
            let _commits = broker.groups.commit_lock(g.as_str());
            let code = match broker.groups.delete(g.as_str()) {
                Err(c) => c,
                Ok((keys, group_tombstones)) => {
                    let tombstones: Vec<_> = keys.into_iter().map(|k| (k, None)).collect();
                    groups::write_offsets(broker, g.as_str(), &tombstones)
                        .and_then(|()| groups::write_records(broker, g.as_str(), &group_tombstones))
                        .err()
                        .unwrap_or(codes::NONE)
                }
            };
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub fn offset_delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.to_string();
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    // As Kafka's `KafkaApis.handleOffsetDeleteRequest`: a partition the cluster does
    // not have is answered UNKNOWN_TOPIC_OR_PARTITION, and only the others go to the
    // group.
    let exists = |(t, p): &(String, i32)| (0..broker.topics.partition_count(t).unwrap_or(0)).contains(p);
    type Partitions = Vec<(String, i32)>;
    let (known, unknown): (Partitions, Partitions) = wanted.into_iter().partition(exists);
    let mut verdicts = match broker.groups.deletable_offsets(&group, &known) {
        Ok(v) => v,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    verdicts.extend(unknown.into_iter().map(|k| (k, codes::UNKNOWN_TOPIC_OR_PARTITION)));
    let deletable: Vec<(String, i32)> = verdicts
        .iter()
        .filter(|(_, c)| *c == codes::NONE)
        .map(|(k, _)| k.clone())
        .collect();
    let tombstones: Vec<_> = deletable.iter().map(|k| (k.clone(), None)).collect();
    let _commits = broker.groups.commit_lock(&group);
    if let Err(code) = groups::write_offsets(broker, &group, &tombstones) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    broker.groups.remove_offsets(&group, &deletable);
    let mut by_topic: std::collections::BTreeMap<String, Vec<OffsetDeleteResponsePartition>> = Default::default();
    for ((t, p), code) in verdicts {
        by_topic.entry(t).or_default().push(
            OffsetDeleteResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(code),
        );
    }
    OffsetDeleteResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect(),
    )
}
