//! Consumer groups with librdkafka: partitions shared out and rebalanced, committed
//! offsets surviving a broker restart.

mod common;

use common::{rdkafka_config, BrokerProcess};
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    rdkafka_config(bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

fn create(bootstrap: &str, topic: &str, partitions: &str) {
    common::create_topic_cli(bootstrap, topic, partitions);
}

fn produce(bootstrap: &str, topic: &str, n: usize, partitions: usize) {
    common::produce_round_robin(bootstrap, topic, n, partitions);
}

fn assigned(c: &BaseConsumer) -> usize {
    c.assignment().map(|a| a.count()).unwrap_or(0)
}

/// Polls every consumer until `done` holds or 30 s pass; returns values seen.
fn poll_until(consumers: &[&BaseConsumer], mut done: impl FnMut(&[&BaseConsumer], usize) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for c in consumers {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
            }
        }
        if done(consumers, seen.len()) {
            return seen;
        }
    }
    panic!(
        "timed out: assignments {:?}, {} messages",
        consumers.iter().map(|c| assigned(c)).collect::<Vec<_>>(),
        seen.len()
    );
}

#[test]
fn three_consumers_share_six_partitions_and_rebalance_when_one_leaves() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "shared", "6");
    produce(&b.bootstrap, "shared", 600, 6);
    let cs: Vec<BaseConsumer> = (0..3).map(|_| consumer(&b.bootstrap, "g1")).collect();
    for c in &cs {
        c.subscribe(&["shared"]).expect("subscribe");
    }
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    // Without commits, a rebalance during the first polls may deliver a message twice;
    // what matters is that every one arrives and the partitions end up two apiece.
    let mut unique: HashSet<String> = HashSet::new();
    let mut seen_so_far = 0;
    poll_until(&refs, |cs, _| cs.iter().all(|c| assigned(c) == 2));
    let deadline = Instant::now() + Duration::from_secs(30);
    while unique.len() < 600 && Instant::now() < deadline {
        for c in &refs {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                unique.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
                seen_so_far += 1;
            }
        }
    }
    assert_eq!(unique.len(), 600, "every message consumed ({seen_so_far} deliveries)");

    let mut cs = cs;
    let leaver = cs.pop().expect("third consumer");
    leaver.unsubscribe();
    drop(leaver);
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    poll_until(&refs, |cs, _| cs.iter().all(|c| assigned(c) == 3));

    let (ok, out, err) = common::fjord(&["topics", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(ok, "{err}");
    assert!(out.contains("__consumer_offsets"), "{out}");
}

#[test]
fn committed_offsets_survive_restart_and_kill_minus_nine() {
    let mut b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=5"]);
    create(&b.bootstrap, "resume", "1");
    produce(&b.bootstrap, "resume", 60, 1);
    let c = consumer(&b.bootstrap, "g2");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("resume", 0, Offset::Offset(42)).expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);
    let committed = |b: &BrokerProcess| {
        let c = consumer(&b.bootstrap, "g2");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("resume", 0);
        let r = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed");
        r.elements()[0].offset()
    };
    assert_eq!(committed(&b), Offset::Offset(42));
    b.stop();
    b.restart();
    assert_eq!(committed(&b), Offset::Offset(42), "after a clean restart");
    let c = consumer(&b.bootstrap, "g2");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("resume", 0, Offset::Offset(50)).expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);
    b.kill9();
    b.restart();
    assert_eq!(committed(&b), Offset::Offset(50), "after kill -9");
    // A subscribing consumer resumes from the committed offset.
    let c = consumer(&b.bootstrap, "g2");
    c.subscribe(&["resume"]).expect("subscribe");
    let seen = poll_until(&[&c], |_, n| n >= 10);
    assert_eq!(seen[0], "m50");
}

/// The CURRENT-OFFSET, LOG-END-OFFSET and LAG columns of `--describe` for partition 0.
fn describe_row(bootstrap: &str, group: &str) -> (String, String, String) {
    let (ok, out, err) = common::fjord(
        &[
            "consumer-groups",
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
        None,
    );
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(""), "Kafka's table starts on a new line: {out}");
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID"
        ]
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    (row[3].to_string(), row[4].to_string(), row[5].to_string())
}

fn reset(bootstrap: &str, group: &str, how: &[&str]) {
    let mut args = vec![
        "consumer-groups",
        "--bootstrap-server",
        bootstrap,
        "--reset-offsets",
        "--group",
        group,
        "--topic",
        "lagged",
    ];
    args.extend_from_slice(how);
    args.push("--execute");
    let (ok, out, err) = common::fjord(&args, None);
    assert!(ok, "{how:?}: {err}");
    assert!(out.starts_with("GROUP"), "{out}");
}

#[test]
fn offset_checker_lag_and_every_reset_option() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "lagged", "1");
    produce(&b.bootstrap, "lagged", 10, 1);
    let (ok, out, err) = common::fjord(
        &[
            "console-consumer",
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            "lagged",
            "--group",
            "checker",
            "--from-beginning",
            "--max-messages",
            "10",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 10);
    assert_eq!(
        describe_row(&b.bootstrap, "checker"),
        ("10".into(), "10".into(), "0".into())
    );
    produce(&b.bootstrap, "lagged", 5, 1);
    assert_eq!(
        describe_row(&b.bootstrap, "checker"),
        ("10".into(), "15".into(), "5".into()),
        "LAG after 5 more messages"
    );

    let (ok, out, _) = common::fjord(&["consumer-groups", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(ok && out.lines().any(|l| l == "checker"), "{out}");

    let current = |b: &BrokerProcess| describe_row(&b.bootstrap, "checker").0;
    reset(&b.bootstrap, "checker", &["--to-earliest"]);
    assert_eq!(current(&b), "0");
    reset(&b.bootstrap, "checker", &["--to-offset", "7"]);
    assert_eq!(current(&b), "7");
    reset(&b.bootstrap, "checker", &["--shift-by", "-2"]);
    assert_eq!(current(&b), "5");
    reset(&b.bootstrap, "checker", &["--to-latest"]);
    assert_eq!(current(&b), "15");
    reset(&b.bootstrap, "checker", &["--to-datetime", "2000-01-01T00:00:00.000"]);
    assert_eq!(current(&b), "0");
    reset(&b.bootstrap, "checker", &["--to-latest"]);
    reset(&b.bootstrap, "checker", &["--by-duration", "PT1H"]);
    assert_eq!(current(&b), "0", "every record is younger than an hour");
    let (ok, _, _) = common::fjord(
        &[
            "consumer-groups",
            "--bootstrap-server",
            &b.bootstrap,
            "--reset-offsets",
            "--group",
            "checker",
            "--topic",
            "lagged",
            "--to-offset",
            "3",
            "--dry-run",
        ],
        None,
    );
    assert!(ok);
    assert_eq!(current(&b), "0", "--dry-run changes nothing");
    // As Kafka's tool: past the log end is the log end, with a warning; a shift with
    // no committed offset to shift from is refused; an active group's offsets are not
    // reset, which it says on stdout (status 0).
    let reset_args = |group: &'static str, how: &[&'static str]| {
        let mut args = vec![
            "consumer-groups",
            "--bootstrap-server",
            b.bootstrap.as_str(),
            "--reset-offsets",
            "--group",
            group,
            "--topic",
            "lagged",
            "--execute",
        ];
        args.extend_from_slice(how);
        common::fjord(&args, None)
    };
    let (ok, _, err) = reset_args("checker", &["--to-offset", "99"]);
    assert!(
        ok && err.contains(
            "New offset (99) is higher than latest offset for topic partition lagged-0. Value will be set to 15"
        ),
        "{err}"
    );
    assert_eq!(current(&b), "15");
    let (ok, _, err) = reset_args("fresh", &["--shift-by", "1"]);
    assert!(
        !ok && err.contains("Cannot shift offset for partition lagged-0 since there is no current committed offset"),
        "{err}"
    );
    let mut member = common::RawClient::connect(&b.bootstrap);
    let required = join(&mut member, "active", "");
    let joined = join(&mut member, "active", &required.member_id);
    assert_eq!(sync(&mut member, "active", joined.generation_id, &joined.member_id), 0);
    let (ok, out, err) = reset_args("active", &["--to-earliest"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("\nError: Assignments can only be reset if the group 'active' is inactive, but the current state is Stable.\n"),
        "{out}"
    );
    assert_eq!(current(&b), "15");
    reset(&b.bootstrap, "checker", &["--to-earliest"]);

    // --delete-offsets: the committed offset goes, the group's other state stays.
    let cg = |args: &[&str]| {
        let mut all = vec!["consumer-groups", "--bootstrap-server", &b.bootstrap];
        all.extend_from_slice(args);
        common::fjord(&all, None)
    };
    let (ok, out, err) = cg(&["--delete-offsets", "--group", "checker", "--topic", "lagged:0"]);
    assert!(ok, "{err}");
    assert!(out.contains("Successful"), "{out}");
    // As Kafka's `shouldPrintMemberState`: an Empty group with no rows left says so
    // and prints no table; one that does not exist says that, on stdout; status 0.
    let (ok, out, err) = cg(&["--describe", "--group", "checker"]);
    assert!(ok && out.is_empty(), "{out}");
    assert_eq!(err, "\nConsumer group 'checker' has no active members.\n");
    for mode in [
        &["--describe"][..],
        &["--describe", "--state"],
        &["--describe", "--members"],
    ] {
        let mut args = mode.to_vec();
        args.extend(["--group", "nosuchgroup"]);
        let (ok, out, err) = cg(&args);
        assert!(ok, "{mode:?}: {err}");
        // Kafka's `printMembers` prints its header whatever the group's state.
        let header = if mode.contains(&"--members") {
            "\nGROUP           CONSUMER-ID     HOST            CLIENT-ID       #PARTITIONS     \n"
        } else {
            ""
        };
        assert_eq!(
            out,
            format!("\nError: Consumer group 'nosuchgroup' does not exist.\n{header}"),
            "{mode:?}"
        );
    }
    let (ok, _, err) = cg(&["--delete-offsets", "--group", "nosuchgroup", "--topic", "lagged"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    reset(&b.bootstrap, "checker", &["--to-offset", "3"]);
    assert_eq!(current(&b), "3");

    let (ok, out, err) = common::fjord(
        &[
            "consumer-groups",
            "--bootstrap-server",
            &b.bootstrap,
            "--delete",
            "--group",
            "checker",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("successful"), "{out}");
    let (_, out, _) = common::fjord(&["consumer-groups", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(!out.lines().any(|l| l == "checker"), "{out}");
}

/// JoinGroup v5 from a raw client: `consumer` protocol, one `range` assignor.
fn join(c: &mut common::RawClient, group: &str, member: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(str_bytes(member))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes("range"))
            .with_metadata(bytes::Bytes::from_static(b"\0\0"))]);
    c.request(ApiKey::JoinGroup, 5, &req)
}

/// SyncGroup v3 from a raw client, with no assignments; its error code.
fn sync(c: &mut common::RawClient, group: &str, generation: i32, member: &str) -> i16 {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member));
    let resp: SyncGroupResponse = c.request(ApiKey::SyncGroup, 3, &req);
    resp.error_code
}

fn str_bytes(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

#[test]
fn bad_group_requests_get_kafkas_error_codes() {
    use common::RawClient;
    use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
    use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let s = str_bytes;
    assert_eq!(join(&mut c, "", "").error_code, 24, "INVALID_GROUP_ID");
    assert_eq!(join(&mut c, "g", "nobody").error_code, 25, "UNKNOWN_MEMBER_ID");
    let first = join(&mut c, "g", "");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED (KIP-394)");
    let joined = join(&mut c, "g", first.member_id.as_str());
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(
        sync(&mut c, "g", 0, joined.member_id.as_str()),
        22,
        "ILLEGAL_GENERATION for a stale generation"
    );
    let hb = |c: &mut RawClient, generation: i32, member: StrBytes| -> i16 {
        let r: HeartbeatResponse = c.request(
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(generation)
                .with_member_id(member),
        );
        r.error_code
    };
    assert_eq!(hb(&mut c, 1, s("someone-else")), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(hb(&mut c, 0, joined.member_id.clone()), 22, "ILLEGAL_GENERATION");
    assert_eq!(sync(&mut c, "g", 1, joined.member_id.as_str()), 0);
    assert_eq!(hb(&mut c, 1, joined.member_id.clone()), 0);
    // Oversized member metadata (more than half of message.max.bytes: its group could
    // never be stored) is refused, and the group's generation is undisturbed.
    let huge = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_group_instance_id(Some(s("huge")))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from(vec![0u8; 2 << 20]))]);
    let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &huge);
    assert_eq!(r.error_code, 42, "INVALID_REQUEST for 2 MiB of member metadata");
    assert_eq!(
        hb(&mut c, 1, joined.member_id.clone()),
        0,
        "the group is still at generation 1"
    );
    // The coordinator still serves other groups.
    let other = join(&mut c, "other", "");
    assert_eq!(join(&mut c, "other", other.member_id.as_str()).error_code, 0);
}

/// A leader's SyncGroup whose assignments would make the group's record larger than
/// `__consumer_offsets` takes is answered UNKNOWN_SERVER_ERROR and the group
/// rebalances, as Kafka answers the failed append. (It was answered NONE, and the
/// record retried every 50 ms under the coordinator's lock, for ever.)
#[test]
fn assignments_too_large_to_store_fail_the_sync_and_rebalance() {
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = common::RawClient::connect(&b.bootstrap);
    let first = join(&mut c, "big", "");
    let joined = join(&mut c, "big", first.member_id.as_str());
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let sync_with = |c: &mut common::RawClient, generation: i32, assignment_bytes: usize| -> i16 {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes("big")))
            .with_generation_id(generation)
            .with_member_id(joined.member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(bytes::Bytes::from(vec![1u8; assignment_bytes]))]);
        let resp: SyncGroupResponse = c.request(ApiKey::SyncGroup, 3, &req);
        resp.error_code
    };
    assert_eq!(sync_with(&mut c, 1, 2 << 20), -1, "UNKNOWN_SERVER_ERROR");
    // The group rebalances; its member rejoins and a storable assignment settles it.
    let rejoined = join(&mut c, "big", joined.member_id.as_str());
    assert_eq!((rejoined.error_code, rejoined.generation_id), (0, 2));
    assert_eq!(sync_with(&mut c, 2, 100), 0);
    assert!(!b.log_text().contains("writing the group's record failed"));
}

/// The first group record creates `__consumer_offsets` in the background (the group
/// tick writes it), one log at a time. Groups asked about meanwhile are served: their
/// partition is being made, not offline, and holds nothing to load (JoinGroup answered
/// NOT_COORDINATOR in that window, which failed a CI run), and at once: the tick does
/// not hold the groups map while it writes.
#[test]
fn groups_are_served_while_the_offsets_topic_is_being_created() {
    use common::RawClient;
    let partitions = 300;
    let b = BrokerProcess::start(&[
        "group.initial.rebalance.delay.ms=0",
        &format!("offsets.topic.num.partitions={partitions}"),
    ]);
    let mut c = RawClient::connect(&b.bootstrap);
    let first = join(&mut c, "first", "");
    let joined = join(&mut c, "first", first.member_id.as_str());
    assert_eq!(joined.error_code, 0);
    // The leader's SyncGroup marks the group for writing: the next tick creates the topic.
    assert_eq!(
        sync(&mut c, "first", joined.generation_id, joined.member_id.as_str()),
        0
    );
    let made = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("__consumer_offsets-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while made(&b.data_dir) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut asked_while_half_made = 0;
    for i in 0.. {
        let before = made(&b.data_dir);
        let r = join(&mut c, &format!("g{i}"), "");
        assert_eq!(
            r.error_code, 79,
            "MEMBER_ID_REQUIRED for group g{i} ({before} logs made)"
        );
        let after = made(&b.data_dir);
        // Asked and answered while the topic was half made: the join did not wait for
        // the tick's write (it held the groups map through the creation).
        if before > 0 && after < partitions {
            asked_while_half_made += 1;
        }
        if after == partitions || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(made(&b.data_dir), partitions, "the topic was made within a minute");
    assert!(
        asked_while_half_made > 0,
        "no request was answered while the topic was being made"
    );
}

/// Members and their partition counts from `--describe --members`.
fn members(bootstrap: &str, group: &str) -> Vec<usize> {
    let (ok, out, err) = common::fjord(
        &[
            "consumer-groups",
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
            "--members",
        ],
        None,
    );
    assert!(ok, "{err}");
    let mut counts: Vec<usize> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    counts.sort_unstable();
    counts
}

fn wait_members(bootstrap: &str, group: &str, want: &[usize], within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = members(bootstrap, group);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("members of {group}: {last:?}, wanted {want:?}");
}

#[test]
fn a_consumer_killed_with_minus_nine_is_expelled_after_its_session_timeout() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "expel", "2");
    let spawn = || {
        std::process::Command::new(common::FJORD)
            .args([
                "console-consumer",
                "--bootstrap-server",
                &b.bootstrap,
                "--topic",
                "expel",
                "--group",
                "expel-g",
                "--consumer-property",
                "session.timeout.ms=6000",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn consumer")
    };
    let mut a = spawn();
    let mut victim = spawn();
    wait_members(&b.bootstrap, "expel-g", &[1, 1], Duration::from_secs(30));
    victim.kill().expect("kill -9");
    let _ = victim.wait();
    let killed = Instant::now();
    wait_members(&b.bootstrap, "expel-g", &[2], Duration::from_secs(30));
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "expelled only after the session timeout ({took:?})"
    );
    let _ = a.kill();
    let _ = a.wait();
}

#[test]
fn cooperative_sticky_and_static_members_share_partitions() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "coop", "6");
    let make = |i: usize| -> BaseConsumer {
        rdkafka_config(&b.bootstrap)
            .set("group.id", "coop-g")
            .set("session.timeout.ms", "6000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("group.instance.id", format!("static-{i}"))
            .create()
            .expect("consumer")
    };
    let cs: Vec<BaseConsumer> = (0..3).map(make).collect();
    for c in &cs {
        c.subscribe(&["coop"]).expect("subscribe");
    }
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    poll_until(&refs, |cs, _| cs.iter().all(|c| assigned(c) == 2));
    let (ok, out, _) = common::fjord(
        &[
            "consumer-groups",
            "--bootstrap-server",
            &b.bootstrap,
            "--describe",
            "--group",
            "coop-g",
            "--state",
        ],
        None,
    );
    assert!(ok && out.contains("Stable"), "{out}");

    // KIP-345: a static member that restarts takes its old place without a rebalance
    // (unless it led the group: then the leader must re-run the assignment). At most
    // one of the first two is the leader.
    let mut cs = cs;
    let mut rejoined_quietly = false;
    for i in 0..2 {
        drop(std::mem::replace(&mut cs[i], make(i)));
        cs[i].subscribe(&["coop"]).expect("subscribe");
        let refs: Vec<&BaseConsumer> = cs.iter().collect();
        poll_until(&refs, |cs, _| cs.iter().all(|c| assigned(c) == 2));
        if b.log_text().contains("static member rejoined without a rebalance") {
            rejoined_quietly = true;
            break;
        }
    }
    assert!(
        rejoined_quietly,
        "a restarted static member caused a rebalance: {}",
        b.log_text()
    );
}

/// Commits after every processed message: when a consumer leaves mid-stream, the rest
/// resume its partitions from the committed offsets, so the only duplicates are messages
/// processed but not yet committed (at most one per partition per rebalance).
#[test]
fn commits_after_processing_bound_duplicates_to_the_uncommitted_window() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "window", "6");
    produce(&b.bootstrap, "window", 1200, 6);
    let cs: Vec<BaseConsumer> = (0..3).map(|_| consumer(&b.bootstrap, "window-g")).collect();
    for c in &cs {
        c.subscribe(&["window"]).expect("subscribe");
    }
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    let mut active: Vec<&BaseConsumer> = cs.iter().collect();
    let mut left = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while deliveries.len() < 1200 && Instant::now() < deadline {
        for c in &active {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(10)) {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                *deliveries.entry(v).or_default() += 1;
                // Commit what was processed; during a rebalance the commit may fail,
                // which is exactly the window that can be delivered again.
                let _ = c.commit_message(&m, CommitMode::Sync);
            }
        }
        if !left && deliveries.len() >= 400 {
            let leaver = active.pop().expect("a consumer");
            leaver.unsubscribe();
            left = true;
        }
    }
    assert_eq!(deliveries.len(), 1200, "every message consumed");
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    eprintln!("duplicates after one consumer left mid-stream: {duplicates}");
    // Two rebalances (the join, the leave) over six partitions, one uncommitted
    // message per partition each at most.
    assert!(
        duplicates <= 12,
        "{duplicates} duplicates exceed the uncommitted window"
    );
}

/// The group's record in `__consumer_offsets` brings a Stable group back after a
/// restart (clean and kill -9): its member heartbeats on with the same generation, no
/// rejoin, and DescribeGroups shows it with its assignment.
#[test]
fn group_membership_survives_restart_and_kill_minus_nine() {
    use common::RawClient;
    use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
    use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
    use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
    use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
    use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
    let s = str_bytes;
    let mut b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let join = |c: &mut RawClient, member: &str| -> JoinGroupResponse {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s("kept")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from_static(b"subscription"))]);
        c.request(ApiKey::JoinGroup, 5, &req)
    };
    let id = join(&mut c, "").member_id;
    let joined = join(&mut c, id.as_str());
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let sync: SyncGroupResponse = c.request(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("kept")))
            .with_generation_id(1)
            .with_member_id(id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(id.clone())
                .with_assignment(bytes::Bytes::from_static(b"assignment"))]),
    );
    assert_eq!(sync.error_code, 0);
    // The record is written on the coordinator's next tick (50 ms).
    std::thread::sleep(Duration::from_millis(300));
    for how in ["clean restart", "kill -9"] {
        b.stop_and_restart(how);
        let mut c = RawClient::connect(&b.bootstrap);
        let hb: HeartbeatResponse = c.request(
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("kept")))
                .with_generation_id(1)
                .with_member_id(id.clone()),
        );
        assert_eq!(hb.error_code, 0, "the member heartbeats on after a {how}");
        let d: DescribeGroupsResponse = c.request(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("kept"))]),
        );
        let g = &d.groups[0];
        assert_eq!(g.group_state.as_str(), "Stable", "after a {how}");
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].member_assignment.as_ref(), b"assignment");
        assert_eq!(g.members[0].member_metadata.as_ref(), b"subscription");
    }
}

/// An offset commit for a topic or partition the broker does not have is answered
/// UNKNOWN_TOPIC_OR_PARTITION and not stored, as Kafka's KafkaApis answers it; the
/// rest of the request is committed.
#[test]
fn commits_for_partitions_that_do_not_exist_are_refused() {
    use common::RawClient;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
    use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
    use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse, TopicName};
    let b = BrokerProcess::start(&[]);
    create(&b.bootstrap, "t", "2");
    let mut c = RawClient::connect(&b.bootstrap);
    let s = str_bytes;
    let commit = |topic: &str, partitions: &[i32]| {
        OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(7)
                    })
                    .collect(),
            )
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![commit("t", &[0, 2, -1, 1]), commit("nope", &[0])]);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &req);
    let codes: Vec<(String, i32, i16)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    let expected = [("t", 0, 0), ("t", 2, 3), ("t", -1, 3), ("t", 1, 0), ("nope", 0, 3)];
    let expected: Vec<(String, i32, i16)> = expected.iter().map(|(t, p, e)| (t.to_string(), *p, *e)).collect();
    assert_eq!(codes, expected);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(None);
    let r: OffsetFetchResponse = c.request(ApiKey::OffsetFetch, 7, &fetch);
    assert_eq!(r.error_code, 0);
    let stored: Vec<(String, i32, i64)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(stored, [("t".to_string(), 0, 7), ("t".to_string(), 1, 7)]);

    // A commit of nothing but unknown partitions stores nothing, and makes no group.
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("phantom")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![commit("nope", &[0, 1])]);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &req);
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 3));
    let listed: ListGroupsResponse = c.request(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let names: Vec<String> = listed.groups.iter().map(|g| g.group_id.to_string()).collect();
    assert_eq!(names, ["g"]);
}

/// Empty groups with no committed offsets are deleted at the next retention check, as
/// Kafka's cleanup deletes them, classic and consumer-protocol alike, and stay deleted
/// across a restart; a group with offsets stays. Before, a group that never committed
/// stayed for ever.
#[test]
fn empty_groups_without_offsets_are_deleted_by_the_retention_check() {
    let mut b = BrokerProcess::start(&[
        "offsets.retention.check.interval.ms=300",
        "group.initial.rebalance.delay.ms=0",
    ]);
    create(&b.bootstrap, "clean", "1");
    produce(&b.bootstrap, "clean", 5, 1);
    let read_one = |group: &str, protocol: &str, commit: bool| {
        let c: BaseConsumer = rdkafka_config(&b.bootstrap)
            .set("group.id", group)
            .set("group.protocol", protocol)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        c.subscribe(&["clean"]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(c.poll(Duration::from_millis(50)), Some(Ok(_))) {
            assert!(Instant::now() < deadline, "{group}: no message");
        }
        if commit {
            c.commit_consumer_state(CommitMode::Sync).expect("commit");
        }
        c.unsubscribe();
    };
    read_one("never-classic", "classic", false);
    read_one("never-consumer", "consumer", false);
    read_one("kept", "classic", true);
    let listed = |bootstrap: &str| {
        let (ok, out, err) = common::fjord(&["consumer-groups", "--bootstrap-server", bootstrap, "--list"], None);
        assert!(ok, "{err}");
        out.lines().map(String::from).collect::<Vec<_>>()
    };
    common::wait_for("the empty groups without offsets to go", || {
        listed(&b.bootstrap) == ["kept"]
    });
    assert!(b
        .log_text()
        .contains("deleted an empty group with no committed offsets"));
    b.stop_and_restart("kill -9");
    assert_eq!(listed(&b.bootstrap), ["kept"], "deleted groups stay deleted");
    b.stop();
}

/// `--describe --state` and `--members [--verbose]` print Kafka's tables to the
/// character: `printStates` with the coordinator "host:port  (id)" and the assignment
/// strategy, `printMembers` with GROUP-INSTANCE-ID when a member has one and with
/// `--verbose` each member's partitions ("(0,1,2)" a topic each).
#[test]
fn describe_state_and_members_print_kafkas_tables() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    create(&b.bootstrap, "described", "3");
    let c: BaseConsumer = rdkafka_config(&b.bootstrap)
        .set("group.id", "tables")
        .set("group.instance.id", "static-1")
        .set("client.id", "table-client")
        .set("partition.assignment.strategy", "range")
        .create()
        .expect("consumer");
    c.subscribe(&["described"]).expect("subscribe");
    poll_until(&[&c], |cs, _| assigned(cs[0]) == 3);
    let cli = |rest: &[&str]| {
        let mut args = vec![
            "consumer-groups",
            "--bootstrap-server",
            b.bootstrap.as_str(),
            "--describe",
            "--group",
            "tables",
        ];
        args.extend_from_slice(rest);
        let (ok, out, err) = common::fjord(&args, None);
        assert!(ok, "{err}");
        out
    };
    let port = b.bootstrap.rsplit(':').next().expect("port");
    let coordinator = format!("127.0.0.1:{port}  (1)");
    let w = coordinator.len().max(25);
    assert_eq!(
        cli(&["--state"]),
        format!(
            "\n{:<w$} {:<25} {:<20} {:<15} #MEMBERS\n{:<w$} {:<25} {:<20} {:<15} 1\n",
            "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "tables", coordinator, "range", "Stable"
        )
    );
    let out = cli(&["--members", "--verbose"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "");
    let member = lines[2].split_whitespace().nth(1).expect("consumer id").to_string();
    let c_w = member.len().max(15);
    assert_eq!(
        lines[1],
        format!(
            "{:<15} {:<c_w$} {:<17} {:<15} {:<15} {:<15} ASSIGNMENT",
            "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{:<15} {:<c_w$} {:<17} {:<15} {:<15} {:<15} (0,1,2)",
            "tables", member, "static-1", "/127.0.0.1", "table-client", "3"
        )
    );
}

/// `--reset-offsets --to-current`, `--export` and `--from-file`, as Kafka's tool: the
/// current plan (committed offsets, the log end where there is none) exported as CSV
/// (`topic,partition,offset` for one group, with the group first for several), and a
/// plan read back from such a file and executed.
#[test]
fn reset_plans_export_to_csv_and_execute_from_a_file() {
    let b = BrokerProcess::start(&[]);
    let bs = b.bootstrap.as_str();
    create(bs, "ex", "2");
    produce(bs, "ex", 10, 2);
    let cg = |rest: &[&str]| {
        let mut args = vec!["consumer-groups", "--bootstrap-server", bs, "--reset-offsets"];
        args.extend_from_slice(rest);
        let (ok, out, err) = common::fjord(&args, None);
        assert!(ok, "{args:?}: {err}");
        out
    };
    cg(&["--group", "exp", "--topic", "ex:0", "--to-offset", "2", "--execute"]);
    // Partition 1 has no committed offset: its log end (5 of the 10 records).
    assert_eq!(
        cg(&[
            "--group",
            "exp",
            "--topic",
            "ex",
            "--to-current",
            "--export",
            "--dry-run"
        ]),
        "ex,0,2\nex,1,5\n\n"
    );
    let plan = b.data_dir.with_extension("plan.csv");
    std::fs::write(&plan, "ex,0,1\nex,1,3\n").expect("plan");
    let path = plan.to_str().expect("path");
    cg(&["--group", "exp", "--from-file", path, "--execute"]);
    assert_eq!(
        cg(&[
            "--group",
            "exp",
            "--topic",
            "ex",
            "--to-current",
            "--export",
            "--dry-run"
        ]),
        "ex,0,1\nex,1,3\n\n"
    );
    // Several groups: the group first, one CSV.
    cg(&["--group", "exp2", "--topic", "ex:1", "--to-offset", "4", "--execute"]);
    assert_eq!(
        cg(&[
            "--group",
            "exp",
            "--group",
            "exp2",
            "--all-topics",
            "--to-current",
            "--export",
            "--dry-run"
        ]),
        "exp,ex,0,1\nexp,ex,1,3\nexp2,ex,1,4\n\n"
    );
    // An offset past the log end (5) is set to it, as Kafka's `checkOffsetsRange`.
    std::fs::write(&plan, "exp,ex,0,5\nexp2,ex,1,9\n").expect("plan");
    cg(&["--group", "exp", "--group", "exp2", "--from-file", path, "--execute"]);
    assert_eq!(
        cg(&[
            "--group",
            "exp",
            "--group",
            "exp2",
            "--all-topics",
            "--to-current",
            "--export",
            "--dry-run"
        ]),
        "exp,ex,0,5\nexp,ex,1,3\nexp2,ex,1,5\n\n"
    );
}
