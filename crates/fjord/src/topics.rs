//! `fjord topics`: kafka-topics.sh with the same flags and the same output.

use crate::client::{parse_pairs, Connect};
use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long, group = "action")]
    pub create: bool,
    #[arg(long, group = "action")]
    pub list: bool,
    #[arg(long, group = "action")]
    pub describe: bool,
    #[arg(long, group = "action")]
    pub delete: bool,
    #[arg(long, group = "action")]
    pub alter: bool,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partitions: Option<i32>,
    #[arg(long = "replication-factor")]
    pub replication_factor: Option<i32>,
    /// Topic config override, KEY=VALUE (repeatable).
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// Config keys to remove with --alter.
    #[arg(long = "delete-config")]
    pub delete_configs: Vec<String>,
    #[arg(long = "if-not-exists")]
    pub if_not_exists: bool,
    #[arg(long = "if-exists")]
    pub if_exists: bool,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

pub fn run(args: TopicsArgs) -> Result<()> {
    let bootstrap = args.connect.bootstrap()?;
    let config = args.connect.client_config()?;
    let admin: AdminClient<DefaultClientContext> = config.create().context("creating admin client")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    if args.create {
        let topic = args.topic.as_deref().ok_or_else(|| anyhow!("--create needs --topic"))?;
        let configs = parse_pairs(&args.configs, "--config")?;
        let partitions = args.partitions.unwrap_or(-1);
        let rf = args.replication_factor.unwrap_or(-1);
        let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
        for (k, v) in &configs {
            nt = nt.set(k, v);
        }
        let results = rt.block_on(admin.create_topics([&nt], &opts))?;
        for r in results {
            match r {
                Ok(name) => println!("Created topic {name}."),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {}
                Err((name, code)) => bail!("cannot create topic {name}: {code}"),
            }
        }
        return Ok(());
    }
    if args.delete {
        let topic = args.topic.as_deref().ok_or_else(|| anyhow!("--delete needs --topic"))?;
        for r in rt.block_on(admin.delete_topics(&[topic], &opts))? {
            match r {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {}
                Err((name, code)) => bail!("cannot delete topic {name}: {code}"),
            }
        }
        return Ok(());
    }
    if args.alter {
        return alter(&rt, &admin, &opts, &args);
    }
    let consumer: BaseConsumer = args
        .connect
        .client_config()?
        .create()
        .context("creating metadata client")?;
    let md = consumer
        .fetch_metadata(args.topic.as_deref(), timeout)
        .with_context(|| format!("fetching metadata from {bootstrap}"))?;
    if args.list {
        let mut names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
        names.sort_unstable();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    if args.describe {
        return describe(&bootstrap, &rt, &admin, &opts, &md, args.topic.as_deref());
    }
    bail!("one of --create, --list, --describe, --delete, --alter is required")
}

fn alter(
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    args: &TopicsArgs,
) -> Result<()> {
    let topic = args.topic.as_deref().ok_or_else(|| anyhow!("--alter needs --topic"))?;
    if let Some(p) = args.partitions {
        for r in rt.block_on(admin.create_partitions([&NewPartitions::new(topic, p as usize)], opts))? {
            if let Err((name, code)) = r {
                bail!("cannot change partitions of {name}: {code}");
            }
        }
    }
    if !args.configs.is_empty() || !args.delete_configs.is_empty() {
        // AlterConfigs replaces the whole set: start from the current overrides.
        let resource = ResourceSpecifier::Topic(topic);
        let current = rt.block_on(admin.describe_configs([&resource], opts))?;
        let mut overrides = std::collections::BTreeMap::new();
        if let Some(Ok(res)) = current.first() {
            for e in &res.entries {
                if matches!(e.source, ConfigSource::DynamicTopic) {
                    overrides.insert(e.name.clone(), e.value.clone().unwrap_or_default());
                }
            }
        }
        overrides.extend(parse_pairs(&args.configs, "--config")?);
        for k in &args.delete_configs {
            overrides.remove(k);
        }
        let mut ac = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in &overrides {
            ac = ac.set(k, v);
        }
        for r in rt.block_on(admin.alter_configs([&ac], opts))? {
            if let Err((_, code)) = r {
                bail!("cannot alter configs of {topic}: {code}");
            }
        }
    }
    Ok(())
}

/// Topic ids as Kafka prints them, from Metadata v12 (librdkafka's metadata has none).
/// Empty when the request fails: the ids are informational.
fn topic_ids(bootstrap: &str, names: &[&str]) -> std::collections::BTreeMap<String, String> {
    use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
    use kafka_protocol::messages::metadata_response::MetadataResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = MetadataRequest::default().with_topics(Some(
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(n.to_string())))))
            .collect(),
    ));
    let Ok(resp) = crate::admin_request::to_any_broker::<_, MetadataResponse>(bootstrap, ApiKey::Metadata, 12, &req)
    else {
        return Default::default();
    };
    resp.topics
        .iter()
        .filter(|t| !t.topic_id.is_nil())
        .filter_map(|t| {
            Some((
                t.name.as_ref()?.to_string(),
                broker::log::checkpoint::topic_id_to_string(t.topic_id),
            ))
        })
        .collect()
}

fn describe(
    bootstrap: &str,
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    md: &rdkafka::metadata::Metadata,
    only: Option<&str>,
) -> Result<()> {
    let mut topics: Vec<_> = md
        .topics()
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name()))
        .collect();
    topics.sort_by_key(|t| t.name());
    if topics.is_empty() || topics.iter().any(|t| t.error().is_some()) {
        bail!("topic '{}' does not exist", only.unwrap_or(""));
    }
    let ids = topic_ids(bootstrap, &topics.iter().map(|t| t.name()).collect::<Vec<_>>());
    for t in topics {
        let resource = ResourceSpecifier::Topic(t.name());
        let configs = rt.block_on(admin.describe_configs([&resource], opts))?;
        let mut set = Vec::new();
        if let Some(Ok(res)) = configs.first() {
            for e in &res.entries {
                if matches!(e.source, ConfigSource::DynamicTopic) {
                    set.push(format!("{}={}", e.name, e.value.clone().unwrap_or_default()));
                }
            }
        }
        let rf = t.partitions().first().map(|p| p.replicas().len()).unwrap_or(0);
        let id = ids
            .get(t.name())
            .map(|id| format!("\tTopicId: {id}"))
            .unwrap_or_default();
        println!(
            "Topic: {}{id}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            t.name(),
            t.partitions().len(),
            rf,
            set.join(",")
        );
        let join = |v: &[i32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        for p in t.partitions() {
            // As Kafka's tool: a partition without a leader (its replicas offline) says so.
            let leader = match p.leader() {
                -1 => "none".to_string(),
                id => id.to_string(),
            };
            println!(
                "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                t.name(),
                p.id(),
                join(p.replicas()),
                join(p.isr())
            );
        }
    }
    Ok(())
}
