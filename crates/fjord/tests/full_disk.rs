//! A full disk. Kafka takes a log dir that fails a write offline, and a broker whose
//! dirs are all offline halts; Fjord keeps serving: a full disk refuses appends with
//! Kafka's KAFKA_STORAGE_ERROR and leaves the log as it was, reads go on, and deleting
//! a topic frees the space, so producing resumes without a restart. Here the log dir
//! is a small tmpfs: needs root (to mount it), skipped otherwise.

mod common;

use common::{
    create_topic_cli, delete_topic_cli, fjord, produce_tracked, read_partition, wait_for, BrokerProcess, Mount,
    RawClient,
};
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use rdkafka::error::RDKafkaErrorCode;

/// The tmpfs's size: a few segments' worth, filled in a second or two.
const DISK_BYTES: u64 = 24 << 20;
const VALUE_BYTES: usize = 10_000;

/// Takes every free byte of `disk` with a file of its own, as another program would.
fn fill_up(disk: &Mount) {
    use std::io::Write;
    let mut filler = std::fs::File::create(disk.path.join("filler")).expect("filler");
    let chunk = vec![1u8; 4096];
    loop {
        match filler.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

/// The log dir's volume size and usable bytes, as DescribeLogDirs v4 answers them.
fn log_dir_volume(bootstrap: &str) -> (i64, i64) {
    let mut client = RawClient::connect(bootstrap);
    let resp: DescribeLogDirsResponse = client.request(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default());
    assert_eq!(resp.error_code, 0);
    let [dir] = resp.results.as_slice() else {
        panic!("one log dir: {:?}", resp.results);
    };
    (dir.total_bytes, dir.usable_bytes)
}

fn listed(bootstrap: &str) -> Vec<String> {
    let (ok, out, err) = fjord(&["topics", "--bootstrap-server", bootstrap, "--list"], None);
    assert!(ok, "{err}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_full_disk_refuses_appends_keeps_acknowledged_writes_and_frees_by_deleting_a_topic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let Some(disk) = Mount::tmpfs(&data, DISK_BYTES) else {
        eprintln!("skipped: mounting a tmpfs needs root and the right to mount");
        return;
    };
    let mut b = BrokerProcess::start_in(&data, &["log.segment.bytes=4194304"]);
    create_topic_cli(&b.bootstrap, "keep", "1");
    create_topic_cli(&b.bootstrap, "fill", "1");
    let kept = produce_tracked(&b.bootstrap, "keep", &[0], "keep", 200, VALUE_BYTES);
    assert_eq!(kept.acked_in(0).len(), 200, "before the disk fills");

    // Twice the disk's size: the disk fills, and the broker refuses the rest.
    let n = 2 * DISK_BYTES as usize / VALUE_BYTES;
    let filled = produce_tracked(&b.bootstrap, "fill", &[0], "fill", n, VALUE_BYTES);
    let mut fill_acked = filled.acked_in(0);
    assert!(
        !fill_acked.is_empty() && filled.failed_count() > 0,
        "the disk filled up"
    );
    for (_, e) in filled.failed.lock().expect("failed").iter() {
        assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::KafkaStorageError),
            "a full disk is Kafka's storage error: {e}"
        );
    }
    assert!(disk.available_bytes() < 1 << 20, "the disk is full");
    let (total, usable) = log_dir_volume(&b.bootstrap);
    assert_eq!(total, DISK_BYTES as i64, "DescribeLogDirs reports the volume");
    assert!(usable < 1 << 20, "and that it is full: {usable} bytes usable");

    // Every acknowledged value reads back at the offset it was acknowledged with, and
    // nothing else was appended: the refused batches left no trace.
    assert_eq!(read_partition(&b.bootstrap, "fill", 0, fill_acked.len()), fill_acked);
    assert_eq!(read_partition(&b.bootstrap, "keep", 0, 200), kept.acked_in(0));

    // Still full, and still serving after a kill -9: recovery needs no space.
    b.kill9();
    b.restart();
    assert_eq!(read_partition(&b.bootstrap, "fill", 0, fill_acked.len()), fill_acked);
    // The restart gave back the reserved next segment; producers fill that too.
    let again = produce_tracked(&b.bootstrap, "fill", &[0], "again", n / 2, VALUE_BYTES);
    assert!(again.failed_count() > 0, "full again");
    fill_acked.extend(again.acked_in(0));
    assert_eq!(read_partition(&b.bootstrap, "fill", 0, fill_acked.len()), fill_acked);

    // Another writer takes the last free bytes: the deletion is recorded in the space
    // the metadata log keeps in reserve, and the data is freed at once, as the dir is
    // short of space.
    fill_up(&disk);
    assert_eq!(disk.available_bytes(), 0);

    // One DeleteTopics frees the disk; producing resumes without a restart.
    let (ok, err) = delete_topic_cli(&b.bootstrap, "fill");
    assert!(ok, "deleting a topic on a full disk: {err}");
    wait_for("the topic's space to be freed", || {
        disk.available_bytes() > DISK_BYTES / 2
    });
    assert!(log_dir_volume(&b.bootstrap).1 > DISK_BYTES as i64 / 2);
    assert!(!listed(&b.bootstrap).contains(&"fill".to_string()));
    let more = produce_tracked(&b.bootstrap, "keep", &[0], "more", 200, VALUE_BYTES);
    assert_eq!(more.failed_count(), 0);
    let mut expected = kept.acked_in(0);
    expected.extend(more.acked_in(0));
    assert_eq!(expected.len(), 400);

    // A clean stop and start keep all of it, and the deletion.
    b.stop();
    b.restart();
    assert_eq!(read_partition(&b.bootstrap, "keep", 0, 400), expected);
    assert!(!listed(&b.bootstrap).contains(&"fill".to_string()));
    b.stop();
    let log = b.log_text();
    assert!(!log.contains("panicked"), "{log}");
    drop(b);
    drop(disk);
}

/// Partition directories of `topic` in `dir`, deleted ones (renamed `*-delete`) aside.
fn partition_dirs(dir: &std::path::Path, topic: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("log dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{topic}-")) && !n.ends_with("-delete"))
        .collect();
    names.sort();
    names
}

/// A topic whose logs a full disk refuses is not created at all: its registration is
/// rolled back (it stayed, led in Metadata, while Produce answered
/// UNKNOWN_TOPIC_OR_PARTITION and a retried create TOPIC_ALREADY_EXISTS), and no half
/// made directory is left to bring it back at the next start. The same for new
/// partitions and for `__consumer_offsets`. Once there is room, the same requests
/// succeed. The second log dir is a full tmpfs; the first, which holds the metadata,
/// has room.
#[test]
fn a_topic_whose_logs_a_full_disk_refuses_is_rolled_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(disk) = Mount::tmpfs(&tmp.path().join("full"), DISK_BYTES) else {
        eprintln!("skipped: mounting a tmpfs needs root and the right to mount");
        return;
    };
    let (dir_a, dir_b) = (tmp.path().join("a"), disk.path.join("data"));
    let dirs = format!("log.dirs={},{}", dir_a.display(), dir_b.display());
    let mut b = BrokerProcess::start_in(&tmp.path().join("broker"), &[dirs.as_str()]);
    create_topic_cli(&b.bootstrap, "grow", "1");
    assert_eq!(partition_dirs(&dir_a, "grow"), ["grow-0"], "the least used dir first");
    fill_up(&disk);
    let topics = |b: &BrokerProcess, args: &[&str]| {
        let mut all = vec!["topics", "--bootstrap-server", b.bootstrap.as_str()];
        all.extend_from_slice(args);
        fjord(&all, None)
    };
    // Two partitions: one in each dir, and the full one refuses its files.
    let (ok, out, err) = topics(&b, &["--create", "--topic", "t", "--partitions", "2"]);
    assert!(!ok, "created on a full disk: {out}");
    assert!(err.contains("KafkaStorageError"), "{err}");
    let (ok, out, err) = topics(&b, &["--alter", "--topic", "grow", "--partitions", "2"]);
    assert!(!ok, "partitions added on a full disk: {out}");
    assert_eq!(common::find_coordinator(&b.bootstrap, "g"), 15, "{err}");
    let rolled_back = |b: &BrokerProcess| {
        assert!(!listed(&b.bootstrap).contains(&"t".to_string()));
        assert!(!listed(&b.bootstrap).contains(&"__consumer_offsets".to_string()));
        let (ok, out, err) = topics(b, &["--describe", "--topic", "grow"]);
        assert!(ok && out.contains("PartitionCount: 1"), "{out}{err}");
        for dir in [&dir_a, &dir_b] {
            assert!(partition_dirs(dir, "t").is_empty(), "{:?}", partition_dirs(dir, "t"));
            assert!(partition_dirs(dir, "__consumer_offsets").is_empty());
        }
    };
    rolled_back(&b);
    // Nothing comes back at the next start.
    b.kill9();
    b.restart();
    rolled_back(&b);

    std::fs::remove_file(disk.path.join("filler")).expect("free the disk");
    create_topic_cli(&b.bootstrap, "t", "2");
    let (ok, out, err) = topics(&b, &["--alter", "--topic", "grow", "--partitions", "2"]);
    assert!(ok, "{out}{err}");
    assert_eq!(common::find_coordinator(&b.bootstrap, "g"), 0);
    let sent = produce_tracked(&b.bootstrap, "t", &[0, 1], "t", 20, 100);
    assert_eq!(sent.failed_count(), 0);
    for p in [0, 1] {
        assert_eq!(read_partition(&b.bootstrap, "t", p, 20), sent.acked_in(p));
    }
    b.stop();
    let log = b.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// CreateTopics of one topic of one partition; the error code.
fn create_raw(c: &mut RawClient, topic: &str) -> i16 {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
    use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
    use kafka_protocol::messages::TopicName;
    let t = CreatableTopic::default()
        .with_name(TopicName(topic.to_string().into()))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(30_000);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    r.topics[0].error_code
}

/// A full disk that holds the metadata too. What takes space is refused whole: a
/// refused creation leaves nothing registered. What frees space is recorded: the
/// rollbacks of refused creations and the deletions of topics, from the blocks the
/// metadata log keeps in reserve. All of it holds across a kill -9.
#[test]
fn a_full_disk_that_holds_the_metadata_refuses_creations_whole_and_records_deletions() {
    const KAFKA_STORAGE_ERROR: i16 = 56;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let Some(disk) = Mount::tmpfs(&data, DISK_BYTES) else {
        eprintln!("skipped: mounting a tmpfs needs root and the right to mount");
        return;
    };
    let mut b = BrokerProcess::start_in(&data, &["log.segment.bytes=1048576"]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(create_raw(&mut c, "keep"), 0);
    fill_up(&disk);
    let mut created = vec!["keep".to_string()];
    let mut refused = 0;
    for i in 0..300 {
        let name = format!("new-{i}");
        match create_raw(&mut c, &name) {
            0 => created.push(name),
            code => {
                assert_eq!(code, KAFKA_STORAGE_ERROR, "{name}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refuses creations");
    created.sort();
    let mut now = listed(&b.bootstrap);
    now.sort();
    assert_eq!(now, created, "what was refused is not registered");
    // Space freed by another program is used at once (not only after a deletion or a
    // restart tops up the metadata log's reserve).
    std::fs::remove_file(disk.path.join("filler")).expect("free the disk");
    assert_eq!(create_raw(&mut c, "after-free"), 0);
    created.push("after-free".to_string());
    created.sort();
    fill_up(&disk);
    b.kill9();
    b.restart();
    let mut now = listed(&b.bootstrap);
    now.sort();
    assert_eq!(now, created, "nor after a kill -9");
    for t in &created {
        let (ok, err) = delete_topic_cli(&b.bootstrap, t);
        assert!(ok, "deleting {t} on a full disk: {err}");
    }
    assert!(listed(&b.bootstrap).is_empty());
    b.kill9();
    b.restart();
    assert!(listed(&b.bootstrap).is_empty(), "the deletions were recorded");
    // A clean stop needs room for its checkpoints (on a full disk it exits 1, and the
    // next start recovers).
    std::fs::remove_file(disk.path.join("filler")).expect("free the disk");
    b.stop();
    let log = b.log_text();
    assert!(!log.contains("panicked"), "{log}");
    drop(disk);
}
