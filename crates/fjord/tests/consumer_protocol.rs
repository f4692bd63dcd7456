//! The consumer group protocol (KIP-848) with librdkafka's `group.protocol=consumer`:
//! the broker assigns, members reconcile through ConsumerGroupHeartbeat.

mod common;

use common::{rdkafka_config, BrokerProcess, RawClient};
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response::ConsumerGroupDescribeResponse;
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::consumer_group_heartbeat_response::ConsumerGroupHeartbeatResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const BROKER: &[&str] = &[
    "group.consumer.heartbeat.interval.ms=500",
    "group.consumer.session.timeout.ms=6000",
];

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = rdkafka_config(bootstrap);
    c.set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

fn create(bootstrap: &str, topic: &str, partitions: &str) {
    common::create_topic_cli(bootstrap, topic, partitions);
}

fn produce(bootstrap: &str, topic: &str, n: usize, partitions: usize) {
    common::produce_round_robin(bootstrap, topic, n, partitions);
}

fn partitions(c: &BaseConsumer) -> Vec<i32> {
    let mut v: Vec<i32> = c
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Polls every consumer until `done` holds (30 s at most); returns the payloads seen.
fn poll_until(
    consumers: &[&BaseConsumer],
    mut done: impl FnMut(&[&BaseConsumer], &HashSet<String>) -> bool,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for c in consumers {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                seen.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
            }
        }
        if done(consumers, &seen) {
            return seen;
        }
    }
    let assigned: Vec<Vec<i32>> = consumers.iter().map(|c| partitions(c)).collect();
    panic!("timed out: assignments {assigned:?}, {} messages", seen.len());
}

fn describe(bootstrap: &str, group: &str) -> ConsumerGroupDescribeResponse {
    let mut raw = RawClient::connect(bootstrap);
    let req =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
    raw.request(ApiKey::ConsumerGroupDescribe, 0, &req)
}

fn cli(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec!["consumer-groups", "--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    let (ok, out, err) = common::fjord(&all, None);
    assert!(ok, "{err}");
    out
}

#[test]
fn three_members_share_six_partitions_commit_and_rebalance_when_one_leaves() {
    let b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "kip848", "6");
    produce(&b.bootstrap, "kip848", 600, 6);
    let cs: Vec<BaseConsumer> = (0..3).map(|_| consumer(&b.bootstrap, "g848", &[])).collect();
    for c in &cs {
        c.subscribe(&["kip848"]).expect("subscribe");
    }
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    let seen = poll_until(&refs, |cs, seen| {
        seen.len() == 600 && cs.iter().all(|c| partitions(c).len() == 2)
    });
    assert_eq!(seen.len(), 600);
    for c in &cs {
        c.commit_consumer_state(CommitMode::Sync)
            .expect("commit with the member epoch");
    }
    let d = describe(&b.bootstrap, "g848");
    let g = &d.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str(), g.assignor_name.as_str()),
        (0, "Stable", "uniform")
    );
    assert_eq!(g.members.len(), 3);
    assert!(g.members.iter().all(|m| m.member_epoch == g.group_epoch));
    // The offset checker: every partition committed at its end, lag 0, owned by a member.
    let out = cli(&b.bootstrap, &["--describe", "--group", "g848"]);
    // Kafka's table: an empty line, the header, the rows.
    let rows: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 6, "{out}");
    assert!(
        rows.iter().all(|r| r[3] == "100" && r[5] == "0" && r[6] != "-"),
        "{out}"
    );
    let state = cli(&b.bootstrap, &["--describe", "--group", "g848", "--state"]);
    assert!(state.contains("Stable"), "{state}");

    let mut cs = cs;
    let leaver = cs.pop().expect("third member");
    leaver.unsubscribe();
    drop(leaver);
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    poll_until(&refs, |cs, _| cs.iter().all(|c| partitions(c).len() == 3));
    let mut all: Vec<i32> = cs.iter().flat_map(partitions).collect();
    all.sort_unstable();
    assert_eq!(all, (0..6).collect::<Vec<_>>(), "each partition owned once");
    let list = cli(&b.bootstrap, &["--list"]);
    assert!(list.lines().any(|l| l == "g848"), "{list}");
}

#[test]
fn range_assignor_and_a_static_member_that_comes_back_without_a_rebalance() {
    let b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "ranged", "4");
    let range = [("group.remote.assignor", "range")];
    let a = consumer(
        &b.bootstrap,
        "granged",
        &[("group.remote.assignor", "range"), ("group.instance.id", "a")],
    );
    let c = consumer(&b.bootstrap, "granged", &range);
    a.subscribe(&["ranged"]).expect("subscribe");
    c.subscribe(&["ranged"]).expect("subscribe");
    poll_until(&[&a, &c], |cs, _| cs.iter().all(|c| partitions(c).len() == 2));
    for ps in [partitions(&a), partitions(&c)] {
        assert!(
            ps == vec![0, 1] || ps == vec![2, 3],
            "range gives contiguous partitions: {ps:?}"
        );
    }
    let before = describe(&b.bootstrap, "granged").groups[0].clone();
    assert_eq!(before.assignor_name.as_str(), "range");
    let a_parts = partitions(&a);
    // The static member closes (epoch -2) and its instance comes back: same partitions,
    // same group epoch, the other member undisturbed.
    drop(a);
    let a2 = consumer(
        &b.bootstrap,
        "granged",
        &[("group.remote.assignor", "range"), ("group.instance.id", "a")],
    );
    a2.subscribe(&["ranged"]).expect("subscribe");
    poll_until(&[&a2, &c], |cs, _| partitions(cs[0]) == a_parts);
    let after = describe(&b.bootstrap, "granged").groups[0].clone();
    assert_eq!(
        after.group_epoch, before.group_epoch,
        "no rebalance for the returning static member"
    );
    assert_eq!(after.members.len(), 2);
}

#[test]
fn a_member_killed_with_minus_nine_is_expelled_after_the_session_timeout() {
    let b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "expel848", "2");
    let mut child = std::process::Command::new(common::FJORD)
        .args([
            "console-consumer",
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            "expel848",
            "--group",
            "gx",
        ])
        .args(["--consumer-property", "group.protocol=consumer"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("console consumer");
    let stay = consumer(&b.bootstrap, "gx", &[]);
    stay.subscribe(&["expel848"]).expect("subscribe");
    poll_until(&[&stay], |cs, _| partitions(cs[0]).len() == 1);
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let killed = Instant::now();
    poll_until(&[&stay], |cs, _| partitions(cs[0]).len() == 2);
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "expelled after {waited:?}, before its 6 s session ran out"
    );
}

fn heartbeat(raw: &mut RawClient, group: &str, member: &str, epoch: i32, join: bool) -> ConsumerGroupHeartbeatResponse {
    let s = |x: &str| StrBytes::from_string(x.to_string());
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000);
    if join {
        req = req
            .with_subscribed_topic_names(Some(vec![TopicName(s("raw848"))]))
            .with_topic_partitions(Some(vec![]));
    }
    raw.request(ApiKey::ConsumerGroupHeartbeat, 1, &req)
}

#[test]
fn bad_heartbeats_get_kafkas_error_codes() {
    use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
    use kafka_protocol::messages::join_group_response::JoinGroupResponse;
    let b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "raw848", "3");
    let mut raw = RawClient::connect(&b.bootstrap);
    assert_eq!(
        heartbeat(&mut raw, "", "m1", 0, true).error_code,
        42,
        "INVALID_REQUEST: empty group id"
    );
    assert_eq!(
        heartbeat(&mut raw, "gr", "", 0, true).error_code,
        42,
        "INVALID_REQUEST: v1 needs a member id"
    );
    assert_eq!(
        heartbeat(&mut raw, "gr", "m1", 0, false).error_code,
        42,
        "INVALID_REQUEST: join without a subscription"
    );
    assert_eq!(
        heartbeat(&mut raw, "gr", "m1", 5, false).error_code,
        69,
        "GROUP_ID_NOT_FOUND"
    );
    let joined = heartbeat(&mut raw, "gr", "m1", 0, true);
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    assert_eq!(joined.heartbeat_interval_ms, 500);
    let parts: usize = joined
        .assignment
        .as_ref()
        .map(|a| a.topic_partitions[0].partitions.len())
        .unwrap_or(0);
    assert_eq!(parts, 3, "a lone member gets every partition");
    assert_eq!(
        heartbeat(&mut raw, "gr", "m1", 9, false).error_code,
        110,
        "FENCED_MEMBER_EPOCH"
    );
    assert_eq!(
        heartbeat(&mut raw, "gr", "nobody", 1, false).error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let mut assignor = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("gr")))
        .with_member_id(StrBytes::from_static_str("m2"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![]))
        .with_topic_partitions(Some(vec![]));
    assignor.server_assignor = Some(StrBytes::from_static_str("sticky"));
    let r: ConsumerGroupHeartbeatResponse = raw.request(ApiKey::ConsumerGroupHeartbeat, 1, &assignor);
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    // A classic JoinGroup cannot take over a consumer group with members.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("gr")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(b"\0\0"))]);
    let r: JoinGroupResponse = raw.request(ApiKey::JoinGroup, 5, &join);
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // Leaving (epoch -1) empties the group; the coordinator still serves it.
    let left = heartbeat(&mut raw, "gr", "m1", -1, false);
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let d = describe(&b.bootstrap, "gr");
    assert_eq!(
        (d.groups[0].group_state.as_str(), d.groups[0].members.len()),
        ("Empty", 0)
    );
    assert_eq!(describe(&b.bootstrap, "missing").groups[0].error_code, 69);
}

/// The group's records in `__consumer_offsets` bring it back after a restart (clean
/// and kill -9): the member heartbeats on at its epoch, with its partitions.
#[test]
fn consumer_group_survives_restart_and_kill_minus_nine() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let mut b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "raw848", "3");
    let mut raw = RawClient::connect(&b.bootstrap);
    let joined = heartbeat(&mut raw, "kept848", "m1", 0, true);
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    let a = &joined.assignment.expect("assignment").topic_partitions[0];
    let owned = vec![TopicPartitions::default()
        .with_topic_id(a.topic_id)
        .with_partitions(a.partitions.clone())];
    for how in ["clean restart", "kill -9"] {
        b.stop_and_restart(how);
        let mut raw = RawClient::connect(&b.bootstrap);
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("kept848")))
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_member_epoch(1)
            .with_topic_partitions(Some(owned.clone()));
        let r: ConsumerGroupHeartbeatResponse = raw.request(ApiKey::ConsumerGroupHeartbeat, 1, &req);
        assert_eq!((r.error_code, r.member_epoch), (0, 1), "heartbeats on after a {how}");
        let d = describe(&b.bootstrap, "kept848");
        let g = &d.groups[0];
        assert_eq!(
            (g.group_state.as_str(), g.group_epoch, g.members.len()),
            ("Stable", 1, 1),
            "{how}"
        );
        assert_eq!(g.members[0].assignment.topic_partitions[0].partitions.len(), 3);
    }
}

/// A regex subscription (SubscribedTopicRegex): the broker resolves it to every topic
/// it matches, including one created after the member joined.
#[test]
fn regex_subscription_follows_new_topics() {
    let b = BrokerProcess::start(BROKER);
    create(&b.bootstrap, "rx-a", "2");
    create(&b.bootstrap, "other", "2");
    let c = consumer(&b.bootstrap, "grx", &[("topic.metadata.refresh.interval.ms", "1000")]);
    c.subscribe(&["^rx-.*"]).expect("subscribe");
    let topics = |c: &BaseConsumer| -> Vec<String> {
        let mut t: Vec<String> = c
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .map(|e| format!("{}-{}", e.topic(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        t.sort();
        t
    };
    poll_until(&[&c], |cs, _| topics(cs[0]) == ["rx-a-0", "rx-a-1"]);
    create(&b.bootstrap, "rx-b", "1");
    poll_until(&[&c], |cs, _| topics(cs[0]) == ["rx-a-0", "rx-a-1", "rx-b-0"]);
    let d = describe(&b.bootstrap, "grx");
    // librdkafka sends its subscriptions as one alternation: "(^rx-.*)".
    let regex = d.groups[0].members[0]
        .subscribed_topic_regex
        .clone()
        .unwrap_or_default();
    assert!(regex.contains("^rx-.*"), "{regex}");
    // An invalid regex gets INVALID_REGULAR_EXPRESSION.
    let mut raw = RawClient::connect(&b.bootstrap);
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("grx-bad")))
        .with_member_id(StrBytes::from_static_str("m"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("(unclosed")))
        .with_topic_partitions(Some(vec![]));
    let r: ConsumerGroupHeartbeatResponse = raw.request(ApiKey::ConsumerGroupHeartbeat, 1, &req);
    assert_eq!(r.error_code, 128, "INVALID_REGULAR_EXPRESSION");
}

/// One group id used by the classic protocol, then the consumer protocol, then the
/// classic again, with real clients: each conversion tombstones the old form in
/// `__consumer_offsets`, so every restart finds the group as it last was, with its
/// committed offsets. Before, the classic group's record outlived the conversion and a
/// restart turned the empty consumer group back into a classic one.
#[test]
fn a_group_converted_between_protocols_keeps_its_last_form_across_restarts() {
    let mut b = BrokerProcess::start(&[BROKER, &["group.initial.rebalance.delay.ms=0"]].concat());
    create(&b.bootstrap, "conv", "1");
    produce(&b.bootstrap, "conv", 30, 1);
    let use_group = |bootstrap: &str, protocol: &str, upto: usize| {
        let c = consumer(bootstrap, "conv-g", &[("group.protocol", protocol)]);
        c.subscribe(&["conv"]).expect("subscribe");
        let mut read = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while read < upto && Instant::now() < deadline {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(50)) {
                read += 1;
            }
        }
        assert_eq!(read, upto, "{protocol}");
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        c.unsubscribe();
        drop(c);
    };
    let group_type = |bootstrap: &str| {
        let d = describe(bootstrap, "conv-g");
        (d.groups[0].error_code, d.groups[0].group_state.to_string())
    };
    let current_offset = |bootstrap: &str| {
        let out = cli(bootstrap, &["--describe", "--group", "conv-g"]);
        let row = out.lines().find(|l| l.starts_with("conv-g")).expect("row").to_string();
        row.split_whitespace().nth(3).expect("current offset").to_string()
    };
    use_group(&b.bootstrap, "classic", 10);
    use_group(&b.bootstrap, "consumer", 10);
    common::wait_for("the consumer group to empty", || {
        group_type(&b.bootstrap) == (0, "Empty".into())
    });
    for how in ["clean restart", "kill -9"] {
        b.stop_and_restart(how);
        assert_eq!(
            group_type(&b.bootstrap),
            (0, "Empty".to_string()),
            "a consumer group after a {how}"
        );
        assert_eq!(current_offset(&b.bootstrap), "20");
    }
    // Back to the classic protocol: the consumer group's records are tombstoned.
    use_group(&b.bootstrap, "classic", 10);
    b.kill9();
    b.restart();
    let (code, _) = group_type(&b.bootstrap);
    assert_eq!(code, 69, "GROUP_ID_NOT_FOUND: no consumer group of that id is left");
    assert_eq!(current_offset(&b.bootstrap), "30");
    b.stop();
}
