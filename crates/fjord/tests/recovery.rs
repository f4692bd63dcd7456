//! Restarts: clean (SIGTERM) and kill -9, a segment torn mid-batch, a lost index, and
//! many partitions loading quickly.

mod common;

use common::{create_topic_with_configs, fjord, rdkafka_config, read_partition_from, BrokerProcess};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;
use std::time::{Duration, Instant};

/// Produces `m<from>..m<from+n>` to partition 0 in record batches of at most
/// `batch_messages` (1: a batch per message, for tests that cut batches apart).
fn produce(bootstrap: &str, topic: &str, from: usize, n: usize, batch_messages: usize) {
    let mut config = rdkafka_config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", batch_messages.to_string());
    config.set("max.in.flight.requests.per.connection", "1");
    let p: BaseProducer = config.create().expect("producer");
    for i in from..from + n {
        let v = format!("m{i}");
        p.send(BaseRecord::<(), _>::to(topic).payload(&v).partition(0))
            .expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads partition 0 from `from` until `expected` values or 20 s; then checks for extras.
fn read_values(bootstrap: &str, topic: &str, from: i64, expected: usize) -> Vec<(i64, String)> {
    read_partition_from(bootstrap, topic, 0, Offset::Offset(from), expected)
}

fn expect_sequence(got: &[(i64, String)], from: usize, n: usize) {
    assert_eq!(got.len(), n);
    for (j, (offset, v)) in got.iter().enumerate() {
        assert_eq!(*offset, (from + j) as i64);
        assert_eq!(v, &format!("m{}", from + j));
    }
}

#[test]
fn clean_restart_and_kill_minus_nine_keep_acknowledged_writes() {
    let mut b = BrokerProcess::start(&["log.segment.bytes=5000"]);
    produce(&b.bootstrap, "durable", 0, 5_000, 100);
    b.stop();
    assert!(
        b.data_dir.join(".kafka_cleanshutdown").exists(),
        "clean shutdown leaves the marker"
    );
    b.restart();
    assert!(
        !b.data_dir.join(".kafka_cleanshutdown").exists(),
        "start-up removes the marker"
    );
    expect_sequence(&read_values(&b.bootstrap, "durable", 0, 5_000), 0, 5_000);
    produce(&b.bootstrap, "durable", 5_000, 5_000, 100);
    b.kill9();
    b.restart();
    expect_sequence(&read_values(&b.bootstrap, "durable", 0, 10_000), 0, 10_000);
    assert!(b.log_text().contains("logs loaded"));
    // Every write had completed: O_DIRECT padding left in rolled segments is no torn tail.
    assert!(
        !b.log_text().contains("truncated a corrupt or torn tail"),
        "{}",
        b.log_text()
    );
    let segments = std::fs::read_dir(b.data_dir.join("durable-0"))
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert!(segments > 3, "log.segment.bytes rolled segments ({segments})");
}

/// The broker's count of O_DIRECT appends written through the page cache because a
/// device flush ran (`log::device_flush`), from its clean-shutdown line: (O_DIRECT,
/// stepped aside).
fn append_counts(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rfind(|l| l.contains("shut down cleanly"))
        .expect("the clean-shutdown line");
    let field = |name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).expect(name) + name.len() + 1;
        let digits: String = line[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().expect("a count")
    };
    (field("appends_direct"), field("appends_during_device_flushes"))
}

/// While a device flush runs, O_DIRECT appends go through the page cache instead of
/// waiting behind it (`log::device_flush`). One topic fsyncs after every message
/// (`flush.messages=1`) while another takes appends, so the second's appends meet
/// flushes and switch ways back and forth; both read back exactly after a clean
/// restart and after kill -9.
#[test]
fn appends_during_device_flushes_keep_acknowledged_writes() {
    let mut b = BrokerProcess::start(&["log.segment.bytes=100000"]);
    create_topic_with_configs(&b.bootstrap, "flushed", &["flush.messages=1"]);
    create_topic_with_configs(&b.bootstrap, "appended", &[]);
    // A round: `appended` takes 10,000 messages, a request each, while `flushed` takes
    // messages until it ends (returns how many).
    let round = |bootstrap: &str, round: usize, flushed_from: usize| -> usize {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let flushed = s.spawn(|| {
                let mut next = flushed_from;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    produce(bootstrap, "flushed", next, 50, 1);
                    next += 50;
                }
                next - flushed_from
            });
            produce(bootstrap, "appended", round * 10_000, 10_000, 1);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            flushed.join().expect("flushed producer")
        })
    };
    let flushed = round(&b.bootstrap, 0, 0);
    b.stop();
    let (direct, stepped_aside) = append_counts(&b.log_text());
    eprintln!("appends: {direct} O_DIRECT, {stepped_aside} through the page cache during flushes");
    if direct + stepped_aside > 0 {
        assert!(stepped_aside > 0, "no append met a flush ({direct} O_DIRECT)");
    } else {
        eprintln!("O_DIRECT is refused here: every append was buffered");
    }
    b.restart();
    expect_sequence(&read_values(&b.bootstrap, "appended", 0, 10_000), 0, 10_000);
    let flushed = flushed + round(&b.bootstrap, 1, flushed);
    b.kill9();
    b.restart();
    expect_sequence(&read_values(&b.bootstrap, "flushed", 0, flushed), 0, flushed);
    expect_sequence(&read_values(&b.bootstrap, "appended", 0, 20_000), 0, 20_000);
}

#[test]
fn segment_torn_mid_batch_recovers_to_its_last_whole_batch() {
    let mut b = BrokerProcess::start(&[]);
    produce(&b.bootstrap, "torn", 0, 20, 1);
    b.kill9();
    let log = b.data_dir.join("torn-0").join("00000000000000000000.log");
    // Where the batches end: an active segment written with O_DIRECT ends in zero padding.
    let bytes = std::fs::read(&log).expect("segment");
    let (mut end, mut last) = (0usize, 0usize);
    while end + 12 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().expect("len")) as usize;
        if len == 0 {
            break;
        }
        last = end;
        end += 12 + len;
    }
    // Cut the last batch in half, as a write torn by a crash would.
    let f = std::fs::OpenOptions::new().write(true).open(&log).expect("open");
    f.set_len(end as u64 - 10).expect("truncate");
    drop(f);
    let (ok, out, _) = fjord(&["dump-log", "--files", log.to_str().expect("path")], None);
    assert!(ok);
    assert!(
        out.starts_with(&format!(
            "Dumping {}\nLog starting offset: 0\nbaseOffset: 0 ",
            log.display()
        )),
        "{out}"
    );
    // Kafka's words for the torn tail.
    let torn = end - 10 - last;
    assert!(
        out.ends_with(&format!(
            "Found {torn} invalid bytes at the end of 00000000000000000000.log\n"
        )),
        "dump-log shows the torn tail: {out}"
    );
    b.restart();
    expect_sequence(&read_values(&b.bootstrap, "torn", 0, 19), 0, 19);
    assert!(b.log_text().contains("truncated a corrupt or torn tail"));
    // The next write continues right after the last whole batch.
    produce(&b.bootstrap, "torn", 19, 1, 1);
    expect_sequence(&read_values(&b.bootstrap, "torn", 0, 20), 0, 20);
}

#[test]
fn corrupt_batch_in_the_middle_is_cut_and_lost_indexes_are_rebuilt() {
    let t = Instant::now();
    let mut b = BrokerProcess::start(&["log.index.interval.bytes=100"]);
    produce(&b.bootstrap, "rebuild", 0, 200, 1);
    eprintln!("produced at {:?}", t.elapsed());
    b.kill9();
    let dir = b.data_dir.join("rebuild-0");
    std::fs::remove_file(dir.join("00000000000000000000.index")).ok();
    std::fs::write(dir.join("00000000000000000000.timeindex"), b"garbage").expect("write");
    b.restart();
    // Reading from the middle needs the rebuilt offset index.
    eprintln!("restarted at {:?}", t.elapsed());
    expect_sequence(&read_values(&b.bootstrap, "rebuild", 150, 50), 150, 50);
    eprintln!("read at {:?}", t.elapsed());
    let index = std::fs::metadata(dir.join("00000000000000000000.index"));
    b.stop();
    let index = index
        .or_else(|_| std::fs::metadata(dir.join("00000000000000000000.index")))
        .expect("index rebuilt");
    assert!(index.len() > 0 && index.len().is_multiple_of(8));

    // Flip a byte inside batch 100: recovery keeps batches 0..100 and drops the rest.
    let log = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log).expect("read");
    let mut pos = 0usize;
    for _ in 0..100 {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("len")) as usize;
        pos += 12 + len;
    }
    bytes[pos + 70] ^= 0xff;
    std::fs::write(&log, &bytes).expect("write");
    std::fs::remove_file(b.data_dir.join(".kafka_cleanshutdown")).expect("marker");
    b.restart();
    expect_sequence(&read_values(&b.bootstrap, "rebuild", 0, 100), 0, 100);
}

#[test]
fn a_thousand_partitions_create_and_reload_quickly() {
    let mut b = BrokerProcess::start(&[]);
    let started = Instant::now();
    let (ok, out, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "wide",
            "--partitions",
            "1000",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let created = started.elapsed();
    b.stop();
    let started = Instant::now();
    b.restart();
    let reloaded = started.elapsed();
    let c: BaseConsumer = rdkafka_config(&b.bootstrap).create().expect("client");
    let md = c
        .fetch_metadata(Some("wide"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 1000);
    eprintln!("1000 partitions: created in {created:?}, restarted in {reloaded:?}");
}
