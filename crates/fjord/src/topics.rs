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
    /// The topic; with --list, --describe, --alter and --delete a regular expression
    /// (`,` for `|`), as Kafka's tool takes it.
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
    /// With --list or --describe: leave out internal topics (`__consumer_offsets`).
    #[arg(long = "exclude-internal")]
    pub exclude_internal: bool,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

pub fn run(args: TopicsArgs) -> Result<()> {
    check_args(&args)?;
    let bootstrap = args.connect.bootstrap()?;
    let config = args.connect.client_config()?;
    let admin: AdminClient<DefaultClientContext> = config.create().context("creating admin client")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    if args.create {
        return create(&rt, &admin, &opts, &args);
    }
    let consumer: BaseConsumer = args
        .connect
        .client_config()?
        .create()
        .context("creating metadata client")?;
    let md = consumer
        .fetch_metadata(None, timeout)
        .with_context(|| format!("fetching metadata from {bootstrap}"))?;
    let topics = matching_topics(&md, args.topic.as_deref(), args.exclude_internal)?;
    if args.list {
        for t in &topics {
            outln!("{}", t.name());
        }
        return Ok(());
    }
    // Kafka's `ensureTopicExists`: a --topic that matches nothing is an error unless
    // --if-exists.
    if let Some(requested) = &args.topic {
        if topics.is_empty() && !args.if_exists {
            bail!("Topic '{requested}' does not exist as expected");
        }
    }
    let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
    if args.delete {
        if let Some(internal) = names.iter().find(|n| broker::metadata::is_internal_topic(n)) {
            bail!("Topic {internal} is a kafka internal topic and is not allowed to be marked for deletion.");
        }
        for r in rt.block_on(admin.delete_topics(&names, &opts))? {
            match r {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {}
                Err((name, code)) => bail!("cannot delete topic {name}: {code}"),
            }
        }
        return Ok(());
    }
    if args.alter {
        for name in names {
            alter(&rt, &admin, &opts, &args, name)?;
        }
        return Ok(());
    }
    describe(&bootstrap, &rt, &admin, &opts, &topics)
}

/// The option checks of Kafka's `TopicCommandOptions.checkArgs`, with its messages,
/// before anything is sent. One difference: Fjord's `--alter` takes `--config` and
/// `--delete-config` (Kafka 4's sends topic configs to kafka-configs.sh).
fn check_args(a: &TopicsArgs) -> Result<()> {
    if ![a.create, a.list, a.describe, a.delete, a.alter].contains(&true) {
        bail!("Command must include exactly one action: --list, --describe, --create, --alter or --delete");
    }
    if (a.create || a.alter || a.delete) && a.topic.is_none() {
        bail!("Missing required argument \"[topic]\"");
    }
    if a.describe && a.if_exists && a.topic.is_none() {
        bail!("--topic or --topic-id is required to describe a topic");
    }
    if a.alter && a.partitions.is_none() && a.configs.is_empty() && a.delete_configs.is_empty() {
        bail!("Missing required argument \"[partitions]\" (or --config, --delete-config)");
    }
    let action = ["create", "list", "describe", "delete", "alter"]
        .into_iter()
        .zip([a.create, a.list, a.describe, a.delete, a.alter])
        .find_map(|(n, on)| on.then_some(n))
        .unwrap_or("list");
    let allowed: [(&str, bool, &[&str]); 6] = [
        ("config", !a.configs.is_empty(), &["alter", "create"]),
        ("partitions", a.partitions.is_some(), &["alter", "create"]),
        ("replication-factor", a.replication_factor.is_some(), &["create"]),
        ("if-exists", a.if_exists, &["alter", "delete", "describe"]),
        ("if-not-exists", a.if_not_exists, &["create"]),
        ("exclude-internal", a.exclude_internal, &["list", "describe"]),
    ];
    for (option, used, actions) in allowed {
        if used && !actions.contains(&action) {
            bail!("Option \"[{option}]\" can't be used with option \"[{action}]\"");
        }
    }
    if !a.delete_configs.is_empty() && !a.alter {
        bail!("Option \"[delete-config]\" can't be used with option \"[{action}]\"");
    }
    Ok(())
}

/// Kafka's `IncludeList`: a regular expression over the whole name, `,` read as `|`,
/// spaces and surrounding quotes dropped.
pub fn include_list(raw: &str) -> Result<regex::Regex> {
    let regex = raw
        .trim()
        .replace(',', "|")
        .replace(' ', "")
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    regex::Regex::new(&format!("^(?:{regex})$")).map_err(|_| anyhow!("{regex} is an invalid regex."))
}

/// The topics `--topic` matches, as Kafka's `IncludeList`: a regular expression over
/// the whole name, `,` read as `|`, spaces and surrounding quotes dropped; every topic
/// without `--topic`. Sorted by name.
fn matching_topics<'a>(
    md: &'a rdkafka::metadata::Metadata,
    topic: Option<&str>,
    exclude_internal: bool,
) -> Result<Vec<&'a rdkafka::metadata::MetadataTopic>> {
    let pattern = topic.map(include_list).transpose()?;
    let mut out: Vec<_> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .filter(|t| pattern.as_ref().is_none_or(|p| p.is_match(t.name())))
        .filter(|t| !(exclude_internal && broker::metadata::is_internal_topic(t.name())))
        .collect();
    out.sort_by_key(|t| t.name());
    Ok(out)
}

fn create(
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    args: &TopicsArgs,
) -> Result<()> {
    let topic = args.topic.as_deref().ok_or_else(|| anyhow!("--create needs --topic"))?;
    let configs = parse_pairs(&args.configs, "--config")?;
    let partitions = args.partitions.unwrap_or(-1);
    let rf = args.replication_factor.unwrap_or(-1);
    let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    for (k, v) in &configs {
        nt = nt.set(k, v);
    }
    for r in rt.block_on(admin.create_topics([&nt], opts))? {
        match r {
            Ok(name) => outln!("Created topic {name}."),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

fn alter(
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    args: &TopicsArgs,
    topic: &str,
) -> Result<()> {
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
    topics: &[&rdkafka::metadata::MetadataTopic],
) -> Result<()> {
    let ids = topic_ids(bootstrap, &topics.iter().map(|t| t.name()).collect::<Vec<_>>());
    for &t in topics {
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
        outln!(
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
            outln!(
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
