//! Kafka's answers about timestamps, over a raw socket: ListOffsets' MAX_TIMESTAMP when
//! two segments share the largest timestamp, and the append time a retried batch of an
//! idempotent producer is answered with on a LogAppendTime topic.

mod common;

use bytes::{Bytes, BytesMut};
use common::{BrokerProcess, RawClient};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// One record with `timestamp`, of producer `pid` at `sequence` (`-1`: none).
fn batch(timestamp: i64, pid: i64, sequence: i32) -> Bytes {
    batch_of(&[timestamp], pid, sequence, Compression::None)
}

/// One batch of a record per timestamp (offsets from 0; the broker assigns the real
/// ones), of producer `pid` from `sequence` (`-1`: none), compressed with `compression`.
fn batch_of(timestamps: &[i64], pid: i64, sequence: i32, compression: Compression) -> Bytes {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, timestamp)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Offset minus sequence constant, or the encoder splits the batch; without a
            // producer id the batch's base sequence stays -1.
            sequence: sequence + i as i32,
            timestamp: *timestamp,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
    buf.freeze()
}

/// Each batch in a segment of its own; the first and the third share the largest
/// timestamp. Kafka answers MAX_TIMESTAMP with the first (`maxBy` over the segments).
#[test]
fn max_timestamp_answers_the_first_of_equal_timestamps() {
    let b = BrokerProcess::start(&["log.segment.bytes=100"]);
    let mut c = RawClient::connect(&b.bootstrap);
    common::ensure_topic(&mut c, "ties");
    let ts = 1_700_000_000_000;
    for (i, t) in [ts, ts - 5, ts].into_iter().enumerate() {
        let p = common::produce_raw(&mut c, "ties", batch(t, -1, -1));
        assert_eq!((p.error_code, p.base_offset), (0, i as i64));
    }
    let segments = std::fs::read_dir(b.data_dir.join("ties-0"))
        .expect("partition dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    assert_eq!(segments, 3, "a segment per batch");
    assert_eq!(common::list_offsets(&mut c, "ties", -3), (0, 0, ts));
    assert_eq!(
        common::list_offsets(&mut c, "ties", ts - 5),
        (0, 0, ts),
        "by timestamp: the first at or after"
    );
}

/// A retried batch is answered with its first offset and, on a LogAppendTime topic,
/// the time it was appended (Kafka's `UnifiedLog.append` for a duplicate), not -1.
#[test]
fn a_retried_batch_is_answered_with_its_append_time() {
    let b = BrokerProcess::start(&[]);
    common::create_topic_with_configs(&b.bootstrap, "appended", &["message.timestamp.type=LogAppendTime"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let first = batch(1_000, common::init_producer_id(&mut c), 0);
    let p = common::produce_raw(&mut c, "appended", first.clone());
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.log_append_time_ms > 1_000, "{}", p.log_append_time_ms);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let retried = common::produce_raw(&mut c, "appended", first);
    assert_eq!(
        (retried.error_code, retried.base_offset, retried.log_append_time_ms),
        (0, 0, p.log_append_time_ms)
    );
    // On a CreateTime topic the first answer's time is -1, a retry's the stored batch's
    // max timestamp: Kafka's `UnifiedLog.append` answers a duplicate with it whatever
    // the topic's timestamp type.
    common::ensure_topic(&mut c, "created");
    let pid = common::init_producer_id(&mut c);
    let first = batch_of(&[5_000, 9_000, 7_000], pid, 0, Compression::None);
    let p = common::produce_raw(&mut c, "created", first.clone());
    assert_eq!((p.error_code, p.base_offset, p.log_append_time_ms), (0, 0, -1));
    let retried = common::produce_raw(&mut c, "created", first);
    assert_eq!(
        (retried.error_code, retried.base_offset, retried.log_append_time_ms),
        (0, 0, 9_000)
    );
}

/// On a LogAppendTime topic every record's timestamp is the batch's append time, as
/// Kafka reads a batch: ListOffsets by time and MAX_TIMESTAMP find the batch's first
/// record with that time. They used to read the records' create times: a lookup by
/// time landed inside the batch, and MAX_TIMESTAMP answered its last offset.
#[test]
fn lookups_on_a_log_append_time_topic_see_the_append_time() {
    let b = BrokerProcess::start(&[]);
    common::create_topic_with_configs(&b.bootstrap, "appended-at", &["message.timestamp.type=LogAppendTime"]);
    let mut c = RawClient::connect(&b.bootstrap);
    let p = common::produce_raw(
        &mut c,
        "appended-at",
        batch_of(&[1_000, 2_000, 3_000], -1, -1, Compression::Lz4),
    );
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    let appended = p.log_append_time_ms;
    assert!(appended > 1_000_000_000_000, "the append time: {appended}");
    assert_eq!(
        common::list_offsets(&mut c, "appended-at", 1_500),
        (0, 0, appended),
        "by time"
    );
    assert_eq!(
        common::list_offsets(&mut c, "appended-at", -3),
        (0, 0, appended),
        "MAX_TIMESTAMP"
    );
}

/// A lookup by timestamp whose first candidate batch was cut by DeleteRecords, so that
/// its records at or after the time lie below the log start, goes on to the next batch
/// (Kafka's `FileRecords.searchForTimestamp`), instead of answering the log start with
/// a timestamp that is not its record's.
#[test]
fn a_lookup_by_time_skips_the_part_of_a_batch_below_the_log_start() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::delete_records_response::DeleteRecordsResponse;
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let b = BrokerProcess::start(&[]);
    let mut c = RawClient::connect(&b.bootstrap);
    common::ensure_topic(&mut c, "cut");
    let p = common::produce_raw(&mut c, "cut", batch_of(&[1000, 500, 500], -1, -1, Compression::None));
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let p = common::produce_raw(&mut c, "cut", batch(2000, -1, -1));
    assert_eq!((p.error_code, p.base_offset), (0, 3));
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("cut")))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(1)])]);
    let r: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &req);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 1);
    assert_eq!(common::list_offsets(&mut c, "cut", 900), (0, 3, 2000));
    assert_eq!(common::list_offsets(&mut c, "cut", 400), (0, 1, 500));
}
