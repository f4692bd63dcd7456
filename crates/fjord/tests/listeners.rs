//! Listeners as Kafka configures them: several at once, host names, a controller
//! listener that is not served, and each client told the address advertised for the
//! listener it came through.

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;

const LISTENER_NOT_FOUND: i16 = 72;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

fn listening(b: &BrokerProcess, count: usize) -> Vec<String> {
    common::wait_for("every listener's line", || {
        b.listening.lock().expect("listening").len() >= count
    });
    b.listening.lock().expect("listening").clone()
}

/// (host, port) of each broker a Metadata request through `addr` lists, and the
/// error code and leader of partition 0 of `topic`.
fn metadata_via(addr: &str, topic: &str) -> (Vec<(String, i32)>, i16, i32) {
    let mut c = RawClient::connect(addr);
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))
    ]));
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &req);
    let brokers = r.brokers.iter().map(|b| (b.host.to_string(), b.port)).collect();
    let p = &r.topics[0].partitions[0];
    (brokers, p.error_code, p.leader_id.0)
}

fn port_of(addr: &str) -> i32 {
    addr.rsplit_once(':').expect("host:port").1.parse().expect("port")
}

/// Two client listeners, one by host name, and Kafka's controller listener: both
/// client listeners are bound, each advertises its own address, and real clients
/// produce and consume through either. The controller listener is not bound.
#[test]
fn every_listener_is_served_and_advertises_its_own_address() {
    let mut b = BrokerProcess::start(&[
        "listeners=PLAINTEXT://localhost:0,INTERNAL://127.0.0.2:0,CONTROLLER://127.0.0.1:0",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=INTERNAL",
    ]);
    let addrs = listening(&b, 2);
    assert_eq!(addrs.len(), 2, "the controller listener is not bound: {addrs:?}");
    assert!(
        addrs[0].starts_with("127.0.0.1:"),
        "localhost binds its IPv4 address: {addrs:?}"
    );
    assert!(addrs[1].starts_with("127.0.0.2:"), "{addrs:?}");
    common::create_topic_cli(&addrs[1], "both", "1");

    let (brokers, code, _) = metadata_via(&addrs[0], "both");
    assert_eq!(brokers, vec![("localhost".to_string(), port_of(&addrs[0]))]);
    assert_eq!(code, 0);
    let (brokers, code, _) = metadata_via(&addrs[1], "both");
    assert_eq!(brokers, vec![("127.0.0.2".to_string(), port_of(&addrs[1]))]);
    assert_eq!(code, 0);
    let mut c = RawClient::connect(&addrs[1]);
    let r: DescribeClusterResponse = c.request(ApiKey::DescribeCluster, 0, &DescribeClusterRequest::default());
    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.2");

    // librdkafka follows the advertised address of the listener it bootstrapped from.
    let sent = common::produce_tracked(&addrs[1], "both", &[0], "internal", 50, 10);
    assert_eq!(sent.failed_count(), 0);
    let sent = common::produce_tracked(
        &format!("localhost:{}", port_of(&addrs[0])),
        "both",
        &[0],
        "plain",
        50,
        10,
    );
    assert_eq!(sent.failed_count(), 0);
    let read = common::read_partition(&addrs[1], "both", 0, 100);
    assert_eq!(read.len(), 100);
    assert!(read[..50].iter().all(|(_, v)| v.starts_with("internal-")));
    assert!(read[50..].iter().all(|(_, v)| v.starts_with("plain-")));
    assert!(b.log_text().contains("controller listener not bound"));
    b.stop();
}

/// A listener left out of advertised.listeners is served, but a client that came
/// through it is told of no broker, as Kafka tells it: no broker in Metadata,
/// LISTENER_NOT_FOUND for partitions, COORDINATOR_NOT_AVAILABLE for groups.
#[test]
fn a_listener_that_is_not_advertised_lists_no_broker() {
    let mut b = BrokerProcess::start(&[
        "listeners=PLAINTEXT://127.0.0.1:0,HIDDEN://127.0.0.1:0",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,HIDDEN:PLAINTEXT",
        "advertised.listeners=PLAINTEXT://127.0.0.1:0",
    ]);
    let addrs = listening(&b, 2);
    common::create_topic_cli(&addrs[0], "seen", "1");
    let (brokers, code, _) = metadata_via(&addrs[0], "seen");
    assert_eq!(brokers, vec![("127.0.0.1".to_string(), port_of(&addrs[0]))]);
    assert_eq!(code, 0);
    let (brokers, code, leader) = metadata_via(&addrs[1], "seen");
    assert!(brokers.is_empty(), "{brokers:?}");
    assert_eq!((code, leader), (LISTENER_NOT_FOUND, -1));
    let mut c = RawClient::connect(&addrs[1]);
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    let r: FindCoordinatorResponse = c.request(ApiKey::FindCoordinator, 3, &req);
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    b.stop();
}

/// Listeners Fjord cannot serve, or Kafka refuses, stop the start with one line
/// naming the key, and nothing is created on disk.
#[test]
fn bad_listeners_stop_the_start_before_anything_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let cases = [
        (
            "listeners=SSL://127.0.0.1:0",
            "listener SSL uses security protocol SSL, which Fjord does not serve yet",
        ),
        (
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "uses security protocol SASL_PLAINTEXT",
        ),
        ("listeners=PLAINTEXT://0.0.0.0:0", "nonroutable meta-address 0.0.0.0"),
        (
            "listeners=PLAINTEXT://127.0.0.1:9,PLAINTEXT://127.0.0.2:0",
            "Each listener must have a different name",
        ),
        (
            "listeners=EXTERNAL://127.0.0.1:0",
            "No security protocol defined for listener EXTERNAL",
        ),
    ];
    for (listeners, expected) in cases {
        let dirs = format!("log.dirs={}", data.display());
        let (ok, _, stderr) = common::fjord(&["server", "--override", listeners, "--override", &dirs], None);
        assert!(!ok, "{listeners}: started");
        assert!(
            stderr.contains("listeners'") && stderr.contains(expected),
            "{listeners}: {stderr}"
        );
        assert!(!data.exists(), "{listeners}: the data dir was created");
    }
}
