//! `fjord get-offsets`: prints `topic:partition:offset` for each partition the filters
//! select (kafka-get-offsets.sh, Kafka's `GetOffsetShell`): `--time` -1 (latest), -2
//! (earliest), -3 (the record with the largest timestamp), -4 (earliest local), -5
//! (latest tiered) or a timestamp in ms. `--topic` is a regular expression over whole
//! names (every topic without it), `--partitions` a list of ids, and
//! `--topic-partitions` a list of `REGEX[:P | :FIRST-LAST]` rules (LAST excluded).

use crate::client::Connect;
use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::HashSet;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    /// A regular expression over whole topic names (`,` for `|`); every topic without it.
    #[arg(long)]
    pub topic: Option<String>,
    /// Comma-separated partition ids (default: all).
    #[arg(long)]
    pub partitions: Option<String>,
    /// Comma-separated rules REGEX, REGEX:P, REGEX:FIRST-LAST, REGEX:-LAST or :P...
    /// (LAST excluded); not with --topic or --partitions.
    #[arg(long = "topic-partitions")]
    pub topic_partitions: Option<String>,
    /// Leave out internal topics (__consumer_offsets).
    #[arg(long = "exclude-internal-topics")]
    pub exclude_internal_topics: bool,
    /// -1 or latest, -2 or earliest, -3 or max-timestamp, -4 or earliest-local, -5 or
    /// latest-tiered, or a timestamp in ms.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub time: String,
}

/// Which partitions of a topic a rule takes: Kafka's `PartitionsSetFilter` (empty: all)
/// and `PartitionRangeFilter` (`[first, last)`).
enum Partitions {
    Set(HashSet<i32>),
    Range(i32, i32),
}

impl Partitions {
    fn allows(&self, p: i32) -> bool {
        match self {
            Partitions::Set(ids) => ids.is_empty() || ids.contains(&p),
            Partitions::Range(first, last) => p >= *first && p < *last,
        }
    }
}

/// One rule: the topics its regular expression matches (all without one), and which
/// of their partitions.
struct Rule {
    topics: Option<regex::Regex>,
    partitions: Partitions,
}

pub fn run(args: Args) -> Result<()> {
    if args.topic_partitions.is_some() && (args.topic.is_some() || args.partitions.is_some()) {
        bail!("--topic-partitions cannot be used with --topic or --partitions");
    }
    let time = parse_time(&args.time)?;
    let rules = match &args.topic_partitions {
        Some(list) => list.split(',').map(parse_rule).collect::<Result<Vec<_>>>()?,
        None => vec![Rule {
            topics: args.topic.as_deref().map(crate::topics::include_list).transpose()?,
            partitions: Partitions::Set(partition_set(args.partitions.as_deref())?),
        }],
    };
    let consumer: BaseConsumer = args.connect.client_config()?.create().context("creating client")?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .context("fetching metadata")?;
    let mut selected: Vec<(String, i32)> = Vec::new();
    for t in md.topics().iter().filter(|t| t.error().is_none()) {
        if args.exclude_internal_topics && broker::metadata::is_internal_topic(t.name()) {
            continue;
        }
        for p in t.partitions() {
            let allowed = rules
                .iter()
                .any(|r| r.topics.as_ref().is_none_or(|re| re.is_match(t.name())) && r.partitions.allows(p.id()));
            if allowed {
                selected.push((t.name().to_string(), p.id()));
            }
        }
    }
    if selected.is_empty() {
        bail!("Could not match any topic-partitions with the specified filters");
    }
    // Kafka's order: by "topic-partition" as a string.
    selected.sort_by_key(|(t, p)| format!("{t}-{p}"));
    for (topic, partition, offset) in list_offsets(&args.connect.bootstrap()?, &selected, time)? {
        outln!("{topic}:{partition}:{offset}");
    }
    Ok(())
}

/// Kafka's `parseOffsetSpec`.
fn parse_time(time: &str) -> Result<i64> {
    let spec = match time {
        "latest" => -1,
        "earliest" => -2,
        "max-timestamp" => -3,
        "earliest-local" => -4,
        "latest-tiered" => -5,
        t => t.parse::<i64>().ok().filter(|t| *t >= -5).unwrap_or(i64::MIN),
    };
    if spec == i64::MIN {
        bail!(
            "Malformed time argument {time}. Please use -1 or latest / -2 or earliest / -3 or max-timestamp / -4 or earliest-local / -5 or latest-tiered, or a specified long format timestamp"
        );
    }
    Ok(spec)
}

/// `--partitions`: Kafka's `createPartitionSet`.
fn partition_set(list: Option<&str>) -> Result<HashSet<i32>> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(HashSet::new());
    };
    list.split(',')
        .map(|p| p.parse::<i32>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            anyhow::anyhow!(
                "--partitions expects a comma separated list of numeric partition ids, but received: {list}"
            )
        })
}

/// One `--topic-partitions` rule, as Kafka's `TOPIC_PARTITION_PATTERN`:
/// `([^:,]*)(?::(?:([0-9]*)|(?:([0-9]*)-([0-9]*))))?`.
fn parse_rule(spec: &str) -> Result<Rule> {
    let invalid = || anyhow::anyhow!("Invalid rule specification: {spec}");
    let (topic, partitions) = match spec.split_once(':') {
        Some((t, p)) => (t, Some(p)),
        None => (spec, None),
    };
    let number = |s: &str| -> Result<Option<i32>> {
        if s.is_empty() {
            return Ok(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        s.parse().map(Some).map_err(|_| invalid())
    };
    let partitions = match partitions {
        None => Partitions::Range(0, i32::MAX),
        Some(p) => match p.split_once('-') {
            Some((first, last)) => Partitions::Range(number(first)?.unwrap_or(0), number(last)?.unwrap_or(i32::MAX)),
            None => match number(p)? {
                Some(id) => Partitions::Set(HashSet::from([id])),
                None => Partitions::Range(0, i32::MAX),
            },
        },
    };
    let topics = (!topic.is_empty())
        .then(|| crate::topics::include_list(topic))
        .transpose()?;
    Ok(Rule { topics, partitions })
}

/// ListOffsets (v9, which asks for every `--time`) for `partitions`: their
/// `(topic, partition, offset)`, leaving out a partition with no such offset (-1), and
/// one whose answer is an error, said on stderr as Kafka's tool says it.
fn list_offsets(bootstrap: &str, partitions: &[(String, i32)], time: i64) -> Result<Vec<(String, i32, i64)>> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
    use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
    use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for (topic, partition) in partitions {
        let entry = ListOffsetsPartition::default()
            .with_partition_index(*partition)
            .with_timestamp(time);
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    // One broker leads every partition today; with the cluster this goes to each leader.
    let resp: ListOffsetsResponse = crate::admin_request::to_any_broker(bootstrap, ApiKey::ListOffsets, 9, &req)?;
    let mut out = Vec::new();
    for (topic, partition) in partitions {
        let answer = resp
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == *partition);
        match answer {
            Some(p) if p.error_code != 0 => {
                let error = kafka_protocol::error::ResponseError::try_from_code(p.error_code)
                    .map_or_else(|| format!("error code {}", p.error_code), |e| e.to_string());
                eprintln!("Skip getting offsets for topic-partition {topic}-{partition} due to error: {error}");
            }
            Some(p) if p.offset >= 0 => out.push((topic.clone(), *partition, p.offset)),
            Some(_) => {}
            None => eprintln!("Skip getting offsets for topic-partition {topic}-{partition} due to error: no answer"),
        }
    }
    Ok(out)
}
