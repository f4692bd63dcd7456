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
        let mut all = vec![
            "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", data_dir.display()),
        ];
        all.extend(overrides.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(FJORD);
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
        let bootstrap = wait_listening(&mut child);
        BrokerProcess {
            child,
            bootstrap,
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
                assert!(status.success(), "broker exited with {status}");
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

    /// Starts again on the same data dir (a new port).
    pub fn restart(&mut self) {
        let extra: Vec<String> = self.overrides[2..].to_vec();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut next = Self::start_in(&self.data_dir, &refs);
        std::mem::swap(&mut self.child, &mut next.child);
        std::mem::swap(&mut self.bootstrap, &mut next.bootstrap);
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

fn wait_listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read listening line");
    let addr = line
        .trim()
        .strip_prefix("fjord: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    // Keep draining stdout so the broker never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    addr
}

/// A raw connection speaking Kafka frames, for byte-level tests.
pub struct RawClient {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub fn connect(bootstrap: &str) -> RawClient {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        RawClient {
            stream,
            correlation_id: 0,
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
            .with_client_id(Some(StrBytes::from_static_str("fjord-test")));
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
