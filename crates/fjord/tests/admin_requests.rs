//! Admin requests answered as Kafka answers them, where a review found Fjord did not:
//! auto-creation of internal topics, authorized operations, DeleteTopics' checks of
//! what it names, DeleteRecords on an internal topic.

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsResponse;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

fn metadata(c: &mut RawClient, version: i16, topics: &[&str], with_operations: bool) -> MetadataResponse {
    let topics = topics
        .iter()
        .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
        .collect();
    let mut req = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(true)
        .with_include_topic_authorized_operations(with_operations);
    if version <= 10 {
        req.include_cluster_authorized_operations = with_operations;
    }
    c.request(ApiKey::Metadata, version, &req)
}

/// A Metadata request that auto-creates `__consumer_offsets` (Burrow and sarama send
/// one) makes it as the group coordinator would: `offsets.topic.num.partitions`
/// partitions, compacted, so groups still spread over its partitions. Kafka's other
/// internal topics and `__cluster_metadata` are not auto-created.
#[test]
fn internal_topics_are_auto_created_only_as_their_owner_makes_them() {
    let b = BrokerProcess::start(&["offsets.topic.num.partitions=7"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let r = metadata(&mut c, 12, &["__consumer_offsets"], false);
    let t = &r.topics[0];
    assert_eq!((t.error_code, t.partitions.len(), t.is_internal), (0, 7, true));
    let (ok, out, err) = common::fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--describe",
            "--topic",
            "__consumer_offsets",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("cleanup.policy=compact"), "{out}");
    for refused in ["__transaction_state", "__share_group_state", "__cluster_metadata"] {
        let r = metadata(&mut c, 12, &[refused], false);
        assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "{refused}");
    }
    // Its records are the broker's own: DeleteRecords refuses them.
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("__consumer_offsets"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(-1)])]);
    let r: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &req);
    assert_eq!(r.topics[0].partitions[0].error_code, INVALID_TOPIC_EXCEPTION);
}

/// With no ACLs, Kafka answers every operation a resource type supports when a request
/// asks for them (`AuthHelper.authorizedOperations`): a topic's, a group's and the
/// cluster's. Tools that ask (the Java AdminClient's `includeAuthorizedOperations`)
/// otherwise show no permissions at all.
#[test]
fn authorized_operations_are_every_supported_one() {
    const NOT_ASKED: i32 = i32::MIN;
    let b = BrokerProcess::start(&[]);
    common::create_topic_cli(&b.bootstrap, "ops", "1");
    let mut c = RawClient::connect(&b.bootstrap);
    let r = metadata(&mut c, 10, &["ops"], true);
    assert_eq!(
        (r.topics[0].topic_authorized_operations, r.cluster_authorized_operations),
        (3576, 8096)
    );
    let r = metadata(&mut c, 12, &["ops"], false);
    assert_eq!(r.topics[0].topic_authorized_operations, NOT_ASKED);
    let r: DescribeClusterResponse = c.request(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_eq!(r.cluster_authorized_operations, 8096);
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_static_str("g"))])
        .with_include_authorized_operations(true);
    let r: DescribeGroupsResponse = c.request(ApiKey::DescribeGroups, 5, &req);
    assert_eq!(r.groups[0].authorized_operations, 3400);
}

/// DeleteTopics v6 checks what it names as Kafka's controller does: neither or both of a
/// name and an id, and a name given twice, are INVALID_REQUEST and delete nothing; an
/// unknown id is UNKNOWN_TOPIC_ID; the rest are deleted.
#[test]
fn delete_topics_checks_what_it_names() {
    let b = BrokerProcess::start(&[]);
    for t in ["twice", "both", "gone"] {
        common::create_topic_cli(&b.bootstrap, t, "1");
    }
    let mut c = RawClient::connect(&b.bootstrap);
    let both_id = metadata(&mut c, 12, &["both"], false).topics[0].topic_id;
    let by_name = |n: &str| DeleteTopicState::default().with_name(Some(name(n)));
    let unknown = uuid::Uuid::new_v4();
    let req = DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        by_name("twice"),
        by_name("twice"),
        by_name("both").with_topic_id(both_id),
        DeleteTopicState::default(),
        DeleteTopicState::default().with_topic_id(unknown),
        by_name("gone"),
    ]);
    let r: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 6, &req);
    let code_of = |n: Option<&str>, id: uuid::Uuid| {
        r.responses
            .iter()
            .find(|t| t.name.as_ref().map(|x| x.as_str()) == n && (id.is_nil() || t.topic_id == id))
            .map(|t| t.error_code)
    };
    assert_eq!(code_of(Some("twice"), uuid::Uuid::nil()), Some(INVALID_REQUEST));
    assert_eq!(code_of(Some("both"), both_id), Some(INVALID_REQUEST));
    assert_eq!(
        code_of(None, uuid::Uuid::nil()),
        Some(INVALID_REQUEST),
        "neither name nor id"
    );
    assert_eq!(code_of(None, unknown), Some(UNKNOWN_TOPIC_ID));
    assert_eq!(code_of(Some("gone"), uuid::Uuid::nil()), Some(0));
    assert_eq!(r.responses.len(), 5, "{:?}", r.responses);
    let left = metadata(&mut c, 12, &["twice", "both", "gone"], false);
    let exists = |n: &str| {
        left.topics
            .iter()
            .any(|t| t.name.as_ref().map(|x| x.as_str()) == Some(n) && t.error_code == 0)
    };
    assert!(exists("twice") && exists("both"), "refused entries delete nothing");
}
