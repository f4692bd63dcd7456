//! Leader epochs on the wire, as Kafka's `Partition` checks and answers them: Fetch,
//! ListOffsets and OffsetForLeaderEpoch with a `current_leader_epoch`, Fetch's
//! divergence check (`last_fetched_epoch`), and ListOffsets' version and duplicate
//! checks. A single node's partitions are all at leader epoch 0.

mod common;

use common::{BrokerProcess, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsResponse};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderEpochResponse};
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

/// A broker with topic `t`: 3 partitions, 40 records in partition 0.
fn broker_with_records() -> BrokerProcess {
    let b = BrokerProcess::start(&[]);
    common::create_topic_cli(&b.bootstrap, "t", "3");
    let sent = common::produce_tracked(&b.bootstrap, "t", &[0], "r", 40, 10);
    assert_eq!(sent.failed_count(), 0);
    b
}

/// One partition of topic `t` fetched (v12) at `offset`, naming the given epochs.
fn fetch(c: &mut RawClient, offset: i64, current_leader_epoch: i32, last_fetched_epoch: i32) -> FetchResponse {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(name("t")).with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_partition_max_bytes(1 << 20),
        ])]);
    c.request(ApiKey::Fetch, 12, &req)
}

#[test]
fn fetch_checks_the_current_leader_epoch_and_reports_a_diverging_epoch() {
    let b = broker_with_records();
    let mut c = RawClient::connect(&b.bootstrap);
    // The partition's epoch, or none: records, and the offsets.
    for current in [0, -1] {
        let r = fetch(&mut c, 0, current, -1);
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark, p.log_start_offset), (0, 40, 0));
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    }
    // A newer epoch than the partition's: this broker is behind. No records, and no
    // offsets, as Kafka reports a partition with an error.
    let r = fetch(&mut c, 0, 1, -1);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, UNKNOWN_LEADER_EPOCH);
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.log_start_offset),
        (-1, -1, -1)
    );
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    // A fetcher whose last epoch 0 ran past this log's end has diverged: it is told
    // where epoch 0 ends here, with no records and no error.
    let r = fetch(&mut c, 55, 0, 0);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!((p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (0, 40));
    assert_eq!(p.high_watermark, 40);
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    // Within epoch 0: no divergence, records from the fetch offset.
    let r = fetch(&mut c, 10, 0, 0);
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.diverging_epoch.epoch), (0, -1));
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    // An epoch this log never had, past every epoch it knows: out of range.
    let r = fetch(&mut c, 10, 0, 4);
    assert_eq!(r.responses[0].partitions[0].error_code, OFFSET_OUT_OF_RANGE);
}

fn offset_for_leader_epoch(c: &mut RawClient, topic: &str, current: i32, epoch: i32) -> EpochEndOffset {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let mut r: OffsetForLeaderEpochResponse = c.request(ApiKey::OffsetForLeaderEpoch, 4, &req);
    r.topics.remove(0).partitions.remove(0)
}

#[test]
fn offset_for_leader_epoch_answers_the_end_of_each_epoch() {
    let b = broker_with_records();
    let mut c = RawClient::connect(&b.bootstrap);
    let answer = |e: EpochEndOffset| (e.error_code, e.leader_epoch, e.end_offset);
    // The current epoch ends at the log end.
    assert_eq!(answer(offset_for_leader_epoch(&mut c, "t", 0, 0)), (0, 0, 40));
    assert_eq!(answer(offset_for_leader_epoch(&mut c, "t", -1, 0)), (0, 0, 40));
    // An epoch past every known one: no error, no answer.
    assert_eq!(answer(offset_for_leader_epoch(&mut c, "t", 0, 3)), (0, -1, -1));
    assert_eq!(
        answer(offset_for_leader_epoch(&mut c, "t", 2, 0)),
        (UNKNOWN_LEADER_EPOCH, -1, -1)
    );
    assert_eq!(
        answer(offset_for_leader_epoch(&mut c, "nope", -1, 0)),
        (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
    );
    // An empty partition knows its leader's epoch, which starts at its end, as Kafka's
    // `makeLeader` records it: a Java consumer positioned at 0 with epoch 0 (seekToEnd
    // on it, then a commit) validates that position after a restart.
    let empty = {
        let r = OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![OffsetForLeaderPartition::default().with_partition(1)])]);
        let mut r: OffsetForLeaderEpochResponse = c.request(ApiKey::OffsetForLeaderEpoch, 2, &r);
        r.topics.remove(0).partitions.remove(0)
    };
    assert_eq!(answer(empty), (0, 0, 0));
}

fn list_offsets(c: &mut RawClient, version: i16, partitions: &[(i32, i64, i32)]) -> Vec<ListOffsetsPartitionResponse> {
    let partitions = partitions
        .iter()
        .map(|&(partition, timestamp, current)| {
            ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)
                .with_current_leader_epoch(if version >= 4 { current } else { -1 })
        })
        .collect();
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("t"))
            .with_partitions(partitions)]);
    let mut r: ListOffsetsResponse = c.request(ApiKey::ListOffsets, version, &req);
    r.topics.remove(0).partitions
}

#[test]
fn list_offsets_checks_versions_epochs_and_duplicates() {
    let b = broker_with_records();
    let mut c = RawClient::connect(&b.bootstrap);
    let answer = |p: &ListOffsetsPartitionResponse| (p.error_code, p.offset, p.leader_epoch);
    // Latest and earliest carry the leader epoch; the current epoch is checked.
    let r = list_offsets(&mut c, 9, &[(0, -1, 0), (1, -2, -1), (2, -1, 1)]);
    assert_eq!(answer(&r[0]), (0, 40, 0));
    assert_eq!(answer(&r[1]), (0, 0, 0), "an empty partition has its leader's epoch");
    assert_eq!(answer(&r[2]).0, UNKNOWN_LEADER_EPOCH);
    let r = list_offsets(&mut c, 9, &[(0, -2, 0), (1, -1, 0)]);
    assert_eq!(answer(&r[0]), (0, 0, 0));
    assert_eq!(answer(&r[1]), (0, 0, 0));
    // By time: found with its batch's epoch; past every record, not found (-1, -1).
    let r = list_offsets(&mut c, 9, &[(0, 0, -1), (1, 0, -1)]);
    assert_eq!(answer(&r[0]), (0, 0, 0));
    assert_eq!(answer(&r[1]), (0, -1, -1));
    // Special timestamps need their version: max timestamp v7, earliest local v8,
    // latest tiered v9; others are never valid.
    for (version, timestamp, supported) in [
        (6, -3, false),
        (7, -3, true),
        (7, -4, false),
        (8, -4, true),
        (8, -5, false),
        (9, -5, true),
        (9, -6, false),
        (9, -100, false),
    ] {
        let r = list_offsets(&mut c, version, &[(0, timestamp, -1)]);
        let code = r[0].error_code;
        assert_eq!(
            code == UNSUPPORTED_VERSION,
            !supported,
            "v{version} timestamp {timestamp}: {code}"
        );
        assert!(
            code == 0 || code == UNSUPPORTED_VERSION,
            "v{version} timestamp {timestamp}: {code}"
        );
    }
    // A partition named twice is answered once, with INVALID_REQUEST; the others as usual.
    let r = list_offsets(&mut c, 9, &[(0, -1, -1), (1, -1, -1), (0, -2, -1)]);
    assert_eq!(r.len(), 2, "{r:?}");
    let by_partition = |i: i32| r.iter().find(|p| p.partition_index == i).expect("answered");
    assert_eq!(by_partition(0).error_code, INVALID_REQUEST);
    assert_eq!(answer(by_partition(1)), (0, 0, 0));
}
