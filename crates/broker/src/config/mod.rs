//! Broker configuration: Kafka's `server.properties` keys, parsed and validated.
//!
//! Contract: `BrokerConfig::from_properties` either returns a complete, validated
//! config or a one-line error naming the key and the value. It never touches disk.
//! Unknown keys are returned as warnings, as Kafka logs them.

pub mod dynamic;
pub mod listeners;
mod properties;
pub mod topic;

pub use dynamic::{DynamicBrokerConfigs, DynamicLevel};
pub use listeners::{Listener, Listeners, SecurityProtocol};
pub use properties::parse_properties;
pub use topic::{TopicConfig, TopicConfigKey, TOPIC_CONFIG_KEYS};

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A config error: always names the key and the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("missing required config '{0}'")]
    Missing(String),
    /// Kafka's `LogConfig.validateNames` message.
    #[error("Unknown topic config name: {0}")]
    UnknownTopicConfig(String),
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// A value refused for what it asks of the broker; Kafka's message.
    #[error("{0}")]
    Refused(String),
}

/// The broker's validated configuration. Field names follow Kafka's keys, units last.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The keys the properties file and `--override`s gave: DescribeConfigs tells a
    /// value set there (STATIC_BROKER_CONFIG) from a default (DEFAULT_CONFIG).
    pub given_keys: std::collections::BTreeSet<String>,
    pub node_id: i32,
    pub cluster_id: Option<String>,
    /// `listeners`, `advertised.listeners` and the keys that qualify them.
    pub listeners: Listeners,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`: the most one Fetch response carries, whatever the request
    /// asks (Kafka's default 55 MiB). Also keeps a response's size within an i32.
    pub fetch_max_bytes: usize,
    pub max_connections: usize,
    /// `connections.max.idle.ms`: a connection that sends no request for this long is
    /// closed (Kafka's default, 10 minutes), so clients that vanished without a FIN do
    /// not hold `max.connections` slots forever.
    pub connections_max_idle_ms: u64,
    /// `num.network.threads`: threads serving connections, each request handled to its
    /// response on its connection's thread (`server::network_threads`). Kafka's default
    /// is 3 network threads beside 8 I/O threads; Fjord has no separate I/O threads,
    /// and more threads than CPUs would only switch between each other, so the default
    /// is the number of CPUs.
    pub num_network_threads: usize,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub group_initial_rebalance_delay_ms: i64,
    pub group_min_session_timeout_ms: i64,
    pub group_max_session_timeout_ms: i64,
    pub group_max_size: usize,
    pub offsets_topic_num_partitions: i32,
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// Fjord's: the newest bytes of each partition kept in the page cache; older ones
    /// are written back and dropped (`UnifiedLog::drop_page_cache_behind`).
    pub log_page_cache_retain_bytes: u64,
    /// Fjord's: active segments append with O_DIRECT (`fjord.log.direct.io`).
    pub log_direct_io: bool,
    pub offsets_retention_check_interval_ms: i64,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long is forgotten
    /// (its state dropped from every partition), checked every
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: i64,
    pub group_consumer_session_timeout_ms: i64,
    pub group_consumer_heartbeat_interval_ms: i64,
    pub group_consumer_max_size: usize,
    /// `group.consumer.assignors`, as short names (`uniform`, `range`); first is default.
    pub group_consumer_assignors: Vec<String>,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: usize,
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// Defaults for every topic config, derived from the broker's `log.*` keys.
    pub topic_defaults: TopicConfig,
    /// Keys Fjord accepted but did not recognise, in file order.
    pub warnings: Vec<String>,
}

/// Limit: more network threads than this is a mistake, not a tuning.
pub const NUM_NETWORK_THREADS_MAX: usize = 256;

/// One network thread per CPU this process may run on.
fn default_network_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(NUM_NETWORK_THREADS_MAX)
}

/// Keys Kafka has that Fjord accepts and has no use for (it has no I/O thread pool, and
/// buffers are sized by tokio); listed so they do not warn.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "queued.max.requests",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "group.coordinator.rebalance.protocols",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "zookeeper.connection.timeout.ms",
];

impl BrokerConfig {
    /// Zero config: one node, `127.0.0.1:9092`, data in `./data`.
    pub fn default_single_node() -> BrokerConfig {
        match BrokerConfig::from_properties(&BTreeMap::new()) {
            Ok(config) => config,
            Err(e) => unreachable!("defaults are valid: {e}"),
        }
    }

    /// Builds the config from parsed properties (later keys already override earlier).
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let mut warnings = Vec::new();
        let get = |k: &str| props.get(k).map(|s| s.trim().to_string());
        let node_id = match (get("node.id"), get("broker.id")) {
            (Some(n), Some(b)) => {
                let node_id = parse_num::<i32>("node.id", &n, 0, i32::MAX as i64)?;
                // Kafka's `KafkaConfig.validateValues`: the two names of one id.
                if parse_num::<i32>("broker.id", &b, 0, i32::MAX as i64)? != node_id {
                    return Err(ConfigError::InvalidValue {
                        key: "broker.id".into(),
                        value: b,
                        reason: "You must set `node.id` to the same value as `broker.id`.".into(),
                    });
                }
                node_id
            }
            (Some(v), None) => parse_num::<i32>("node.id", &v, 0, i32::MAX as i64)?,
            (None, Some(v)) => parse_num::<i32>("broker.id", &v, 0, i32::MAX as i64)?,
            (None, None) => 1,
        };
        let listeners = Listeners::from_properties(props)?;
        let log_dirs: Vec<PathBuf> = match get("log.dirs").or_else(|| get("log.dir")) {
            Some(v) => split_list(&v).into_iter().map(PathBuf::from).collect(),
            None => vec![PathBuf::from("data")],
        };
        if log_dirs.is_empty() {
            return Err(invalid("log.dirs", "", "at least one directory is required"));
        }
        if props.contains_key("zookeeper.connect") {
            warnings.push("zookeeper.connect is ignored: Fjord keeps cluster metadata in its own Raft quorum and needs no ZooKeeper".to_string());
        }
        for key in props.keys() {
            if !is_known_key(key) {
                warnings.push(format!("unknown config '{key}' is ignored"));
            }
        }
        Ok(BrokerConfig {
            given_keys: props.keys().cloned().collect(),
            node_id,
            cluster_id: get("cluster.id"),
            listeners,
            log_dirs,
            num_partitions: parse_opt(props, "num.partitions", 1, 1, 100_000)?,
            default_replication_factor: parse_opt(props, "default.replication.factor", 1, 1, i16::MAX as i64)?,
            auto_create_topics_enable: parse_bool_opt(props, "auto.create.topics.enable", true)?,
            delete_topic_enable: parse_bool_opt(props, "delete.topic.enable", true)?,
            socket_request_max_bytes: parse_opt(props, "socket.request.max.bytes", 104_857_600, 1024, i32::MAX as i64)?,
            fetch_max_bytes: parse_opt(props, "fetch.max.bytes", 57_671_680, 1024, i32::MAX as i64 / 2)?,
            max_connections: parse_opt(props, "max.connections", 10_000, 1, 1_000_000)?,
            connections_max_idle_ms: parse_opt(props, "connections.max.idle.ms", 600_000, 1, i64::MAX)?,
            num_network_threads: parse_opt(
                props,
                "num.network.threads",
                default_network_threads(),
                1,
                NUM_NETWORK_THREADS_MAX as i64,
            )?,
            log_retention_check_interval_ms: parse_opt(props, "log.retention.check.interval.ms", 300_000, 1, i64::MAX)?,
            log_flush_scheduler_interval_ms: parse_opt(
                props,
                "log.flush.scheduler.interval.ms",
                i64::MAX as u64,
                1,
                i64::MAX,
            )?,
            log_flush_offset_checkpoint_interval_ms: parse_opt(
                props,
                "log.flush.offset.checkpoint.interval.ms",
                60_000,
                1,
                i64::MAX,
            )?,
            group_initial_rebalance_delay_ms: parse_opt(
                props,
                "group.initial.rebalance.delay.ms",
                3000,
                0,
                i32::MAX as i64,
            )?,
            group_min_session_timeout_ms: parse_opt(props, "group.min.session.timeout.ms", 6000, 1, i32::MAX as i64)?,
            group_max_session_timeout_ms: parse_opt(
                props,
                "group.max.session.timeout.ms",
                1_800_000,
                1,
                i32::MAX as i64,
            )?,
            group_max_size: parse_opt(props, "group.max.size", 10_000, 1, 1_000_000)?,
            offsets_topic_num_partitions: parse_opt(props, "offsets.topic.num.partitions", 50, 1, 10_000)?,
            offset_metadata_max_bytes: parse_opt(props, "offset.metadata.max.bytes", 4096, 0, 1 << 20)?,
            offsets_retention_ms: parse_opt(props, "offsets.retention.minutes", 10_080i64, 1, i32::MAX as i64)?
                * 60_000,
            offsets_retention_check_interval_ms: parse_opt(
                props,
                "offsets.retention.check.interval.ms",
                600_000,
                1,
                i64::MAX,
            )?,
            producer_id_expiration_ms: parse_opt(props, "producer.id.expiration.ms", 86_400_000, 1, i32::MAX as i64)?,
            producer_id_expiration_check_interval_ms: parse_opt(
                props,
                "producer.id.expiration.check.interval.ms",
                600_000,
                1,
                i32::MAX as i64,
            )?,
            group_consumer_session_timeout_ms: parse_opt(
                props,
                "group.consumer.session.timeout.ms",
                45_000,
                1,
                i32::MAX as i64,
            )?,
            group_consumer_heartbeat_interval_ms: parse_opt(
                props,
                "group.consumer.heartbeat.interval.ms",
                5_000,
                1,
                i32::MAX as i64,
            )?,
            group_consumer_max_size: parse_opt(props, "group.consumer.max.size", 10_000, 1, 1_000_000)?,
            group_consumer_assignors: parse_assignors(props)?,
            log_page_cache_retain_bytes: parse_opt(
                props,
                "fjord.log.page.cache.retain.bytes",
                256 << 20,
                1 << 20,
                i64::MAX,
            )?,
            log_direct_io: parse_bool_opt(props, "fjord.log.direct.io", true)?,
            log_cleaner_enable: parse_bool_opt(props, "log.cleaner.enable", true)?,
            log_cleaner_backoff_ms: parse_opt(props, "log.cleaner.backoff.ms", 15_000, 1, i64::MAX)?,
            log_cleaner_dedupe_buffer_size: parse_opt(
                props,
                "log.cleaner.dedupe.buffer.size",
                134_217_728,
                1024,
                i32::MAX as i64,
            )?,
            log_cleaner_io_max_bytes_per_second: match props.get("log.cleaner.io.max.bytes.per.second") {
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| *x > 0.0)
                    .ok_or_else(|| invalid("log.cleaner.io.max.bytes.per.second", v, "must be a positive number"))?,
                None => f64::MAX,
            },
            topic_defaults: TopicConfig::from_broker_properties(props)?,
            warnings,
        })
    }
}

/// `group.consumer.assignors`: Kafka's short names or its class names.
fn parse_assignors(props: &BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "group.consumer.assignors";
    let Some(v) = props.get(KEY) else {
        return Ok(vec!["uniform".into(), "range".into()]);
    };
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let name = match item {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            _ => return Err(invalid(KEY, v, "known assignors are uniform and range")),
        };
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(invalid(KEY, v, "at least one assignor is required"));
    }
    Ok(out)
}

fn is_known_key(key: &str) -> bool {
    const KNOWN: &[&str] = &[
        "node.id",
        "broker.id",
        "cluster.id",
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "controller.listener.names",
        "inter.broker.listener.name",
        "port",
        "host.name",
        "advertised.host.name",
        "advertised.port",
        "log.dirs",
        "log.dir",
        "num.partitions",
        "default.replication.factor",
        "auto.create.topics.enable",
        "delete.topic.enable",
        "socket.request.max.bytes",
        "fetch.max.bytes",
        "max.connections",
        "connections.max.idle.ms",
        "num.network.threads",
        "log.retention.check.interval.ms",
        "log.flush.scheduler.interval.ms",
        "log.flush.offset.checkpoint.interval.ms",
        "zookeeper.connect",
        "group.initial.rebalance.delay.ms",
        "group.min.session.timeout.ms",
        "group.max.session.timeout.ms",
        "group.max.size",
        "offsets.topic.num.partitions",
        "offset.metadata.max.bytes",
        "offsets.retention.minutes",
        "offsets.retention.check.interval.ms",
        "producer.id.expiration.ms",
        "producer.id.expiration.check.interval.ms",
        "group.consumer.session.timeout.ms",
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.max.size",
        "group.consumer.assignors",
        "log.cleaner.enable",
        "fjord.log.page.cache.retain.bytes",
        "fjord.log.direct.io",
        "log.cleaner.backoff.ms",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.max.bytes.per.second",
    ];
    KNOWN.contains(&key) || ACCEPTED_WITHOUT_EFFECT.contains(&key) || topic::is_broker_topic_key(key)
}

pub fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(crate) fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

pub(crate) fn parse_num<T: TryFrom<i64>>(key: &str, value: &str, min: i64, max: i64) -> Result<T, ConfigError> {
    let n: i64 = value.trim().parse().map_err(|_| invalid(key, value, "not a number"))?;
    if n < min || n > max {
        return Err(invalid(key, value, &format!("must be between {min} and {max}")));
    }
    T::try_from(n).map_err(|_| invalid(key, value, "out of range"))
}

fn parse_opt<T: TryFrom<i64>>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, ConfigError> {
    match props.get(key) {
        Some(v) => parse_num(key, v, min, max),
        None => Ok(default),
    }
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn parse_bool_opt(props: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, ConfigError> {
    props.get(key).map(|v| parse_bool(key, v)).unwrap_or(Ok(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tutorial_keys_make_a_listener() {
        let c = BrokerConfig::from_properties(&props(&[
            ("broker.id", "10"),
            ("port", "9090"),
            ("host.name", "127.0.0.2"),
            ("advertised.host.name", "127.0.0.2"),
            ("zookeeper.connect", "127.0.0.1:2181"),
        ]))
        .unwrap();
        assert_eq!(c.node_id, 10);
        assert_eq!(c.listeners.all[0].port, 9090);
        assert_eq!(c.listeners.advertised[0].host, "127.0.0.2");
        assert!(c.warnings.iter().any(|w| w.contains("ZooKeeper")));
    }

    #[test]
    fn bad_value_names_key_and_value() {
        let e = BrokerConfig::from_properties(&props(&[("num.partitions", "lots")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'lots' for config 'num.partitions': not a number"
        );
    }

    /// One network thread per CPU unless set; a count of none, or past the limit, is an
    /// error naming key and value.
    #[test]
    fn network_threads_default_to_the_cpus_and_are_limited() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = BrokerConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.num_network_threads, cpus.min(NUM_NETWORK_THREADS_MAX));
        let c = BrokerConfig::from_properties(&props(&[("num.network.threads", "3")])).unwrap();
        assert_eq!(c.num_network_threads, 3);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for bad in ["0", "257", "-1"] {
            let e = BrokerConfig::from_properties(&props(&[("num.network.threads", bad)])).unwrap_err();
            assert!(e.to_string().contains("num.network.threads"), "{e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn unknown_key_warns() {
        let c = BrokerConfig::from_properties(&props(&[("no.such.key", "1")])).unwrap();
        assert_eq!(c.warnings, vec!["unknown config 'no.such.key' is ignored".to_string()]);
    }

    /// `node.id` and `broker.id` name one id: both set and different is refused, as
    /// Kafka refuses to start.
    #[test]
    fn node_id_and_broker_id_must_agree() {
        let e = BrokerConfig::from_properties(&props(&[("node.id", "1"), ("broker.id", "2")])).unwrap_err();
        assert!(e.to_string().contains("same value"), "{e}");
        let c = BrokerConfig::from_properties(&props(&[("node.id", "3"), ("broker.id", "3")])).unwrap();
        assert_eq!(c.node_id, 3);
    }
}
