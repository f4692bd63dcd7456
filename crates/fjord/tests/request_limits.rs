//! Limits on the work one small request may ask for, as Kafka's: a CreateTopics (or
//! CreatePartitions, or Metadata auto-creation) of more than 10,000 partitions is
//! refused whole, a Metadata request naming a topic many times is answered once per
//! topic, and DescribeLogDirs looks its partitions up in a set. Each would otherwise
//! make the network thread that serves it work (or allocate) without bound.

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;

const POLICY_VIOLATION: i16 = 44;
const LEADER_NOT_AVAILABLE: i16 = 5;

fn name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn create_topics(c: &mut RawClient, topics: &[(&str, i32)]) -> Vec<(String, i16)> {
    let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(
        topics
            .iter()
            .map(|(n, p)| {
                CreatableTopic::default()
                    .with_name(name(n))
                    .with_num_partitions(*p)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    r.topics.iter().map(|t| (t.name.to_string(), t.error_code)).collect()
}

fn metadata(c: &mut RawClient, topics: &[&str]) -> Vec<(String, i16, usize)> {
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &req);
    r.topics
        .iter()
        .map(|t| {
            let n = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (n, t.error_code, t.partitions.len())
        })
        .collect()
}

fn listed(b: &BrokerProcess) -> Vec<String> {
    let (ok, out, err) = common::fjord(&["topics", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(ok, "{err}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_request_for_more_than_ten_thousand_partitions_is_refused_whole() {
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    // 5,000 + 5,001: over Kafka's MAX_PARTITIONS_PER_BATCH together, each under it.
    let answered = create_topics(&mut c, &[("a", 5_000), ("b", 5_001)]);
    assert_eq!(
        answered,
        [("a".to_string(), POLICY_VIOLATION), ("b".to_string(), POLICY_VIOLATION)]
    );
    assert!(listed(&b).is_empty(), "nothing created: {:?}", listed(&b));
    assert_eq!(create_topics(&mut c, &[("a", 2)]), [("a".to_string(), 0)]);

    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("a"))
            .with_count(10_003)]);
    let r: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, 3, &req);
    assert_eq!(r.results[0].error_code, POLICY_VIOLATION, "10,001 partitions added");
    assert_eq!(metadata(&mut c, &["a"]), [("a".to_string(), 0, 2)]);

    // A topic named three times is answered once.
    assert_eq!(metadata(&mut c, &["a", "a", "a"]), [("a".to_string(), 0, 2)]);

    // DescribeLogDirs answers the partitions asked for that exist, each once.
    use kafka_protocol::messages::describe_log_dirs_request::{DescribableLogDirTopic, DescribeLogDirsRequest};
    use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse;
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
        .with_topic(name("a"))
        .with_partitions(vec![0, 0, 1, 7])]));
    let r: DescribeLogDirsResponse = c.request(ApiKey::DescribeLogDirs, 4, &req);
    let mut found: Vec<(String, i32)> = r.results[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index)))
        .collect();
    found.sort();
    assert_eq!(found, [("a".to_string(), 0), ("a".to_string(), 1)]);
}

#[test]
fn metadata_auto_creates_at_most_ten_thousand_partitions() {
    let b = BrokerProcess::start(&["num.partitions=10001"]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(
        metadata(&mut c, &["wide"]),
        [("wide".to_string(), LEADER_NOT_AVAILABLE, 0)],
        "past the budget: not made by this request"
    );
    assert!(listed(&b).is_empty());
}

/// A partition created past the process's open-file limit fails alone, with
/// KAFKA_STORAGE_ERROR, and its topic is rolled back: running out of descriptors says
/// nothing of the disk, so the log dir stays online (it went offline, and being the
/// first dir, stopped the broker). The broker runs here under a hard limit of 200.
#[test]
fn running_out_of_file_descriptors_refuses_the_create_not_the_dir() {
    if std::process::Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: needs prlimit (util-linux)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = BrokerProcess::start_launched(&["prlimit", "--nofile=200:200"], &tmp.path().join("data"), &[]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(
        create_topics(&mut c, &[("many", 400)]),
        [("many".to_string(), 56)],
        "KAFKA_STORAGE_ERROR"
    );
    assert!(listed(&b).is_empty(), "rolled back: {:?}", listed(&b));
    assert_eq!(create_topics(&mut c, &[("few", 3)]), [("few".to_string(), 0)]);
    let sent = common::produce_tracked(&b.bootstrap, "few", &[0, 1, 2], "few", 10, 100);
    assert_eq!(sent.failed_count(), 0);
    b.stop();
    let log = b.log_text();
    assert!(!log.contains("offline") && !log.contains("panicked"), "{log}");
}
