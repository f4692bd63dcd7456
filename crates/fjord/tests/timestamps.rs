//! Kafka's answers about timestamps, over a raw socket: ListOffsets' MAX_TIMESTAMP when
//! two segments share the largest timestamp, and the append time a retried batch of an
//! idempotent producer is answered with on a LogAppendTime topic.

mod common;

use bytes::{Bytes, BytesMut};
use common::{BrokerProcess, RawClient};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// One record at `offset` (the broker assigns the real one) with `timestamp`, of
/// producer `pid` at `sequence` (`-1`: none).
fn batch(timestamp: i64, pid: i64, sequence: i32) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: if pid >= 0 { 0 } else { -1 },
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &[record], &options).expect("encode");
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
}
