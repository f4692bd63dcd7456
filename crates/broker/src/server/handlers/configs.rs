//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics (resource type 2)
//! and brokers (4). Every topic config is dynamic; of the broker's, the `log.*` topic
//! defaults are dynamic and the rest (listeners, log.dirs, ...) read-only, as in Kafka.
//! A broker resource is named "" (the cluster-wide defaults) or by this node's id (its
//! own configs, which win): `config::DynamicBrokerConfigs`.

use super::s;
use crate::config::{ConfigError, DynamicBrokerConfigs, DynamicLevel, TOPIC_CONFIG_KEYS};
use crate::metadata::MetadataError;
use crate::protocol::errors;
use crate::server::{topics, Broker};
use crate::sync::{read as read_lock, write as write_lock};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{AlterConfigsResourceResponse, AlterConfigsResponse};
use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{self as inc, IncrementalAlterConfigsResponse};
use std::collections::{BTreeMap, HashMap, HashSet};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One described config: name, value, source, read-only, Kafka type id.
type Entry = (String, String, i8, bool, i8);

fn type_id(t: crate::config::topic::ConfigType) -> i8 {
    use crate::config::topic::ConfigType::*;
    match t {
        Boolean => 1,
        String => 2,
        Int => 3,
        Long => 5,
        Double => 6,
        List => 7,
    }
}

pub fn describe(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req.resources.iter().map(|r| describe_one(broker, r)).collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_one(broker: &Broker, r: &DescribeConfigsResource) -> DescribeConfigsResult {
    let mut out = DescribeConfigsResult::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone());
    let entries = match r.resource_type {
        TOPIC => topic_entries(broker, r.resource_name.as_str()),
        BROKER => broker_entries(broker, r.resource_name.as_str()),
        _ => Err((
            errors::code(ResponseError::InvalidRequest),
            format!("unsupported resource type {}", r.resource_type),
        )),
    };
    match entries {
        Ok(entries) => {
            // An empty list asks for every config, as a null one does (Kafka's
            // `ConfigHelper`).
            let wanted = r
                .configuration_keys
                .as_ref()
                .filter(|k| !k.is_empty())
                .map(|k| k.iter().map(|x| x.to_string()).collect::<HashSet<_>>());
            out.configs = entries
                .into_iter()
                .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.0)))
                .map(|(name, value, source, read_only, ty)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(s(name))
                        .with_value(Some(s(value)))
                        .with_config_source(source)
                        .with_read_only(read_only)
                        .with_config_type(ty)
                })
                .collect();
        }
        Err((code, msg)) => {
            out.error_code = code;
            out.error_message = Some(s(msg));
        }
    }
    out
}

fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    let topic = broker.topics.get(name).ok_or((
        errors::code(ResponseError::UnknownTopicOrPartition),
        format!("unknown topic '{name}'"),
    ))?;
    let defaults = broker
        .topic_defaults()
        .map_err(|e| (errors::code(ResponseError::InvalidConfig), e.to_string()))?;
    let config = defaults
        .with_overrides(&topic.configs)
        .map_err(|e| (errors::code(ResponseError::InvalidConfig), e.to_string()))?;
    let dynamic = read_lock(&broker.dynamic_configs).clone();
    Ok(TOPIC_CONFIG_KEYS
        .iter()
        .map(|k| {
            let source = topic_config_source(k, &topic.configs, &config, &dynamic);
            (
                k.name.to_string(),
                config.get(k.name).unwrap_or_default(),
                source,
                false,
                type_id(k.config_type),
            )
        })
        .collect())
}

/// Where a topic config's value comes from (`config_source` in DescribeConfigs and in
/// CreateTopics v5+), as Kafka's `KafkaConfigSchema.resolveEffectiveTopicConfig`: the
/// topic's own, a dynamic broker default (this broker's, or the cluster's), a static
/// broker default, or Kafka's default.
pub(super) fn topic_config_source(
    key: &crate::config::topic::TopicConfigKey,
    overrides: &BTreeMap<String, String>,
    config: &crate::config::TopicConfig,
    dynamic: &crate::config::DynamicBrokerConfigs,
) -> i8 {
    if overrides.contains_key(key.name) {
        SOURCE_DYNAMIC_TOPIC
    } else if let Some((_, level)) = key.broker_key().and_then(|b| dynamic.get(b)) {
        dynamic_source(level)
    } else if config.broker_set.contains(key.name) {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

fn dynamic_source(level: DynamicLevel) -> i8 {
    match level {
        DynamicLevel::PerBroker => SOURCE_DYNAMIC_BROKER,
        DynamicLevel::ClusterDefault => SOURCE_DYNAMIC_DEFAULT_BROKER,
    }
}

/// A broker resource's name: "" or this node's id, as Kafka's `ConfigHelper` (describe)
/// and `ConfigAdminManager.validateResourceNameIsCurrentNodeId` (alter) check it.
fn check_broker_name(broker: &Broker, name: &str, describing: bool) -> Result<(), (i16, String)> {
    let invalid = |msg: String| Err((errors::code(ResponseError::InvalidRequest), msg));
    if name.is_empty() {
        return Ok(());
    }
    let node = broker.node_id();
    match name.parse::<i32>() {
        Ok(id) if id == node => Ok(()),
        Err(_) if !describing => invalid(format!("Node id must be an integer, but it is: {name}")),
        _ if describing => invalid(format!(
            "Unexpected broker id, expected {node} or empty string, but received {name}"
        )),
        _ => invalid(format!("Unexpected broker id, expected {node}, but received {name}")),
    }
}

/// DescribeConfigs of the broker resource "": the cluster-wide dynamic defaults only,
/// as Kafka lists `currentDynamicDefaultConfigs`.
fn cluster_default_entries(broker: &Broker) -> Vec<Entry> {
    let dynamic = read_lock(&broker.dynamic_configs).clone();
    TOPIC_CONFIG_KEYS
        .iter()
        .filter_map(|k| {
            let value = dynamic.cluster_default.get(k.broker_key()?)?;
            Some((
                k.broker_key.to_string(),
                value.clone(),
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                false,
                type_id(k.config_type),
            ))
        })
        .collect()
}

/// Kafka's `ConfigType` ids, as DescribeConfigs v3+ sends them.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// Every broker config Fjord has beside the topic defaults (`log.*`, listed from
/// `TOPIC_CONFIG_KEYS`): (key, value as Kafka prints it, type). Read-only: they change
/// with a restart, as Kafka's static broker configs.
fn static_broker_values(c: &crate::config::BrokerConfig) -> Vec<(&'static str, String, i8)> {
    let listeners = |ls: &[crate::config::Listener]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",");
    let log_dirs = c.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>();
    let assignors = c
        .group_consumer_assignors
        .iter()
        .map(|a| match a.as_str() {
            "uniform" => "org.apache.kafka.coordinator.group.assignor.UniformAssignor",
            _ => "org.apache.kafka.coordinator.group.assignor.RangeAssignor",
        })
        .collect::<Vec<_>>();
    let n = |v: &dyn ToString| v.to_string();
    vec![
        ("node.id", n(&c.node_id), TYPE_INT),
        ("broker.id", n(&c.node_id), TYPE_INT),
        ("listeners", listeners(&c.listeners.all), TYPE_STRING),
        ("advertised.listeners", listeners(&c.listeners.advertised), TYPE_STRING),
        ("log.dirs", log_dirs.join(","), TYPE_STRING),
        ("num.partitions", n(&c.num_partitions), TYPE_INT),
        ("default.replication.factor", n(&c.default_replication_factor), TYPE_INT),
        (
            "auto.create.topics.enable",
            n(&c.auto_create_topics_enable),
            TYPE_BOOLEAN,
        ),
        ("delete.topic.enable", n(&c.delete_topic_enable), TYPE_BOOLEAN),
        ("socket.request.max.bytes", n(&c.socket_request_max_bytes), TYPE_INT),
        ("fetch.max.bytes", n(&c.fetch_max_bytes), TYPE_INT),
        ("max.connections", n(&c.max_connections), TYPE_INT),
        ("connections.max.idle.ms", n(&c.connections_max_idle_ms), TYPE_LONG),
        ("num.network.threads", n(&c.num_network_threads), TYPE_INT),
        (
            "log.retention.check.interval.ms",
            n(&c.log_retention_check_interval_ms),
            TYPE_LONG,
        ),
        (
            "log.flush.scheduler.interval.ms",
            n(&c.log_flush_scheduler_interval_ms),
            TYPE_LONG,
        ),
        (
            "log.flush.offset.checkpoint.interval.ms",
            n(&c.log_flush_offset_checkpoint_interval_ms),
            TYPE_INT,
        ),
        ("log.cleaner.enable", n(&c.log_cleaner_enable), TYPE_BOOLEAN),
        ("log.cleaner.backoff.ms", n(&c.log_cleaner_backoff_ms), TYPE_LONG),
        (
            "log.cleaner.dedupe.buffer.size",
            n(&c.log_cleaner_dedupe_buffer_size),
            TYPE_LONG,
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            java_double(c.log_cleaner_io_max_bytes_per_second),
            TYPE_DOUBLE,
        ),
        (
            "group.initial.rebalance.delay.ms",
            n(&c.group_initial_rebalance_delay_ms),
            TYPE_INT,
        ),
        (
            "group.min.session.timeout.ms",
            n(&c.group_min_session_timeout_ms),
            TYPE_INT,
        ),
        (
            "group.max.session.timeout.ms",
            n(&c.group_max_session_timeout_ms),
            TYPE_INT,
        ),
        ("group.max.size", n(&c.group_max_size), TYPE_INT),
        (
            "group.consumer.session.timeout.ms",
            n(&c.group_consumer_session_timeout_ms),
            TYPE_INT,
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            n(&c.group_consumer_heartbeat_interval_ms),
            TYPE_INT,
        ),
        ("group.consumer.max.size", n(&c.group_consumer_max_size), TYPE_INT),
        ("group.consumer.assignors", assignors.join(","), TYPE_LIST),
        (
            "offsets.topic.num.partitions",
            n(&c.offsets_topic_num_partitions),
            TYPE_INT,
        ),
        ("offset.metadata.max.bytes", n(&c.offset_metadata_max_bytes), TYPE_INT),
        (
            "offsets.retention.minutes",
            n(&(c.offsets_retention_ms / 60_000)),
            TYPE_INT,
        ),
        (
            "offsets.retention.check.interval.ms",
            n(&c.offsets_retention_check_interval_ms),
            TYPE_LONG,
        ),
        ("producer.id.expiration.ms", n(&c.producer_id_expiration_ms), TYPE_INT),
        (
            "producer.id.expiration.check.interval.ms",
            n(&c.producer_id_expiration_check_interval_ms),
            TYPE_INT,
        ),
        (
            "fjord.log.page.cache.retain.bytes",
            n(&c.log_page_cache_retain_bytes),
            TYPE_LONG,
        ),
        ("fjord.log.direct.io", n(&c.log_direct_io), TYPE_BOOLEAN),
    ]
}

/// A double as Java's `Double.toString` prints it: "1.0E8", "1.7976931348623157E308",
/// "0.5", "100.0".
fn java_double(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        let sci = format!("{v:e}");
        match sci.split_once('e') {
            Some((mantissa, exponent)) if mantissa.contains('.') => format!("{mantissa}E{exponent}"),
            Some((mantissa, exponent)) => format!("{mantissa}.0E{exponent}"),
            None => sci,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// Whether the broker's properties set `name`, or a key Fjord reads it from.
fn given(c: &crate::config::BrokerConfig, name: &str) -> bool {
    let synonyms: &[&str] = match name {
        "node.id" | "broker.id" => &["node.id", "broker.id"],
        "listeners" => &["listeners", "port", "host.name"],
        "advertised.listeners" => &["advertised.listeners", "advertised.host.name", "advertised.port"],
        "log.dirs" => &["log.dirs", "log.dir"],
        other => return c.given_keys.contains(other),
    };
    synonyms.iter().any(|k| c.given_keys.contains(*k))
}

fn broker_entries(broker: &Broker, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    check_broker_name(broker, name, true)?;
    if name.is_empty() {
        return Ok(cluster_default_entries(broker));
    }
    let c = &broker.config;
    let mut out: Vec<Entry> = static_broker_values(c)
        .into_iter()
        .map(|(key, value, config_type)| (key.to_string(), value, SOURCE_STATIC_BROKER, true, config_type))
        .collect();
    // Kafka's source for a broker config: STATIC_BROKER_CONFIG when server.properties
    // (or an override) set it, under its name or a synonym Fjord reads it from;
    // DEFAULT_CONFIG otherwise.
    for entry in &mut out {
        if !given(c, &entry.0) {
            entry.2 = SOURCE_DEFAULT;
        }
    }
    let defaults = broker
        .topic_defaults()
        .map_err(|e| (errors::code(ResponseError::InvalidConfig), e.to_string()))?;
    let dynamic = read_lock(&broker.dynamic_configs).clone();
    // The topic defaults, under their broker keys (a topic config with no broker key
    // has no broker default to list).
    for k in TOPIC_CONFIG_KEYS.iter().filter(|k| k.broker_key().is_some()) {
        let source = if let Some((_, level)) = dynamic.get(k.broker_key) {
            dynamic_source(level)
        } else if defaults.broker_set.contains(k.name) {
            SOURCE_STATIC_BROKER
        } else {
            SOURCE_DEFAULT
        };
        out.push((
            k.broker_key.to_string(),
            defaults.get(k.name).unwrap_or_default(),
            source,
            false,
            type_id(k.config_type),
        ));
    }
    Ok(out)
}

/// Applies a full set of overrides to a resource. The caller holds `topic_admin`.
fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let err = |e: MetadataError| (errors::metadata_error_code(&e), e.to_string());
    match resource_type {
        TOPIC => topics::set_topic_configs(broker, name, configs, validate_only).map_err(err),
        BROKER => apply_broker(broker, name, configs, validate_only),
        other => Err((
            errors::code(ResponseError::InvalidRequest),
            format!("unsupported resource type {other}"),
        )),
    }
}

/// Sets a broker resource's dynamic configs, all of them, at the level its name
/// addresses. A refused value is INVALID_REQUEST, as Kafka answers for broker configs
/// (KAFKA-13609; topics get INVALID_CONFIG).
fn apply_broker(
    broker: &Broker,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    check_broker_name(broker, name, false)?;
    let refused = |msg: String| (errors::code(ResponseError::InvalidRequest), msg);
    let level = DynamicBrokerConfigs::level_of(name);
    let mut next = read_lock(&broker.dynamic_configs).clone();
    next.set_level(level, configs.clone());
    let mut trial = broker.config.topic_defaults.clone();
    for (k, v) in &next.effective() {
        let spec = TOPIC_CONFIG_KEYS
            .iter()
            .find(|s| s.broker_key() == Some(k.as_str()))
            .ok_or_else(|| refused(format!("Cannot update these configs dynamically: Set({k})")))?;
        // Named by the broker key that was set, not the topic key it defaults.
        trial.apply(spec.name, v).map_err(|e: ConfigError| match e {
            ConfigError::InvalidValue { value, reason, .. } => refused(
                ConfigError::InvalidValue {
                    key: k.clone(),
                    value,
                    reason,
                }
                .to_string(),
            ),
            other => refused(other.to_string()),
        })?;
    }
    trial
        .validate_values()
        .map_err(|e: ConfigError| refused(e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let node = (level == DynamicLevel::PerBroker).then_some(broker.node_id());
    broker
        .topics
        .set_broker_configs(node, configs)
        .map_err(|e: MetadataError| (errors::metadata_error_code(&e), e.to_string()))?;
    *write_lock(&broker.dynamic_configs) = next;
    topics::refresh_all_configs(broker).map_err(|e| (errors::code(ResponseError::InvalidConfig), e.to_string()))
}

fn current_overrides(broker: &Broker, resource_type: i8, name: &str) -> BTreeMap<String, String> {
    match resource_type {
        TOPIC => broker.topics.get(name).map(|t| t.configs).unwrap_or_default(),
        _ => read_lock(&broker.dynamic_configs)
            .level(DynamicBrokerConfigs::level_of(name))
            .clone(),
    }
}

/// One resource of an alter request as `preprocess` sees it: type, name, and each
/// config's name with whether its value is missing where one is needed.
type Resource<'a> = (i8, &'a str, Vec<(&'a str, bool)>);

/// Kafka's `ConfigAdminManager.preprocess`: the refusal of each resource, in request
/// order. A resource named more than once is refused every time, as is one that names
/// a config twice or leaves a value null (a null is only for DELETE).
fn preprocess(resources: &[Resource<'_>]) -> Vec<Option<(i16, String)>> {
    let invalid = |msg: String| Some((errors::code(ResponseError::InvalidRequest), msg));
    let mut seen: HashMap<(i8, &str), usize> = HashMap::new();
    for (ty, name, _) in resources {
        *seen.entry((*ty, *name)).or_default() += 1;
    }
    resources
        .iter()
        .map(|(ty, name, configs)| {
            if seen[&(*ty, *name)] > 1 {
                return invalid("Each resource must appear at most once.".into());
            }
            let mut keys = HashSet::new();
            if !configs.iter().all(|(k, _)| keys.insert(*k)) {
                return invalid("Error due to duplicate config keys".into());
            }
            let nulls: Vec<&str> = configs.iter().filter(|(_, null)| *null).map(|(k, _)| *k).collect();
            if !nulls.is_empty() {
                return invalid(format!("Null value not supported for : {}", nulls.join(", ")));
            }
            None
        })
        .collect()
}

pub fn alter(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let checked: Vec<Resource<'_>> = req
        .resources
        .iter()
        .map(|r| {
            let configs = r.configs.iter().map(|c| (c.name.as_str(), c.value.is_none())).collect();
            (r.resource_type, r.resource_name.as_str(), configs)
        })
        .collect();
    let refusals = preprocess(&checked);
    let responses = req
        .resources
        .iter()
        .zip(refusals)
        .map(|(r, refusal)| {
            let configs = r
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            let mut out = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let _admin = crate::sync::lock(&broker.topic_admin);
            let result = match refusal {
                Some(refused) => Err(refused),
                None => apply(
                    broker,
                    r.resource_type,
                    r.resource_name.as_str(),
                    configs,
                    req.validate_only,
                ),
            };
            if let Err((code, msg)) = result {
                out.error_code = code;
                out.error_message = Some(s(msg));
            }
            out
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs' APPEND (`append`) or SUBTRACT of `value`'s comma-separated
/// items to a LIST-typed config, from its current value or else its default, as Kafka's
/// `ConfigurationControlManager` (topics) and `ConfigAdminManager` (brokers) do: an item
/// already there is not appended twice and keeps its place.
fn append_or_subtract(
    resource_type: i8,
    configs: &mut BTreeMap<String, String>,
    key: &str,
    value: &str,
    append: bool,
) -> Result<(), (i16, String)> {
    let invalid_config = |msg: String| Err((errors::code(ResponseError::InvalidConfig), msg));
    let verb = if append { "APPEND" } else { "SUBTRACT" };
    let spec = TOPIC_CONFIG_KEYS.iter().find(|s| {
        if resource_type == BROKER {
            s.broker_key() == Some(key)
        } else {
            s.name == key
        }
    });
    let Some(spec) = spec.filter(|s| s.config_type == crate::config::topic::ConfigType::List) else {
        return if resource_type == BROKER {
            let what = if append { "append" } else { "subtract" };
            invalid_config(format!("Config value {what} is not allowed for config key: {key}"))
        } else {
            invalid_config(format!("Can't {verb} to key {key} because its type is not LIST."))
        };
    };
    let current = configs
        .get(key)
        .cloned()
        .or_else(|| crate::config::TopicConfig::default().get(spec.name))
        .unwrap_or_default();
    let mut items = crate::config::split_list(&current);
    for v in value.split(',') {
        if append && !items.iter().any(|x| x == v) {
            items.push(v.to_string());
        } else if !append {
            items.retain(|x| x != v);
        }
    }
    configs.insert(key.to_string(), items.join(","));
    Ok(())
}

pub fn incremental_alter(broker: &Broker, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    const DELETE: i8 = 1;
    let checked: Vec<Resource<'_>> = req
        .resources
        .iter()
        .map(|r| {
            let configs = r
                .configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.is_none() && c.config_operation != DELETE))
                .collect();
            (r.resource_type, r.resource_name.as_str(), configs)
        })
        .collect();
    let refusals = preprocess(&checked);
    let responses = req
        .resources
        .iter()
        .zip(refusals)
        .map(|(r, refusal)| {
            let name = r.resource_name.as_str();
            // Held from reading the overrides to storing them changed: two changes of
            // one resource each kept only its own.
            let _admin = crate::sync::lock(&broker.topic_admin);
            let mut configs = current_overrides(broker, r.resource_type, name);
            let mut result = refusal.map_or(Ok(()), Err);
            let ops = if result.is_ok() { r.configs.as_slice() } else { &[] };
            for c in ops {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                match c.config_operation {
                    0 => {
                        configs.insert(key, value);
                    }
                    1 => {
                        configs.remove(&key);
                    }
                    op @ (2 | 3) => {
                        if let Err(e) = append_or_subtract(r.resource_type, &mut configs, &key, &value, op == 2) {
                            result = Err(e);
                        }
                    }
                    op => {
                        result = Err((
                            errors::code(ResponseError::InvalidRequest),
                            format!("Unknown operations type {op}"),
                        ));
                    }
                }
            }
            let result = result.and_then(|_| apply(broker, r.resource_type, name, configs, req.validate_only));
            let mut out = inc::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Err((code, msg)) = result {
                out.error_code = code;
                out.error_message = Some(s(msg));
            }
            out
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::java_double;

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double(1e8), "1.0E8");
        assert_eq!(java_double(1.5e7), "1.5E7");
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1e-4), "1.0E-4");
    }
}
