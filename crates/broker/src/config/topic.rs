//! Per-topic configs (`retention.ms`, `segment.bytes`, ...), their broker-level synonyms
//! (`log.retention.ms`, `log.segment.bytes`, ...) and Kafka's defaults.
//!
//! Contract: a `TopicConfig` is always valid; `apply` validates before it mutates.

use super::{invalid, parse_bool, parse_num, ConfigError};
use std::collections::{BTreeMap, BTreeSet};

/// The type of a topic config's value, for validation and for DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

/// One topic config key: its name, the broker key that sets its default (empty for
/// the few that have none, as in Kafka's `ServerTopicConfigSynonyms`), and its type.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigKey {
    pub name: &'static str,
    pub broker_key: &'static str,
    pub config_type: ConfigType,
}

impl TopicConfigKey {
    /// The broker key that sets this config's default, if there is one.
    pub fn broker_key(&self) -> Option<&'static str> {
        (!self.broker_key.is_empty()).then_some(self.broker_key)
    }
}

const fn key(name: &'static str, broker_key: &'static str, config_type: ConfigType) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_key,
        config_type,
    }
}

/// Every topic config Fjord has, in Kafka's names.
pub const TOPIC_CONFIG_KEYS: &[TopicConfigKey] = &[
    key("cleanup.policy", "log.cleanup.policy", ConfigType::List),
    key("compression.gzip.level", "compression.gzip.level", ConfigType::Int),
    key("compression.lz4.level", "compression.lz4.level", ConfigType::Int),
    key("compression.type", "compression.type", ConfigType::String),
    key("compression.zstd.level", "compression.zstd.level", ConfigType::Int),
    key(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ConfigType::Long,
    ),
    key("file.delete.delay.ms", "log.segment.delete.delay.ms", ConfigType::Long),
    key("flush.messages", "log.flush.interval.messages", ConfigType::Long),
    key("flush.ms", "log.flush.interval.ms", ConfigType::Long),
    key("follower.replication.throttled.replicas", "", ConfigType::List),
    key("index.interval.bytes", "log.index.interval.bytes", ConfigType::Int),
    key("leader.replication.throttled.replicas", "", ConfigType::List),
    key("local.retention.bytes", "log.local.retention.bytes", ConfigType::Long),
    key("local.retention.ms", "log.local.retention.ms", ConfigType::Long),
    key(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        ConfigType::Long,
    ),
    key("max.message.bytes", "message.max.bytes", ConfigType::Int),
    key(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        ConfigType::Long,
    ),
    key(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
    ),
    key(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigType::String,
    ),
    key(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        ConfigType::Double,
    ),
    key(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ConfigType::Long,
    ),
    key("min.insync.replicas", "min.insync.replicas", ConfigType::Int),
    key("preallocate", "log.preallocate", ConfigType::Boolean),
    key("remote.log.copy.disable", "", ConfigType::Boolean),
    key("remote.log.delete.on.disable", "", ConfigType::Boolean),
    key("remote.storage.enable", "", ConfigType::Boolean),
    key("retention.bytes", "log.retention.bytes", ConfigType::Long),
    key("retention.ms", "log.retention.ms", ConfigType::Long),
    key("segment.bytes", "log.segment.bytes", ConfigType::Int),
    key("segment.index.bytes", "log.index.size.max.bytes", ConfigType::Int),
    key("segment.jitter.ms", "log.roll.jitter.ms", ConfigType::Long),
    key("segment.ms", "log.roll.ms", ConfigType::Long),
    key(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigType::Boolean,
    ),
];

/// Broker keys that set a topic default in other units.
const BROKER_UNIT_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.retention.hours", "retention.ms", 3_600_000),
    ("log.retention.minutes", "retention.ms", 60_000),
    ("log.roll.hours", "segment.ms", 3_600_000),
    ("log.roll.jitter.hours", "segment.jitter.ms", 3_600_000),
];

pub(crate) fn is_broker_topic_key(key: &str) -> bool {
    TOPIC_CONFIG_KEYS.iter().any(|k| k.broker_key() == Some(key))
        || BROKER_UNIT_SYNONYMS.iter().any(|(b, _, _)| *b == key)
}

pub fn topic_key(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIG_KEYS.iter().find(|k| k.name == name)
}

/// Validated topic configuration: broker defaults with the topic's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub cleanup_policy_delete: bool,
    pub cleanup_policy_compact: bool,
    pub compression_type: String,
    /// The levels a batch is recompressed at for `compression.type` (KIP-390).
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: i32,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_after_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_log_append_time: bool,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub segment_bytes: i32,
    pub segment_index_bytes: i32,
    pub segment_jitter_ms: i64,
    pub segment_ms: i64,
    pub unclean_leader_election_enable: bool,
    /// Tiered storage's configs: accepted and described as Kafka's, with no effect, as
    /// a Kafka broker without `remote.log.storage.system.enable` has none; enabling
    /// `remote.storage.enable` is refused as there.
    pub local_retention_bytes: i64,
    pub local_retention_ms: i64,
    pub remote_log_copy_disable: bool,
    pub remote_log_delete_on_disable: bool,
    /// Replication throttles ("", "*" or partition:broker pairs): kept for the cluster.
    pub leader_replication_throttled_replicas: String,
    pub follower_replication_throttled_replicas: String,
    /// Topic keys whose default was set in the broker's properties (for DescribeConfigs).
    pub broker_set: BTreeSet<&'static str>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            compression_type: "producer".into(),
            // Kafka's defaults: gzip's own default (-1), lz4 9, zstd 3.
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            delete_retention_ms: 86_400_000,
            file_delete_delay_ms: 60_000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            index_interval_bytes: 4096,
            max_compaction_lag_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            message_timestamp_after_max_ms: 3_600_000,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_log_append_time: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            min_insync_replicas: 1,
            preallocate: false,
            retention_bytes: -1,
            retention_ms: 604_800_000,
            segment_bytes: 1_073_741_824,
            segment_index_bytes: 10_485_760,
            segment_jitter_ms: 0,
            segment_ms: 604_800_000,
            unclean_leader_election_enable: false,
            local_retention_bytes: -2,
            local_retention_ms: -2,
            remote_log_copy_disable: false,
            remote_log_delete_on_disable: false,
            leader_replication_throttled_replicas: String::new(),
            follower_replication_throttled_replicas: String::new(),
            broker_set: BTreeSet::new(),
        }
    }
}

impl TopicConfig {
    /// Defaults from the broker's `log.*` keys. The more precise unit wins, as in Kafka
    /// (`log.retention.ms` over `.minutes` over `.hours`).
    pub fn from_broker_properties(props: &BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::default();
        // Applied coarsest first, so the finer unit overwrites: `.minutes` over `.hours`
        // (then `log.retention.ms` itself, below, over both).
        for (broker_key, topic_name, factor) in BROKER_UNIT_SYNONYMS {
            if let Some(v) = props.get(*broker_key) {
                let n: i64 = parse_num(broker_key, v, -1, i64::MAX / factor)?;
                let ms = if n < 0 { -1 } else { n * factor };
                config.apply_as(topic_name, &ms.to_string(), broker_key)?;
            }
        }
        for k in TOPIC_CONFIG_KEYS {
            if let Some((broker_key, v)) = k.broker_key().and_then(|b| Some((b, props.get(b)?))) {
                config.apply_as(k.name, v, broker_key)?;
            }
        }
        Ok(config)
    }

    /// Applies topic-level overrides; the error names the first bad one.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        let mut config = self.clone();
        for (k, v) in overrides {
            config.apply(k, v)?;
        }
        Ok(config)
    }

    /// Kafka's `LogConfig.validateValues`: the checks across configs, made where a
    /// config is set (not at load, so that a topic stored before a check was added
    /// still loads).
    pub fn validate_values(&self) -> Result<(), ConfigError> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(invalid(
                "min.compaction.lag.ms",
                &self.min_compaction_lag_ms.to_string(),
                &format!(
                    "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
                    self.min_compaction_lag_ms, self.max_compaction_lag_ms
                ),
            ));
        }
        Ok(())
    }

    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        self.apply_as(name, value, name)
    }

    fn apply_as(&mut self, name: &str, value: &str, shown: &str) -> Result<(), ConfigError> {
        let spec = topic_key(name).ok_or_else(|| ConfigError::UnknownTopicConfig(shown.to_string()))?;
        let long = |min: i64| parse_num::<i64>(shown, value, min, i64::MAX);
        let int = |min: i64| parse_num::<i32>(shown, value, min, i32::MAX as i64);
        match name {
            "cleanup.policy" => {
                let mut delete = false;
                let mut compact = false;
                for p in super::split_list(value) {
                    match p.as_str() {
                        "delete" => delete = true,
                        "compact" => compact = true,
                        _ => return Err(invalid(shown, value, "expected delete, compact or both")),
                    }
                }
                self.cleanup_policy_delete = delete;
                self.cleanup_policy_compact = compact;
            }
            "compression.type" => {
                const CODECS: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
                if !CODECS.contains(&value) {
                    return Err(invalid(
                        shown,
                        value,
                        "expected one of producer, uncompressed, gzip, snappy, lz4, zstd",
                    ));
                }
                self.compression_type = value.to_string();
            }
            // Kafka's ranges: gzip -1 or 1 to 9 (Deflater's), lz4 1 to 17, zstd
            // -131072 to 22 (Zstd.minCompressionLevel to maxCompressionLevel).
            "compression.gzip.level" => {
                let level = int(-1)?;
                if level == 0 || level > 9 {
                    return Err(invalid(shown, value, "must be -1 or between 1 and 9"));
                }
                self.compression_gzip_level = level;
            }
            "compression.lz4.level" => {
                self.compression_lz4_level = parse_num::<i32>(shown, value, 1, 17)?;
            }
            "compression.zstd.level" => {
                self.compression_zstd_level = parse_num::<i32>(shown, value, -131_072, 22)?;
            }
            "delete.retention.ms" => self.delete_retention_ms = long(0)?,
            "file.delete.delay.ms" => self.file_delete_delay_ms = long(0)?,
            "flush.messages" => self.flush_messages = long(1)?,
            "flush.ms" => self.flush_ms = long(0)?,
            "index.interval.bytes" => self.index_interval_bytes = int(0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = long(1)?,
            "max.message.bytes" => self.max_message_bytes = int(0)?,
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms = long(0)?,
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms = long(0)?,
            "message.timestamp.type" => {
                self.message_timestamp_log_append_time = match value {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => return Err(invalid(shown, value, "expected CreateTime or LogAppendTime")),
                }
            }
            "min.cleanable.dirty.ratio" => {
                let r: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(shown, value, "not a number"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(invalid(shown, value, "must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = r;
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = long(0)?,
            "min.insync.replicas" => self.min_insync_replicas = int(1)?,
            "preallocate" => self.preallocate = parse_bool(shown, value)?,
            // No lower bound, as Kafka's `LogConfig`: any negative size is no limit.
            "retention.bytes" => self.retention_bytes = long(i64::MIN)?,
            "retention.ms" => self.retention_ms = long(-1)?,
            "segment.bytes" => self.segment_bytes = int(14)?,
            "segment.index.bytes" => self.segment_index_bytes = int(4)?,
            "segment.jitter.ms" => self.segment_jitter_ms = long(0)?,
            "segment.ms" => self.segment_ms = long(1)?,
            "unclean.leader.election.enable" => self.unclean_leader_election_enable = parse_bool(shown, value)?,
            "local.retention.bytes" => self.local_retention_bytes = long(-2)?,
            "local.retention.ms" => self.local_retention_ms = long(-2)?,
            "remote.log.copy.disable" => self.remote_log_copy_disable = parse_bool(shown, value)?,
            "remote.log.delete.on.disable" => self.remote_log_delete_on_disable = parse_bool(shown, value)?,
            "remote.storage.enable" => {
                if parse_bool(shown, value)? {
                    // Kafka's `validateRemoteStorageOnlyIfSystemEnabled`: Fjord has no
                    // remote log storage system.
                    return Err(ConfigError::Refused(
                        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into(),
                    ));
                }
            }
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas = throttled_replicas(shown, value)?;
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas = throttled_replicas(shown, value)?;
            }
            _ => return Err(ConfigError::UnknownTopicConfig(shown.to_string())),
        }
        if shown != name {
            self.broker_set.insert(spec.name);
        }
        Ok(())
    }

    /// The value of a topic config as Kafka prints it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => match (self.cleanup_policy_delete, self.cleanup_policy_compact) {
                (true, true) => "compact,delete".into(),
                (false, true) => "compact".into(),
                (true, false) => "delete".into(),
                (false, false) => "".into(),
            },
            "compression.type" => self.compression_type.clone(),
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.type" => {
                if self.message_timestamp_log_append_time {
                    "LogAppendTime".into()
                } else {
                    "CreateTime".into()
                }
            }
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "remote.log.copy.disable" => self.remote_log_copy_disable.to_string(),
            "remote.log.delete.on.disable" => self.remote_log_delete_on_disable.to_string(),
            "remote.storage.enable" => "false".into(),
            "leader.replication.throttled.replicas" => self.leader_replication_throttled_replicas.clone(),
            "follower.replication.throttled.replicas" => self.follower_replication_throttled_replicas.clone(),
            _ => return None,
        })
    }
}

/// Kafka's `ThrottledReplicaListValidator`: the literal `*`, or a list of
/// `partition:broker` pairs (empty items allowed). Returned as Kafka lists it.
fn throttled_replicas(key: &str, value: &str) -> Result<String, ConfigError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let pair = |s: &str| {
        s.is_empty()
            || s.split_once(':').is_some_and(|(p, b)| {
                !p.is_empty() && !b.is_empty() && p.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            })
    };
    if items.concat() == "*" || items.iter().all(|s| pair(s)) {
        return Ok(super::split_list(value).join(","));
    }
    Err(invalid(
        key,
        value,
        &format!("{key} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let c = TopicConfig::default();
        for k in TOPIC_CONFIG_KEYS {
            let v = c.get(k.name).unwrap();
            let mut d = TopicConfig::default();
            if !v.is_empty() {
                d.apply(k.name, &v).unwrap();
            }
            assert_eq!(d.get(k.name).unwrap(), v, "{}", k.name);
        }
    }

    /// retention.bytes has no lower bound in Kafka: any negative size means no limit.
    #[test]
    fn any_negative_retention_bytes_is_no_limit() {
        let mut c = TopicConfig::default();
        c.apply("retention.bytes", "-5").unwrap();
        assert_eq!(c.retention_bytes, -5);
        assert!(c.apply("retention.ms", "-5").is_err(), "retention.ms stays at least -1");
    }

    #[test]
    fn hours_convert_and_ms_wins() {
        let props: BTreeMap<String, String> = [("log.retention.hours", "1"), ("log.retention.ms", "5000")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(TopicConfig::from_broker_properties(&props).unwrap().retention_ms, 5000);
    }

    /// `.minutes` wins over `.hours` (Kafka's `KafkaConfig.logRetentionTimeMillis`):
    /// the shipped server.properties sets hours, and an override in minutes must count.
    #[test]
    fn minutes_win_over_hours() {
        let props: BTreeMap<String, String> = [("log.retention.hours", "168"), ("log.retention.minutes", "5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            TopicConfig::from_broker_properties(&props).unwrap().retention_ms,
            300_000
        );
    }

    /// The checks across configs: a minimum compaction lag above the maximum is refused.
    #[test]
    fn a_min_compaction_lag_above_the_max_is_refused() {
        let overrides: BTreeMap<String, String> = [("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", "5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let config = TopicConfig::default().with_overrides(&overrides).unwrap();
        let refused = config.validate_values().unwrap_err().to_string();
        assert!(refused.contains("conflict topic config setting"), "{refused}");
        let mut fine = overrides.clone();
        fine.insert("max.compaction.lag.ms".into(), "10".into());
        assert!(TopicConfig::default()
            .with_overrides(&fine)
            .unwrap()
            .validate_values()
            .is_ok());
    }
}

#[cfg(test)]
mod tiered_and_throttle_tests {
    use super::*;

    #[test]
    fn tiered_storage_configs_are_kafkas_and_remote_storage_is_refused() {
        let mut c = TopicConfig::default();
        assert_eq!(c.get("local.retention.ms").as_deref(), Some("-2"));
        c.apply("local.retention.bytes", "1000").expect("a size");
        assert!(c.apply("local.retention.ms", "-3").is_err(), "at least -2");
        c.apply("remote.storage.enable", "false").expect("false is the default");
        let refused = c.apply("remote.storage.enable", "true").unwrap_err().to_string();
        assert_eq!(
            refused,
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
        );
    }

    #[test]
    fn throttled_replicas_are_star_or_pairs() {
        let mut c = TopicConfig::default();
        c.apply("leader.replication.throttled.replicas", "0:1, 1:2")
            .expect("pairs");
        assert_eq!(
            c.get("leader.replication.throttled.replicas").as_deref(),
            Some("0:1,1:2")
        );
        c.apply("follower.replication.throttled.replicas", "*").expect("star");
        for bad in ["0:x", "1", "*,0:1", ":1"] {
            assert!(c.apply("leader.replication.throttled.replicas", bad).is_err(), "{bad}");
        }
    }
}
