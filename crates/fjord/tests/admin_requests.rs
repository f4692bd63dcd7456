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
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;

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
    for (refused, internal) in [
        ("__transaction_state", true),
        ("__share_group_state", true),
        ("__cluster_metadata", false),
    ] {
        let r = metadata(&mut c, 12, &[refused], false);
        // Kafka's answer for a missing topic says whether its name is an internal one.
        assert_eq!(
            (r.topics[0].error_code, r.topics[0].is_internal),
            (UNKNOWN_TOPIC_OR_PARTITION, internal),
            "{refused}"
        );
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
    // An internal topic that does not exist is unknown first, as Kafka checks.
    let missing = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("__transaction_state"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(-1)])]);
    let r: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &missing);
    assert_eq!(r.topics[0].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

/// DeleteRecords naming a partition twice acts on its last offset and answers once, as
/// Kafka's request handler, which collects the partitions into a map.
#[test]
fn delete_records_takes_a_partitions_last_offset() {
    let b = BrokerProcess::start(&[]);
    common::create_topic_cli(&b.bootstrap, "trimmed", "1");
    common::produce_round_robin(&b.bootstrap, "trimmed", 10, 1);
    let mut c = RawClient::connect(&b.bootstrap);
    let at = |offset: i64| {
        DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(offset)
    };
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("trimmed"))
            .with_partitions(vec![at(5), at(2)])]);
    let r: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &req);
    let answers: Vec<(i32, i16, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.low_watermark))
        .collect();
    assert_eq!(answers, [(0, 0, 2)]);
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
        by_name("never-was"),
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
    assert_eq!(r.responses.len(), 6, "{:?}", r.responses);
    // An unknown name: Kafka's `UnknownTopicOrPartitionException()`, with no message.
    let never = r
        .responses
        .iter()
        .find(|t| t.name.as_ref().map(|x| x.as_str()) == Some("never-was"))
        .expect("answered");
    assert_eq!(
        (never.error_code, never.error_message.as_deref()),
        (UNKNOWN_TOPIC_OR_PARTITION, None)
    );
    let left = metadata(&mut c, 12, &["twice", "both", "gone"], false);
    let exists = |n: &str| {
        left.topics
            .iter()
            .any(|t| t.name.as_ref().map(|x| x.as_str()) == Some(n) && t.error_code == 0)
    };
    assert!(exists("twice") && exists("both"), "refused entries delete nothing");
}

/// CreateTopics v5+ reports where each config of the new topic comes from as
/// DescribeConfigs does: a cluster-wide dynamic broker default is
/// DYNAMIC_DEFAULT_BROKER_CONFIG (3), not a static one.
#[test]
fn create_topics_reports_dynamic_config_sources() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
    use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
    };
    use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str(""))
        .with_configs(vec![AlterableConfig::default()
            .with_name(StrBytes::from_static_str("log.retention.ms"))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_static_str("1234567")))])]);
    let r: IncrementalAlterConfigsResponse = c.request(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("sources"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    let configs = r.topics[0].configs.as_ref().expect("configs from v5");
    let source_of = |key: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .map(|c| (c.value.as_ref().map(|v| v.to_string()), c.config_source))
    };
    assert_eq!(source_of("retention.ms"), Some((Some("1234567".into()), 3)));
    assert_eq!(source_of("cleanup.policy"), Some((Some("delete".into()), 5)));
}

/// CreatePartitions checks its assignments as Kafka's controller: one per new
/// partition, each on registered brokers of the topic's replication factor; and says
/// why a count is not an increase in Kafka's words.
#[test]
fn create_partitions_checks_its_assignments() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
    use kafka_protocol::messages::BrokerId;
    let b = BrokerProcess::start(&["node.id=1"]);
    common::create_topic_cli(&b.bootstrap, "grow", "1");
    let mut c = RawClient::connect(&b.bootstrap);
    let mut grow_topic = |topic: &str, count: i32, assignments: Option<Vec<Vec<i32>>>| {
        let assignments = assignments.map(|a| {
            a.into_iter()
                .map(|ids| {
                    CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect()
        });
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count)
                .with_assignments(assignments)]);
        let r: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, 3, &req);
        let r = &r.results[0];
        (r.error_code, r.error_message.as_ref().map(|m| m.to_string()))
    };
    // An unknown topic: no message, as Kafka's.
    assert_eq!(grow_topic("never-was", 3, None), (UNKNOWN_TOPIC_OR_PARTITION, None));
    let mut grow = |count: i32, assignments: Option<Vec<Vec<i32>>>| {
        let (code, message) = grow_topic("grow", count, assignments);
        (code, message.unwrap_or_default())
    };
    // Kafka's messages exactly, with nothing of Fjord's before them.
    assert_eq!(
        grow(3, Some(vec![vec![1]])),
        (
            INVALID_REPLICA_ASSIGNMENT,
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.".to_string()
        )
    );
    assert_eq!(
        grow(3, Some(vec![vec![1], vec![7]])).0,
        INVALID_REPLICA_ASSIGNMENT,
        "an unknown broker"
    );
    assert_eq!(
        grow(3, Some(vec![vec![1], vec![1, 1]])).0,
        INVALID_REPLICA_ASSIGNMENT,
        "a broker twice"
    );
    assert_eq!(grow(3, Some(vec![vec![1], vec![1]])).0, 0);
    assert_eq!(
        grow(3, None),
        (INVALID_PARTITIONS, "Topic already has 3 partition(s).".to_string())
    );
    assert_eq!(
        grow(2, None),
        (
            INVALID_PARTITIONS,
            "The topic grow currently has 3 partition(s); 2 would not be an increase.".to_string()
        )
    );
}

/// CreateTopics checks a topic in the order of Kafka's `ReplicationControlManager`
/// (name, existence, configs, replication factor, partition count, then whether the
/// brokers can hold the replicas) and answers with Kafka's messages: a request with
/// several faults gets the error Kafka gives.
#[test]
fn create_topics_checks_in_kafkas_order_with_kafkas_messages() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig, CreateTopicsRequest};
    use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    let mut create = |topic: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]| {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )]);
        let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
        let t = &r.topics[0];
        (
            t.error_code,
            t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default(),
        )
    };
    assert_eq!(create("taken", 1, 1, &[]).0, 0);
    assert_eq!(
        create("taken", 0, 3, &[("retention.ms", "abc")]),
        (TOPIC_ALREADY_EXISTS, "Topic 'taken' already exists.".to_string())
    );
    assert_eq!(
        create("t", 1, 3, &[("retention.ms", "abc")]).0,
        INVALID_CONFIG,
        "configs first"
    );
    assert_eq!(
        create("t", 1, 1, &[("no.such.config", "1")]),
        (INVALID_CONFIG, "Unknown topic config name: no.such.config".to_string())
    );
    assert_eq!(
        create("t", 1, 1, &[("remote.storage.enable", "true")]),
        (
            INVALID_CONFIG,
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
                .to_string()
        )
    );
    assert_eq!(
        create("t", 0, 2, &[]),
        (
            INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.".to_string()
        ),
        "the partition count before the brokers"
    );
    assert_eq!(
        create("t", 0, 0, &[]),
        (
            INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.".to_string()
        )
    );
    assert_eq!(
        create("t", 1, 3, &[]),
        (
            INVALID_REPLICATION_FACTOR,
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are registered.".to_string()
        )
    );
}

/// An unknown topic id in Metadata is answered with no name, and a topic CreateTopics
/// made with no error message, as Kafka answers them (null, not empty).
#[test]
fn absent_names_and_messages_are_null() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
    use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(None)
        .with_topic_id(uuid::Uuid::new_v4())]));
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &req);
    assert_eq!(
        (r.topics[0].error_code, r.topics[0].name.is_none()),
        (UNKNOWN_TOPIC_ID, true)
    );
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("made"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    assert_eq!((r.topics[0].error_code, r.topics[0].error_message.is_none()), (0, true));
}

/// DescribeCluster for a controller endpoint, or one of no known type, is refused as
/// Kafka's `AuthHelper.computeDescribeClusterResponse` refuses it; DescribeLogDirs names
/// a relative `log.dirs` by its absolute path, as Kafka's `ReplicaManager` does.
#[test]
fn endpoint_types_and_log_dir_paths_as_kafka() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
    use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let cwd = tmp.path().display().to_string();
    let b = BrokerProcess::start_launched(&["env", "-C", &cwd], &data, &["log.dirs=data"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let describe = |c: &mut RawClient, endpoint_type: i8| {
        let req = DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
        let r: DescribeClusterResponse = c.request(ApiKey::DescribeCluster, 1, &req);
        (
            r.error_code,
            r.error_message.map(|m| m.to_string()).unwrap_or_default(),
            r.brokers.len(),
        )
    };
    assert_eq!(describe(&mut c, 1), (0, String::new(), 1));
    assert_eq!(
        describe(&mut c, 2),
        (
            114,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".into(),
            0
        )
    );
    assert_eq!(describe(&mut c, 7), (115, "Unsupported endpoint type 7".into(), 0));
    let r: DescribeLogDirsResponse = c.request(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default());
    assert_eq!(r.results[0].log_dir.as_str(), data.display().to_string());
}

/// Every topic config Kafka 4 has is known: tiered storage's (accepted, described, and
/// `remote.storage.enable=true` refused as a Kafka broker without a remote log storage
/// system refuses it) and the replication throttles (`*` or partition:broker pairs).
#[test]
fn tiered_storage_and_throttle_configs_are_kafkas() {
    let b = BrokerProcess::start(&[]);
    let create = |topic: &str, configs: &[&str]| {
        let mut args = vec![
            "topics",
            "--bootstrap-server",
            b.bootstrap.as_str(),
            "--create",
            "--topic",
            topic,
        ];
        for c in configs {
            args.extend(["--config", c]);
        }
        common::fjord(&args, None)
    };
    let (ok, _, err) = create(
        "tiered",
        &[
            "local.retention.ms=60000",
            "local.retention.bytes=-2",
            "remote.log.copy.disable=true",
            "leader.replication.throttled.replicas=*",
            "follower.replication.throttled.replicas=0:1",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = common::fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--describe",
            "--topic",
            "tiered",
        ],
        None,
    );
    assert!(ok, "{err}");
    for shown in [
        "local.retention.ms=60000",
        "remote.log.copy.disable=true",
        "leader.replication.throttled.replicas=*",
        "follower.replication.throttled.replicas=0:1",
    ] {
        assert!(out.contains(shown), "{shown}: {out}");
    }
    // Refused (the messages are asserted through CreateTopics in
    // `create_topics_checks_in_kafkas_order_with_kafkas_messages`).
    for refused in [
        "remote.storage.enable=true",
        "leader.replication.throttled.replicas=0-1",
    ] {
        let (ok, _, err) = create("refused", &[refused]);
        assert!(!ok && err.contains("InvalidConfig"), "{refused}: {err}");
    }
}

/// Metadata by topic id as Kafka's `handleTopicMetadataRequest`: a request naming any
/// topic by id is answered by id alone (name-only entries dropped, a name beside an id
/// ignored, an unknown id UNKNOWN_TOPIC_ID), and before v12 a topic id or a missing
/// name makes the whole request INVALID_REQUEST.
#[test]
fn metadata_by_topic_id_is_answered_by_id_alone() {
    let b = BrokerProcess::start(&[]);
    for t in ["by-name", "by-id"] {
        common::create_topic_cli(&b.bootstrap, t, "1");
    }
    let mut c = RawClient::connect(&b.bootstrap);
    let id = metadata(&mut c, 12, &["by-id"], false).topics[0].topic_id;
    let unknown = uuid::Uuid::new_v4();
    let ask = |c: &mut RawClient, version: i16, topics: Vec<MetadataRequestTopic>| -> MetadataResponse {
        let req = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(true);
        c.request(ApiKey::Metadata, version, &req)
    };
    let answers = |r: &MetadataResponse| -> Vec<(Option<String>, uuid::Uuid, i16)> {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id, t.error_code))
            .collect()
    };
    let r = ask(
        &mut c,
        12,
        vec![
            MetadataRequestTopic::default().with_name(Some(name("by-name"))),
            MetadataRequestTopic::default()
                .with_name(Some(name("by-name")))
                .with_topic_id(id),
            MetadataRequestTopic::default()
                .with_name(Some(name("by-name")))
                .with_topic_id(unknown),
        ],
    );
    let mut got = answers(&r);
    got.sort_by_key(|a| a.2);
    assert_eq!(
        got,
        [(Some("by-id".to_string()), id, 0), (None, unknown, UNKNOWN_TOPIC_ID)]
    );
    let r = ask(
        &mut c,
        11,
        vec![
            MetadataRequestTopic::default().with_name(Some(name("by-name"))),
            MetadataRequestTopic::default()
                .with_name(Some(name("by-id")))
                .with_topic_id(id),
        ],
    );
    assert_eq!(
        answers(&r),
        [
            (Some("by-name".to_string()), uuid::Uuid::nil(), INVALID_REQUEST),
            (Some("by-id".to_string()), id, INVALID_REQUEST)
        ]
    );
}
