//! A failing disk, as Kafka handles it: a log dir whose write fails with an I/O error
//! (here an ext4 image turned read-only by an injected error, as after a disk fault)
//! goes offline; its partitions answer KAFKA_STORAGE_ERROR and show no leader, the
//! other dir serves on and takes new topics; after the disk is repaired a restart
//! brings every acknowledged write back. When the dir holding the metadata fails the
//! broker stops by itself, non-zero. Needs root (loop devices); skipped otherwise.

mod common;

use common::{
    create_topic_cli, delete_topic_cli, fjord, produce_tracked, read_partition, BrokerProcess, Deliveries, Mount,
    RawClient,
};
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE_BYTES: u64 = 64 << 20;
const PARTITIONS: i32 = 4;

/// The partitions of `topic` whose directory is under `dir`.
fn partitions_in(dir: &Path, topic: &str) -> Vec<i32> {
    (0..PARTITIONS)
        .filter(|p| dir.join(format!("{topic}-{p}")).is_dir())
        .collect()
}

/// Per log dir: its error code and the partitions it reports.
fn describe_log_dirs(bootstrap: &str) -> Vec<(String, i16, usize)> {
    let mut client = RawClient::connect(bootstrap);
    // No topics named: every partition (Kafka's null).
    let all = DescribeLogDirsRequest::default().with_topics(None);
    let resp: DescribeLogDirsResponse = client.request(ApiKey::DescribeLogDirs, 4, &all);
    resp.results
        .iter()
        .map(|r| {
            let partitions = r.topics.iter().map(|t| t.partitions.len()).sum();
            (r.log_dir.to_string(), r.error_code, partitions)
        })
        .collect()
}

/// Per partition of `topic`: its metadata error and leader.
fn leaders(bootstrap: &str, topic: &str) -> Vec<(Option<RDKafkaRespErr>, i32)> {
    let c: BaseConsumer = common::rdkafka_config(bootstrap).create().expect("client");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    let mut out: Vec<_> = t.partitions().iter().map(|p| (p.id(), p.error(), p.leader())).collect();
    out.sort_by_key(|(id, _, _)| *id);
    out.into_iter().map(|(_, e, l)| (e, l)).collect()
}

/// The partitions of "spread" that Metadata shows without a leader (and with
/// LEADER_NOT_AVAILABLE); every other one must have its leader and no error.
fn offline_partitions(bootstrap: &str) -> Vec<i32> {
    let mut offline = Vec::new();
    for (p, (error, leader)) in leaders(bootstrap, "spread").into_iter().enumerate() {
        match (error, leader) {
            (None, 1) => {}
            (Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE), -1) => offline.push(p as i32),
            other => panic!("partition {p}: {other:?}"),
        }
    }
    offline
}

fn errors_of(d: &Deliveries) -> Vec<(i32, Option<RDKafkaErrorCode>)> {
    let failed = d.failed.lock().expect("failed");
    failed.iter().map(|(p, e)| (*p, e.rdkafka_error_code())).collect()
}

#[test]
fn a_failed_log_dir_goes_offline_the_other_serves_on_and_a_repaired_disk_brings_it_all_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = tmp.path().join("b.img");
    let Some(disk) = Mount::ext4(&image, &tmp.path().join("b"), IMAGE_BYTES) else {
        eprintln!("skipped: needs root, loop devices and mkfs.ext4");
        return;
    };
    let (dir_a, dir_b) = (tmp.path().join("a"), disk.path.join("data"));
    let dirs = format!("log.dirs={},{}", dir_a.display(), dir_b.display());
    // Acknowledged means on the disk (fsynced), so a disk failure, which loses what
    // ext4 had not committed yet, as a power cut would, loses none of it.
    let overrides = [dirs.as_str(), "log.flush.interval.messages=1"];
    let mut b = BrokerProcess::start_in(&tmp.path().join("broker"), &overrides);
    create_topic_cli(&b.bootstrap, "spread", &PARTITIONS.to_string());
    let (on_a, on_b) = (partitions_in(&dir_a, "spread"), partitions_in(&dir_b, "spread"));
    assert_eq!((on_a.len(), on_b.len()), (2, 2), "spread over both dirs");
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let before = produce_tracked(&b.bootstrap, "spread", &all, "before", 50, 1000);
    assert_eq!(before.failed_count(), 0);

    // A fetch waits on one of the second dir's partitions, at its end.
    let (bootstrap, waited_on) = (b.bootstrap.clone(), on_b[0]);
    let waiting = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        (
            fetch_error_within(&bootstrap, "spread", waited_on, 12, 30_000, 50),
            started.elapsed(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The disk under the second dir fails: its partitions refuse appends, and its dir
    // goes offline; the first dir's partitions go on.
    disk.fail();
    let during = produce_tracked(&b.bootstrap, "spread", &all, "during", 50, 1000);
    for (p, code) in errors_of(&during) {
        assert!(on_b.contains(&p), "only the failed dir's partitions fail: {p}");
        assert_eq!(code, Some(RDKafkaErrorCode::KafkaStorageError));
    }
    for p in &on_a {
        assert_eq!(during.acked_in(*p).len(), 50, "partition {p} serves on");
    }
    for p in &on_b {
        assert!(
            during.acked_in(*p).is_empty(),
            "nothing acknowledged from partition {p}"
        );
    }
    // The waiting fetch is answered as the dir goes offline, not at its max_wait_ms.
    let (code, waited) = waiting.join().expect("fetch");
    assert_eq!(code, 56);
    assert!(waited < std::time::Duration::from_secs(20), "answered after {waited:?}");
    let dirs_described = describe_log_dirs(&b.bootstrap);
    assert_eq!(dirs_described.len(), 2);
    assert_eq!((dirs_described[0].1, dirs_described[0].2), (0, PARTITIONS as usize / 2));
    assert_eq!(dirs_described[1].1, 56, "KAFKA_STORAGE_ERROR for the failed dir");
    assert_eq!(offline_partitions(&b.bootstrap), on_b, "no leader where the dir failed");
    // A fetch of an offline partition: KAFKA_STORAGE_ERROR from v6, before it
    // NOT_LEADER_OR_FOLLOWER (Kafka's `KafkaApis`: older clients retry on that).
    assert_eq!(fetch_error(&b.bootstrap, "spread", on_b[0], 5), 6);
    assert_eq!(fetch_error(&b.bootstrap, "spread", on_b[0], 6), 56);
    let (ok, described, _) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--describe",
            "--topic",
            "spread",
        ],
        None,
    );
    let leaderless = described.lines().filter(|l| l.contains("\tLeader: none\t")).count();
    assert!(ok && leaderless == on_b.len(), "{described}");

    // New topics go to the dir that is left; deleting a topic with an offline
    // partition is refused until the disk is back.
    create_topic_cli(&b.bootstrap, "after", "2");
    assert_eq!(partitions_in(&dir_a, "after"), vec![0, 1]);
    let after = produce_tracked(&b.bootstrap, "after", &[0, 1], "after", 20, 1000);
    assert_eq!(after.failed_count(), 0);
    let (ok, err) = delete_topic_cli(&b.bootstrap, "spread");
    assert!(!ok && err.contains("KafkaStorageError"), "{err}");
    b.stop();

    // Started again with the disk still failed: its dir is offline from the start.
    b.restart();
    let restarted = produce_tracked(&b.bootstrap, "spread", &on_a, "restarted", 5, 1000);
    assert_eq!(restarted.failed_count(), 0);
    assert_eq!(offline_partitions(&b.bootstrap), on_b);
    assert_eq!(describe_log_dirs(&b.bootstrap)[1].1, 56);
    b.stop();

    // Repaired (fsck, mounted again): a restart brings every acknowledged value back.
    let _repaired = repair(disk, &image, &tmp.path().join("b"));
    b.restart();
    for p in 0..PARTITIONS {
        let mut expected = before.acked_in(p);
        expected.extend(during.acked_in(p));
        expected.extend(restarted.acked_in(p));
        assert_eq!(
            read_partition(&b.bootstrap, "spread", p, expected.len()),
            expected,
            "partition {p}"
        );
    }
    assert_eq!(read_partition(&b.bootstrap, "after", 1, 20), after.acked_in(1));
    let log = b.log_text();
    assert!(log.contains("log dir failed"), "the failure is logged");
    assert!(!log.contains("panicked"), "{log}");
}

/// The error code of a Fetch at `version` of one partition.
fn fetch_error(bootstrap: &str, topic: &str, partition: i32, version: i16) -> i16 {
    fetch_error_within(bootstrap, topic, partition, version, 0, 0)
}

/// `fetch_error` of a fetch from `offset` that waits up to `max_wait_ms` for a byte.
fn fetch_error_within(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    version: i16,
    max_wait_ms: i32,
    offset: i64,
) -> i16 {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::fetch_response::FetchResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut client = common::RawClient::connect(bootstrap);
    client
        .stream
        .set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .expect("timeout");
    let resp: FetchResponse = client.request(ApiKey::Fetch, version, &req);
    resp.responses[0].partitions[0].error_code
}

/// Unmounts the failed filesystem, checks it, and mounts it again.
fn repair(disk: Mount, image: &Path, at: &Path) -> Mount {
    disk.unmount();
    let checked = Command::new("e2fsck")
        .args(["-f", "-y"])
        .arg(image)
        .status()
        .expect("e2fsck");
    // 0: clean, 1: errors corrected.
    assert!(matches!(checked.code(), Some(0 | 1)), "e2fsck: {checked}");
    Mount::ext4(image, at, IMAGE_BYTES).expect("mounted again")
}

#[test]
fn the_broker_stops_non_zero_when_the_metadata_log_dir_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(disk) = Mount::ext4(&tmp.path().join("d.img"), &tmp.path().join("d"), IMAGE_BYTES) else {
        eprintln!("skipped: needs root, loop devices and mkfs.ext4");
        return;
    };
    // The broker's own log stays off the failing disk, to be read afterwards.
    let dirs = format!("log.dirs={}", disk.path.join("data").display());
    let mut b = BrokerProcess::start_in(&tmp.path().join("broker"), &[dirs.as_str()]);
    create_topic_cli(&b.bootstrap, "t", "1");
    let ok = produce_tracked(&b.bootstrap, "t", &[0], "ok", 10, 100);
    assert_eq!(ok.failed_count(), 0);
    disk.fail();
    let refused = produce_tracked(&b.bootstrap, "t", &[0], "refused", 10, 100);
    assert!(refused.acked_in(0).is_empty(), "nothing acknowledged after the failure");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = b.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not stop by itself: {}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a broker stopped by a failed disk exits non-zero");
    let log = b.log_text();
    assert!(log.contains("the log dir holding the cluster metadata"), "{log}");
    drop(b);
    drop(disk);
}

/// A group's committed offset for t-0 (OffsetFetch v7): `Err` with the response's
/// error code when there is one.
fn committed_offset(bootstrap: &str, group: &str, version: i16) -> Result<i64, i16> {
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
    let mut client = RawClient::connect(bootstrap);
    let name = TopicName(kafka_protocol::protocol::StrBytes::from_static_str("t"));
    let group_id = GroupId(kafka_protocol::protocol::StrBytes::from_string(group.to_string()));
    if version < 8 {
        let topic = OffsetFetchRequestTopic::default()
            .with_name(name)
            .with_partition_indexes(vec![0]);
        let req = OffsetFetchRequest::default()
            .with_group_id(group_id)
            .with_topics(Some(vec![topic]));
        let resp: OffsetFetchResponse = client.request(ApiKey::OffsetFetch, version, &req);
        if resp.error_code != 0 {
            return Err(resp.error_code);
        }
        return Ok(resp.topics[0].partitions[0].committed_offset);
    }
    let topic = OffsetFetchRequestTopics::default()
        .with_name(name)
        .with_partition_indexes(vec![0]);
    let g = OffsetFetchRequestGroup::default()
        .with_group_id(group_id)
        .with_topics(Some(vec![topic]));
    let req = OffsetFetchRequest::default().with_groups(vec![g]);
    let resp: OffsetFetchResponse = client.request(ApiKey::OffsetFetch, version, &req);
    match resp.groups[0].error_code {
        0 => Ok(resp.groups[0].topics[0].partitions[0].committed_offset),
        code => Err(code),
    }
}

/// Commits offset `offset` of t-0 for `group`, as a consumer outside any generation.
fn commit(bootstrap: &str, group: &str, offset: i64) {
    let c: BaseConsumer = common::rdkafka_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, rdkafka::Offset::Offset(offset))
        .expect("tpl");
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync).expect("commit");
}

/// A `__consumer_offsets` partition in a log dir offline from start-up: its groups were
/// not loaded, so their coordinator answers NOT_COORDINATOR (and FindCoordinator
/// COORDINATOR_NOT_AVAILABLE), not "no committed offset", which would send consumers
/// back to auto.offset.reset. Groups in the other dir are served; with the dir back
/// after a restart, the commit is there. Needs no root: the dir is replaced by a file.
#[test]
fn groups_whose_offsets_partition_is_offline_get_not_coordinator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let dirs = format!("log.dirs={},{}", dir_a.display(), dir_b.display());
    let mut b = BrokerProcess::start_in(&tmp.path().join("broker"), &[dirs.as_str()]);
    create_topic_cli(&b.bootstrap, "t", "1");
    assert_eq!(
        common::find_coordinator(&b.bootstrap, "first"),
        0,
        "creates __consumer_offsets"
    );
    let on_b: Vec<i32> = (0..50)
        .filter(|p| dir_b.join(format!("__consumer_offsets-{p}")).is_dir())
        .collect();
    assert!(!on_b.is_empty() && on_b.len() < 50, "partitions in both dirs: {on_b:?}");
    let group_in = |in_b: bool| {
        (0..1000)
            .map(|i| format!("group-{i}"))
            .find(|g| on_b.contains(&broker::group::partition_for(g, 50)) == in_b)
            .expect("a group")
    };
    let (offline, online) = (group_in(true), group_in(false));
    commit(&b.bootstrap, &offline, 7);
    commit(&b.bootstrap, &online, 9);
    b.stop();
    let away = tmp.path().join("b.away");
    std::fs::rename(&dir_b, &away).expect("move the dir away");
    std::fs::write(&dir_b, b"not a directory").expect("a file in its place");
    b.restart();
    for version in [2, 7, 8] {
        assert_eq!(committed_offset(&b.bootstrap, &offline, version), Err(16), "v{version}");
        assert_eq!(committed_offset(&b.bootstrap, &online, version), Ok(9), "v{version}");
    }
    assert_eq!(common::find_coordinator(&b.bootstrap, &offline), 15);
    assert_eq!(common::find_coordinator(&b.bootstrap, &online), 0);
    b.stop();
    std::fs::remove_file(&dir_b).expect("remove the file");
    std::fs::rename(&away, &dir_b).expect("the dir back");
    b.restart();
    assert_eq!(committed_offset(&b.bootstrap, &offline, 8), Ok(7), "nothing was lost");
    b.stop();
}
