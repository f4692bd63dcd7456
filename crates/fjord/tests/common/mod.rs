//! Test harness: real `fjord server` processes on ephemeral loopback ports, stopped by
//! PID; a raw Kafka-protocol socket for byte-level tests.
#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FJORD: &str = env!("CARGO_BIN_EXE_fjord");

/// A broker process; killed (by PID) when dropped.
pub struct BrokerProcess {
    pub child: Child,
    pub bootstrap: String,
    /// Every "listening on" address the broker printed, one per listener in the
    /// order configured (the first is `bootstrap`); the later ones arrive just after.
    pub listening: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub data_dir: PathBuf,
    pub overrides: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    pub fn start(overrides: &[&str]) -> BrokerProcess {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let mut b = Self::start_in(&data, overrides);
        b._tmp = Some(tmp);
        b
    }

    pub fn start_in(data_dir: &Path, overrides: &[&str]) -> BrokerProcess {
        Self::start_launched(&[], data_dir, overrides)
    }

    /// Started through `launcher` (a program and its arguments, such as `prlimit
    /// --nofile=N:N`, which then runs `fjord server ...`).
    pub fn start_launched(launcher: &[&str], data_dir: &Path, overrides: &[&str]) -> BrokerProcess {
        let mut all = vec![
            "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", data_dir.display()),
        ];
        all.extend(overrides.iter().map(|s| s.to_string()));
        let mut cmd = match launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(FJORD);
                cmd
            }
            None => Command::new(FJORD),
        };
        cmd.arg("server");
        for o in &all {
            cmd.arg("--override").arg(o);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn fjord server");
        let (bootstrap, listening) = wait_listening(&mut child);
        BrokerProcess {
            child,
            bootstrap,
            listening,
            data_dir: data_dir.to_path_buf(),
            overrides: all,
            _tmp: None,
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    let log = self.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!("broker exited with {status}; its log ends:\n{}", tail.join("\n"));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("broker did not stop within 30 s");
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the broker the way `how` says ("kill -9", else a clean stop), then starts
    /// it again on the same data dir.
    pub fn stop_and_restart(&mut self, how: &str) {
        if how == "kill -9" {
            self.kill9();
        } else {
            self.stop();
        }
        self.restart();
    }

    /// Starts again on the same data dir (a new port).
    pub fn restart(&mut self) {
        let extra: Vec<String> = self.overrides[2..].to_vec();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut next = Self::start_in(&self.data_dir, &refs);
        std::mem::swap(&mut self.child, &mut next.child);
        std::mem::swap(&mut self.bootstrap, &mut next.bootstrap);
        std::mem::swap(&mut self.listening, &mut next.listening);
        // `next` now holds the old, already stopped child; dropping it reaps nothing new.
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(child: &mut Child) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    const PREFIX: &str = "fjord: listening on ";
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read listening line");
    let addr = line
        .trim()
        .strip_prefix(PREFIX)
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    let listening = std::sync::Arc::new(std::sync::Mutex::new(vec![addr.clone()]));
    // Keep draining stdout so the broker never blocks on a full pipe, noting the
    // other listeners' lines.
    let more = listening.clone();
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.trim().strip_prefix(PREFIX) {
                more.lock().expect("listening").push(a.to_string());
            }
        }
    });
    (addr, listening)
}

/// A raw connection speaking Kafka frames, for byte-level tests.
pub struct RawClient {
    pub stream: TcpStream,
    correlation_id: i32,
    /// The request headers' client id ("fjord-test" unless set).
    pub client_id: &'static str,
}

impl RawClient {
    pub fn connect(bootstrap: &str) -> RawClient {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        RawClient {
            stream,
            correlation_id: 0,
            client_id: "fjord-test",
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request and decodes the response of type `R`.
    pub fn request<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .expect("encode header");
        body.encode(&mut buf, version).expect("encode body");
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).expect("write");
        let mut frame = self.read_frame().expect("response frame");
        let rh = ResponseHeader::decode(&mut frame, key.response_header_version(version)).expect("response header");
        assert_eq!(rh.correlation_id, self.correlation_id, "responses come back in order");
        R::decode(&mut frame, version).expect("decode response")
    }

    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let n = i32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// True when the broker closed the connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// Creates `topic` through Metadata auto-creation.
pub fn ensure_topic(c: &mut RawClient, topic: &str) {
    use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
    use kafka_protocol::messages::metadata_response::MetadataResponse;
    use kafka_protocol::messages::TopicName;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.into()))))
        ]))
        .with_allow_auto_topic_creation(true);
    let r: MetadataResponse = c.request(ApiKey::Metadata, 9, &req);
    assert_eq!(r.topics[0].error_code, 0);
}

/// Produce v9 (acks=all) of `records` to partition 0 of `topic`: the partition's answer.
pub fn produce_raw(
    c: &mut RawClient,
    topic: &str,
    records: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
    use kafka_protocol::messages::produce_response::ProduceResponse;
    use kafka_protocol::messages::TopicName;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut r: ProduceResponse = c.request(ApiKey::Produce, 9, &req);
    r.responses.remove(0).partition_responses.remove(0)
}

/// ListOffsets v7 for partition 0 of `topic`: error code, offset, timestamp.
pub fn list_offsets(c: &mut RawClient, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let r: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 7, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// InitProducerId v4 without a transactional id: a new idempotent producer's id.
pub fn init_producer_id(c: &mut RawClient) -> i64 {
    use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
    use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
    let r: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id.0 >= 0);
    r.producer_id.0
}

/// FindCoordinator v3's error code for a group.
pub fn find_coordinator(bootstrap: &str, group: &str) -> i16 {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let mut client = RawClient::connect(bootstrap);
    let req = FindCoordinatorRequest::default()
        .with_key(kafka_protocol::protocol::StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let resp: FindCoordinatorResponse = client.request(ApiKey::FindCoordinator, 3, &req);
    resp.error_code
}

/// Reads an i16 error code at the start of a buffer (helper for raw frames).
pub fn peek_i16(mut b: Bytes) -> i16 {
    b.get_i16()
}

/// librdkafka base config pointing at `bootstrap`.
pub fn rdkafka_config(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("log_level", "3");
    c
}

/// Runs the fjord CLI; returns (status ok, stdout, stderr).
pub fn fjord(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(FJORD)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fjord");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait fjord");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `fjord topics --create` of one partition with `configs` (KEY=VALUE); panics on failure.
pub fn create_topic_with_configs(bootstrap: &str, topic: &str, configs: &[&str]) {
    let mut args = vec!["topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic];
    for c in configs {
        args.extend(["--config", c]);
    }
    let (ok, _, err) = fjord(&args, None);
    assert!(ok, "creating {topic}: {err}");
}

/// `fjord topics --create` with `partitions` partitions; panics on failure.
pub fn create_topic_cli(bootstrap: &str, topic: &str, partitions: &str) {
    let args = [
        "topics",
        "--bootstrap-server",
        bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        partitions,
    ];
    let (ok, _, err) = fjord(&args, None);
    assert!(ok, "{err}");
}

/// `fjord topics --delete`; returns (status ok, stderr).
pub fn delete_topic_cli(bootstrap: &str, topic: &str) -> (bool, String) {
    let args = ["topics", "--bootstrap-server", bootstrap, "--delete", "--topic", topic];
    let (ok, _, err) = fjord(&args, None);
    (ok, err)
}

/// Produces `n` values `m0`, `m1`, ... spread round robin over `partitions`.
pub fn produce_round_robin(bootstrap: &str, topic: &str, n: usize, partitions: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = rdkafka_config(bootstrap).create().expect("producer");
    for i in 0..n {
        let v = format!("m{i}");
        p.send(
            BaseRecord::<(), _>::to(topic)
                .payload(&v)
                .partition((i % partitions) as i32),
        )
        .expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A filesystem mounted for a test (root only), unmounted lazily when dropped (a killed
/// broker may hold it a moment longer).
pub struct Mount {
    pub path: PathBuf,
    /// The loop device of an ext4 image, for injecting errors.
    pub device: Option<String>,
    /// Cleared once unmounted (`unmount`).
    mounted: bool,
}

impl Mount {
    /// Whether this process may mount (root); tests that need it are skipped otherwise.
    pub fn allowed() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|uids| uids.split_whitespace().nth(1) == Some("0"))
    }

    /// A tmpfs of `bytes` at `at`; `None` where mounting is not allowed.
    pub fn tmpfs(at: &Path, bytes: u64) -> Option<Mount> {
        if !Self::allowed() {
            return None;
        }
        std::fs::create_dir_all(at).expect("mount point");
        let size = format!("size={bytes}");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "fjord-test"])
            .arg(at)
            .status()
            .expect("run mount");
        ok.success().then(|| Mount {
            path: at.to_path_buf(),
            device: None,
            mounted: true,
        })
    }

    /// An ext4 filesystem of `bytes` in the image file `image`, mounted at `at` through a
    /// loop device with `errors=remount-ro` (`fail` then turns it read-only, as a disk
    /// error does); `None` where mounting is not allowed or the tools are missing.
    pub fn ext4(image: &Path, at: &Path, bytes: u64) -> Option<Mount> {
        if !Self::allowed() {
            return None;
        }
        std::fs::create_dir_all(at).expect("mount point");
        if !image.exists() {
            std::fs::File::create(image)
                .and_then(|f| f.set_len(bytes))
                .expect("image");
            let made = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image).status();
            if !made.is_ok_and(|s| s.success()) {
                return None;
            }
        }
        let mounted = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(image)
            .arg(at)
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            return None;
        }
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(at)
            .output()
            .ok()?;
        let source = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let device = source.rsplit('/').next().map(str::to_string);
        Some(Mount {
            path: at.to_path_buf(),
            device,
            mounted: true,
        })
    }

    /// Injects an ext4 error: with `errors=remount-ro` the filesystem turns read-only,
    /// so every write to it fails from now on (EROFS), as after a failing disk.
    pub fn fail(&self) {
        let device = self.device.as_deref().expect("an ext4 mount");
        let trigger = format!("/sys/fs/ext4/{device}/trigger_fs_error");
        std::fs::write(&trigger, "fjord test: injected failure").expect("trigger an ext4 error");
    }

    /// Bytes free for writers on the mount.
    pub fn available_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's figure")
    }
}

impl Mount {
    /// Unmounts now and completely (nothing may hold the filesystem), so the image can
    /// be checked.
    pub fn unmount(mut self) {
        let status = Command::new("umount").arg(&self.path).status().expect("umount");
        assert!(status.success(), "umount {}", self.path.display());
        self.mounted = false;
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// What a producer was told: each acknowledged value with its partition and offset,
/// and each error.
#[derive(Default)]
pub struct Deliveries {
    pub acked: std::sync::Mutex<Vec<(i32, i64, String)>>,
    pub failed: std::sync::Mutex<Vec<(i32, rdkafka::error::KafkaError)>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                let mut acked = self.acked.lock().expect("acked");
                acked.push((m.partition(), m.offset(), value));
            }
            Err((e, m)) => self.failed.lock().expect("failed").push((m.partition(), e.clone())),
        }
    }
}

impl Deliveries {
    /// The acknowledged values of `partition`, by offset.
    pub fn acked_in(&self, partition: i32) -> Vec<(i64, String)> {
        let acked = self.acked.lock().expect("acked");
        let mut out: Vec<(i64, String)> = acked
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, o, v)| (*o, v.clone()))
            .collect();
        out.sort();
        out
    }

    pub fn failed_count(&self) -> usize {
        self.failed.lock().expect("failed").len()
    }
}

/// Sends `n` values `<tag>-<i>` padded to `value_bytes` to each of `partitions`,
/// without retries (a refused batch reports the broker's own error), and waits for
/// every report.
pub fn produce_tracked(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    tag: &str,
    n: usize,
    value_bytes: usize,
) -> Deliveries {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer<Deliveries> = rdkafka_config(bootstrap)
        .set("message.send.max.retries", "0")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create_with_context(Deliveries::default())
        .expect("producer");
    for i in 0..n {
        for &partition in partitions {
            let v = format!("{tag}-{partition}-{i:06}-{}", "v".repeat(value_bytes));
            let mut record = BaseRecord::<(), _>::to(topic).payload(&v).partition(partition);
            while let Err((_, r)) = p.send(record) {
                record = r;
                p.poll(Duration::from_millis(10));
            }
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let acked = std::mem::take(&mut *p.context().acked.lock().expect("acked"));
    let failed = std::mem::take(&mut *p.context().failed.lock().expect("failed"));
    Deliveries {
        acked: std::sync::Mutex::new(acked),
        failed: std::sync::Mutex::new(failed),
    }
}

/// Partition `partition` of `topic` from the start, until `expected` values or 20 s.
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32, expected: usize) -> Vec<(i64, String)> {
    read_partition_from(bootstrap, topic, partition, rdkafka::Offset::Beginning, expected)
}

/// Partition `partition` of `topic` from `from`, until `expected` values or 20 s;
/// panics if one more arrives within 300 ms after those.
pub fn read_partition_from(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: rdkafka::Offset,
    expected: usize,
) -> Vec<(i64, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka_config(bootstrap)
        .set("group.id", "read-partition")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from).expect("tpl");
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
    if let Some(Ok(m)) = c.poll(Duration::from_millis(300)) {
        panic!("unexpected extra message at offset {}", m.offset());
    }
    out
}

/// Waits up to 20 s for `f`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
