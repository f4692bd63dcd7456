//! The `GroupCoordinator`'s consumer-protocol half (KIP-848): ConsumerGroupHeartbeat
//! validation, classic and consumer groups side by side under one group id space,
//! session and revocation timeouts, and ConsumerGroupDescribe.
//!
//! Lock order as in `coordinator`: `groups`, then `consumer_groups`, then `offsets`.

use super::assignor::{Assignment, Assignor};
use super::classic_group::{codes, ClassicGroup};
use super::consumer_group::{
    ConsumerGroup, ConsumerGroupLimits, ConsumerHeartbeat, HeartbeatReply, TopicLookup, JOIN_EPOCH, LEAVE_STATIC_EPOCH,
};
use super::consumer_records::{RawRecords, RecordKey, RecordValue, GROUP_EPOCH};
use super::coordinator::{GroupCoordinator, GroupDescription, MemberDescription};
use super::RecordWriter;
use crate::sync::lock;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// One member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate(hb: &ConsumerHeartbeat, version: i16) -> Result<(), HeartbeatReply> {
    let invalid = |m: &str| Err(HeartbeatReply::error(codes::INVALID_REQUEST, m));
    if hb.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if (version >= 1 || hb.member_epoch != JOIN_EPOCH) && hb.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if let Some(r) = hb.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty()) {
        if let Err(e) = regex::Regex::new(r) {
            return Err(HeartbeatReply::error(
                codes::INVALID_REGULAR_EXPRESSION,
                format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}"),
            ));
        }
    }
    match hb.member_epoch {
        JOIN_EPOCH => {
            if hb.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if hb.owned.as_ref().is_none_or(|o| o.values().any(|p| !p.is_empty())) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        }
        LEAVE_STATIC_EPOCH if hb.instance_id.is_none() => {
            return invalid("InstanceId can't be null when leaving with epoch -2.");
        }
        e if e < LEAVE_STATIC_EPOCH => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(a) = &hb.server_assignor {
        if Assignor::from_name(a).is_none() {
            return Err(HeartbeatReply::error(
                codes::UNSUPPORTED_ASSIGNOR,
                format!("ServerAssignor {a} is not supported. Supported assignors: uniform, range."),
            ));
        }
    }
    Ok(())
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat. The group's changed records are written (`write`) before
    /// the reply, as Kafka does; if that fails the reply is COORDINATOR_NOT_AVAILABLE
    /// and the client retries.
    pub fn consumer_heartbeat(
        &self,
        hb: ConsumerHeartbeat,
        version: i16,
        topics: TopicLookup,
        write: RecordWriter,
    ) -> HeartbeatReply {
        match self.try_consumer_heartbeat(hb, version, topics, write) {
            Ok(reply) => reply,
            Err(refusal) => refusal,
        }
    }

    fn try_consumer_heartbeat(
        &self,
        hb: ConsumerHeartbeat,
        version: i16,
        topics: TopicLookup,
        write: RecordWriter,
    ) -> Result<HeartbeatReply, HeartbeatReply> {
        validate(&hb, version)?;
        // Held through the write, so the group's records reach the log in the order its
        // changes happen; the maps are not (a write may be slow: the first creates
        // `__consumer_offsets`), so other groups are served meanwhile.
        let _ordered = self.commit_lock(&hb.group_id);
        let (reply, records, converted_from) = self.consumer_heartbeat_locked(&hb, topics)?;
        if let Err(code) = write(&hb.group_id, &records) {
            tracing::warn!(group = %hb.group_id, code, "writing the group's records failed");
            let mut classic = lock(&self.groups);
            let mut groups = lock(&self.consumer_groups);
            if let Some(old) = converted_from {
                // The conversion did not reach the log (its first record is the classic
                // group's tombstone): undone, as Kafka reverts a failed append, so the
                // retry converts again and writes that tombstone.
                groups.remove(&hb.group_id);
                classic.insert(hb.group_id.clone(), old);
            } else if let Some(group) = groups.get_mut(&hb.group_id) {
                group.forget_persisted();
            }
            return Err(HeartbeatReply::error(
                codes::COORDINATOR_NOT_AVAILABLE,
                "the group's records could not be written",
            ));
        }
        Ok(reply)
    }

    /// The heartbeat's change to the group, under the maps' locks: the reply, the
    /// records to write, and the empty classic group it converted, if it did.
    fn consumer_heartbeat_locked(
        &self,
        hb: &ConsumerHeartbeat,
        topics: TopicLookup,
    ) -> Result<(HeartbeatReply, RawRecords, Option<ClassicGroup>), HeartbeatReply> {
        let now = self.time.now_ms();
        let joining = hb.member_epoch == JOIN_EPOCH;
        let mut converted_from = None;
        let mut classic = lock(&self.groups);
        if let Some(g) = classic.get(&hb.group_id) {
            if !g.members.is_empty() || !joining {
                let message = format!("Group {} is not a consumer group.", hb.group_id);
                return Err(HeartbeatReply::error(codes::GROUP_ID_NOT_FOUND, message));
            }
            // An empty classic group becomes a consumer group; its offsets stay, and its
            // record is tombstoned ahead of the new group's, as Kafka's conversion.
            converted_from = classic.remove(&hb.group_id);
        }
        let mut groups = lock(&self.consumer_groups);
        if !groups.contains_key(&hb.group_id) {
            if !joining {
                let message = format!("Group {} not found.", hb.group_id);
                return Err(HeartbeatReply::error(codes::GROUP_ID_NOT_FOUND, message));
            }
            if classic.len() + groups.len() >= self.config.groups_max {
                return Err(HeartbeatReply::error(
                    codes::COORDINATOR_NOT_AVAILABLE,
                    "too many groups",
                ));
            }
        }
        drop(classic);
        let default = self.default_assignor();
        let group = groups
            .entry(hb.group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(&hb.group_id, default));
        let limits = ConsumerGroupLimits {
            max_size: self.config.consumer_max_size,
            default_assignor: default,
        };
        let shape = |g: &ConsumerGroup| (g.group_epoch, g.assignment_epoch, g.members.len());
        let before = (shape(group), group.members.contains_key(&hb.member_id));
        let mut reply = group.heartbeat(hb, now, &limits, topics);
        if reply.error_code == codes::NONE && reply.member_epoch >= 0 {
            reply.heartbeat_interval_ms = self.config.consumer_heartbeat_interval_ms;
        }
        // Only this member's records can have changed unless the group's shape did.
        let only_member = (before == (shape(group), true)).then_some(reply.member_id.as_str());
        let mut records = group.take_changes(only_member);
        if converted_from.is_some() {
            records.insert(0, (super::offsets::group_metadata_key(&hb.group_id), None));
        }
        Ok((reply, records, converted_from))
    }

    fn default_assignor(&self) -> Assignor {
        self.config
            .consumer_assignors
            .first()
            .copied()
            .unwrap_or(Assignor::Uniform)
    }

    /// Expires consumer-protocol members: session timeout, or partitions not revoked
    /// within the rebalance timeout. Each group's change and write hold its commit lock,
    /// not the map (as `try_consumer_heartbeat`).
    pub(super) fn consumer_tick(&self, now: i64, write: RecordWriter) {
        let timeout_ms = self.config.consumer_session_timeout_ms;
        let due: Vec<String> = {
            let groups = lock(&self.consumer_groups);
            let mut active = lock(&self.active_ms);
            for g in groups.values().filter(|g| !g.members.is_empty()) {
                active.insert(g.group_id.clone(), now);
            }
            groups
                .values()
                .filter(|g| g.rewrite_all || !g.expired_members(now, timeout_ms).is_empty())
                .map(|g| g.group_id.clone())
                .collect()
        };
        for group_id in due {
            let _ordered = self.commit_lock(&group_id);
            let records = {
                let mut groups = lock(&self.consumer_groups);
                let Some(group) = groups.get_mut(&group_id) else {
                    continue;
                };
                let expired = group.expired_members(now, timeout_ms);
                for id in &expired {
                    tracing::info!(group = %group.group_id, member = %id, "consumer group member expired");
                    group.remove_member(id);
                }
                if expired.is_empty() && !group.rewrite_all {
                    continue;
                }
                group.take_changes(None)
            };
            if let Err(code) = write(&group_id, &records) {
                tracing::warn!(group = %group_id, code, "writing the group's records failed");
                if let Some(group) = lock(&self.consumer_groups).get_mut(&group_id) {
                    group.forget_persisted();
                }
            }
        }
    }

    /// Applies a consumer group record read back at start-up.
    pub fn load_consumer_record(&self, group_id: String, key: RecordKey, value: Option<RecordValue>) {
        let default = self.default_assignor();
        let mut groups = lock(&self.consumer_groups);
        if key.0 == GROUP_EPOCH && value.is_none() {
            groups.remove(&group_id);
            return;
        }
        // A tombstone of a group that is gone (its epoch's tombstone came first, as
        // logs written before Kafka's order was kept have it) makes no group.
        if value.is_none() && !groups.contains_key(&group_id) {
            return;
        }
        groups
            .entry(group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(&group_id, default))
            .apply(&key, value);
    }

    /// Ends loading: members' sessions start now, and the subscribed topics' metadata
    /// is taken as it is (no rebalance for a restart). Empty groups stay, as Kafka keeps
    /// them (state Empty). A conversion between the protocols tombstones the old form,
    /// so one id has one form in the log; where a log written before that holds both,
    /// a consumer group with members wins over the classic group, and an empty one
    /// loses to it.
    pub fn finish_consumer_load(&self, topics: TopicLookup) {
        let now = self.time.now_ms();
        let mut classic = lock(&self.groups);
        let mut groups = lock(&self.consumer_groups);
        groups.retain(|id, g| !g.members.is_empty() || !classic.contains_key(id));
        for g in groups.values_mut() {
            classic.remove(&g.group_id);
            let members: BTreeSet<String> = g.members.keys().cloned().collect();
            g.target.retain(|id, _| members.contains(id));
            for m in g.members.values_mut() {
                m.last_heartbeat_ms = now;
            }
            g.refresh_subscription_metadata(topics);
            g.rebuild_owners();
            let changed = g.metadata_hash() != g.loaded_metadata_hash;
            g.persisted = g.record_view(None);
            if changed {
                // Topics changed while the broker was down: a new target is due (and the
                // bumped epoch is written with the next change).
                g.group_epoch += 1;
            }
        }
    }

    /// ConsumerGroupDescribe; GROUP_ID_NOT_FOUND for an unknown or classic group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, (i16, String)> {
        let groups = lock(&self.consumer_groups);
        let Some(g) = groups.get(group_id) else {
            return Err((codes::GROUP_ID_NOT_FOUND, format!("Group {group_id} not found.")));
        };
        Ok(ConsumerGroupDescription {
            group_id: g.group_id.clone(),
            state: g.state_name(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: g.assignor.name(),
            members: g
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: g.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// A consumer group as DescribeGroups shows it. Kafka answers GROUP_ID_NOT_FOUND
    /// here; Fjord answers in the classic form (protocol type `consumer`, the assignor as
    /// protocol, subscriptions and assignments in the consumer protocol's byte format),
    /// so tools that only know DescribeGroups, librdkafka's group list among them, still
    /// see the group's members.
    pub(super) fn consumer_classic_view(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = lock(&self.consumer_groups);
        let g = groups.get(group_id)?;
        let names: BTreeMap<Uuid, &str> = g
            .subscription_metadata
            .iter()
            .map(|(n, (id, _))| (*id, n.as_str()))
            .collect();
        Some(GroupDescription {
            group_id: g.group_id.clone(),
            state: g.state_name(),
            protocol_type: "consumer".into(),
            protocol: g.assignor.name().into(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: subscription_bytes(&m.subscribed_topic_names),
                    assignment: assignment_bytes(&m.assigned, &names),
                })
                .collect(),
        })
    }

    /// The topics a consumer group's members subscribe to (`None`: not a consumer group).
    pub(super) fn consumer_subscriptions(&self, group_id: &str) -> Option<BTreeSet<String>> {
        let groups = lock(&self.consumer_groups);
        // What the names and the regexes resolved to.
        groups
            .get(group_id)
            .map(|g| g.subscription_metadata.keys().cloned().collect())
    }
}

fn put_string(b: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(bytes.len() as i16);
    b.put_slice(bytes);
}

/// ConsumerProtocolSubscription v0: version, [topic], user data (null).
fn subscription_bytes(topics: &BTreeSet<String>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_string(&mut b, t);
    }
    b.put_i32(-1);
    b.freeze()
}

/// ConsumerProtocolAssignment v0: version, [topic, [partition]], user data (null).
fn assignment_bytes(a: &Assignment, names: &BTreeMap<Uuid, &str>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    let named: Vec<(&str, &BTreeSet<i32>)> = a.iter().filter_map(|(id, ps)| Some((*names.get(id)?, ps))).collect();
    b.put_i32(named.len() as i32);
    for (name, ps) in named {
        put_string(&mut b, name);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::coordinator::GroupConfig;
    use crate::time::Time;

    fn hb(member: &str, epoch: i32, owned: Option<Assignment>) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 60_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..Default::default()
        }
    }

    fn parts(a: &Option<Assignment>) -> usize {
        a.as_ref().map(|a| a.values().map(|s| s.len()).sum()).unwrap_or(0)
    }

    /// A group whose write is slow (the first creates `__consumer_offsets`; a disk
    /// under writeback) holds up only itself: another group's heartbeat is answered
    /// meanwhile. (The write was made under the map's lock, which every group waited on.)
    #[test]
    fn a_slow_write_of_one_group_does_not_hold_up_another() {
        use std::sync::mpsc::sync_channel;
        let c = std::sync::Arc::new(GroupCoordinator::new(GroupConfig::default(), Time::manual(0)));
        let (slow_group, other_group) = ("slow", "other");
        assert_ne!(
            crate::group::partition_for(slow_group, 64),
            crate::group::partition_for(other_group, 64),
            "the two groups have commit locks of their own"
        );
        let id = Uuid::new_v4();
        let (entered_tx, entered_rx) = sync_channel::<()>(1);
        let (release_tx, release_rx) = sync_channel::<()>(1);
        let slow = {
            let c = c.clone();
            std::thread::spawn(move || {
                let lookup = move |n: &str| (n == "t").then_some((id, 4));
                let writer = |_: &str, _: &RawRecords| {
                    let _ = entered_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                };
                let join = ConsumerHeartbeat {
                    group_id: slow_group.into(),
                    ..hb("a", 0, Some(BTreeMap::new()))
                };
                c.consumer_heartbeat(join, 1, &lookup, &writer).error_code
            })
        };
        entered_rx.recv().expect("the slow write began");
        let (done_tx, done_rx) = sync_channel(1);
        let other = {
            let c = c.clone();
            std::thread::spawn(move || {
                let lookup = move |n: &str| (n == "t").then_some((id, 4));
                let join = ConsumerHeartbeat {
                    group_id: other_group.into(),
                    ..hb("b", 0, Some(BTreeMap::new()))
                };
                let r = c.consumer_heartbeat(join, 1, &lookup, &|_, _| Ok(()));
                let _ = done_tx.send(r.error_code);
            })
        };
        let answered = done_rx.recv_timeout(std::time::Duration::from_secs(30));
        release_tx.send(()).expect("release the slow write");
        assert_eq!(
            answered,
            Ok(0),
            "the other group was answered while the slow write went on"
        );
        assert_eq!(slow.join().expect("slow"), 0);
        other.join().expect("other");
    }

    /// Two members: the second gets its partitions only after the first revokes them.
    #[test]
    fn revoke_before_reassign() {
        let time = Time::manual(0);
        let c = GroupCoordinator::new(GroupConfig::default(), time.clone());
        let id = Uuid::new_v4();
        let lookup = move |n: &str| (n == "t").then_some((id, 4));
        let r1 = c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &lookup, &|_, _| Ok(()));
        assert_eq!((r1.error_code, r1.member_epoch, parts(&r1.assignment)), (0, 1, 4));
        let owned_a = r1.assignment.clone();
        let r2 = c.consumer_heartbeat(hb("b", 0, Some(BTreeMap::new())), 1, &lookup, &|_, _| Ok(()));
        // b is at epoch 2 but a still holds everything: nothing yet.
        assert_eq!((r2.member_epoch, parts(&r2.assignment)), (2, 0));
        // a is asked to give up two partitions and stays at epoch 1 until it does.
        let r1 = c.consumer_heartbeat(hb("a", 1, owned_a), 1, &lookup, &|_, _| Ok(()));
        assert_eq!((r1.member_epoch, parts(&r1.assignment)), (1, 2));
        let kept = r1.assignment.clone();
        let r1 = c.consumer_heartbeat(hb("a", 1, kept), 1, &lookup, &|_, _| Ok(()));
        assert_eq!(r1.member_epoch, 2);
        let r2 = c.consumer_heartbeat(hb("b", 2, Some(BTreeMap::new())), 1, &lookup, &|_, _| Ok(()));
        assert_eq!(parts(&r2.assignment), 2);
        let d = c.consumer_describe("g").expect("described");
        assert_eq!(d.state, "Stable");
        // A wrong epoch is fenced; a classic join to the same group id is refused.
        let r = c.consumer_heartbeat(hb("b", 7, None), 1, &lookup, &|_, _| Ok(()));
        assert_eq!(r.error_code, codes::FENCED_MEMBER_EPOCH);
        // b's session expires: a gets everything back at the next epoch.
        time.advance_ms(40_000);
        let _ = c.consumer_heartbeat(hb("a", 2, None), 1, &lookup, &|_, _| Ok(()));
        time.advance_ms(10_000);
        c.consumer_tick(time.now_ms(), &|_, _| Ok(()));
        let r1 = c.consumer_heartbeat(hb("a", 2, None), 1, &lookup, &|_, _| Ok(()));
        assert_eq!((r1.member_epoch, parts(&r1.assignment)), (3, 4));
    }

    /// A failed write answers COORDINATOR_NOT_AVAILABLE, and the next write is the
    /// whole group again.
    #[test]
    fn a_failed_write_is_retried_whole() {
        let c = GroupCoordinator::new(GroupConfig::default(), Time::manual(0));
        let id = Uuid::new_v4();
        let lookup = move |n: &str| (n == "t").then_some((id, 2));
        let r = c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &lookup, &|_, _| Err(56));
        assert_eq!(r.error_code, codes::COORDINATOR_NOT_AVAILABLE);
        let written = std::cell::Cell::new(0usize);
        let count = |_: &str, records: &super::super::consumer_records::RawRecords| {
            written.set(written.get() + records.len());
            Ok(())
        };
        let r = c.consumer_heartbeat(hb("a", 1, None), 1, &lookup, &count);
        assert_eq!(r.error_code, 0);
        // Group epoch, target epoch, and the member's metadata, target and assignment.
        assert_eq!(written.get(), 5, "the whole group is written again");
    }

    /// Records written, loaded into a new coordinator: no new epoch when the topics are
    /// as they were, a new one when a topic grew while the broker was down.
    #[test]
    fn a_topic_changed_while_down_bumps_the_epoch_at_load() {
        use crate::group::consumer_records::{parse_key, parse_value};
        let c = GroupCoordinator::new(GroupConfig::default(), Time::manual(0));
        let id = Uuid::new_v4();
        let two = move |n: &str| (n == "t").then_some((id, 2));
        let written = std::cell::RefCell::new(Vec::new());
        let keep = |_: &str, records: &super::super::consumer_records::RawRecords| {
            written.borrow_mut().extend(records.iter().cloned());
            Ok(())
        };
        assert_eq!(
            c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &two, &keep)
                .member_epoch,
            1
        );
        for (partitions, epoch) in [(2, 1), (3, 2)] {
            let loaded = GroupCoordinator::new(GroupConfig::default(), Time::manual(0));
            for (k, v) in written.borrow().iter() {
                let (group, key) = parse_key(k.clone()).expect("key");
                let value = v.clone().map(|v| parse_value(key.0, v).expect("value"));
                loaded.load_consumer_record(group, key, value);
            }
            let now = move |n: &str| (n == "t").then_some((id, partitions));
            loaded.finish_consumer_load(&now);
            assert_eq!(
                loaded.consumer_describe("g").expect("group").group_epoch,
                epoch,
                "{partitions} partitions"
            );
        }
    }

    /// A classic consumer's JoinGroup to the group "g".
    fn classic_join() -> crate::group::coordinator::JoinParams {
        crate::group::coordinator::JoinParams {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            require_known_member_id: false,
            skip_assignment_supported: false,
        }
    }

    /// A coordinator loaded from `records`, as at start-up.
    fn loaded(records: &[(bytes::Bytes, Option<bytes::Bytes>)], lookup: TopicLookup) -> GroupCoordinator {
        let c = GroupCoordinator::new(GroupConfig::default(), Time::manual(0));
        for (k, v) in records {
            assert!(c.load_raw(Some(k.clone()), v.clone()), "a group record");
        }
        c.finish_consumer_load(lookup);
        c
    }

    fn listed_type(c: &GroupCoordinator) -> Vec<(String, &'static str)> {
        c.list().into_iter().map(|g| (g.group_id, g.group_type)).collect()
    }

    /// A group converted between the protocols leaves one form in the log: the old
    /// form's records are tombstoned (Kafka's `createGroupTombstoneRecords`), so a
    /// restart finds the group as it last was. Before, an empty classic group's record
    /// outlived its conversion, and a restart brought the classic group back.
    #[test]
    fn a_conversion_between_protocols_tombstones_the_old_form() {
        use crate::group::classic_group::ClassicGroup;
        let id = Uuid::new_v4();
        let lookup = move |n: &str| (n == "t").then_some((id, 2));
        let log = std::cell::RefCell::new(vec![(
            crate::group::offsets::group_metadata_key("g"),
            Some(crate::group::offsets::group_metadata_value(
                &ClassicGroup::new("g").to_record(0),
            )),
        )]);
        let c = loaded(&log.borrow(), &lookup);
        assert_eq!(listed_type(&c), [("g".to_string(), "classic")]);
        let keep = |_: &str, records: &RawRecords| {
            log.borrow_mut().extend(records.iter().cloned());
            Ok(())
        };
        // Classic to consumer: the classic record's tombstone comes first.
        let r = c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &lookup, &keep);
        assert_eq!(r.error_code, 0);
        assert_eq!(log.borrow()[1], (crate::group::offsets::group_metadata_key("g"), None));
        assert_eq!(
            listed_type(&loaded(&log.borrow(), &lookup)),
            [("g".to_string(), "consumer")]
        );
        // The member leaves: the empty consumer group stays, across a restart too.
        let r = c.consumer_heartbeat(
            hb("a", crate::group::consumer_group::LEAVE_EPOCH, None),
            1,
            &lookup,
            &keep,
        );
        assert_eq!(r.error_code, 0);
        let restarted = loaded(&log.borrow(), &lookup);
        assert_eq!(listed_type(&restarted), [("g".to_string(), "consumer")]);
        assert_eq!(restarted.list()[0].state, "Empty");
        // Consumer to classic: every consumer record is tombstoned before the join.
        let before = log.borrow().len();
        let join = classic_join();
        let _ = c.join(join.clone(), &keep);
        let tombstones = log.borrow()[before..].to_vec();
        assert!(
            !tombstones.is_empty() && tombstones.iter().all(|(_, v)| v.is_none()),
            "{tombstones:?}"
        );
        assert_eq!(listed_type(&c), [("g".to_string(), "classic")]);
        assert!(
            listed_type(&loaded(&log.borrow(), &lookup)).is_empty(),
            "no consumer group is left in the log"
        );
        // A failed tombstone write refuses the join and leaves the group as it was.
        let c = loaded(&log.borrow()[..before], &lookup);
        let refused = c.join(join, &|_, _| Err(codes::COORDINATOR_NOT_AVAILABLE));
        match refused {
            crate::group::coordinator::JoinOutcome::Now(r) => {
                assert_eq!(r.error_code, codes::COORDINATOR_NOT_AVAILABLE)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(listed_type(&c), [("g".to_string(), "consumer")]);
    }

    /// Failed writes around a conversion: a failed classic-to-consumer write undoes
    /// the conversion, so the retry writes the classic tombstone; and the tombstones of
    /// a consumer group whose written records are unknown (after failed writes) still
    /// end with its epochs', which drop the whole group at load.
    #[test]
    fn failed_writes_around_a_conversion_still_leave_one_form() {
        use crate::group::classic_group::ClassicGroup;
        use crate::group::consumer_records::{key_bytes, GROUP_EPOCH};
        let id = Uuid::new_v4();
        let lookup = move |n: &str| (n == "t").then_some((id, 2));
        let classic_key = crate::group::offsets::group_metadata_key("g");
        let c = loaded(
            &[(
                classic_key.clone(),
                Some(crate::group::offsets::group_metadata_value(
                    &ClassicGroup::new("g").to_record(0),
                )),
            )],
            &lookup,
        );
        let fail = |_: &str, _: &RawRecords| Err(codes::COORDINATOR_NOT_AVAILABLE);
        let r = c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &lookup, &fail);
        assert_eq!(r.error_code, codes::COORDINATOR_NOT_AVAILABLE);
        assert_eq!(
            listed_type(&c),
            [("g".to_string(), "classic")],
            "the conversion is undone"
        );
        let log = std::cell::RefCell::new(Vec::new());
        let keep = |_: &str, records: &RawRecords| {
            log.borrow_mut().extend(records.iter().cloned());
            Ok(())
        };
        let r = c.consumer_heartbeat(hb("a", 0, Some(BTreeMap::new())), 1, &lookup, &keep);
        assert_eq!(r.error_code, 0);
        assert_eq!(
            log.borrow()[0],
            (classic_key, None),
            "the retry writes the classic tombstone"
        );
        // The member leaves, but that write fails: what the log holds is unknown.
        let r = c.consumer_heartbeat(
            hb("a", crate::group::consumer_group::LEAVE_EPOCH, None),
            1,
            &lookup,
            &fail,
        );
        assert_eq!(r.error_code, codes::COORDINATOR_NOT_AVAILABLE);
        let before = log.borrow().len();
        let join = classic_join();
        let _ = c.join(join, &keep);
        let tombstones = log.borrow()[before..].to_vec();
        let epoch_key = key_bytes("g", &(GROUP_EPOCH, String::new()));
        assert_eq!(tombstones.last(), Some(&(epoch_key, None)), "{tombstones:?}");
        assert!(
            listed_type(&loaded(&log.borrow(), &lookup)).is_empty(),
            "no consumer group is left in the log"
        );
    }

    #[test]
    fn invalid_requests() {
        let c = GroupCoordinator::new(GroupConfig::default(), Time::manual(0));
        let lookup = |_: &str| None;
        let mut bad = hb("a", 0, Some(BTreeMap::new()));
        bad.group_id.clear();
        assert_eq!(
            c.consumer_heartbeat(bad, 1, &lookup, &|_, _| Ok(())).error_code,
            codes::INVALID_REQUEST
        );
        let mut bad = hb("a", 0, Some(BTreeMap::new()));
        bad.server_assignor = Some("sticky".into());
        assert_eq!(
            c.consumer_heartbeat(bad, 1, &lookup, &|_, _| Ok(())).error_code,
            codes::UNSUPPORTED_ASSIGNOR
        );
        let r = c.consumer_heartbeat(hb("a", 3, None), 1, &lookup, &|_, _| Ok(()));
        assert_eq!(r.error_code, codes::GROUP_ID_NOT_FOUND);
    }
}
