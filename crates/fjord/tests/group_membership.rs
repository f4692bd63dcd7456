//! Kafka's classic group coordinator checks of membership, over raw sockets: static
//! members fenced by instance id, a rejoin with nothing changed answered without a
//! rebalance, a pending member leaving, SyncGroup's protocol check, and OffsetCommit's
//! validation (`GroupMetadataManager`, `ClassicGroup.validateMember`,
//! `ClassicGroup.validateOffsetCommit`).

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// Who a request speaks for: group, member id, instance id (static members).
#[derive(Clone, Copy)]
struct Who<'a> {
    group: &'a str,
    member: &'a str,
    instance: Option<&'a str>,
}

/// JoinGroup v7: `consumer`, one `range` protocol with `metadata`.
fn join(c: &mut RawClient, who: Who<'_>, metadata: &'static [u8]) -> JoinGroupResponse {
    join_within(c, who, metadata, 10_000)
}

/// `join` with a rebalance timeout of `rebalance_timeout_ms`.
fn join_within(
    c: &mut RawClient,
    who: Who<'_>,
    metadata: &'static [u8],
    rebalance_timeout_ms: i32,
) -> JoinGroupResponse {
    join_request(c, who, metadata, 10_000, rebalance_timeout_ms, 7)
}

/// JoinGroup at `version` with both timeouts.
fn join_request(
    c: &mut RawClient,
    who: Who<'_>,
    metadata: &'static [u8],
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    version: i16,
) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(who.group)))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(rebalance_timeout_ms)
        .with_member_id(s(who.member))
        .with_group_instance_id(who.instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(metadata))]);
    c.request(ApiKey::JoinGroup, version, &req)
}

/// SyncGroup v5 naming `protocol` (the leader assigns each member nothing).
fn sync(c: &mut RawClient, who: Who<'_>, generation: i32, protocol: &str, members: &[&str]) -> i16 {
    let assignments: Vec<(&str, &'static [u8])> = members.iter().map(|m| (*m, &b""[..])).collect();
    sync_request(c, who, generation, protocol, &assignments).error_code
}

/// SyncGroup v5 naming `protocol`, with `assignments`.
fn sync_request(
    c: &mut RawClient,
    who: Who<'_>,
    generation: i32,
    protocol: &str,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(who.group)))
        .with_generation_id(generation)
        .with_member_id(s(who.member))
        .with_group_instance_id(who.instance.map(s))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s(protocol)))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(bytes::Bytes::from_static(a))
                })
                .collect(),
        );
    c.request(ApiKey::SyncGroup, 5, &req)
}

fn heartbeat(c: &mut RawClient, who: Who<'_>, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(who.group)))
        .with_generation_id(generation)
        .with_member_id(s(who.member))
        .with_group_instance_id(who.instance.map(s));
    let r: HeartbeatResponse = c.request(ApiKey::Heartbeat, 4, &req);
    r.error_code
}

/// LeaveGroup v4 of one member; its member error code.
fn leave(c: &mut RawClient, who: Who<'_>) -> i16 {
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(who.group)))
        .with_members(vec![MemberIdentity::default()
            .with_member_id(s(who.member))
            .with_group_instance_id(who.instance.map(s))]);
    let r: LeaveGroupResponse = c.request(ApiKey::LeaveGroup, 4, &req);
    assert_eq!(r.error_code, NONE);
    r.members[0].error_code
}

/// OffsetCommit at `version` of offset 7 for partition 0 of `t`; its error code.
fn commit(c: &mut RawClient, who: Who<'_>, generation: i32, version: i16) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(who.group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(who.member))
        .with_group_instance_id(who.instance.map(s))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)])]);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, version, &req);
    r.topics[0].partitions[0].error_code
}

/// A broker with a topic `t` of one partition, and a client of it.
fn broker_with_topic_t() -> (BrokerProcess, RawClient) {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    common::create_topic_cli(&b.bootstrap, "t", "1");
    let c = RawClient::connect(&b.bootstrap);
    (b, c)
}

/// No member: an admin's or an `assign` consumer's request to `group`.
fn nobody(group: &str) -> Who<'_> {
    Who {
        group,
        member: "",
        instance: None,
    }
}

/// A static member replaced by a new instance of itself (a restart) is a zombie: its
/// heartbeat, SyncGroup, OffsetCommit and LeaveGroup are answered FENCED_INSTANCE_ID,
/// fatal to the client, instead of UNKNOWN_MEMBER_ID, which made it rejoin and take the
/// instance back, the two instances evicting each other.
#[test]
fn a_replaced_static_member_is_fenced() {
    let (_broker, mut c) = broker_with_topic_t();
    let instance = Some("i1");
    let first = join(
        &mut c,
        Who {
            group: "s",
            member: "",
            instance,
        },
        b"m",
    );
    assert_eq!((first.error_code, first.generation_id), (NONE, 1));
    let zombie = Who {
        group: "s",
        member: first.member_id.as_str(),
        instance,
    };
    assert_eq!(sync(&mut c, zombie, 1, "range", &[zombie.member]), NONE);
    assert_eq!(heartbeat(&mut c, zombie, 1), NONE);
    // The instance restarts: a join with no member id takes its place.
    let second = join(
        &mut c,
        Who {
            group: "s",
            member: "",
            instance,
        },
        b"m",
    );
    assert_eq!(second.error_code, NONE);
    assert_ne!(second.member_id, first.member_id);
    let current = Who {
        group: "s",
        member: second.member_id.as_str(),
        instance,
    };
    let generation = second.generation_id;
    assert_eq!(sync(&mut c, current, generation, "range", &[current.member]), NONE);
    assert_eq!(heartbeat(&mut c, zombie, generation), FENCED_INSTANCE_ID);
    assert_eq!(sync(&mut c, zombie, generation, "range", &[]), FENCED_INSTANCE_ID);
    assert_eq!(commit(&mut c, zombie, generation, 8), FENCED_INSTANCE_ID);
    assert_eq!(join(&mut c, zombie, b"m").error_code, FENCED_INSTANCE_ID);
    assert_eq!(leave(&mut c, zombie), FENCED_INSTANCE_ID);
    // The instance's current member is untouched by all of that.
    assert_eq!(heartbeat(&mut c, current, generation), NONE);
    assert_eq!(commit(&mut c, current, generation, 8), NONE);
    // An instance the group does not have: UNKNOWN_MEMBER_ID.
    let stranger = Who {
        instance: Some("i2"),
        ..current
    };
    assert_eq!(heartbeat(&mut c, stranger, generation), UNKNOWN_MEMBER_ID);
    assert_eq!(leave(&mut c, current), NONE);
}

/// A follower that rejoins a Stable group with the protocols it has (a JoinGroup
/// retried after a lost response) gets the current generation at once, and the group
/// does not rebalance; a changed protocol metadata rebalances. SyncGroup naming another
/// protocol is INCONSISTENT_GROUP_PROTOCOL.
#[test]
fn an_unchanged_rejoin_does_not_rebalance() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut leader_conn = RawClient::connect(&b.bootstrap);
    let required = join(&mut leader_conn, dynamic(""), b"a");
    assert_eq!(required.error_code, MEMBER_ID_REQUIRED);
    let leader_id = required.member_id.to_string();
    let leader = dynamic(leader_id.as_str());
    assert_eq!(join(&mut leader_conn, leader, b"a").generation_id, 1);
    assert_eq!(sync(&mut leader_conn, leader, 1, "range", &[leader.member]), NONE);
    // A second member: its join waits for the leader to rejoin.
    let bootstrap = b.bootstrap.clone();
    let follower_join = std::thread::spawn(move || {
        let mut c = RawClient::connect(&bootstrap);
        let required = join(&mut c, dynamic(""), b"f");
        assert_eq!(required.error_code, MEMBER_ID_REQUIRED);
        let id = required.member_id.to_string();
        let joined = join(&mut c, dynamic(&id), b"f");
        (c, id, joined.error_code, joined.generation_id)
    });
    common::wait_for("the leader to see the rebalance", || {
        heartbeat(&mut leader_conn, leader, 1) == 27
    });
    let rejoined = join(&mut leader_conn, leader, b"a");
    assert_eq!((rejoined.error_code, rejoined.generation_id), (NONE, 2));
    let (mut follower_conn, follower_id, code, generation) = follower_join.join().expect("follower");
    assert_eq!((code, generation), (NONE, 2));
    let follower = dynamic(follower_id.as_str());
    assert_eq!(
        sync(&mut leader_conn, leader, 2, "roundrobin", &[]),
        INCONSISTENT_GROUP_PROTOCOL,
        "the group's protocol is range"
    );
    assert_eq!(
        sync(&mut leader_conn, leader, 2, "range", &[leader.member, follower.member]),
        NONE
    );
    assert_eq!(sync(&mut follower_conn, follower, 2, "range", &[]), NONE);
    // The follower rejoins unchanged: generation 2 at once, no rebalance.
    let again = join(&mut follower_conn, follower, b"f");
    assert_eq!((again.error_code, again.generation_id), (NONE, 2));
    assert!(again.members.is_empty(), "only the leader gets the members");
    assert_eq!(heartbeat(&mut leader_conn, leader, 2), NONE, "no rebalance");
    // Changed metadata rebalances (the follower's join then waits for the leader).
    let changed = std::thread::spawn(move || join(&mut follower_conn, dynamic(&follower_id), b"g").generation_id);
    common::wait_for("the rebalance", || heartbeat(&mut leader_conn, leader, 2) == 27);
    assert_eq!(join(&mut leader_conn, leader, b"a").generation_id, 3);
    assert_eq!(changed.join().expect("follower"), 3);
}

/// A dynamic member of `group`.
fn member_of<'a>(group: &'a str, member: &'a str) -> Who<'a> {
    Who {
        group,
        member,
        instance: None,
    }
}

/// A dynamic member of group `r`.
fn dynamic(member: &str) -> Who<'_> {
    member_of("r", member)
}

/// A member that got MEMBER_ID_REQUIRED and leaves before it joins is removed at once
/// (Kafka's pending members); it was answered UNKNOWN_MEMBER_ID and stayed pending,
/// holding the group's next rebalance back until its session ran out.
#[test]
fn a_pending_member_leaves_at_once() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let p = |member| Who {
        group: "p",
        member,
        instance: None,
    };
    let pending = join(&mut c, p(""), b"x");
    assert_eq!(pending.error_code, MEMBER_ID_REQUIRED);
    assert_eq!(leave(&mut c, p(pending.member_id.as_str())), NONE);
    assert_eq!(
        join(&mut c, p(pending.member_id.as_str()), b"x").error_code,
        UNKNOWN_MEMBER_ID,
        "no longer pending"
    );
    // Another member's join completes at once: nothing pending to wait for.
    let other = join(&mut c, p(""), b"x");
    let joined = join(&mut c, p(other.member_id.as_str()), b"x");
    assert_eq!((joined.error_code, joined.generation_id), (NONE, 1));
}

/// OffsetCommit as Kafka's `validateOffsetCommit`: a generation into a group that does
/// not exist is ILLEGAL_GENERATION before v9 and GROUP_ID_NOT_FOUND from v9; with no
/// member and no generation, commits go only into an empty group (UNKNOWN_MEMBER_ID
/// otherwise); the empty group id is a group like any other.
#[test]
fn offset_commits_are_validated_as_kafkas() {
    let (_broker, mut c) = broker_with_topic_t();
    assert_eq!(commit(&mut c, nobody("missing"), 3, 8), ILLEGAL_GENERATION);
    assert_eq!(commit(&mut c, nobody("missing"), 3, 9), GROUP_ID_NOT_FOUND);
    assert_eq!(commit(&mut c, nobody(""), -1, 8), NONE, "the empty group id");
    assert_eq!(commit(&mut c, nobody("simple"), -1, 8), NONE, "a simple group");
    let required = join(&mut c, nobody("busy"), b"x");
    let member = Who {
        group: "busy",
        member: required.member_id.as_str(),
        instance: None,
    };
    let joined = join(&mut c, member, b"x");
    assert_eq!(
        sync(&mut c, member, joined.generation_id, "range", &[member.member]),
        NONE
    );
    assert_eq!(
        commit(&mut c, nobody("busy"), -1, 8),
        UNKNOWN_MEMBER_ID,
        "the group has members"
    );
    assert_eq!(commit(&mut c, member, joined.generation_id, 8), NONE);
    assert_eq!(commit(&mut c, member, joined.generation_id + 1, 8), ILLEGAL_GENERATION);
}

/// A static member that has not rejoined when a rebalance completes stays in the group
/// (Kafka removes only dynamic ones): a restarting static member keeps its place and
/// its partitions. It was removed, so its return cost another rebalance.
#[test]
fn a_static_member_that_has_not_rejoined_stays() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let bootstrap = b.bootstrap.clone();
    let mut a_conn = RawClient::connect(&b.bootstrap);
    let static_in = |instance| Who {
        group: "k",
        member: "",
        instance: Some(instance),
    };
    let a = join_within(&mut a_conn, static_in("ia"), b"a", 1_000);
    let a_id = a.member_id.to_string();
    let a_who = Who {
        member: &a_id,
        ..static_in("ia")
    };
    assert_eq!(sync(&mut a_conn, a_who, 1, "range", &[&a_id]), NONE);
    // B joins (A rejoins for it); both sync.
    let b_join = std::thread::spawn(move || {
        let mut c = RawClient::connect(&bootstrap);
        let joined = join_within(&mut c, static_in("ib"), b"b", 1_000);
        (c, joined.member_id.to_string(), joined.generation_id)
    });
    common::wait_for("the rebalance for B", || heartbeat(&mut a_conn, a_who, 1) == 27);
    assert_eq!(join_within(&mut a_conn, a_who, b"a", 1_000).generation_id, 2);
    let (mut b_conn, b_id, generation) = b_join.join().expect("B");
    assert_eq!(generation, 2);
    assert_eq!(sync(&mut a_conn, a_who, 2, "range", &[&a_id, &b_id]), NONE);
    let b_who = Who {
        member: &b_id,
        ..static_in("ib")
    };
    assert_eq!(sync(&mut b_conn, b_who, 2, "range", &[]), NONE);
    // A dynamic member C joins; A rejoins, B (restarting, say) does not.
    let bootstrap = b.bootstrap.clone();
    let c_join = std::thread::spawn(move || {
        let mut c = RawClient::connect(&bootstrap);
        let dynamic = Who {
            group: "k",
            member: "",
            instance: None,
        };
        let required = join_within(&mut c, dynamic, b"c", 1_000);
        let id = required.member_id.to_string();
        join_within(&mut c, Who { member: &id, ..dynamic }, b"c", 1_000).generation_id
    });
    common::wait_for("the rebalance for C", || heartbeat(&mut a_conn, a_who, 2) == 27);
    let third = join_within(&mut a_conn, a_who, b"a", 1_000);
    assert_eq!((third.error_code, third.generation_id), (NONE, 3));
    assert_eq!(c_join.join().expect("C"), 3);
    let mut roster: Vec<String> = third.members.iter().map(|m| m.member_id.to_string()).collect();
    roster.sort();
    assert_eq!(roster.len(), 3, "A, B (static, not rejoined) and C: {roster:?}");
    assert!(roster.contains(&b_id), "B keeps its place: {roster:?}");
}

/// What admin clients read from ListGroups and DescribeGroups, as Kafka answers: a
/// group that only ever had commits (a "simple" group) has no protocol type (clients
/// call it `isSimpleConsumerGroup`); a consumer group emptied by its last member's
/// leave keeps `consumer`. A JoinGroup with no protocol type is refused. OffsetDelete
/// answers a partition the cluster lacks UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn simple_and_emptied_groups_are_described_as_kafkas() {
    use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
    use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse;
    use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
    let (_broker, mut c) = broker_with_topic_t();
    assert_eq!(commit(&mut c, nobody("simple"), -1, 8), NONE);
    let required = join(&mut c, nobody("used"), b"x");
    let member = Who {
        group: "used",
        member: required.member_id.as_str(),
        instance: None,
    };
    assert_eq!(join(&mut c, member, b"x").error_code, NONE);
    assert_eq!(leave(&mut c, member), NONE);
    let listed: ListGroupsResponse = c.request(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let types: Vec<(String, String, String)> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    let expected = [("simple", "", "Empty"), ("used", "consumer", "Empty")];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(g, t, s)| (g.to_string(), t.to_string(), s.to_string()))
        .collect();
    assert_eq!(types, expected);
    let described: DescribeGroupsResponse = c.request(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("simple"))]),
    );
    assert_eq!(described.groups[0].protocol_type.as_str(), "");
    // No protocol type: INCONSISTENT_GROUP_PROTOCOL, as Kafka's `supportsProtocols`.
    let untyped = JoinGroupRequest::default()
        .with_group_id(GroupId(s("untyped")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s(""))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range"))]);
    let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 7, &untyped);
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let delete = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("simple")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                    OffsetDeleteRequestPartition::default().with_partition_index(5),
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("nope")))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)]),
        ]);
    let r: OffsetDeleteResponse = c.request(ApiKey::OffsetDelete, 0, &delete);
    assert_eq!(r.error_code, NONE);
    let mut codes: Vec<(String, i32, i16)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    codes.sort();
    let unknown = 3;
    let expected = [("nope", 0, unknown), ("t", 0, NONE), ("t", 5, unknown)];
    let expected: Vec<(String, i32, i16)> = expected.iter().map(|(t, p, e)| (t.to_string(), *p, *e)).collect();
    assert_eq!(codes, expected);
}

/// `group.max.size` is checked before anything else, as Kafka's `acceptJoiningMember`:
/// a new member of a full group is refused at its first JoinGroup (it was handed a
/// member id first, then refused at the retry). DescribeGroups shows the protocol and
/// the members' metadata only once the group is Stable.
#[test]
fn a_full_group_refuses_a_member_at_once_and_describes_as_kafkas() {
    use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
    use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
    const GROUP_MAX_SIZE_REACHED: i16 = 81;
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0", "group.max.size=1"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let required = join(&mut c, nobody("full"), b"meta");
    let member = Who {
        group: "full",
        member: required.member_id.as_str(),
        instance: None,
    };
    assert_eq!(join(&mut c, member, b"meta").generation_id, 1);
    let refused = join(&mut c, nobody("full"), b"meta");
    assert_eq!(
        (refused.error_code, refused.member_id.as_str()),
        (GROUP_MAX_SIZE_REACHED, "")
    );
    let describe = |c: &mut RawClient| -> (String, String, Vec<u8>) {
        let r: DescribeGroupsResponse = c.request(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("full"))]),
        );
        let g = &r.groups[0];
        (
            g.group_state.to_string(),
            g.protocol_data.to_string(),
            g.members[0].member_metadata.to_vec(),
        )
    };
    assert_eq!(
        describe(&mut c),
        ("CompletingRebalance".into(), String::new(), Vec::new())
    );
    assert_eq!(sync(&mut c, member, 1, "range", &[member.member]), NONE);
    assert_eq!(describe(&mut c), ("Stable".into(), "range".into(), b"meta".to_vec()));
}

/// A dynamic member of group `q`.
fn in_q(member: &str) -> Who<'_> {
    member_of("q", member)
}

/// A leader that never sends SyncGroup does not hold its group in CompletingRebalance
/// for good: at the rebalance timeout the members that sent none leave and the rest
/// rebalance, as Kafka's `expirePendingSync`.
#[test]
fn members_that_never_sync_leave_at_the_rebalance_timeout() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut leader_conn = RawClient::connect(&b.bootstrap);
    let mut follower_conn = RawClient::connect(&b.bootstrap);
    let leader_id = join_within(&mut leader_conn, in_q(""), b"l", 1_000)
        .member_id
        .to_string();
    let leader = in_q(&leader_id);
    assert_eq!(join_within(&mut leader_conn, leader, b"l", 1_000).generation_id, 1);
    assert_eq!(sync(&mut leader_conn, leader, 1, "range", &[&leader_id]), NONE);
    let bootstrap = b.bootstrap.clone();
    let follower_join = std::thread::spawn(move || {
        let mut c = RawClient::connect(&bootstrap);
        let id = join_within(&mut c, in_q(""), b"f", 1_000).member_id.to_string();
        let joined = join_within(&mut c, in_q(&id), b"f", 1_000);
        (id, joined.generation_id)
    });
    common::wait_for("the rebalance", || heartbeat(&mut leader_conn, leader, 1) == 27);
    assert_eq!(join_within(&mut leader_conn, leader, b"l", 1_000).generation_id, 2);
    let (follower_id, generation) = follower_join.join().expect("follower");
    assert_eq!(generation, 2);
    // The follower syncs; the leader never does. After the rebalance timeout (1 s) the
    // leader is out and the follower's sync answers REBALANCE_IN_PROGRESS.
    let follower = in_q(&follower_id);
    assert_eq!(sync(&mut follower_conn, follower, 2, "range", &[]), 27);
    assert_eq!(heartbeat(&mut leader_conn, leader, 2), UNKNOWN_MEMBER_ID);
    let rejoined = join_within(&mut follower_conn, follower, b"f", 1_000);
    assert_eq!(
        (rejoined.error_code, rejoined.generation_id, rejoined.leader.as_str()),
        (NONE, 3, follower_id.as_str())
    );
}

/// In the classic protocol an OffsetCommit keeps its member's session, as a heartbeat
/// does (Kafka's `OffsetMetadataManager.commitOffset`): a member that commits more
/// often than its session timeout, and sends no heartbeat, stays; one that does
/// neither is gone after the session timeout.
#[test]
fn offset_commits_keep_the_session() {
    let b = BrokerProcess::start(&[
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
    ]);
    common::create_topic_cli(&b.bootstrap, "t", "1");
    let mut c = RawClient::connect(&b.bootstrap);
    let member_in = |c: &mut RawClient, group: &'static str| -> String {
        let id = join_request(c, member_of(group, ""), b"m", 1_500, 10_000, 7)
            .member_id
            .to_string();
        let who = member_of(group, &id);
        assert_eq!(join_request(c, who, b"m", 1_500, 10_000, 7).generation_id, 1);
        assert_eq!(sync(c, who, 1, "range", &[&id]), NONE);
        id
    };
    let committer = member_in(&mut c, "commits");
    let idle = member_in(&mut c, "idle");
    // Three session timeouts of commits every 250 ms.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(4_500);
    while std::time::Instant::now() < until {
        assert_eq!(commit(&mut c, member_of("commits", &committer), 1, 9), NONE);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(heartbeat(&mut c, member_of("commits", &committer), 1), NONE);
    assert_eq!(heartbeat(&mut c, member_of("idle", &idle), 1), UNKNOWN_MEMBER_ID);
}

/// The first rebalance of a new group waits `group.initial.rebalance.delay.ms`, and
/// another delay after each window in which a member arrived (Kafka's
/// `tryCompleteInitialRebalanceElseSchedule`): consumers started a little apart form
/// one generation of all of them, not one generation per arrival.
#[test]
fn the_initial_rebalance_waits_while_members_keep_arriving() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=2000"]);
    let started = std::time::Instant::now();
    let joiners: Vec<_> = [0u64, 1_000, 3_000]
        .into_iter()
        .map(|at_ms| {
            let bootstrap = b.bootstrap.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(at_ms));
                let mut c = RawClient::connect(&bootstrap);
                let required = join(&mut c, member_of("late", ""), b"m");
                assert_eq!(required.error_code, MEMBER_ID_REQUIRED);
                join(&mut c, member_of("late", &required.member_id), b"m")
            })
        })
        .collect();
    let joined: Vec<JoinGroupResponse> = joiners.into_iter().map(|j| j.join().expect("joiner")).collect();
    // Windows end at 2 s (the second member came in it), 4 s (the third), 6 s (none).
    assert!(started.elapsed() >= std::time::Duration::from_millis(5_500));
    for r in &joined {
        assert_eq!(
            (r.error_code, r.generation_id),
            (NONE, 1),
            "one generation for all three"
        );
    }
    let leader = joined.iter().find(|r| r.leader == r.member_id).expect("a leader");
    assert_eq!(leader.members.len(), 3);
}

/// JoinGroup at `version` (v9: KIP-814's `skip_assignment` in the answer).
fn join_at(c: &mut RawClient, who: Who<'_>, version: i16) -> JoinGroupResponse {
    join_request(c, who, b"m", 10_000, 10_000, version)
}

/// SyncGroup v5 with `assignments`; the member's assignment, or the error code.
fn sync_assigning(
    c: &mut RawClient,
    who: Who<'_>,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> Result<bytes::Bytes, i16> {
    let r = sync_request(c, who, generation, "range", assignments);
    if r.error_code == NONE {
        Ok(r.assignment)
    } else {
        Err(r.error_code)
    }
}

/// A static member of group `sl`.
fn in_sl<'a>(member: &'a str, instance: &'a str) -> Who<'a> {
    Who {
        group: "sl",
        member,
        instance: Some(instance),
    }
}

/// A static leader that restarts takes its place without a rebalance, as any static
/// member does (Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`): from
/// JoinGroup v9 it is told it leads, with the roster and `skip_assignment`; before v9
/// it is named the old member id as leader, so it syncs as a follower. Either way it
/// gets its old assignment back and the other members notice nothing.
#[test]
fn a_restarted_static_leader_keeps_the_generation() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=500"]);
    let joins: Vec<_> = ["il", "if"]
        .into_iter()
        .map(|instance| {
            let bootstrap = b.bootstrap.clone();
            std::thread::spawn(move || {
                let mut c = RawClient::connect(&bootstrap);
                join_at(&mut c, in_sl("", instance), 9)
            })
        })
        .collect();
    let joined: Vec<JoinGroupResponse> = joins.into_iter().map(|j| j.join().expect("join")).collect();
    assert!(joined.iter().all(|r| (r.error_code, r.generation_id) == (NONE, 1)));
    let (leader_join, follower_join) = match joined[0].leader == joined[0].member_id {
        true => (&joined[0], &joined[1]),
        false => (&joined[1], &joined[0]),
    };
    let leader_instance = leader_join
        .members
        .iter()
        .find(|m| m.member_id == leader_join.member_id);
    let leader_instance: &'static str = match leader_instance.and_then(|m| m.group_instance_id.as_deref()) {
        Some("il") => "il",
        _ => "if",
    };
    let follower_instance = if leader_instance == "il" { "if" } else { "il" };
    let mut c = RawClient::connect(&b.bootstrap);
    let (leader_id, follower_id) = (leader_join.member_id.to_string(), follower_join.member_id.to_string());
    let old_leader = in_sl(&leader_id, leader_instance);
    let follower = in_sl(&follower_id, follower_instance);
    let plan: [(&str, &'static [u8]); 2] = [(&leader_id, b"A"), (&follower_id, b"F")];
    assert_eq!(sync_assigning(&mut c, old_leader, 1, &plan).as_deref(), Ok(&b"A"[..]));
    assert_eq!(sync_assigning(&mut c, follower, 1, &[]).as_deref(), Ok(&b"F"[..]));

    // The leader restarts (v9): same generation, told to lead and to skip assigning.
    let restarted = join_at(&mut c, in_sl("", leader_instance), 9);
    assert_eq!((restarted.error_code, restarted.generation_id), (NONE, 1));
    assert_ne!(restarted.member_id.as_str(), leader_id);
    assert_eq!(restarted.leader, restarted.member_id);
    assert!(restarted.skip_assignment);
    assert_eq!(restarted.members.len(), 2, "the roster");
    let new_leader = in_sl(&restarted.member_id, leader_instance);
    assert_eq!(sync_assigning(&mut c, new_leader, 1, &[]).as_deref(), Ok(&b"A"[..]));
    assert_eq!(heartbeat(&mut c, follower, 1), NONE, "no rebalance");
    assert_eq!(heartbeat(&mut c, old_leader, 1), FENCED_INSTANCE_ID);

    // Again before v9: named the previous id as leader, it takes itself for a follower.
    let restarted_v7 = join_at(&mut c, in_sl("", leader_instance), 7);
    assert_eq!((restarted_v7.error_code, restarted_v7.generation_id), (NONE, 1));
    assert_eq!(restarted_v7.leader, restarted.member_id);
    assert!(restarted_v7.members.is_empty());
    let newest = in_sl(&restarted_v7.member_id, leader_instance);
    assert_eq!(sync_assigning(&mut c, newest, 1, &[]).as_deref(), Ok(&b"A"[..]));
    assert_eq!(heartbeat(&mut c, follower, 1), NONE, "no rebalance");
    assert_eq!(heartbeat(&mut c, newest, 1), NONE);
}
