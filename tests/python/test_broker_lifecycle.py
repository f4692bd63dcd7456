"""Restart, crash (kill -9) and LogAppendTime tests on a real fjord broker, using
confluent-kafka (and kafka-python for the LogAppendTime cross-check)."""

import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

import confluent_helpers as ck
from fjord_testlib import make_messages, segment_batches, unique_topic, verify_exact_readback


def _produce_more_and_check_offsets_continue(broker, topic, partitions, per_partition_before):
    """After a restart the log end offsets are where they were, and new messages go after them."""
    for p in partitions:
        assert ck.watermarks(broker.bootstrap, topic, p) == (0, per_partition_before[p])
    more = make_messages(300, tag="after")
    reports = ck.produce(broker.bootstrap, topic, more, extra_conf={"acks": "all"})
    for _, p, o, _ in reports:
        assert o >= per_partition_before[p]
    records = ck.consume(broker.bootstrap, topic, partitions, len(more), start_offsets=per_partition_before)
    verify_exact_readback(more, records, start_offsets=per_partition_before)


def test_clean_restart_keeps_everything(broker):
    adm = ck.admin(broker)
    topic = unique_topic("restart")
    ck.create_topic(adm, topic, partitions=3, config={"retention.ms": "86400000"})
    msgs = make_messages(10_000, src="restart")
    ck.produce(broker.bootstrap, topic, msgs, extra_conf={"acks": "all"})
    del adm

    broker.restart()  # SIGTERM, wait for exit code 0, start again on the same data dir
    assert broker.exit_codes == [0]
    assert "shut down cleanly" in broker.log_text()

    records = ck.consume(broker.bootstrap, topic, [0, 1, 2], len(msgs))
    per_partition = verify_exact_readback(msgs, records)
    counts = {p: len(r) for p, r in per_partition.items()}
    assert sum(counts.values()) == 10_000

    # Topic metadata and its dynamic config survived too.
    adm = ck.admin(broker)
    assert ck.topic_partitions(adm, topic) == 3
    res = ConfigResource(ResourceType.TOPIC, topic)
    cfg = adm.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    _produce_more_and_check_offsets_continue(broker, topic, [0, 1, 2], counts)


def test_kill9_after_acknowledged_flush_keeps_everything(broker):
    adm = ck.admin(broker)
    topic = unique_topic("kill9")
    ck.create_topic(adm, topic, partitions=3)
    del adm
    msgs = make_messages(10_000, src="kill9")
    # produce() returns only after flush() with every message acknowledged (acks=all).
    ck.produce(broker.bootstrap, topic, msgs, extra_conf={"acks": "all"})

    broker.restart(clean=False)  # SIGKILL: no shutdown, no fsync; the page cache keeps the writes
    assert broker.exit_codes == [-9]

    records = ck.consume(broker.bootstrap, topic, [0, 1, 2], len(msgs))
    per_partition = verify_exact_readback(msgs, records)
    counts = {p: len(r) for p, r in per_partition.items()}
    _produce_more_and_check_offsets_continue(broker, topic, [0, 1, 2], counts)

    # A second crash right after the new writes loses nothing either.
    broker.restart(clean=False)
    total = sum(ck.watermarks(broker.bootstrap, topic, p)[1] for p in range(3))
    assert total == 10_300


def test_log_append_time(broker_factory):
    broker = broker_factory({"log.message.timestamp.type": "LogAppendTime"})
    adm = ck.admin(broker)
    topic = unique_topic("lat")
    ck.create_topic(adm, topic, partitions=1)
    old = int(time.time() * 1000) - 7 * 24 * 3_600_000  # a week ago
    msgs = make_messages(1000, src="lat")

    before = int(time.time() * 1000)
    reports = ck.produce(broker.bootstrap, topic, msgs, timestamps=[old + i for i in range(1000)])
    after = int(time.time() * 1000)

    # The produce response carries the broker's append time, and the client reports it.
    for _, _, _, (ts_type, ts) in reports:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000

    records = ck.consume(broker.bootstrap, topic, [0], len(msgs))
    verify_exact_readback(msgs, records)
    for r in records:
        assert r.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= r.timestamp <= after + 1000, (r.timestamp, before, after)
    # On disk the batches are flagged LogAppendTime.
    assert all(b["log_append_time"] for b in segment_batches(broker.data_dir, topic))

    # kafka-python sees the same: timestamp_type 1 (LogAppendTime), a recent timestamp.
    from kafka import KafkaConsumer, TopicPartition
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                       auto_offset_reset="earliest")
    try:
        tp = TopicPartition(topic, 0)
        kc.assign([tp])
        kc.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 1000 and time.monotonic() < deadline:
            for batch in kc.poll(timeout_ms=200).values():
                got.extend(batch)
        assert len(got) == 1000
        assert {r.timestamp_type for r in got} == {1}
        assert all(before - 1000 <= r.timestamp <= after + 1000 for r in got)
    finally:
        kc.close()

    # A topic-level override back to CreateTime keeps the producer's timestamps.
    topic2 = unique_topic("ct")
    ck.create_topic(adm, topic2, partitions=1, config={"message.timestamp.type": "CreateTime"})
    ck.produce(broker.bootstrap, topic2, msgs[:10], timestamps=[old + i for i in range(10)])
    recs = ck.consume(broker.bootstrap, topic2, [0], 10)
    assert [(r.timestamp_type, r.timestamp) for r in sorted(recs, key=lambda r: r.offset)] == \
        [(TIMESTAMP_CREATE_TIME, old + i) for i in range(10)]


def test_restarts_with_many_segments_keep_data_and_time_index(broker_factory):
    # Small segments: the log rolls many times, so recovery has to rebuild the offset and
    # time indexes of several segments, including an active one cut by kill -9.
    broker = broker_factory({"log.segment.bytes": "65536"})
    adm = ck.admin(broker)
    topic = unique_topic("segments")
    ck.create_topic(adm, topic, partitions=1)
    del adm
    base = int(time.time() * 1000) - 3_600_000
    msgs = make_messages(10_000, src="segments")
    ts = [base + 10 * i for i in range(10_000)]
    ck.produce(broker.bootstrap, topic, msgs, timestamps=ts, partition=0,
               extra_conf={"acks": "all", "batch.size": 16384})
    segments = list((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segments) > 5, f"expected the log to roll, got {len(segments)} segment(s)"

    def check():
        records = ck.consume(broker.bootstrap, topic, [0], len(msgs))
        verify_exact_readback(msgs, records)
        assert [r.timestamp for r in sorted(records, key=lambda r: r.offset)] == ts
        consumer = ck.new_consumer(broker.bootstrap)
        try:
            for t, expected in [(base - 1, 0), (base + 10 * 1234, 1234), (base + 10 * 5678 - 5, 5678),
                                (base + 10 * 9999, 9999), (base + 10 * 9999 + 1, -1)]:
                [tp] = consumer.offsets_for_times([TopicPartition(topic, 0, t)], timeout=30)
                assert tp.error is None and tp.offset == expected, f"ts=base{t - base:+d}: {tp}"
        finally:
            consumer.close()
        assert ck.watermarks(broker.bootstrap, topic, 0) == (0, 10_000)

    check()
    broker.restart()
    check()
    broker.restart(clean=False)
    check()
