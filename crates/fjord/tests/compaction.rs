//! Log compaction: 100,000 updates over 1,000 keys compact to exactly the latest 1,000
//! values, and a consumer reading during cleaning never sees a key go back in time.

mod common;

use common::{rdkafka_config, BrokerProcess};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Reads the whole partition once; checks no key's sequence goes backwards.
/// Returns (records read, key -> last sequence).
fn read_all(bootstrap: &str) -> (usize, HashMap<String, u64>) {
    let c: BaseConsumer = rdkafka_config(bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("compacted", 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let (_, high) = c
        .fetch_watermarks("compacted", 0, Duration::from_secs(5))
        .expect("watermarks");
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut count = 0;
    let mut position = -1i64;
    // Generous: under a loaded CI run (two cores, tests in parallel) one pass once took
    // most of a minute.
    let deadline = Instant::now() + Duration::from_secs(120);
    while position + 1 < high && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            position = m.offset();
            count += 1;
            let key = String::from_utf8_lossy(m.key().expect("key")).to_string();
            let seq: u64 = String::from_utf8_lossy(m.payload().expect("value"))
                .parse()
                .expect("sequence");
            if let Some(prev) = last.insert(key.clone(), seq) {
                assert!(
                    seq > prev,
                    "key {key} went back from {prev} to {seq} at offset {position}"
                );
            }
        }
    }
    assert!(
        position + 1 >= high,
        "read to the end: reached offset {position} of high watermark {high} ({count} records) in 120 s"
    );
    (count, last)
}

#[test]
fn hundred_thousand_updates_compact_to_the_latest_values() {
    let b = BrokerProcess::start(&["log.cleaner.backoff.ms=300"]);
    let (ok, _, err) = common::fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "compacted",
            "--partitions",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=65536",
            "--config",
            "segment.ms=2000",
        ],
        None,
    );
    assert!(ok, "{err}");
    // The active segment is never cleaned (as in Kafka), and a segment rolls only before a
    // batch that would overflow it, so it holds up to segment.bytes plus one batch.
    // Batches of at most 16 KiB keep segments many and small while the cleaner works.
    // (With librdkafka's 1 MB batches a loaded run once left 10,854 records, most in a
    // fat active segment, with no pass left anything to clean.)
    let p: BaseProducer = rdkafka_config(&b.bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .create()
        .expect("producer");
    let mut latest: HashMap<String, u64> = HashMap::new();
    for seq in 0..100_000u64 {
        let key = format!("key-{}", seq % 1000);
        let value = seq.to_string();
        loop {
            match p.send(BaseRecord::to("compacted").key(&key).payload(&value).partition(0)) {
                Ok(()) => break,
                Err(_) => {
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        p.poll(Duration::ZERO);
        latest.insert(key, seq);
        // Read while the cleaner works.
        if seq == 50_000 {
            p.flush(Duration::from_secs(30)).expect("flush");
            read_all(&b.bootstrap);
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    // One more record, of a key of its own, once the active segment is older than
    // segment.ms: it rolls that segment, so every update becomes cleanable and the log
    // must compact to exactly the 1,000 latest values plus this record.
    std::thread::sleep(Duration::from_millis(2_500));
    p.send(BaseRecord::to("compacted").key("roll").payload("100000").partition(0))
        .expect("send");
    p.flush(Duration::from_secs(30)).expect("flush");
    latest.insert("roll".to_string(), 100_000);
    let mut compacted = 0;
    // Generous: under a loaded CI run the cleaner's passes once took over a minute.
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let (count, last) = read_all(&b.bootstrap);
        assert_eq!(last, latest, "every key's newest value survives");
        compacted = count;
        if count <= 1_001 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = b.log_text();
    let passes: Vec<&str> = log.lines().filter(|l| l.contains("cleaned log")).collect();
    eprintln!(
        "compaction left {compacted} of 100,000 records after {} cleaner passes",
        passes.len()
    );
    for p in &passes {
        eprintln!("{p}");
    }
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("failed") || l.contains("ERROR"))
        .collect();
    assert!(
        compacted == 1_001,
        "compaction left {compacted} of 100,000 records after {} cleaner passes; the last: {:?}; trouble: {:?}",
        passes.len(),
        passes.last(),
        trouble
    );
    assert!(b.log_text().contains("cleaned log"));
}

/// A compacted topic refuses records without a key, as Kafka's `LogValidator` does
/// (INVALID_RECORD): compaction could never remove them. Keyed records are stored.
#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let b = BrokerProcess::start(&[]);
    common::create_topic_with_configs(&b.bootstrap, "keyed-only", &["cleanup.policy=compact"]);
    let keyless = common::produce_tracked(&b.bootstrap, "keyed-only", &[0], "nokey", 3, 10);
    assert_eq!(keyless.failed_count(), 3, "every record without a key is refused");
    assert!(keyless.acked_in(0).is_empty());
    let p: BaseProducer = rdkafka_config(&b.bootstrap)
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    p.send(BaseRecord::to("keyed-only").key("k").payload("v").partition(0))
        .expect("send");
    p.flush(Duration::from_secs(10)).expect("a keyed record is stored");
    let read = common::read_partition(&b.bootstrap, "keyed-only", 0, 1);
    assert_eq!(read, [(0, "v".to_string())]);
}
