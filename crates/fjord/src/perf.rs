//! `fjord perf produce | consume`: kafka-producer-perf-test.sh and
//! kafka-consumer-perf-test.sh on librdkafka. `--mock` runs the same producer against
//! librdkafka's mock cluster, which stores nothing: the client's own ceiling.

use crate::client::{parse_pairs, Connect};
use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(clap::Subcommand, Debug)]
pub enum Mode {
    Produce(ProduceArgs),
    Consume(ConsumeArgs),
}

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: String,
    #[arg(long = "num-records")]
    pub num_records: u64,
    #[arg(long = "record-size", default_value_t = 1024)]
    pub record_size: usize,
    /// Records per second at most; -1 for no limit.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub throughput: i64,
    /// librdkafka producer properties, KEY=VALUE (repeatable).
    #[arg(long = "producer-props", num_args = 1..)]
    pub producer_props: Vec<String>,
    /// Produce to librdkafka's in-process mock cluster instead of --bootstrap-server.
    #[arg(long)]
    pub mock: bool,
    /// A line for each window of this many milliseconds (records/s, MB/s, average and
    /// maximum latency of the records acknowledged in it), as Kafka's tool prints every
    /// 5 s: where in a run the slow acknowledgements were.
    #[arg(long = "reporting-interval", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub reporting_interval_ms: u64,
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub messages: u64,
    /// librdkafka consumer properties, KEY=VALUE (repeatable).
    #[arg(long = "consumer-props", num_args = 1..)]
    pub consumer_props: Vec<String>,
    #[arg(long = "timeout-ms", default_value_t = 60_000)]
    pub timeout_ms: u64,
    /// Read the newest `--messages` records (split over the partitions) instead of
    /// starting at the beginning: what a consumer close behind the producers reads.
    #[arg(long)]
    pub tail: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.mode {
        Mode::Produce(a) => produce(a),
        Mode::Consume(a) => consume(a),
    }
}

/// Latency samples kept at most; past it every n-th is kept, as Kafka's tool samples.
const LATENCY_SAMPLES_MAX: u64 = 5_000_000;

struct PerfContext {
    start: Instant,
    sample_every: u64,
    record_size: usize,
    reporting_interval_us: u64,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    acked: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
    max_us: u64,
    sum_us: u64,
    window: Window,
}

/// The records acknowledged since `start_us` (microseconds since the run's start).
#[derive(Default)]
struct Window {
    start_us: u64,
    acked: u64,
    sum_us: u64,
    max_us: u64,
}

impl Window {
    /// Prints the window as Kafka's ProducerPerformance prints its 5 s windows.
    fn print(&self, now_us: u64, record_size: usize) {
        let secs = (now_us.saturating_sub(self.start_us)).max(1) as f64 / 1e6;
        let mb = (self.acked as f64 * record_size as f64) / (1024.0 * 1024.0);
        outln!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.acked,
            self.acked as f64 / secs,
            mb / secs,
            self.sum_us as f64 / self.acked.max(1) as f64 / 1000.0,
            self.max_us as f64 / 1000.0
        );
    }
}

impl ClientContext for PerfContext {}

impl ProducerContext for PerfContext {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        let now_us = self.start.elapsed().as_micros() as u64;
        let latency = now_us.saturating_sub(sent_us as u64);
        let mut s = match self.stats.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Err((e, _)) = result {
            s.errors += 1;
            s.first_error.get_or_insert_with(|| e.to_string());
            return;
        }
        s.acked += 1;
        s.sum_us += latency;
        s.max_us = s.max_us.max(latency);
        if s.acked % self.sample_every == 0 {
            s.latencies_us.push(latency.min(u32::MAX as u64) as u32);
        }
        let w = &mut s.window;
        w.acked += 1;
        w.sum_us += latency;
        w.max_us = w.max_us.max(latency);
        if now_us.saturating_sub(w.start_us) >= self.reporting_interval_us {
            w.print(now_us, self.record_size);
            s.window = Window {
                start_us: now_us,
                ..Window::default()
            };
        }
    }
}

fn produce(a: ProduceArgs) -> Result<()> {
    let mock = if a.mock {
        Some(rdkafka::mocking::MockCluster::new(1).context("starting mock cluster")?)
    } else {
        None
    };
    let mut config = match &mock {
        Some(m) => {
            m.create_topic(&a.topic, 1, 1)
                .context("creating topic on mock cluster")?;
            let mut c = rdkafka::ClientConfig::new();
            c.set("bootstrap.servers", m.bootstrap_servers());
            c
        }
        None => a.connect.client_config()?,
    };
    for (k, v) in parse_pairs(&a.producer_props, "--producer-props")? {
        config.set(k, v);
    }
    let ctx = PerfContext {
        start: Instant::now(),
        sample_every: (a.num_records / LATENCY_SAMPLES_MAX).max(1),
        record_size: a.record_size,
        reporting_interval_us: a.reporting_interval_ms.saturating_mul(1000),
        stats: Mutex::new(Stats::default()),
    };
    let producer: ThreadedProducer<PerfContext> = config.create_with_context(ctx).context("creating producer")?;
    let payload: Vec<u8> = (0..a.record_size).map(|i| b'a' + (i % 26) as u8).collect();
    let started = Instant::now();
    for i in 0..a.num_records {
        if a.throughput > 0 {
            let due = Duration::from_secs_f64(i as f64 / a.throughput as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let sent_us = producer.context().start.elapsed().as_micros() as usize;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&a.topic, sent_us).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => bail!("send failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).context("flushing")?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = match producer.context().stats.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    report_produce(&a, &mut s, elapsed);
    if s.errors > 0 {
        bail!("{} records failed: {}", s.errors, s.first_error.unwrap_or_default());
    }
    Ok(())
}

fn report_produce(a: &ProduceArgs, s: &mut Stats, elapsed: f64) {
    s.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if s.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((s.latencies_us.len() as f64 * p) as usize).min(s.latencies_us.len() - 1);
        s.latencies_us[i] as f64 / 1000.0
    };
    let mb = (s.acked as f64 * a.record_size as f64) / (1024.0 * 1024.0);
    let avg = if s.acked > 0 {
        s.sum_us as f64 / s.acked as f64 / 1000.0
    } else {
        0.0
    };
    outln!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 99th, {:.2} ms 99.9th.",
        s.acked,
        s.acked as f64 / elapsed,
        mb / elapsed,
        avg,
        s.max_us as f64 / 1000.0,
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
}

fn consume(a: ConsumeArgs) -> Result<()> {
    let mut config = a.connect.client_config()?;
    config
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("group.id", "fjord-perf-consumer");
    for (k, v) in parse_pairs(&a.consumer_props, "--consumer-props")? {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("creating consumer")?;
    let md = consumer.fetch_metadata(Some(&a.topic), Duration::from_secs(30))?;
    let Some(topic) = md.topics().iter().find(|t| t.name() == a.topic && t.error().is_none()) else {
        bail!("topic '{}' does not exist", a.topic);
    };
    let mut tpl = TopicPartitionList::new();
    let per_partition = a.messages.div_ceil(topic.partitions().len().max(1) as u64);
    for p in topic.partitions() {
        let start = if a.tail {
            Offset::OffsetTail(per_partition as i64)
        } else {
            Offset::Beginning
        };
        tpl.add_partition_offset(&a.topic, p.id(), start)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut last = Instant::now();
    while count < a.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload_len() as u64;
                last = Instant::now();
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None if last.elapsed() > Duration::from_millis(a.timeout_ms) => break,
            None => {}
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mb = bytes as f64 / (1024.0 * 1024.0);
    outln!("data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, elapsed.sec");
    outln!(
        "{mb:.4}, {:.4}, {count}, {:.4}, {elapsed:.3}",
        mb / elapsed,
        count as f64 / elapsed
    );
    if count < a.messages {
        bail!("consumed {count} of {} messages before the timeout", a.messages);
    }
    Ok(())
}
