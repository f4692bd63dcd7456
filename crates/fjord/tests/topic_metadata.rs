//! The topic metadata the broker keeps, as Kafka's controller keeps it: each change a
//! record appended to the metadata log (not the whole registry rewritten, which made
//! creating N topics write O(N²) bytes), kept across kill -9; and CreateTopics and
//! CreatePartitions refused with Kafka's error codes where Kafka refuses them.

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn topic(n: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

fn assigned(n: &str, assignments: &[(i32, &[i32])]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            assignments
                .iter()
                .map(|(p, brokers)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(*p)
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
        )
}

/// Each result of a CreateTopics: name → (error code, message, partitions, topic id).
type Created = Vec<(String, i16, String, i32, uuid::Uuid)>;

fn create(c: &mut RawClient, topics: Vec<CreatableTopic>) -> Created {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    r.topics
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
            (t.name.to_string(), t.error_code, message, t.num_partitions, t.topic_id)
        })
        .collect()
}

/// Every topic the broker lists: name → (id, partitions).
fn all_topics(c: &mut RawClient) -> BTreeMap<String, (uuid::Uuid, usize)> {
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
    r.topics
        .iter()
        .map(|t| {
            let n = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (n, (t.topic_id, t.partitions.len()))
        })
        .collect()
}

fn node_id(c: &mut RawClient) -> i32 {
    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    r.brokers[0].node_id.0
}

/// Bytes the process has passed to write(2) and friends, from `/proc/PID/io`.
fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

/// 2,000 topics cost bytes in proportion to their number: the registry used to be
/// rewritten whole for each one (351 MB written for these 2,000, 5.8 s on this
/// machine). All of them, with their ids, survive a kill -9, and so do deletions.
#[test]
fn many_topics_are_stored_in_bytes_linear_in_their_number() {
    const TOPICS: usize = 2_000;
    const BATCH: usize = 200;
    let mut b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    let before = written_bytes(b.child.id());
    let mut ids = BTreeMap::new();
    for start in (0..TOPICS).step_by(BATCH) {
        let batch = (start..start + BATCH).map(|i| topic(&format!("t-{i:05}"), 1)).collect();
        for (n, code, message, _, id) in create(&mut c, batch) {
            assert_eq!(code, 0, "{n}: {message}");
            ids.insert(n, id);
        }
    }
    let written = written_bytes(b.child.id()) - before;
    // Per topic: one metadata record (~150 bytes), its partition's files, a response.
    assert!(written < 20 << 20, "creating {TOPICS} topics wrote {written} bytes");
    let deleted: Vec<String> = ids.keys().step_by(4).cloned().collect();
    let req = DeleteTopicsRequest::default()
        .with_topic_names(deleted.iter().map(|n| name(n)).collect())
        .with_timeout_ms(30_000);
    let r: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 5, &req);
    assert!(r.responses.iter().all(|t| t.error_code == 0), "{r:?}");
    for n in &deleted {
        ids.remove(n);
    }
    b.kill9();
    b.restart();
    let mut c = RawClient::connect(&b.bootstrap);
    let listed: BTreeMap<String, uuid::Uuid> = all_topics(&mut c)
        .into_iter()
        .filter(|(n, _)| n.starts_with("t-"))
        .map(|(n, (id, partitions))| {
            assert_eq!(partitions, 1, "{n}");
            (n, id)
        })
        .collect();
    assert_eq!(listed.len(), TOPICS - deleted.len());
    assert_eq!(listed, ids, "every topic kept its id across the kill -9");
}

/// CreateTopics refused as Kafka's controller refuses it: duplicate names (answered
/// once, none created), colliding names, the metadata topic's name, configs without a
/// value, and manual assignments that are malformed.
#[test]
fn create_topics_is_refused_with_kafkas_error_codes() {
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    let node = node_id(&mut c);
    let null_config = topic("null-config", 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("retention.ms"))
        .with_value(None)]);
    let with_counts = assigned("counts-too", &[(0, &[node])]).with_num_partitions(1);
    let mut results = create(
        &mut c,
        vec![
            topic("dup", 1),
            topic("a.b", 1),
            topic("dup", 2),
            topic("__cluster_metadata", 1),
            null_config,
            with_counts,
            assigned("unknown-broker", &[(0, &[node + 7])]),
            assigned("twice", &[(0, &[node, node])]),
            assigned("gap", &[(0, &[node]), (2, &[node])]),
            assigned("same-partition", &[(0, &[node]), (0, &[node])]),
            assigned("empty", &[(0, &[])]),
            assigned("manual", &[(1, &[node]), (0, &[node])]),
            topic("zero-rf", 1).with_replication_factor(0),
            topic("zero-partitions", 0),
            topic("dup", 3),
        ],
    );
    let dup = results.pop().expect("the duplicate's answer comes last, once");
    assert_eq!(
        (dup.0.as_str(), dup.1, dup.2.as_str()),
        ("dup", INVALID_REQUEST, "Duplicate topic name.")
    );
    let codes: Vec<(&str, i16)> = results.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        codes,
        [
            ("a.b", 0),
            ("__cluster_metadata", INVALID_REQUEST),
            ("null-config", INVALID_CONFIG),
            ("counts-too", INVALID_REQUEST),
            ("unknown-broker", INVALID_REPLICA_ASSIGNMENT),
            ("twice", INVALID_REPLICA_ASSIGNMENT),
            ("gap", INVALID_REPLICA_ASSIGNMENT),
            ("same-partition", INVALID_REPLICA_ASSIGNMENT),
            ("empty", INVALID_REPLICA_ASSIGNMENT),
            ("manual", 0),
            ("zero-rf", INVALID_REPLICATION_FACTOR),
            ("zero-partitions", INVALID_PARTITIONS),
        ],
        "{results:#?}"
    );
    assert!(results[2].2.contains("retention.ms"), "{}", results[2].2);
    assert_eq!(results[9].3, 2, "a manual assignment of two partitions");

    // An existing topic is TOPIC_ALREADY_EXISTS whatever else the request gets wrong,
    // as in Kafka (`--if-not-exists` takes it as success).
    let again = topic("a.b", 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("retention.ms"))
        .with_value(None)]);
    let again = create(
        &mut c,
        vec![again, assigned("twice-unknown", &[(0, &[node, node, node + 5])])],
    );
    assert_eq!(again[0].1, TOPIC_ALREADY_EXISTS, "{again:?}");
    assert_eq!(again[1].1, INVALID_REPLICA_ASSIGNMENT);
    assert!(
        again[1].2.contains("more than once"),
        "Kafka's first failure, in id order: {again:?}"
    );

    // A name that differs from an existing one only by '.' against '_' collides.
    let collide = create(&mut c, vec![topic("a_b", 1)]);
    assert_eq!(collide[0].1, INVALID_TOPIC_EXCEPTION, "{collide:?}");
    assert!(
        collide[0].2.contains("collides with existing topic: a.b"),
        "{collide:?}"
    );

    let listed = all_topics(&mut c);
    let names: Vec<&str> = listed.keys().map(String::as_str).collect();
    assert_eq!(names, ["a.b", "manual"], "nothing refused was created");

    // CreatePartitions: a name given twice is refused once, and neither entry applies.
    let grow = |n: &str, count: i32| CreatePartitionsTopic::default().with_name(name(n)).with_count(count);
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![grow("a.b", 3), grow("manual", 4), grow("a.b", 5)])
        .with_timeout_ms(30_000);
    let r: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, 3, &req);
    let codes: Vec<(String, i16)> = r.results.iter().map(|t| (t.name.to_string(), t.error_code)).collect();
    assert_eq!(codes, [("manual".to_string(), 0), ("a.b".to_string(), INVALID_REQUEST)]);
    let listed = all_topics(&mut c);
    assert_eq!(listed["a.b"].1, 1);
    assert_eq!(listed["manual"].1, 4);
}

/// AlterConfigs and IncrementalAlterConfigs refused as Kafka's `ConfigAdminManager`
/// refuses them: a resource named twice (each time), a config named twice, a null value
/// other than a DELETE's; and a minimum compaction lag above the maximum. DescribeConfigs
/// with an empty key list describes every config, as with none.
#[test]
fn config_changes_are_refused_with_kafkas_error_codes() {
    use kafka_protocol::messages::alter_configs_request::{
        AlterConfigsRequest, AlterConfigsResource, AlterableConfig as Plain,
    };
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResponse;
    use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource as IncResource, AlterableConfig, IncrementalAlterConfigsRequest,
    };
    use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
    const TOPIC: i8 = 2;
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(create(&mut c, vec![topic("a", 1), topic("b", 1)])[0].1, 0);
    let op = |key: &str, op: i8, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_string()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
    };
    let resource = |name: &str, configs: Vec<AlterableConfig>| {
        IncResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs)
    };
    let incremental = |c: &mut RawClient, resources: Vec<IncResource>| -> Vec<i16> {
        let req = IncrementalAlterConfigsRequest::default().with_resources(resources);
        let r: IncrementalAlterConfigsResponse = c.request(ApiKey::IncrementalAlterConfigs, 1, &req);
        r.responses.iter().map(|r| r.error_code).collect()
    };
    let codes = incremental(
        &mut c,
        vec![
            resource("a", vec![op("retention.ms", SET, Some("1000"))]),
            resource(
                "b",
                vec![op("retention.ms", SET, Some("1")), op("retention.ms", SET, Some("2"))],
            ),
            resource("a", vec![op("segment.ms", SET, Some("1000"))]),
        ],
    );
    assert_eq!(codes, [INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST]);
    let codes = incremental(
        &mut c,
        vec![
            resource("a", vec![op("cleanup.policy", SET, None)]),
            resource("b", vec![op("retention.ms", DELETE, None)]),
        ],
    );
    assert_eq!(codes, [INVALID_REQUEST, 0], "null only for DELETE");
    let codes = incremental(
        &mut c,
        vec![resource(
            "b",
            vec![
                op("min.compaction.lag.ms", SET, Some("10")),
                op("max.compaction.lag.ms", SET, Some("5")),
            ],
        )],
    );
    assert_eq!(codes, [INVALID_CONFIG]);
    let plain = AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(StrBytes::from_static_str("a"))
        .with_configs(vec![Plain::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(None)]);
    let r: AlterConfigsResponse = c.request(
        ApiKey::AlterConfigs,
        2,
        &AlterConfigsRequest::default().with_resources(vec![plain]),
    );
    assert_eq!(r.responses[0].error_code, INVALID_REQUEST);

    // Nothing refused was applied: `a` has no overrides, and every config is listed.
    let describe = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(StrBytes::from_static_str("a"))
        .with_configuration_keys(Some(vec![]))]);
    let r: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 4, &describe);
    let configs = &r.results[0].configs;
    assert!(
        configs.len() > 10,
        "an empty key list describes every config: {}",
        configs.len()
    );
    assert!(configs.iter().all(|e| e.config_source != 1), "no override was stored");
}

/// Changes to one topic from several clients at once are made one at a time, as
/// Kafka's controller makes them: none writes back another's old half. (A
/// CreatePartitions and an IncrementalAlterConfigs each read the topic, changed their
/// part and stored the whole; two config changes each kept only their own key.)
#[test]
fn concurrent_changes_to_one_topic_all_take_effect() {
    use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
    };
    use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
    const ROUNDS: i32 = 60;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(create(&mut c, vec![topic("race", 1)])[0].1, 0);
    let set = |key: &'static str, base: i32| {
        let bootstrap = b.bootstrap.clone();
        std::thread::spawn(move || {
            let mut c = RawClient::connect(&bootstrap);
            for i in 1..=ROUNDS {
                let change = AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("race"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(StrBytes::from_static_str(key))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string((base + i).to_string())))]);
                let req = IncrementalAlterConfigsRequest::default().with_resources(vec![change]);
                let r: IncrementalAlterConfigsResponse = c.request(ApiKey::IncrementalAlterConfigs, 1, &req);
                assert_eq!(r.responses[0].error_code, 0);
            }
        })
    };
    let retention = set("retention.ms", 100_000);
    let segment = set("segment.ms", 200_000);
    let grow = {
        let bootstrap = b.bootstrap.clone();
        std::thread::spawn(move || {
            let mut c = RawClient::connect(&bootstrap);
            for count in 2..=ROUNDS + 1 {
                let req = CreatePartitionsRequest::default()
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(name("race"))
                        .with_count(count)])
                    .with_timeout_ms(30_000);
                let r: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, 3, &req);
                assert_eq!(r.results[0].error_code, 0, "to {count}: {r:?}");
            }
        })
    };
    for t in [retention, segment, grow] {
        t.join().expect("client thread");
    }
    let describe = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("race"))
        .with_configuration_keys(None)]);
    let r: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 4, &describe);
    let value = |key: &str| {
        r.results[0]
            .configs
            .iter()
            .find(|e| e.name.as_str() == key)
            .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
    };
    assert_eq!(value("retention.ms").as_deref(), Some("100060"));
    assert_eq!(value("segment.ms").as_deref(), Some("200060"));
    assert_eq!(all_topics(&mut c)["race"].1, ROUNDS as usize + 1);
}

/// Dynamic broker configs at Kafka's two levels: the resource "" sets every broker's
/// default (DescribeConfigs source DYNAMIC_DEFAULT_BROKER_CONFIG, 3), the resource
/// named by the node id its own (DYNAMIC_BROKER_CONFIG, 2), which wins; both reach
/// the topics that inherit them, and both survive a restart. Refusals as Kafka's:
/// another broker's id, a bad value (INVALID_REQUEST for brokers), APPEND to a config
/// that is not a list (INVALID_CONFIG), an unknown operation.
#[test]
fn broker_configs_have_a_cluster_default_and_a_per_broker_level() {
    use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
    };
    use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    let mut b = BrokerProcess::start(&["node.id=1"]);
    let mut c = RawClient::connect(&b.bootstrap);
    assert_eq!(create(&mut c, vec![topic("inherits", 1)])[0].1, 0);
    let alter = |c: &mut RawClient, ty: i8, name: &str, key: &str, op: i8, value: Option<&str>| -> (i16, String) {
        let config = AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_string()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.to_string())));
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(vec![config])]);
        let r: IncrementalAlterConfigsResponse = c.request(ApiKey::IncrementalAlterConfigs, 1, &req);
        let r = &r.responses[0];
        (
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default(),
        )
    };
    // (error code, message, [(name, value, source)]) of one resource.
    let describe = |c: &mut RawClient, ty: i8, name: &str| {
        let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_string(name.to_string()))]);
        let r: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 4, &req);
        let r = &r.results[0];
        let entries: BTreeMap<String, (String, i8)> = r
            .configs
            .iter()
            .map(|e| {
                let value = e.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                (e.name.to_string(), (value, e.config_source))
            })
            .collect();
        let message = r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
        (r.error_code, message, entries)
    };
    let entry = |c: &mut RawClient, ty: i8, name: &str, key: &str| describe(c, ty, name).2.get(key).cloned();
    assert_eq!(alter(&mut c, BROKER, "", "log.retention.ms", SET, Some("1000")).0, 0);
    assert_eq!(entry(&mut c, BROKER, "1", "log.retention.ms"), Some(("1000".into(), 3)));
    assert_eq!(
        entry(&mut c, TOPIC, "inherits", "retention.ms"),
        Some(("1000".into(), 3))
    );
    assert_eq!(alter(&mut c, BROKER, "1", "log.retention.ms", SET, Some("2000")).0, 0);
    assert_eq!(entry(&mut c, BROKER, "1", "log.retention.ms"), Some(("2000".into(), 2)));
    assert_eq!(
        entry(&mut c, TOPIC, "inherits", "retention.ms"),
        Some(("2000".into(), 2))
    );
    // The resource "" lists the cluster-wide dynamic defaults, and only them.
    let (code, _, defaults) = describe(&mut c, BROKER, "");
    assert_eq!(code, 0);
    assert_eq!(
        defaults.into_iter().collect::<Vec<_>>(),
        [("log.retention.ms".to_string(), ("1000".to_string(), 3))]
    );
    // A broker config set by the properties (here an --override) is STATIC_BROKER_CONFIG
    // (4), one left at its default DEFAULT_CONFIG (5), as Kafka's DescribeConfigs.
    assert_eq!(entry(&mut c, BROKER, "1", "listeners").map(|e| e.1), Some(4));
    assert_eq!(entry(&mut c, BROKER, "1", "num.partitions"), Some(("1".into(), 5)));
    // APPEND to a list, at the per-broker level: to the default value (delete), once
    // (Fjord prints the policy in one order whatever order it was given in).
    assert_eq!(
        alter(&mut c, BROKER, "1", "log.cleanup.policy", APPEND, Some("compact")).0,
        0
    );
    assert_eq!(
        alter(
            &mut c,
            BROKER,
            "1",
            "log.cleanup.policy",
            APPEND,
            Some("compact,delete")
        )
        .0,
        0
    );
    assert_eq!(
        entry(&mut c, BROKER, "1", "log.cleanup.policy"),
        Some(("compact,delete".into(), 2))
    );
    assert_eq!(alter(&mut c, BROKER, "1", "log.cleanup.policy", DELETE, None).0, 0);
    for how in ["clean restart", "kill -9"] {
        b.stop_and_restart(how);
        let mut c = RawClient::connect(&b.bootstrap);
        assert_eq!(
            entry(&mut c, BROKER, "1", "log.retention.ms"),
            Some(("2000".into(), 2)),
            "{how}"
        );
        assert_eq!(
            entry(&mut c, BROKER, "1", "log.cleanup.policy").map(|e| e.1),
            Some(5),
            "{how}"
        );
    }
    let mut c = RawClient::connect(&b.bootstrap);
    // Without this broker's own value, the cluster default shows again.
    assert_eq!(alter(&mut c, BROKER, "1", "log.retention.ms", DELETE, None).0, 0);
    assert_eq!(entry(&mut c, BROKER, "1", "log.retention.ms"), Some(("1000".into(), 3)));
    assert_eq!(
        entry(&mut c, TOPIC, "inherits", "retention.ms"),
        Some(("1000".into(), 3))
    );
    // ((resource type, name, key, operation, value), error code, message)
    type Refusal<'a> = ((i8, &'a str, &'a str, i8, Option<&'a str>), i16, &'a str);
    let refusals: &[Refusal<'_>] = &[
        (
            (BROKER, "2", "log.retention.ms", SET, Some("1")),
            INVALID_REQUEST,
            "Unexpected broker id, expected 1, but received 2",
        ),
        (
            (BROKER, "x", "log.retention.ms", SET, Some("1")),
            INVALID_REQUEST,
            "Node id must be an integer, but it is: x",
        ),
        (
            (BROKER, "1", "log.retention.ms", SET, Some("soon")),
            INVALID_REQUEST,
            "log.retention.ms",
        ),
        (
            (BROKER, "", "log.dirs", SET, Some("/elsewhere")),
            INVALID_REQUEST,
            "Cannot update these configs dynamically",
        ),
        (
            (BROKER, "1", "log.retention.ms", APPEND, Some("1")),
            INVALID_CONFIG,
            "Config value append is not allowed for config key: log.retention.ms",
        ),
        (
            (TOPIC, "inherits", "retention.ms", APPEND, Some("1")),
            INVALID_CONFIG,
            "Can't APPEND to key retention.ms because its type is not LIST.",
        ),
        (
            (TOPIC, "inherits", "retention.ms", 7, Some("1")),
            INVALID_REQUEST,
            "Unknown operations type 7",
        ),
    ];
    for ((ty, name, key, op, value), code, message) in refusals {
        let (got, text) = alter(&mut c, *ty, name, key, *op, *value);
        assert_eq!(got, *code, "{name} {key}: {text}");
        assert!(text.contains(message), "{name} {key}: {text}");
    }
    let (code, message, _) = describe(&mut c, BROKER, "2");
    assert_eq!(
        (code, message.as_str()),
        (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1 or empty string, but received 2"
        )
    );
    b.stop();
}
