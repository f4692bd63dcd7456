//! The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Wire structs become `group::consumer_group` calls here.

use super::{s, topic_name};
use crate::group::assignor::Assignment;
use crate::group::consumer_group::{ConsumerHeartbeat, TopicsView};
use crate::server::Broker;
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, ConsumerGroupDescribeResponse, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat, ConsumerGroupHeartbeatResponse};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Member type of ConsumerGroupDescribe v1: 1 = consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn heartbeat(
    broker: &Broker,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions.iter().copied());
        }
        a
    });
    let hb = ConsumerHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|x| x.to_string()),
        rack_id: req.rack_id.as_ref().map(|x| x.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms as i64,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|x| x.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|x| x.to_string()),
        owned,
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
    };
    tracing::debug!(?hb, "ConsumerGroupHeartbeat");
    if crate::server::groups::coordinator_unavailable(broker, &hb.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(crate::group::classic_group::codes::NOT_COORDINATOR)
            .with_member_epoch(-1);
    }
    let write = |group: &str, records: &crate::group::consumer_records::RawRecords| {
        crate::server::groups::write_records(broker, group, records)
    };
    let reply = broker
        .groups
        .consumer_heartbeat(hb, version, &BrokerTopics(broker), &write);
    if reply.error_code != 0 {
        tracing::debug!(code = reply.error_code, message = ?reply.error_message, "ConsumerGroupHeartbeat refused");
    }
    let assignment = reply.assignment.map(|a| {
        heartbeat::Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, ps)| {
                    heartbeat::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(reply.error_code)
        .with_error_message(reply.error_message.map(s))
        .with_member_id((!reply.member_id.is_empty()).then(|| s(reply.member_id)))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(reply.heartbeat_interval_ms.clamp(0, i32::MAX as i64) as i32)
        .with_assignment(assignment)
}

fn described_assignment(a: &Assignment, names: &BTreeMap<Uuid, String>) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                describe::TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(topic_name(names.get(id).cloned().unwrap_or_default()))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub fn describe(broker: &Broker, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<Uuid, String> = broker.topics.list().into_iter().map(|t| (t.topic_id, t.name)).collect();
    let groups = req
        .group_ids
        .iter()
        .map(|id| match broker.groups.consumer_describe(id.as_str()) {
            Err((code, message)) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(code)
                .with_error_message(Some(s(message)))
                .with_group_state(s("Dead")),
            Ok(d) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(s(d.state))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(s(d.assignor_name))
                .with_authorized_operations(if req.include_authorized_operations {
                    super::GROUP_AUTHORIZED_OPERATIONS
                } else {
                    i32::MIN
                })
                .with_members(
                    d.members
                        .iter()
                        .map(|m| {
                            describe::Member::default()
                                .with_member_id(s(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(s))
                                .with_rack_id(m.rack_id.clone().map(s))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names.iter().map(|t| topic_name(t.clone())).collect(),
                                )
                                .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(s))
                                .with_assignment(described_assignment(&m.assignment, &names))
                                .with_target_assignment(described_assignment(&m.target_assignment, &names))
                                .with_member_type(MEMBER_TYPE_CONSUMER)
                        })
                        .collect(),
                ),
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// The broker's topics as a consumer group sees them.
pub struct BrokerTopics<'a>(pub &'a Broker);

impl TopicsView for BrokerTopics<'_> {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.topics.get(name).map(|t| (t.topic_id, t.partitions))
    }
    fn names(&self) -> Vec<String> {
        self.0.topics.list().into_iter().map(|t| t.name).collect()
    }
}
