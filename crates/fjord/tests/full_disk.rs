//! A full disk. Kafka takes a log dir that fails a write offline, and a broker whose
//! dirs are all offline halts; Fjord keeps serving: a full disk refuses appends with
//! Kafka's KAFKA_STORAGE_ERROR and leaves the log as it was, reads go on, and deleting
//! a topic frees the space, so producing resumes without a restart. Here the log dir
//! is a small tmpfs: needs root (to mount it), skipped otherwise.

mod common;

use common::{create_topic_cli, fjord, rdkafka_config, BrokerProcess, RawClient};
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tmpfs's size: a few segments' worth, filled in a second or two.
const DISK_BYTES: u64 = 24 << 20;
const VALUE_BYTES: usize = 10_000;

/// A tmpfs mounted for the test, unmounted (lazily: a killed broker may still hold
/// it for a moment) when dropped.
struct Mount(PathBuf);

impl Mount {
    /// `None` when not root, or when even root may not mount (a container without the
    /// capability): the test is skipped then, saying so.
    fn tmpfs(at: &Path, bytes: u64) -> Option<Mount> {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|uids| uids.split_whitespace().nth(1) == Some("0"));
        if !root {
            return None;
        }
        std::fs::create_dir_all(at).expect("mount point");
        let size = format!("size={bytes}");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "fjord-full-disk"])
            .arg(at)
            .status()
            .expect("run mount");
        ok.success().then(|| Mount(at.to_path_buf()))
    }

    /// Takes every free byte with a file of its own, as another program would.
    fn fill_up(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).expect("filler");
        let chunk = vec![1u8; 4096];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }

    fn available_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's figure")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Delivery reports: the offset each acknowledged value got, and the errors.
#[derive(Default)]
struct Deliveries {
    acked: Mutex<Vec<(i64, String)>>,
    failed: Mutex<Vec<KafkaError>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                self.acked.lock().expect("acked").push((m.offset(), value));
            }
            Err((e, _)) => self.failed.lock().expect("failed").push(e.clone()),
        }
    }
}

/// Sends `n` values `<tag>-<i>` padded to `VALUE_BYTES`, without retries (so a refused
/// batch reports the broker's own error) and waits for every report.
fn produce(bootstrap: &str, topic: &str, tag: &str, n: usize) -> Deliveries {
    let p: BaseProducer<Deliveries> = rdkafka_config(bootstrap)
        .set("message.send.max.retries", "0")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create_with_context(Deliveries::default())
        .expect("producer");
    for i in 0..n {
        let v = format!("{tag}-{i:06}-{}", "v".repeat(VALUE_BYTES));
        let mut record = BaseRecord::<(), _>::to(topic).payload(&v).partition(0);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let deliveries = std::mem::take(&mut *p.context().acked.lock().expect("acked"));
    let failed = std::mem::take(&mut *p.context().failed.lock().expect("failed"));
    Deliveries {
        acked: Mutex::new(deliveries),
        failed: Mutex::new(failed),
    }
}

/// Partition 0 of `topic` from the start, until `expected` values or 20 s.
fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<(i64, String)> {
    let c: BaseConsumer = rdkafka_config(bootstrap)
        .set("group.id", "full-disk-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            out.push((m.offset(), value));
        }
    }
    out
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The log dir's volume size and usable bytes, as DescribeLogDirs v4 answers them.
fn log_dir_volume(bootstrap: &str) -> (i64, i64) {
    let mut client = RawClient::connect(bootstrap);
    let resp: DescribeLogDirsResponse = client.request(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default());
    assert_eq!(resp.error_code, 0);
    let [dir] = resp.results.as_slice() else {
        panic!("one log dir: {:?}", resp.results);
    };
    (dir.total_bytes, dir.usable_bytes)
}

fn acked(d: &Deliveries) -> Vec<(i64, String)> {
    let mut a = d.acked.lock().expect("acked").clone();
    a.sort();
    a
}

#[test]
fn a_full_disk_refuses_appends_keeps_acknowledged_writes_and_frees_by_deleting_a_topic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let Some(disk) = Mount::tmpfs(&data, DISK_BYTES) else {
        eprintln!("skipped: mounting a tmpfs needs root and the right to mount");
        return;
    };
    let mut b = BrokerProcess::start_in(&data, &["log.segment.bytes=4194304"]);
    create_topic_cli(&b.bootstrap, "keep", "1");
    create_topic_cli(&b.bootstrap, "fill", "1");
    let kept = produce(&b.bootstrap, "keep", "keep", 200);
    assert_eq!(kept.acked.lock().expect("acked").len(), 200, "before the disk fills");

    // Twice the disk's size: the disk fills, and the broker refuses the rest.
    let filled = produce(&b.bootstrap, "fill", "fill", 2 * DISK_BYTES as usize / VALUE_BYTES);
    let fill_acked = acked(&filled);
    let failed = filled.failed.lock().expect("failed").clone();
    assert!(!fill_acked.is_empty() && !failed.is_empty(), "the disk filled up");
    for e in &failed {
        assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::KafkaStorageError),
            "a full disk is Kafka's storage error: {e}"
        );
    }
    assert!(disk.available_bytes() < 1 << 20, "the disk is full");
    let (total, usable) = log_dir_volume(&b.bootstrap);
    assert_eq!(total, DISK_BYTES as i64, "DescribeLogDirs reports the volume");
    assert!(usable < 1 << 20, "and that it is full: {usable} bytes usable");

    // Every acknowledged value reads back at the offset it was acknowledged with, and
    // nothing else was appended: the refused batches left no trace.
    assert_eq!(read_all(&b.bootstrap, "fill", fill_acked.len()), fill_acked);
    assert_eq!(read_all(&b.bootstrap, "keep", 200), acked(&kept));

    // Still full, and still serving after a kill -9: recovery needs no space.
    b.kill9();
    b.restart();
    assert_eq!(read_all(&b.bootstrap, "fill", fill_acked.len()), fill_acked);
    // The restart gave back the reserved next segment; producers fill that too.
    let again = produce(&b.bootstrap, "fill", "again", DISK_BYTES as usize / VALUE_BYTES);
    assert!(!again.failed.lock().expect("failed").is_empty(), "full again");
    let mut fill_acked = fill_acked;
    fill_acked.extend(acked(&again));
    assert_eq!(read_all(&b.bootstrap, "fill", fill_acked.len()), fill_acked);

    // Another writer takes the last free bytes, so the deletion cannot even be
    // recorded before the topic's data is freed.
    disk.fill_up();
    assert_eq!(disk.available_bytes(), 0);

    // One DeleteTopics frees the disk; producing resumes without a restart.
    let (ok, _, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--delete",
            "--topic",
            "fill",
        ],
        None,
    );
    assert!(ok, "deleting a topic on a full disk: {err}");
    wait_for("the topic's space to be freed", || {
        disk.available_bytes() > DISK_BYTES / 2
    });
    assert!(log_dir_volume(&b.bootstrap).1 > DISK_BYTES as i64 / 2);
    let (ok, listed, _) = fjord(&["topics", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(ok && !listed.lines().any(|l| l == "fill"), "{listed}");
    let more = produce(&b.bootstrap, "keep", "more", 200);
    assert!(more.failed.lock().expect("failed").is_empty());
    let mut expected = acked(&kept);
    expected.extend(acked(&more));
    assert_eq!(expected.len(), 400);

    // A clean stop and start keep all of it, and the deletion.
    b.stop();
    b.restart();
    assert_eq!(read_all(&b.bootstrap, "keep", 400), expected);
    let (_, listed, _) = fjord(&["topics", "--bootstrap-server", &b.bootstrap, "--list"], None);
    assert!(!listed.lines().any(|l| l == "fill"), "{listed}");
    b.stop();
    let log = b.log_text();
    assert!(!log.contains("panicked"), "{log}");
    drop(b);
    drop(disk);
}
