//! Acceptance with librdkafka (the rdkafka crate): admin, 100,000 keyed messages with
//! headers read back exactly and in order, every codec, every acks, ListOffsets by time.

mod common;

use common::{rdkafka_config, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = rdkafka_config(bootstrap).create().expect("admin");
    let results = block_on(admin.create_topics(
        [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("create");
    assert!(results.iter().all(|r| r.is_ok()), "create_topics: {results:?}");
}

struct Consumed {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    header: Vec<u8>,
}

fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = rdkafka_config(bootstrap)
        .set("enable.auto.commit", "false")
        .set("group.id", "fjord-test")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let header = m
                .headers()
                .and_then(|h| h.iter().next().and_then(|x| x.value.map(|v| v.to_vec())))
                .unwrap_or_default();
            out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                header,
            });
        }
    }
    // Nothing more than expected arrives.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        panic!("unexpected extra message at {}:{}", m.partition(), m.offset());
    }
    out
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut c = rdkafka_config(bootstrap);
    c.set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// Sends `n` messages round-robin over `partitions`, key `k<i % 1000>`, value `v<i>`,
/// header `idx=<i>`; checks every delivery report.
fn produce_n(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, partitions: i32, n: usize) {
    for i in 0..n {
        let key = format!("k{}", i % 1000);
        let value = format!("v{i}");
        let idx = i.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "idx",
            value: Some(idx.as_bytes()),
        });
        let mut rec = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition((i as i32) % partitions)
            .headers(headers);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// Every message once, in produced order within each partition, offsets from 0 up.
fn check_exact(got: &[Consumed], partitions: i32, n: usize) {
    assert_eq!(got.len(), n, "message count");
    for part in 0..partitions {
        let in_part: Vec<&Consumed> = got.iter().filter(|c| c.partition == part).collect();
        let expected: Vec<usize> = (0..n).filter(|i| (*i as i32) % partitions == part).collect();
        assert_eq!(in_part.len(), expected.len(), "count in partition {part}");
        for (j, (c, i)) in in_part.iter().zip(&expected).enumerate() {
            assert_eq!(c.offset, j as i64, "offsets are consecutive in partition {part}");
            assert_eq!(c.value, format!("v{i}").into_bytes());
            assert_eq!(c.key, format!("k{}", i % 1000).into_bytes());
            assert_eq!(c.header, i.to_string().into_bytes());
        }
    }
}

#[test]
fn hundred_thousand_keyed_messages_with_headers_read_back_exactly() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker.bootstrap, "acceptance", 3);
    let p = producer(&broker.bootstrap, &[("acks", "all")]);
    produce_n(&p, "acceptance", 3, 100_000);
    let got = consume_all(&broker.bootstrap, "acceptance", 3, 100_000);
    check_exact(&got, 3, 100_000);
}

#[test]
fn every_compression_codec() {
    let broker = BrokerProcess::start(&[]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker.bootstrap, &topic, 2);
        let p = producer(&broker.bootstrap, &[("compression.codec", codec)]);
        produce_n(&p, &topic, 2, 20_000);
        check_exact(&consume_all(&broker.bootstrap, &topic, 2, 20_000), 2, 20_000);
    }
}

#[test]
fn every_acks_setting() {
    let broker = BrokerProcess::start(&[]);
    for acks in ["0", "1", "all"] {
        let topic = format!("acks-{acks}");
        create_topic(&broker.bootstrap, &topic, 1);
        let p = producer(&broker.bootstrap, &[("acks", acks)]);
        produce_n(&p, &topic, 1, 10_000);
        check_exact(&consume_all(&broker.bootstrap, &topic, 1, 10_000), 1, 10_000);
    }
}

#[test]
fn list_offsets_by_timestamp_and_delete_topic() {
    let broker = BrokerProcess::start(&["log.segment.delete.delay.ms=1000"]);
    create_topic(&broker.bootstrap, "bytime", 1);
    let p = producer(&broker.bootstrap, &[]);
    let t0 = 1_700_000_000_000i64;
    for i in 0..20 {
        let ts = if i < 10 { t0 + i } else { t0 + 10_000 + i };
        p.send(BaseRecord::<(), _>::to("bytime").payload("x").timestamp(ts))
            .expect("send");
        p.flush(Duration::from_secs(10)).expect("flush");
    }
    let consumer: BaseConsumer = rdkafka_config(&broker.bootstrap).create().expect("consumer");
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("bytime", 0, Offset::Offset(ts)).expect("tpl");
        let r = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .expect("offsets_for_times");
        r.elements()[0].offset()
    };
    assert_eq!(lookup(t0), Offset::Offset(0));
    assert_eq!(lookup(t0 + 5), Offset::Offset(5));
    assert_eq!(lookup(t0 + 5_000), Offset::Offset(10));
    assert_eq!(lookup(t0 + 10_015), Offset::Offset(15));
    assert_eq!(lookup(t0 + 100_000), Offset::End, "no record that late");
    assert_eq!(
        consumer
            .fetch_watermarks("bytime", 0, Duration::from_secs(10))
            .expect("watermarks"),
        (0, 20)
    );

    let admin: AdminClient<DefaultClientContext> = rdkafka_config(&broker.bootstrap).create().expect("admin");
    let r = block_on(admin.delete_topics(&["bytime"], &AdminOptions::new())).expect("delete");
    assert!(r[0].is_ok(), "{r:?}");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    assert!(
        md.topics().iter().all(|t| t.name() != "bytime"),
        "deleted topic is gone"
    );
    // As Kafka: the directory is renamed at once, removed after file.delete.delay.ms.
    assert!(!broker.data_dir.join("bytime-0").exists(), "its directory is renamed");
    let renamed = |d: &std::path::Path| {
        std::fs::read_dir(d).expect("data dir").filter_map(|e| e.ok()).any(|e| {
            e.file_name().to_string_lossy().starts_with("bytime-0.")
                && e.file_name().to_string_lossy().ends_with("-delete")
        })
    };
    assert!(renamed(&broker.data_dir), "bytime-0.<uuid>-delete waits out the delay");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while renamed(&broker.data_dir) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!renamed(&broker.data_dir), "removed after file.delete.delay.ms");
}

/// A long-polling fetch is woken by an append to its own partition, not by one to
/// another partition, and answers well before its max_wait_ms.
#[test]
fn long_poll_fetch_wakes_on_its_partitions_append() {
    use common::RawClient;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::fetch_response::FetchResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let b = BrokerProcess::start(&[]);
    create_topic(&b.bootstrap, "polled", 2);
    let bootstrap = b.bootstrap.clone();
    let fetch = std::thread::spawn(move || {
        let mut raw = RawClient::connect(&bootstrap);
        raw.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let req = FetchRequest::default()
            .with_max_wait_ms(20_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("polled")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let started = Instant::now();
        let resp: FetchResponse = raw.request(ApiKey::Fetch, 12, &req);
        (started.elapsed(), resp)
    });
    let send = |partition: i32| {
        let p = producer(&b.bootstrap, &[]);
        p.send(BaseRecord::<(), _>::to("polled").payload("x").partition(partition))
            .expect("send");
        p.flush(Duration::from_secs(10)).expect("flush");
    };
    std::thread::sleep(Duration::from_millis(300));
    send(1);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !fetch.is_finished(),
        "an append to partition 1 must not answer a fetch of partition 0"
    );
    send(0);
    let (waited, resp) = fetch.join().expect("fetch thread");
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}, not at the append"
    );
    let records = resp.responses[0].partitions[0]
        .records
        .as_ref()
        .map(|r| r.len())
        .unwrap_or(0);
    assert!(records > 0, "the fetch carries the new record");
}

/// Fetch's session and wait rules, as Kafka's `FetchManager.newContext` and
/// `KafkaApis.handleFetchRequest`: epochs 0 and -1 are full fetches whatever session id
/// they name, any other epoch is an incremental fetch of a session that does not exist;
/// a fetch naming no partitions (the Java consumer's at close) is answered at once; an
/// unknown topic or partition gets its error without ending the long-poll of the rest.
#[test]
fn fetch_sessions_and_unknown_partitions_as_kafka() {
    use common::RawClient;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::fetch_response::FetchResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let b = BrokerProcess::start(&[]);
    create_topic(&b.bootstrap, "live", 1);
    let mut raw = RawClient::connect(&b.bootstrap);
    let topic = |name: &'static str, partitions: &[i32]| {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )
    };
    let mut fetch = |session: (i32, i32), max_wait_ms: i32, topics: Vec<FetchTopic>| {
        let req = FetchRequest::default()
            .with_session_id(session.0)
            .with_session_epoch(session.1)
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(topics);
        let started = Instant::now();
        let resp: FetchResponse = raw.request(ApiKey::Fetch, 12, &req);
        (started.elapsed(), resp)
    };
    for session in [(0, 0), (0, -1), (7, 0), (7, -1)] {
        let (_, resp) = fetch(session, 0, vec![topic("live", &[0])]);
        assert_eq!((resp.error_code, resp.session_id), (0, 0), "{session:?}: full");
        assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    }
    for session in [(0, 1), (7, 3), (0, -2)] {
        let (_, resp) = fetch(session, 0, vec![topic("live", &[0])]);
        assert_eq!(resp.error_code, 70, "{session:?}: FETCH_SESSION_ID_NOT_FOUND");
    }
    let (waited, resp) = fetch((0, -1), 5_000, vec![]);
    assert!(
        waited < Duration::from_millis(2_000),
        "no partitions: at once, not {waited:?}"
    );
    assert_eq!((resp.error_code, resp.responses.len()), (0, 0));
    // Unknown topic and partition beside a live partition with nothing to read: the
    // fetch still waits out max_wait_ms.
    let (waited, resp) = fetch((0, 0), 1_000, vec![topic("live", &[0, 5]), topic("nosuch", &[0])]);
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}");
    let codes: Vec<i16> = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes, vec![0, 3, 3]);
    // Only unknown ones: nothing to wait for.
    let (waited, resp) = fetch((0, 0), 5_000, vec![topic("nosuch", &[0])]);
    assert!(waited < Duration::from_millis(2_000), "answered after {waited:?}");
    assert_eq!(resp.responses[0].partitions[0].error_code, 3);
}

/// A fetch waiting on a partition is answered when the partition goes (DeleteTopics),
/// not at its max_wait_ms, as Kafka's `DelayedFetch`; and a zstd topic read with Fetch
/// before v10 is UNSUPPORTED_COMPRESSION_TYPE (Kafka's `maybeConvertFetchedData`).
#[test]
fn waiting_fetches_end_with_their_partition_and_old_fetches_get_no_zstd() {
    use common::RawClient;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::fetch_response::FetchResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    fn fetch(bootstrap: &str, topic: &'static str, max_wait_ms: i32, version: i16) -> (Duration, FetchResponse) {
        let mut raw = RawClient::connect(bootstrap);
        raw.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let req = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let started = Instant::now();
        let resp: FetchResponse = raw.request(ApiKey::Fetch, version, &req);
        (started.elapsed(), resp)
    }
    let b = BrokerProcess::start(&[]);
    create_topic(&b.bootstrap, "gone", 1);
    let bootstrap = b.bootstrap.clone();
    let waiting = std::thread::spawn(move || fetch(&bootstrap, "gone", 20_000, 12));
    std::thread::sleep(Duration::from_millis(500));
    let (deleted, err) = common::delete_topic_cli(&b.bootstrap, "gone");
    assert!(deleted, "{err}");
    let (waited, resp) = waiting.join().expect("fetch");
    assert!(waited < Duration::from_secs(10), "answered after {waited:?}");
    assert_eq!(resp.responses[0].partitions[0].error_code, 3);

    common::create_topic_with_configs(&b.bootstrap, "z", &["compression.type=zstd"]);
    let p = producer(&b.bootstrap, &[]);
    p.send(BaseRecord::<(), _>::to("z").payload("zz").partition(0))
        .expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");
    let (_, old) = fetch(&b.bootstrap, "z", 0, 9);
    let part = &old.responses[0].partitions[0];
    assert_eq!((part.error_code, part.high_watermark), (76, -1));
    assert!(part.records.as_ref().is_none_or(|r| r.is_empty()));
    let (_, new) = fetch(&b.bootstrap, "z", 0, 10);
    let part = &new.responses[0].partitions[0];
    assert_eq!((part.error_code, part.high_watermark), (0, 1));
    assert!(part.records.as_ref().is_some_and(|r| !r.is_empty()));
}

/// A topic's compression.type other than `producer`: the broker recompresses each batch
/// to it (as Kafka), and every record reads back exactly; idempotence still holds.
#[test]
fn topic_compression_type_recompresses_batches() {
    let broker = BrokerProcess::start(&[]);
    for (topic_codec, producer_codec, stored) in [
        ("gzip", "lz4", "gzip"),
        ("zstd", "snappy", "zstd"),
        ("uncompressed", "gzip", "none"),
    ] {
        let topic = format!("recompressed-{topic_codec}");
        let args = [
            "topics",
            "--bootstrap-server",
            &broker.bootstrap,
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "2",
        ];
        let config = format!("compression.type={topic_codec}");
        let mut all = args.to_vec();
        all.extend(["--config", &config]);
        let (ok, _, err) = common::fjord(&all, None);
        assert!(ok, "{err}");
        let p = producer(
            &broker.bootstrap,
            &[("compression.codec", producer_codec), ("enable.idempotence", "true")],
        );
        produce_n(&p, &topic, 2, 10_000);
        check_exact(&consume_all(&broker.bootstrap, &topic, 2, 10_000), 2, 10_000);
        let segment = broker
            .data_dir
            .join(format!("{topic}-0"))
            .join("00000000000000000000.log");
        let (ok, out, err) = common::fjord(&["dump-log", "--files", segment.to_str().expect("path")], None);
        assert!(ok, "{err}");
        let batches: Vec<&str> = out.lines().filter(|l| l.starts_with("baseOffset")).collect();
        assert!(!batches.is_empty(), "{out}");
        assert!(
            batches
                .iter()
                .all(|l| l.contains(&format!("compresscodec: {stored} ")) && l.contains("isvalid: true")),
            "{topic}: stored batches must be {stored}: {out}"
        );
    }
}

/// Fetch bounded as Kafka bounds it. A partition whose first batch does not fit in the
/// bytes left gets no records, not a fragment of one (a fragment is all a client would
/// get of that partition, and Java consumers fail on it: "no complete records").
/// `max_bytes` is capped by `fetch.max.bytes`, and `min_bytes` by that cap, so a fetch
/// asking for more than it may get does not wait out its `max_wait_ms`.
#[test]
fn fetch_never_answers_with_a_fragment_and_caps_its_sizes() {
    use common::RawClient;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::fetch_response::FetchResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let b = BrokerProcess::start(&["fetch.max.bytes=409600"]);
    create_topic(&b.bootstrap, "big", 2);
    let sent = common::produce_tracked(&b.bootstrap, "big", &[0, 1], "big", 1, 300_000);
    assert_eq!(sent.failed_count(), 0);
    let mut raw = RawClient::connect(&b.bootstrap);
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let mut fetch = |max_bytes: i32, min_bytes: i32, max_wait_ms: i32| {
        let partitions = (0..2)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let req = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("big")))
                .with_partitions(partitions)]);
        let started = Instant::now();
        let resp: FetchResponse = raw.request(ApiKey::Fetch, 12, &req);
        let sizes: Vec<usize> = resp.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .collect();
        (sizes, started.elapsed())
    };
    // 400,000 bytes: partition 0's whole batch, and nothing of partition 1's.
    let (sizes, _) = fetch(400_000, 1, 0);
    assert!(sizes[0] > 300_000, "{sizes:?}");
    assert_eq!(sizes[1], 0, "no fragment of partition 1's batch");
    // A request for 2 GiB gets fetch.max.bytes' worth: the same.
    let (sizes, _) = fetch(i32::MAX, 1, 0);
    assert_eq!((sizes[0] > 300_000, sizes[1]), (true, 0), "{sizes:?}");
    // min_bytes far above what may be returned: answered at once, not after 20 s.
    let (sizes, took) = fetch(200_000, i32::MAX, 20_000);
    assert!(sizes[0] > 300_000, "{sizes:?}");
    assert!(took < Duration::from_secs(10), "waited {took:?}");
}

/// DeleteRecords moves the log start offset and no further: every record from it on
/// still reads back, across many segments of old timestamps (the segments above it
/// were all deleted once). A topic without the delete policy refuses it with
/// POLICY_VIOLATION, as Kafka's `Partition.deleteRecordsOnLeader`.
#[test]
fn delete_records_keeps_every_record_from_the_new_start() {
    use common::RawClient;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::delete_records_response::DeleteRecordsResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    const POLICY_VIOLATION: i16 = 44;
    let b = BrokerProcess::start(&[]);
    common::create_topic_with_configs(&b.bootstrap, "trimmed", &["segment.bytes=4096"]);
    common::create_topic_with_configs(&b.bootstrap, "compacted", &["cleanup.policy=compact"]);
    for i in 0..50 {
        // One batch each, so the small segments roll often.
        let sent = common::produce_tracked(&b.bootstrap, "trimmed", &[0], &format!("r{i:02}"), 1, 200);
        assert_eq!(sent.failed_count(), 0);
    }
    let mut raw = RawClient::connect(&b.bootstrap);
    let mut delete = |topic: &str, offset: i64| {
        let req =
            DeleteRecordsRequest::default()
                .with_timeout_ms(5_000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset)])]);
        let r: DeleteRecordsResponse = raw.request(ApiKey::DeleteRecords, 2, &req);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(delete("trimmed", 5), (0, 5));
    let read = common::read_partition(&b.bootstrap, "trimmed", 0, 45);
    assert_eq!(read.len(), 45, "every record from offset 5 on");
    assert_eq!(read[0].0, 5);
    assert!(read[0].1.starts_with("r05-"), "{:?}", read[0]);
    assert_eq!(delete("compacted", 0).0, POLICY_VIOLATION);
}
