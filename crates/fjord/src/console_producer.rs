//! `fjord console-producer`: each line of stdin becomes one message
//! (kafka-console-producer.sh). `--property parse.key=true --property key.separator=:`
//! splits a key off each line.

use crate::client::{parse_bool, parse_pairs, unescape, Connect};
use anyhow::{anyhow, bail, Context, Result};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Reports each message the broker refused, as Kafka's `ErrorLoggingCallback`, and
/// counts them: rdkafka's default context drops delivery errors, so a refused message
/// (MESSAGE_TOO_LARGE, say) went unreported and the tool exited 0.
#[derive(Default)]
struct DeliveryErrors {
    failed: AtomicUsize,
}

impl rdkafka::ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        if let Err((e, m)) = result {
            let key = m.key().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into());
            let bytes = m.payload().map_or(0, <[u8]>::len);
            eprintln!(
                "Error when sending message to topic {} with key: {key}, value: {bytes} bytes with error: {e}",
                m.topic()
            );
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: String,
    /// parse.key, key.separator, ignore.error (KEY=VALUE, repeatable).
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// librdkafka producer properties (KEY=VALUE, repeatable).
    #[arg(long = "producer-property")]
    pub producer_properties: Vec<String>,
    /// none, gzip, snappy, lz4 or zstd; the flag alone means gzip, as Kafka's.
    #[arg(long = "compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// acks: 0, 1 or -1/all.
    #[arg(long = "request-required-acks", default_value = "-1")]
    pub acks: String,
    /// Wait for each message to be acknowledged before reading the next line.
    #[arg(long)]
    pub sync: bool,
}

pub fn run(args: Args) -> Result<()> {
    let props = parse_pairs(&args.properties, "--property")?;
    let parse_key = match props.get("parse.key") {
        Some(v) => parse_bool("parse.key", v)?,
        None => false,
    };
    let separator = unescape(props.get("key.separator").map(String::as_str).unwrap_or("\t"));
    if separator.is_empty() {
        bail!("property key.separator must not be empty");
    }
    let mut config = args.connect.client_config()?;
    let acks = match args.acks.as_str() {
        "all" | "-1" => "-1",
        "0" => "0",
        "1" => "1",
        other => bail!("--request-required-acks expects 0, 1, -1 or all, got '{other}'"),
    };
    config.set("acks", acks);
    if let Some(codec) = &args.compression_codec {
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&codec.as_str()) {
            bail!("--compression-codec expects none, gzip, snappy, lz4 or zstd, got '{codec}'");
        }
        config.set("compression.codec", codec);
    }
    for (k, v) in parse_pairs(&args.producer_properties, "--producer-property")? {
        config.set(k, v);
    }
    let producer: ThreadedProducer<DeliveryErrors> = config
        .create_with_context(DeliveryErrors::default())
        .context("creating producer")?;
    let failed = |producer: &ThreadedProducer<DeliveryErrors>| producer.context().failed.load(Ordering::Relaxed);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        let (key, value) = if parse_key {
            let (k, v) = line
                .split_once(&separator)
                .ok_or_else(|| anyhow!("no key separator '{separator}' in line: {line}"))?;
            (Some(k.to_string()), v.to_string())
        } else {
            (None, line)
        };
        send(&producer, &args.topic, key.as_deref(), &value)?;
        if args.sync {
            producer
                .flush(Duration::from_secs(30))
                .context("waiting for acknowledgement")?;
            // As Kafka's `--sync`: a refused message ends the run.
            if failed(&producer) > 0 {
                bail!("a message was not delivered");
            }
        }
    }
    producer.flush(Duration::from_secs(30)).context("flushing messages")?;
    // Kafka's tool exits 0 here after logging; a non-zero exit lets a script that pipes
    // data in know that some of it was not stored.
    match failed(&producer) {
        0 => Ok(()),
        n => bail!("{n} message(s) were not delivered"),
    }
}

fn send(producer: &ThreadedProducer<DeliveryErrors>, topic: &str, key: Option<&str>, value: &str) -> Result<()> {
    let mut record = BaseRecord::to(topic).payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    let mut pending = record;
    loop {
        match producer.send(pending) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                pending = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}
