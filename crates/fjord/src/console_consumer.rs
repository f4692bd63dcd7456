//! `fjord console-consumer`: prints messages (kafka-console-consumer.sh). As Kafka's
//! tool, it subscribes to `--topic` (or the topics `--include` matches) in a group:
//! `--group`, or without one a made-up `console-consumer-<n>` that commits nothing;
//! a topic that does not exist yet is created as the Java consumer's metadata request
//! creates it (`allow.auto.create.topics`), where the broker allows that. With
//! `--partition N` it reads that one partition from `--offset` (or, with
//! `--from-beginning`, the earliest), outside any group. Ctrl-C stops it cleanly.

use crate::client::{parse_pairs, unescape, Connect};
use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: Option<String>,
    /// A regular expression: subscribe to every topic whose whole name it matches
    /// (librdkafka's POSIX regular expressions, where Kafka's tool takes Java's).
    #[arg(long)]
    pub include: Option<String>,
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    #[arg(long)]
    pub partition: Option<i32>,
    /// earliest, latest, or an offset (needs --partition).
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Join this consumer group (subscribe, commit offsets) instead of reading every
    /// partition on its own.
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long = "max-messages")]
    pub max_messages: Option<u64>,
    /// Exit when no message arrives for this long.
    #[arg(long = "timeout-ms")]
    pub timeout_ms: Option<u64>,
    /// print.key, print.value, print.timestamp, print.partition, print.offset,
    /// print.headers, key.separator, line.separator, headers.separator, null.literal
    /// (KEY=VALUE, repeatable).
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// librdkafka consumer properties (KEY=VALUE, repeatable).
    #[arg(long = "consumer-property")]
    pub consumer_properties: Vec<String>,
}

/// Kafka's `DefaultMessageFormatter` properties.
struct Format {
    timestamp: bool,
    partition: bool,
    offset: bool,
    headers: bool,
    key: bool,
    value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    null_literal: String,
}

fn format(props: &std::collections::BTreeMap<String, String>) -> Format {
    // As Kafka's `getBoolProperty`: "true" in any case is true, anything else false.
    let flag = |k: &str, default: bool| props.get(k).map_or(default, |v| v.trim().eq_ignore_ascii_case("true"));
    let text = |k: &str, default: &str| unescape(props.get(k).map(String::as_str).unwrap_or(default));
    Format {
        timestamp: flag("print.timestamp", false),
        partition: flag("print.partition", false),
        offset: flag("print.offset", false),
        headers: flag("print.headers", false),
        key: flag("print.key", false),
        value: flag("print.value", true),
        key_separator: text("key.separator", "\t"),
        line_separator: text("line.separator", "\n"),
        headers_separator: text("headers.separator", ","),
        null_literal: text("null.literal", "null"),
    }
}

/// Kafka's `ConsoleConsumerOptions` checks, with its messages. Returns the group to
/// join: `--group`, or `group.id` given with `--consumer-property` (which must agree).
fn check_args(args: &Args, consumer_properties: &std::collections::BTreeMap<String, String>) -> Result<Option<String>> {
    if args.topic.is_some() == args.include.is_some() {
        bail!("Exactly one of --include/--topic is required. ");
    }
    if args.partition.is_some() {
        if args.topic.is_none() {
            bail!("The topic is required when partition is specified.");
        }
        if args.from_beginning && args.offset.is_some() {
            bail!("Options from-beginning and offset cannot be specified together.");
        }
    } else if args.offset.is_some() {
        bail!("The partition is required when offset is specified.");
    }
    let mut groups: Vec<&String> = args.group.iter().chain(consumer_properties.get("group.id")).collect();
    groups.dedup();
    if groups.len() > 1 {
        let detected: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
        bail!(
            "The group ids provided in different places (directly using '--group', or via '--consumer-property') do not match. Detected group ids: {}",
            detected.join(", ")
        );
    }
    if !groups.is_empty() && args.partition.is_some() {
        bail!("Options group and partition cannot be specified together.");
    }
    Ok(groups.first().map(|g| g.to_string()))
}

pub fn run(args: Args) -> Result<()> {
    let fmt = format(&parse_pairs(&args.properties, "--property")?);
    let consumer_properties = parse_pairs(&args.consumer_properties, "--consumer-property")?;
    let group = check_args(&args, &consumer_properties)?;
    let start = start_offset(&args)?;
    let config = consumer_config(&args, group.as_deref(), &consumer_properties)?;
    let consumer: BaseConsumer = config.create().context("creating consumer")?;
    match (&args.topic, args.partition) {
        (Some(topic), Some(partition)) => assign(&consumer, topic, partition, start)?,
        (Some(topic), None) => {
            // The Java consumer's metadata request for its subscription may create the
            // topic; librdkafka's subscription never asks for that when no other topic
            // is known locally, so ask once with allow.auto.create.topics before it.
            // Its error (a topic the broker will not create) is the subscription's too.
            let _ = consumer.fetch_metadata(Some(topic), Duration::from_secs(30));
            consumer.subscribe(&[topic]).context("subscribing")?
        }
        (None, _) => {
            // librdkafka reads a name starting with '^' as a regular expression; Java's
            // `Pattern.matcher(topic).matches()` matches the whole name.
            let pattern = format!("^({})$", args.include.as_deref().unwrap_or_default());
            consumer.subscribe(&[&pattern]).context("subscribing")?
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_stop(stop.clone());
    let count = consume(&consumer, &args, &fmt, &stop)?;
    // Commit what was printed before leaving the group (only that: offsets are stored
    // message by message as they are printed, as Kafka's tool resets the position of
    // what it fetched and did not print). The made-up group commits nothing.
    if args.partition.is_none() && config.get("enable.auto.commit") != Some("false") {
        let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

/// `--partition N`: that partition alone, outside any group, from `start`.
fn assign(consumer: &BaseConsumer, topic: &str, partition: i32, start: Offset) -> Result<()> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("fetching metadata")?;
    let found = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none());
    let Some(found) = found else {
        bail!("topic '{topic}' does not exist")
    };
    if !found.partitions().iter().any(|p| p.id() == partition) {
        bail!("topic '{topic}' has no partition {partition}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, start)?;
    consumer.assign(&tpl)?;
    Ok(())
}

/// The consumer's config as Kafka's `ConsoleConsumerOptions.buildConsumerProps`:
/// `client.id` console-consumer, a made-up group (not committing) without `--group`,
/// topics created on subscription as the Java consumer does, the user's
/// `--consumer-property` values over the tool's own, and `auto.offset.reset` from
/// `--from-beginning` unless given, a conflicting one refused.
fn consumer_config(
    args: &Args,
    group: Option<&str>,
    consumer_properties: &std::collections::BTreeMap<String, String>,
) -> Result<rdkafka::ClientConfig> {
    let mut config = args.connect.client_config()?;
    config
        .set("client.id", "console-consumer")
        .set("enable.partition.eof", "false")
        // The Java consumer's default (librdkafka's is false): subscribing to a topic
        // that does not exist creates it where auto.create.topics.enable allows.
        .set("allow.auto.create.topics", "true")
        // Offsets are stored as messages are printed (`consume`): an auto-commit, or
        // the commit at exit, never covers a message fetched and not printed.
        .set("enable.auto.offset.store", "false");
    match group {
        Some(g) => config.set("group.id", g).set("enable.auto.commit", "true"),
        // Kafka's tool makes one up: "console-consumer-" + a random number below 100000.
        None => config
            .set("group.id", format!("console-consumer-{}", random_below(100_000)))
            .set("enable.auto.commit", "false"),
    };
    for (k, v) in consumer_properties {
        config.set(k, v);
    }
    match consumer_properties.get("auto.offset.reset") {
        Some(reset) if args.from_beginning && reset != "earliest" => bail!(
            "Can't simultaneously specify --from-beginning and 'auto.offset.reset={reset}', please remove one option"
        ),
        Some(_) => {}
        None => {
            config.set(
                "auto.offset.reset",
                if args.from_beginning { "earliest" } else { "latest" },
            );
        }
    }
    Ok(config)
}

/// A number in `0..n` that differs run to run: the clock's nanoseconds mixed with the
/// process id (a tool's made-up group name needs no better randomness).
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 ^ d.as_secs());
    (nanos ^ (u64::from(std::process::id()) << 17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

fn start_offset(args: &Args) -> Result<Offset> {
    Ok(match args.offset.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None if args.from_beginning => Offset::Beginning,
        None | Some("latest") => Offset::End,
        Some("earliest") => Offset::Beginning,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Offset::Offset(n),
            _ => bail!("The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."),
        },
    })
}

fn consume(consumer: &BaseConsumer, args: &Args, fmt: &Format, stop: &AtomicBool) -> Result<u64> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut count = 0u64;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) && args.max_messages.is_none_or(|m| count < m) {
        let written = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let written = write_message(&mut out, &m, fmt);
                if written.is_ok() {
                    // Printed: it may be committed now (offset + 1). Refused only for
                    // a partition just revoked, whose new owner reads it again.
                    let _ = consumer.store_offset_from_message(&m);
                    count += 1;
                    last = Instant::now();
                }
                written
            }
            // As the Java consumer, whose tool logs such errors and goes on: a topic
            // not created yet, a partition moving. Only a fatal error (a static member
            // fenced by another with its group.instance.id) ends the run.
            Some(Err(e)) => match consumer.client().fatal_error() {
                Some((_, reason)) => bail!("consume failed: {e}: {reason}"),
                None => {
                    tracing::warn!(error = %e, "consuming");
                    Ok(())
                }
            },
            None if args
                .timeout_ms
                .is_some_and(|t| last.elapsed() >= Duration::from_millis(t)) =>
            {
                break;
            }
            None => out.flush(),
        };
        if closed_stdout(written)? {
            return Ok(count);
        }
    }
    closed_stdout(out.flush())?;
    Ok(count)
}

/// Whether a write found stdout closed (`... | head`): the consumer then stops, as
/// Kafka's does ("Unable to write to standard out, closing consumer."); any other
/// write error is the tool's error.
fn closed_stdout(written: std::io::Result<()>) -> Result<bool> {
    match written {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            eprintln!("Unable to write to standard out, closing consumer.");
            Ok(true)
        }
        Err(e) => Err(e).context("writing to stdout"),
    }
}

/// One record as Kafka's `DefaultMessageFormatter.writeTo` writes it: each column
/// followed by `key.separator` when another follows, by `line.separator` when it is
/// the last; `null.literal` for a null key, value or header value.
fn write_message(out: &mut impl Write, m: &rdkafka::message::BorrowedMessage<'_>, fmt: &Format) -> std::io::Result<()> {
    let null = fmt.null_literal.as_bytes();
    let columns = [
        fmt.timestamp,
        fmt.partition,
        fmt.offset,
        fmt.headers,
        fmt.key,
        fmt.value,
    ];
    let separator = |out: &mut dyn Write, column: usize| {
        let more = columns[column + 1..].iter().any(|c| *c);
        out.write_all(if more { &fmt.key_separator } else { &fmt.line_separator }.as_bytes())
    };
    if fmt.timestamp {
        match m.timestamp() {
            rdkafka::Timestamp::CreateTime(t) => write!(out, "CreateTime:{t}")?,
            rdkafka::Timestamp::LogAppendTime(t) => write!(out, "LogAppendTime:{t}")?,
            rdkafka::Timestamp::NotAvailable => write!(out, "NO_TIMESTAMP")?,
        }
        separator(out, 0)?;
    }
    if fmt.partition {
        write!(out, "Partition:{}", m.partition())?;
        separator(out, 1)?;
    }
    if fmt.offset {
        write!(out, "Offset:{}", m.offset())?;
        separator(out, 2)?;
    }
    if fmt.headers {
        let mut first = true;
        for hdr in m.headers().iter().flat_map(|h| h.iter()) {
            if !first {
                out.write_all(fmt.headers_separator.as_bytes())?;
            }
            first = false;
            write!(out, "{}:", hdr.key)?;
            out.write_all(hdr.value.unwrap_or(null))?;
        }
        if first {
            out.write_all(b"NO_HEADERS")?;
        }
        separator(out, 3)?;
    }
    if fmt.key {
        out.write_all(m.key().unwrap_or(null))?;
        separator(out, 4)?;
    }
    if fmt.value {
        out.write_all(m.payload().unwrap_or(null))?;
        out.write_all(fmt.line_separator.as_bytes())?;
    }
    Ok(())
}

/// Ctrl-C and SIGTERM set `stop`; the loop then ends and the count is printed.
fn signal_stop(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
}
