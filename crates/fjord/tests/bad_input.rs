//! Bad input over real sockets: each gets Kafka's error or a closed connection, and the
//! broker goes on serving the next client.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// The broker still answers ApiVersions on a fresh connection.
fn assert_serving(broker: &BrokerProcess) {
    let mut c = RawClient::connect(&broker.bootstrap);
    let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &api_versions_request());
    assert_eq!(r.error_code, 0);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16));
}

/// ApiVersions v3 with a client software name and version, as every client sends.
fn api_versions_request() -> ApiVersionsRequest {
    use kafka_protocol::protocol::StrBytes;
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("fjord-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn garbage_bytes_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(c.is_closed());
    assert_serving(&broker);
}

#[test]
fn two_gib_length_prefix_is_refused_before_allocation() {
    let broker = BrokerProcess::start(&[]);
    for prefix in [0x7fff_ffffu32, 0x8000_0000, 0xffff_ffff] {
        let mut c = RawClient::connect(&broker.bootstrap);
        c.send_bytes(&prefix.to_be_bytes()).unwrap();
        c.send_bytes(&[0u8; 16]).unwrap();
        assert!(c.is_closed(), "prefix {prefix:#x}");
    }
    assert_serving(&broker);
}

#[test]
fn huge_array_count_in_a_tiny_request() {
    let broker = BrokerProcess::start(&[]);
    // Metadata v0: api key 3, version 0, correlation 1, null client id, then a topic
    // array claiming 54 million entries (the kafka-protocol-rs fuzz finding).
    let mut body = vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    body.extend_from_slice(&[0x03, 0x3c, 0x0c, 0x00]);
    let mut c = RawClient::connect(&broker.bootstrap);
    c.send_bytes(&frame(&body)).unwrap();
    assert!(c.is_closed());
    // Metadata v9 (flexible): a compact array whose varint count is ~2^32.
    let mut body = vec![0, 3, 0, 9, 0, 0, 0, 2, 0xff, 0xff, 0];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut c = RawClient::connect(&broker.bootstrap);
    c.send_bytes(&frame(&body)).unwrap();
    assert!(c.is_closed());
    assert_serving(&broker);
}

#[test]
fn unknown_api_key_closes_and_unsupported_api_versions_gets_v0_error() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    c.send_bytes(&frame(&[0x03, 0xe7, 0, 0, 0, 0, 0, 7, 0xff, 0xff]))
        .unwrap();
    assert!(c.is_closed());
    // ApiVersions v99: answered in v0 with UNSUPPORTED_VERSION (35) and, as Kafka's
    // `getErrorResponse`, the ApiVersions entry alone: the versions to retry with.
    let mut c = RawClient::connect(&broker.bootstrap);
    c.send_bytes(&frame(&[0, 18, 0, 99, 0, 0, 0, 9, 0xff, 0xff])).unwrap();
    let mut f = c.read_frame().unwrap();
    assert_eq!(&f[..4], &9i32.to_be_bytes());
    let _ = bytes::Buf::get_i32(&mut f);
    let r = ApiVersionsResponse::decode(&mut f, 0).unwrap();
    assert_eq!(r.error_code, 35);
    let listed: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(listed, [(ApiKey::ApiVersions as i16, 0, 4)]);
    assert_serving(&broker);
}

/// ApiVersions v3+ names the client's software; a name or version outside Kafka's
/// pattern (`[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`) is INVALID_REQUEST with no
/// list, as Kafka's `ApiVersionsRequest.isValid`.
#[test]
fn api_versions_checks_the_client_software_name() {
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    let ask = |c: &mut RawClient, name: &'static str, version: &'static str| -> ApiVersionsResponse {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(name))
            .with_client_software_version(StrBytes::from_static_str(version));
        c.request(ApiKey::ApiVersions, 3, &req)
    };
    let good = ask(&mut c, "fjord-test", "1.0.0");
    assert_eq!(good.error_code, 0);
    assert!(good.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    for (name, version) in [
        ("bad name", "1.0"),
        ("fjord", "1.0-"),
        ("", "1"),
        ("kafka_python", "2.0"),
    ] {
        let r = ask(&mut c, name, version);
        assert_eq!((r.error_code, r.api_keys.len()), (42, 0), "{name:?} {version:?}");
    }
    assert_serving(&broker);
}

fn batch(n: usize, producer: Option<(i64, i16, i32)>) -> BytesMut {
    encoded_batch(n, producer, Compression::None, 1_700_000_000_000)
}

fn encoded_batch(n: usize, producer: Option<(i64, i16, i32)>, compression: Compression, timestamp: i64) -> BytesMut {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| {
            // The encoder starts a new batch when offset - sequence changes.
            let sequence = if seq >= 0 { seq + i as i32 } else { i as i32 - 1 };
            let mut r = record(i as i64, (pid, epoch, sequence), timestamp, format!("v{i}"));
            r.key = Some(Bytes::from(format!("k{i}")));
            r
        })
        .collect();
    encode(&records, compression)
}

/// A record at `offset` of `producer` (id, epoch, this record's sequence).
fn record(offset: i64, producer: (i64, i16, i32), timestamp: i64, value: String) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: producer.0,
        producer_epoch: producer.1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: producer.2,
        timestamp,
        key: None,
        value: Some(Bytes::from(value)),
        headers: Default::default(),
        delete_horizon: false,
    }
}

fn encode(records: &[Record], compression: Compression) -> BytesMut {
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &opts).unwrap();
    buf
}

fn produce(c: &mut RawClient, topic: &str, records: Bytes) -> (i16, i64) {
    let p = common::produce_raw(c, topic, records);
    (p.error_code, p.base_offset)
}

#[test]
fn bad_batches_get_kafkas_error_codes_and_the_connection_stays_up() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    let good = batch(3, None);
    assert_eq!(
        produce(&mut c, "bad-batches", good.clone().freeze()).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION before it exists"
    );
    common::ensure_topic(&mut c, "bad-batches");
    assert_eq!(produce(&mut c, "bad-batches", good.clone().freeze()), (0, 0));

    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(produce(&mut c, "bad-batches", corrupt.freeze()).0, 2, "CORRUPT_MESSAGE");

    let mut old_magic = good.clone();
    old_magic[16] = 1;
    assert_eq!(
        produce(&mut c, "bad-batches", old_magic.freeze()).0,
        87,
        "INVALID_RECORD for magic 1, as Kafka"
    );

    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert_eq!(
        produce(&mut c, "bad-batches", two.freeze()).0,
        87,
        "INVALID_RECORD for two batches"
    );

    let mut truncated = good.clone();
    truncated.truncate(good.len() - 5);
    assert_eq!(
        produce(&mut c, "bad-batches", truncated.freeze()).0,
        87,
        "INVALID_RECORD for a cut batch: Kafka's input stream finds no batch in it"
    );

    // records_count says 4 but 3 records follow; CRC recomputed so only the count is wrong.
    let mut miscount = good.clone();
    miscount[57..61].copy_from_slice(&4i32.to_be_bytes());
    miscount[23..27].copy_from_slice(&3i32.to_be_bytes());
    let crc = broker::log::record_batch::compute_crc(&miscount);
    miscount[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce(&mut c, "bad-batches", miscount.freeze()).0,
        87,
        "INVALID_RECORD"
    );

    assert_eq!(
        produce(&mut c, "bad-batches", Bytes::new()).0,
        87,
        "empty records: INVALID_RECORD"
    );
    assert_eq!(
        produce(&mut c, "bad-batches", good.freeze()),
        (0, 3),
        "the partition still takes good batches"
    );
    assert_serving(&broker);
}

#[test]
fn oversized_batch_is_message_too_large() {
    let broker = BrokerProcess::start(&["message.max.bytes=1000"]);
    let mut c = RawClient::connect(&broker.bootstrap);
    common::ensure_topic(&mut c, "too-large");
    let big = batch(200, None);
    assert!(big.len() > 1000);
    let big_len = big.len();
    assert_eq!(
        produce(&mut c, "too-large", big.freeze()).0,
        10,
        "MESSAGE_TOO_LARGE for {big_len} bytes"
    );
    assert_eq!(produce(&mut c, "too-large", batch(1, None).freeze()), (0, 0));
}

#[test]
fn request_larger_than_socket_request_max_bytes_closes() {
    let broker = BrokerProcess::start(&["socket.request.max.bytes=2048"]);
    let mut c = RawClient::connect(&broker.bootstrap);
    let mut body = BytesMut::new();
    body.put_bytes(0, 4096);
    c.send_bytes(&frame(&body)).unwrap();
    assert!(c.is_closed());
    assert_serving(&broker);
}

/// `max.connections` closes a connection over the limit at once; `connections.max.idle.ms`
/// closes one that sends nothing, never one that keeps sending requests, and its slot
/// serves the next client.
#[test]
fn extra_and_idle_connections_are_closed() {
    let broker = BrokerProcess::start(&["max.connections=2", "connections.max.idle.ms=1500"]);
    let api_versions = |c: &mut RawClient| {
        let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &api_versions_request());
        assert_eq!(r.error_code, 0);
    };
    let mut busy = RawClient::connect(&broker.bootstrap);
    let mut quiet = RawClient::connect(&broker.bootstrap);
    api_versions(&mut busy);
    api_versions(&mut quiet);
    let mut extra = RawClient::connect(&broker.bootstrap);
    assert!(extra.is_closed(), "a third connection is over max.connections=2");
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(3) {
        api_versions(&mut busy);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let waited = std::time::Instant::now();
    assert!(quiet.is_closed(), "idle for twice connections.max.idle.ms");
    assert!(
        waited.elapsed() < std::time::Duration::from_secs(1),
        "closed while busy was sending"
    );
    api_versions(&mut busy);
    // The slot is given back as the idle connection's task ends.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_serving(&broker);
}

/// Nanoseconds each `fjord-network-<i>` thread of a process has run (schedstat), by name.
fn network_thread_cpu_ns(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let name = name.trim();
        if !name.starts_with("fjord-network-") {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let ns = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("schedstat");
        out.insert(name.to_string(), ns);
    }
    out
}

/// `num.network.threads=3` starts three network threads, and three clients are served
/// one on each: every thread runs while its client makes requests. A thread with no
/// client has nothing to wake it, not even a timer, so it does not run at all.
#[test]
fn connections_are_spread_over_the_network_threads() {
    let broker = BrokerProcess::start(&["num.network.threads=3"]);
    let pid = broker.child.id();
    let mut clients: Vec<RawClient> = (0..3).map(|_| RawClient::connect(&broker.bootstrap)).collect();
    let before = network_thread_cpu_ns(pid);
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        ["fjord-network-0", "fjord-network-1", "fjord-network-2"]
    );
    for _ in 0..20 {
        for c in &mut clients {
            let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &api_versions_request());
            assert_eq!(r.error_code, 0);
        }
    }
    let after = network_thread_cpu_ns(pid);
    for (name, ns) in &after {
        assert!(
            ns > &before[name],
            "{name} did not run: not serving one of the clients ({before:?} -> {after:?})"
        );
    }
}

#[test]
fn idempotent_producer_duplicates_and_gaps() {
    let mut broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    let pid = common::init_producer_id(&mut c);
    common::ensure_topic(&mut c, "idem");
    let b0 = batch(3, Some((pid, 0, 0))).freeze();
    assert_eq!(produce(&mut c, "idem", b0.clone()), (0, 0));
    assert_eq!(
        produce(&mut c, "idem", b0.clone()),
        (0, 0),
        "a retried batch answers with its first offset"
    );
    assert_eq!(produce(&mut c, "idem", batch(2, Some((pid, 0, 3))).freeze()), (0, 3));
    assert_eq!(
        produce(&mut c, "idem", batch(1, Some((pid, 0, 9))).freeze()).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&mut c, "idem", batch(1, Some((pid, -1, 5))).freeze()).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(
        produce(&mut c, "idem", batch(1, Some((pid, 0, 5))).freeze()),
        (0, 5),
        "next in sequence"
    );
    // Kafka's LogValidator: a producer id without a sequence would reset the producer's
    // state (its next batch out of order); a control batch is the broker's to write.
    assert_eq!(
        produce(&mut c, "idem", batch(1, Some((pid, 0, -1))).freeze()).0,
        87,
        "INVALID_RECORD for a producer id without a sequence"
    );
    let mut control = batch(1, None);
    control[22] |= 0x20;
    let crc = broker::log::record_batch::compute_crc(&control);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce(&mut c, "idem", control.freeze()).0,
        87,
        "INVALID_RECORD for a client's control batch"
    );
    // The duplicate is still caught after a clean restart and after kill -9.
    broker.stop();
    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap);
    assert_eq!(produce(&mut c, "idem", batch(1, Some((pid, 0, 5))).freeze()), (0, 5));
    broker.kill9();
    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap);
    assert_eq!(produce(&mut c, "idem", batch(1, Some((pid, 0, 5))).freeze()), (0, 5));
    assert_eq!(produce(&mut c, "idem", batch(1, Some((pid, 0, 6))).freeze()), (0, 6));
}

#[test]
fn produce_v2_is_advertised_like_kafka_but_refused() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &api_versions_request());
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("produce listed");
    assert_eq!(produce.min_version, 0, "advertised from v0, as Kafka 4 (KAFKA-18659)");
    // Produce v2 header: key 0, version 2, correlation 5, null client id; acks, timeout, no topics.
    c.send_bytes(&frame(&[
        0, 0, 0, 2, 0, 0, 0, 5, 0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 0,
    ]))
    .unwrap();
    assert!(c.is_closed(), "a v2 produce request is refused");
    assert_serving(&broker);
}

/// A valid zstd batch of one record whose value is `value_bytes` of zeros, in a few
/// kilobytes: its records expand to that.
fn zstd_bomb(value_bytes: usize, timestamp: i64) -> Vec<u8> {
    use broker::log::record_batch::{compute_crc, BATCH_HEADER_BYTES, LOG_OVERHEAD};
    use std::io::Write;
    let varint = |out: &mut Vec<u8>, v: i64| {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    };
    // attributes, timestamp delta, offset delta, no key, the value's length
    let mut head = vec![0u8, 0, 0, 1];
    varint(&mut head, value_bytes as i64);
    let mut record = Vec::new();
    varint(&mut record, (head.len() + value_bytes + 1) as i64);
    record.extend(head);
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
    encoder.write_all(&record).expect("compress");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..value_bytes / zeros.len() {
        encoder.write_all(&zeros).expect("compress");
    }
    encoder
        .write_all(&zeros[..value_bytes % zeros.len()])
        .expect("compress");
    encoder.write_all(&[0]).expect("compress"); // no headers
    let compressed = encoder.finish().expect("zstd");
    let mut b = BytesMut::zeroed(BATCH_HEADER_BYTES);
    b[8..12].copy_from_slice(&((BATCH_HEADER_BYTES - LOG_OVERHEAD + compressed.len()) as i32).to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&4i16.to_be_bytes());
    for at in [27, 35] {
        b[at..at + 8].copy_from_slice(&timestamp.to_be_bytes());
    }
    b[43..61].copy_from_slice(&[0xff; 18]);
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&compressed);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.to_vec()
}

/// Compressed bombs: a producer's zstd batch of a few kilobytes whose one record
/// expands to 1 GiB is refused (INVALID_RECORD: past the 256 MiB a produced batch may
/// expand to while it is validated); one of 200 MiB is validated as it streams and
/// stored. A ListOffsets by timestamp looks into that batch for the exact record, and
/// decodes it only up to a limit: the answer is the batch's own offset and timestamp.
/// Through all of it the broker's memory stays small (a lookup decoded the whole batch
/// once; a larger bomb ended the process).
#[test]
fn a_compressed_bomb_is_not_expanded() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    common::ensure_topic(&mut c, "bomb");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert_eq!(produce(&mut c, "bomb", Bytes::from(zstd_bomb(1 << 30, now))).0, 87);
    assert_eq!(produce(&mut c, "bomb", Bytes::from(zstd_bomb(200 << 20, now))), (0, 0));
    // By a timestamp, and Kafka's MAX_TIMESTAMP (-3).
    for timestamp in [0, -3] {
        assert_eq!(
            common::list_offsets(&mut c, "bomb", timestamp),
            (0, 0, now),
            "timestamp {timestamp}"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.child.id())).expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kib < 100 << 10, "the broker's peak RSS: {peak_kib} KiB");
    assert_serving(&broker);
}

/// Produce v`version` (acks=all) of `records` to partition 0 of `topic`, in a request
/// with `transactional_id`: the partition's error code.
fn produce_with(c: &mut RawClient, version: i16, transactional_id: Option<&str>, topic: &str, records: Bytes) -> i16 {
    produce_answer(c, version, -1, transactional_id, topic, records).error_code
}

fn compressed_batch(n: usize, compression: Compression) -> BytesMut {
    encoded_batch(n, None, compression, 1_700_000_000_000)
}

fn resign(b: &mut [u8]) {
    let crc = broker::log::record_batch::compute_crc(b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// What Kafka's `ProduceRequest.validateRecords`, `UnifiedLog.analyzeAndValidateRecords`
/// and `LogValidator` refuse, with Kafka's codes: zstd below Produce v7, transactional
/// records without a transactional id, a base offset other than 0, a producer's
/// LogAppendTime on a LogAppendTime topic, records that do not decompress (with a good
/// CRC), a record cut off inside a compressed batch. The partition takes good batches
/// after each.
#[test]
fn produce_validation_is_kafkas() {
    const CORRUPT_MESSAGE: i16 = 2;
    const INVALID_TIMESTAMP: i16 = 32;
    const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    const INVALID_RECORD: i16 = 87;
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    common::ensure_topic(&mut c, "checked");
    common::create_topic_with_configs(
        &broker.bootstrap,
        "append-time",
        &["message.timestamp.type=LogAppendTime"],
    );
    let zstd = compressed_batch(5, Compression::Zstd).freeze();
    assert_eq!(
        produce_with(&mut c, 6, None, "checked", zstd.clone()),
        UNSUPPORTED_COMPRESSION_TYPE
    );
    assert_eq!(
        produce_with(&mut c, 7, None, "checked", zstd),
        0,
        "zstd from Produce v7"
    );
    let mut transactional = batch(2, Some((1000, 0, 0)));
    transactional[22] |= 0x10;
    resign(&mut transactional);
    assert_eq!(
        produce_with(&mut c, 9, None, "checked", transactional.freeze()),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    let mut offset = batch(2, None);
    offset[0..8].copy_from_slice(&7i64.to_be_bytes());
    assert_eq!(
        produce_with(&mut c, 9, None, "checked", offset.freeze()),
        INVALID_RECORD
    );
    let mut append_time = batch(2, None);
    append_time[22] |= 0x08;
    resign(&mut append_time);
    let append_time = append_time.freeze();
    assert_eq!(
        produce_with(&mut c, 9, None, "append-time", append_time.clone()),
        INVALID_TIMESTAMP
    );
    assert_eq!(
        produce_with(&mut c, 9, None, "checked", append_time),
        0,
        "a CreateTime topic takes it, as Kafka, stamped CreateTime"
    );
    for compression in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let good = compressed_batch(50, compression);
        // Garbage in the compressed payload, signed anew: it does not decompress.
        let mut garbage = good.clone();
        for b in garbage[70..90].iter_mut() {
            *b ^= 0x5a;
        }
        resign(&mut garbage);
        let code = produce_with(&mut c, 9, None, "checked", garbage.freeze());
        assert!(
            code == CORRUPT_MESSAGE || code == INVALID_RECORD,
            "{compression:?}: garbage answered {code}"
        );
        // One record fewer than the count claims: cut off inside the stream.
        let mut miscount = good.clone();
        miscount[57..61].copy_from_slice(&51i32.to_be_bytes());
        miscount[23..27].copy_from_slice(&50i32.to_be_bytes());
        resign(&mut miscount);
        assert_eq!(
            produce_with(&mut c, 9, None, "checked", miscount.freeze()),
            INVALID_RECORD,
            "{compression:?}: count past the records"
        );
        assert_eq!(
            produce_with(&mut c, 9, None, "checked", good.freeze()),
            0,
            "{compression:?}"
        );
    }
    assert_eq!(produce(&mut c, "checked", batch(3, None).freeze()).0, 0);
    assert_serving(&broker);
}

/// The stored batch's max timestamp is its records' largest, whatever the producer's
/// header claimed (Kafka's `setMaxTimestamp`): ListOffsets MAX_TIMESTAMP answers the
/// record that has it.
#[test]
fn the_max_timestamp_stored_is_the_records() {
    let broker = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&broker.bootstrap);
    common::ensure_topic(&mut c, "stamped");
    let mut lying = batch(3, None);
    // The header claims a max timestamp below every record's (1_700_000_000_000).
    lying[35..43].copy_from_slice(&1_600_000_000_000i64.to_be_bytes());
    resign(&mut lying);
    assert_eq!(produce(&mut c, "stamped", lying.freeze()).0, 0);
    let (code, offset, timestamp) = common::list_offsets(&mut c, "stamped", -3);
    assert_eq!((code, offset, timestamp), (0, 0, 1_700_000_000_000));
    let (code, offset, _) = common::list_offsets(&mut c, "stamped", 1_650_000_000_000);
    assert_eq!((code, offset), (0, 0), "found by its records' time");
}

/// Kafka's `producer.id.expiration.ms`: a producer whose last batch is older than it is
/// forgotten at the next check, so its next batch starts afresh at any sequence; one
/// seen recently is still held to its sequence.
#[test]
fn idle_producers_expire() {
    let broker = BrokerProcess::start(&["producer.id.expiration.check.interval.ms=200"]);
    let mut c = RawClient::connect(&broker.bootstrap);
    common::ensure_topic(&mut c, "expiring");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let idle = common::init_producer_id(&mut c);
    let recent = common::init_producer_id(&mut c);
    let at = |pid: i64, seq: i32, timestamp: i64| {
        encoded_batch(1, Some((pid, 0, seq)), Compression::None, timestamp).freeze()
    };
    // Last seen two days ago (by its batch's timestamp), and now.
    let two_days_ago = now - 2 * 86_400_000;
    assert_eq!(produce(&mut c, "expiring", at(idle, 0, two_days_ago)).0, 0);
    assert_eq!(produce(&mut c, "expiring", at(recent, 0, now)).0, 0);
    common::wait_for("the idle producer to expire", || {
        produce(&mut c, "expiring", at(idle, 5, now)).0 == 0
    });
    assert_eq!(
        produce(&mut c, "expiring", at(recent, 5, now)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
}

/// A compressed batch whose records' offset deltas are out of order (Kafka's
/// `LogValidator`: "some older clients do not implement the V1 internal offsets
/// correctly") is rebuilt with them in order, with its own codec, as Kafka does;
/// librdkafka then reads each record at its place. An uncompressed one is stored as
/// sent (Kafka checks no inner offsets there).
#[test]
fn compressed_inner_offsets_out_of_order_are_rewritten() {
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    common::ensure_topic(&mut c, "inner");
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        // Offset minus sequence constant: one batch, base sequence -1.
        let records: Vec<Record> = [(0, "a"), (2, "b"), (1, "c")]
            .into_iter()
            .map(|(offset, v)| record(offset, (-1, -1, offset as i32 - 1), 1_700_000_000_000, v.into()))
            .collect();
        let sent = encode(&records, compression).freeze();
        assert_eq!(sent[57..61], 3i32.to_be_bytes(), "one batch of three");
        let (code, base) = produce(&mut c, "inner", sent);
        assert_eq!(code, 0, "{compression:?}");
        let stored: Vec<(i64, String)> = common::read_partition(&b.bootstrap, "inner", 0, base as usize + 3)
            .into_iter()
            .skip(base as usize)
            .collect();
        let expected: Vec<(i64, String)> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, v)| (base + i as i64, v.to_string()))
            .collect();
        assert_eq!(stored, expected, "{compression:?}");
    }
}

/// One partition's Produce answer, with the request's version, acks and transactional
/// id chosen.
fn produce_answer(
    c: &mut RawClient,
    version: i16,
    acks: i16,
    transactional_id: Option<&str>,
    topic: &str,
    records: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
    use kafka_protocol::messages::produce_response::ProduceResponse;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_transactional_id(transactional_id.map(|t| StrBytes::from_string(t.into()).into()))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut r: ProduceResponse = c.request(ApiKey::Produce, version, &req);
    r.responses.remove(0).partition_responses.remove(0)
}

/// Produce answers as Kafka's `KafkaApis.handleProduceRequest` and
/// `ReplicaManager.appendToLocalLog` give them: records refused one by one come back as
/// record errors with Kafka's message; internal topics take no client's records; acks
/// is checked after the topic exists; a transactional id beside plain batches is
/// ignored; acks=all meets min.insync.replicas with the one replica there is; a batch
/// larger than segment.bytes is RECORD_LIST_TOO_LARGE; error_message is null but for
/// record errors, and log_start_offset is the log's for errors Kafka reports it with.
#[test]
fn produce_answers_are_kafkas() {
    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    const RECORD_LIST_TOO_LARGE: i16 = 18;
    const INVALID_REQUIRED_ACKS: i16 = 21;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const INVALID_RECORD: i16 = 87;
    const INVALID_TIMESTAMP: i16 = 32;
    let broker = BrokerProcess::start(&[]);
    let bs = &broker.bootstrap;
    let mut c = RawClient::connect(bs);
    common::create_topic_with_configs(bs, "compacted", &["cleanup.policy=compact"]);
    common::create_topic_with_configs(bs, "min-isr", &["min.insync.replicas=2"]);
    common::create_topic_with_configs(bs, "small-segments", &["segment.bytes=1000"]);
    common::ensure_topic(&mut c, "plain");
    common::ensure_topic(&mut c, "__consumer_offsets");

    // Two of three records without a key on a compacted topic.
    let mut records: Vec<Record> = (0..3)
        // One batch: the encoder splits where offset - sequence changes.
        .map(|i| record(i, (-1, -1, i as i32 - 1), 1_700_000_000_000, format!("v{i}")))
        .collect();
    records[1].key = Some(Bytes::from_static(b"k"));
    let p = produce_answer(
        &mut c,
        9,
        -1,
        None,
        "compacted",
        encode(&records, Compression::None).freeze(),
    );
    let no_key = "Compacted topic cannot accept message without key in topic partition compacted-0";
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert_eq!(
        p.error_message.as_deref(),
        Some(format!("One or more records have been rejected due to 2 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=0, message='{no_key}'), RecordError(batchIndex=2, message='{no_key}')]").as_str())
    );
    let indexed: Vec<(i32, Option<&str>)> = p
        .record_errors
        .iter()
        .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
        .collect();
    assert_eq!(indexed, [(0, Some(no_key)), (2, Some(no_key))]);
    assert_eq!((p.base_offset, p.log_start_offset), (-1, 0), "the log's start offset");

    // A timestamp an hour and more ahead: INVALID_TIMESTAMP, the record named.
    let ahead = encoded_batch(1, None, Compression::Lz4, i64::MAX / 2);
    let p = produce_answer(&mut c, 9, -1, None, "plain", ahead.freeze());
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    assert_eq!(p.record_errors.len(), 1);
    assert!(p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .is_some_and(|m| m.starts_with(&format!(
            "Timestamp {} of message with offset 0 is out of range. The timestamp should be within [",
            i64::MAX / 2
        ))));

    // Internal topics: refused to clients, with no message.
    let p = produce_answer(&mut c, 9, -1, None, "__consumer_offsets", batch(1, None).freeze());
    assert_eq!(
        (p.error_code, p.error_message.as_deref(), p.log_start_offset),
        (INVALID_TOPIC_EXCEPTION, None, -1)
    );
    assert_eq!(
        common::list_offsets(&mut c, "__consumer_offsets", -1).1,
        0,
        "nothing written"
    );

    // acks=2: an unknown topic is named first.
    let p = produce_answer(&mut c, 9, 2, None, "no-such-topic", batch(1, None).freeze());
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let p = produce_answer(&mut c, 9, 2, None, "plain", batch(1, None).freeze());
    assert_eq!(p.error_code, INVALID_REQUIRED_ACKS);

    // A negative producer id other than -1 is no producer id either (Kafka's
    // `hasProducerId`): a plain batch, without a sequence.
    let p = produce_answer(
        &mut c,
        9,
        -1,
        None,
        "plain",
        encoded_batch(2, Some((-2, -1, -1)), Compression::None, 1_700_000_000_000).freeze(),
    );
    assert_eq!(p.error_code, 0, "{p:?}");

    // A transactional id beside a plain batch is ignored.
    let p = produce_answer(&mut c, 9, -1, Some("tx"), "plain", batch(2, None).freeze());
    assert_eq!((p.error_code, p.base_offset), (0, 2));

    // min.insync.replicas=2 with one replica: acks=all is met.
    let p = produce_answer(&mut c, 9, -1, None, "min-isr", batch(2, None).freeze());
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    // A batch larger than the topic's segment.bytes.
    let p = produce_answer(&mut c, 9, -1, None, "small-segments", batch(100, None).freeze());
    assert_eq!(
        (p.error_code, p.error_message.as_deref()),
        (RECORD_LIST_TOO_LARGE, None)
    );
    let p = produce_answer(&mut c, 9, -1, None, "small-segments", batch(2, None).freeze());
    assert_eq!((p.error_code, p.base_offset), (0, 0), "a batch that fits");

    // A partition named twice: appended once, with its last records, answered once.
    use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
    use kafka_protocol::messages::produce_response::ProduceResponse;
    use kafka_protocol::messages::TopicName;
    common::ensure_topic(&mut c, "twice");
    let entry = |n: usize| {
        PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(n, None).freeze()))
    };
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("twice")))
            .with_partition_data(vec![entry(2), entry(3)])]);
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &req);
    let answers: Vec<(i32, i16, i64)> = r.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    assert_eq!(answers, [(0, 0, 0)]);
    assert_eq!(
        common::list_offsets(&mut c, "twice", -1).1,
        3,
        "the last entry's 3 records alone"
    );
    assert_serving(&broker);
}
