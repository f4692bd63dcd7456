//! `fjord get-offsets`: prints `topic:partition:offset` per partition for `--time`
//! -1 (latest), -2 (earliest), -3 (the record with the largest timestamp) or a timestamp
//! in ms (kafka-get-offsets.sh).

use crate::client::Connect;
use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: String,
    /// Comma-separated partition ids (default: all).
    #[arg(long)]
    pub partitions: Option<String>,
    /// -1 or latest, -2 or earliest, or a timestamp in ms.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub time: String,
}

pub fn run(args: Args) -> Result<()> {
    let consumer: BaseConsumer = args.connect.client_config()?.create().context("creating client")?;
    let timeout = Duration::from_secs(30);
    let md = consumer.fetch_metadata(Some(&args.topic), timeout)?;
    let Some(topic) = md
        .topics()
        .iter()
        .find(|t| t.name() == args.topic && t.error().is_none())
    else {
        bail!("topic '{}' does not exist", args.topic);
    };
    let wanted: Option<Vec<i32>> = match &args.partitions {
        Some(p) => Some(
            p.split(',')
                .map(|x| x.trim().parse().with_context(|| format!("--partitions: bad id '{x}'")))
                .collect::<Result<_>>()?,
        ),
        None => None,
    };
    let mut ids: Vec<i32> = topic
        .partitions()
        .iter()
        .map(|p| p.id())
        .filter(|id| wanted.as_ref().is_none_or(|w| w.contains(id)))
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        bail!("Could not match any topic-partitions with the specified filters");
    }
    let time = match args.time.as_str() {
        "latest" => -1,
        "earliest" => -2,
        "max-timestamp" => -3,
        t => t.parse::<i64>().with_context(|| {
            format!("--time expects -1, -2, -3, latest, earliest, max-timestamp or a timestamp, got '{t}'")
        })?,
    };
    if time < -3 {
        bail!("--time {time} is not supported; use -1, -2, -3 or a timestamp");
    }
    if time == -3 {
        return max_timestamp_offsets(&args.connect.bootstrap()?, &args.topic, &ids);
    }
    if time >= 0 {
        let mut tpl = TopicPartitionList::new();
        for id in &ids {
            tpl.add_partition_offset(&args.topic, *id, Offset::Offset(time))?;
        }
        let result = consumer.offsets_for_times(tpl, timeout)?;
        // As Kafka's GetOffsetShell: a partition with no record at or after the time
        // (UNKNOWN_OFFSET) prints no line.
        for e in result.elements() {
            if let Offset::Offset(offset) = e.offset() {
                outln!("{}:{}:{}", e.topic(), e.partition(), offset);
            }
        }
        return Ok(());
    }
    for id in ids {
        let (low, high) = consumer.fetch_watermarks(&args.topic, id, timeout)?;
        outln!("{}:{}:{}", args.topic, id, if time == -2 { low } else { high });
    }
    Ok(())
}

/// `--time -3`: the offset of the record with the largest timestamp (ListOffsets v7+),
/// which librdkafka's offsets_for_times cannot ask for.
fn max_timestamp_offsets(bootstrap: &str, topic: &str, ids: &[i32]) -> Result<()> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
    use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
    use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                ids.iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(-3)
                    })
                    .collect(),
            )]);
    // One broker leads every partition today; with the cluster this goes to each leader.
    let resp: ListOffsetsResponse = crate::admin_request::to_any_broker(bootstrap, ApiKey::ListOffsets, 7, &req)?;
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!("{}:{}: error code {}", t.name.as_str(), p.partition_index, p.error_code);
            }
            if p.offset >= 0 {
                outln!("{}:{}:{}", t.name.as_str(), p.partition_index, p.offset);
            }
        }
    }
    Ok(())
}
