//! Retention by time and by size deletes whole old segments and moves the log start
//! offset; a consumer stopped with Ctrl-C exits cleanly.

mod common;

use common::{fjord, rdkafka_config, wait_for, BrokerProcess, FJORD};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn produce(bootstrap: &str, topic: &str, n: usize, timestamp: Option<i64>) {
    let p: BaseProducer = rdkafka_config(bootstrap)
        .set("batch.num.messages", "10")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    for i in 0..n {
        let v = format!("value-{i:06}-{}", "x".repeat(100));
        let mut r = BaseRecord::<(), _>::to(topic).payload(&v).partition(0);
        if let Some(ts) = timestamp {
            r = r.timestamp(ts);
        }
        p.send(r).expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn segments(b: &BrokerProcess, topic: &str) -> usize {
    std::fs::read_dir(b.data_dir.join(format!("{topic}-0")))
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
}

fn deleted_files(b: &BrokerProcess, topic: &str) -> usize {
    std::fs::read_dir(b.data_dir.join(format!("{topic}-0")))
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".deleted"))
        })
        .count()
}

#[test]
fn retention_by_time_and_by_size_deletes_old_segments() {
    let b = BrokerProcess::start(&["log.retention.check.interval.ms=200"]);
    let (ok, _, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "old",
            "--partitions",
            "1",
            "--config",
            "segment.bytes=4096",
            "--config",
            "retention.ms=60000",
            "--config",
            "file.delete.delay.ms=1000",
        ],
        None,
    );
    assert!(ok, "{err}");
    // Records stamped two minutes ago are past retention.ms=60000 as soon as they land.
    let two_minutes_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 120_000;
    produce(&b.bootstrap, "old", 300, Some(two_minutes_ago));
    let c: BaseConsumer = rdkafka_config(&b.bootstrap).create().expect("client");
    wait_for("time retention", || segments(&b, "old") == 1);
    let (low, high) = c
        .fetch_watermarks("old", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!(high, 300);
    assert!(
        low > 0 && low < 300,
        "log start offset moved to the active segment: {low}"
    );
    // As Kafka: deleted segments are renamed `.deleted` at once and their files freed
    // (gradually, `log::deletion`) once file.delete.delay.ms is over.
    wait_for("the deleted segments' files to be freed", || {
        deleted_files(&b, "old") == 0
    });

    let (ok, _, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "big",
            "--partitions",
            "1",
            "--config",
            "segment.bytes=4096",
            "--config",
            "retention.bytes=20000",
        ],
        None,
    );
    assert!(ok, "{err}");
    produce(&b.bootstrap, "big", 1000, None);
    wait_for("size retention", || {
        let total: u64 = std::fs::read_dir(b.data_dir.join("big-0"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        total <= 20000 + 4096
    });
    let (low, high) = c
        .fetch_watermarks("big", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!(high, 1000);
    assert!(
        low > 700,
        "only about 20 KB of the newest records remain: log start {low}"
    );
    // The broker's default file.delete.delay.ms is Kafka's minute: the files stay.
    assert!(
        deleted_files(&b, "big") > 0,
        "deleted segments wait out file.delete.delay.ms"
    );
}

#[test]
fn console_consumer_exits_cleanly_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let b = BrokerProcess::start(&[]);
    produce(&b.bootstrap, "ctrlc", 3, None);
    let mut child = Command::new(FJORD)
        .args([
            "console-consumer",
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            "ctrlc",
            "--from-beginning",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Ctrl-C once the three records are printed (after the group's initial rebalance
    // delay: it subscribes, as Kafka's tool does).
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = Vec::new();
    while out.len() < 3 {
        out.push(lines.next().expect("a line before stdout closes").expect("line"));
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    out.extend(lines.map(|l| l.expect("line")));
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(status.success(), "exit status {status}: {err}");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(err.contains("Processed a total of 3 messages"), "{err}");
}

/// Bytes of `path` in the page cache, from util-linux's fincore.
fn cached_bytes(path: &std::path::Path) -> Option<u64> {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// fjord.log.page.cache.retain.bytes: the oldest data leaves the page cache, and reads
/// of it still return every record, in order, from disk.
#[test]
fn page_cache_is_kept_to_the_newest_bytes_and_old_data_still_reads_back() {
    let b = BrokerProcess::start(&["fjord.log.page.cache.retain.bytes=1048576", "log.segment.bytes=2097152"]);
    let (ok, _, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "cached",
            "--partitions",
            "1",
        ],
        None,
    );
    assert!(ok, "{err}");
    produce(&b.bootstrap, "cached", 60_000, None);
    let first = b.data_dir.join("cached-0").join("00000000000000000000.log");
    if cached_bytes(&first).is_some() {
        wait_for("the oldest segment to leave the page cache", || {
            cached_bytes(&first) == Some(0)
        });
    }
    let c: BaseConsumer = rdkafka_config(&b.bootstrap)
        .set("group.id", "cached-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    c.subscribe(&["cached"]).expect("subscribe");
    let mut next = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < 60_000 && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let v = String::from_utf8_lossy(rdkafka::Message::payload(&m).unwrap_or_default()).to_string();
            assert!(
                v.starts_with(&format!("value-{next:06}-")),
                "record {next} read back as {v}"
            );
            next += 1;
        }
    }
    assert_eq!(next, 60_000, "every record read back");
}
