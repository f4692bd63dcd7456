"""Acceptance tests with kafka-python (a pure-Python client) against a real fjord broker.

fjord has no consumer groups: consumers are KafkaConsumer(group_id=None) with assign()."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka import errors as kerrors

from fjord_testlib import (CODECS, Record, assert_batches_compressed, assert_idempotent_batches, make_messages,
                           unique_topic, verify_exact_readback, wait_until)


# ------------------------------------------------------------------ helpers

def _admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)


def _create_topic(adm, name, partitions):
    res = adm.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}},
                            timeout_ms=30000, wait_for_metadata=True)
    assert [t["error_code"] for t in res["topics"]] == [0]
    assert len(adm.describe_topics([name])[0]["partitions"]) == partitions


def _produce(broker, topic, msgs, *, timestamps=None, partition=None, **conf):
    """Sends every message, flushes, and returns the RecordMetadata of each."""
    settings = dict(bootstrap_servers=broker.bootstrap, linger_ms=5, batch_size=256 * 1024,
                    max_request_size=8 * 1024 * 1024,
                    request_timeout_ms=30000, max_block_ms=60000)
    settings.update(conf)
    producer = KafkaProducer(**settings)
    try:
        futures = []
        for n, m in enumerate(msgs):
            futures.append(producer.send(
                topic, key=m.key, value=m.value, headers=m.headers, partition=partition,
                timestamp_ms=None if timestamps is None else timestamps[n]))
        producer.flush(timeout=120)
        failed = [(n, f.exception) for n, f in enumerate(futures) if not f.succeeded()]
        assert not failed, f"{len(failed)} sends failed, first: {failed[:3]}"
        return [f.value for f in futures]
    finally:
        producer.close(timeout=30)


def _consumer(broker, **conf):
    settings = dict(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                    auto_offset_reset="earliest", fetch_max_bytes=50 * 1024 * 1024,
                    max_partition_fetch_bytes=10 * 1024 * 1024, request_timeout_ms=30000)
    settings.update(conf)
    return KafkaConsumer(**settings)


def _consume(broker, topic, partitions, expected, timeout=120, linger=0.3):
    consumer = _consumer(broker)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        extra_until = None
        while time.monotonic() < deadline:
            if len(records) >= expected:
                if extra_until is None:
                    extra_until = time.monotonic() + linger
                elif time.monotonic() > extra_until:
                    break
            for tp, batch in consumer.poll(timeout_ms=200, max_records=20000).items():
                for r in batch:
                    records.append(Record(r.partition, r.offset, r.key, r.value, list(r.headers or []),
                                          r.timestamp, r.timestamp_type))
        assert len(records) >= expected, f"consumed {len(records)} of {expected} from {topic} in {timeout}s"
        return records
    finally:
        consumer.close()


# -------------------------------------------------------------------- tests

def test_produce_consume_100k_keyed_with_headers_then_delete(broker):
    adm = _admin(broker)
    try:
        topic = unique_topic("kp-100k")
        _create_topic(adm, topic, 3)
        msgs = make_messages(100_000, src="kafka-python")
        metas = _produce(broker, topic, msgs, acks="all")
        delivered = {m.key: (md.partition, md.offset) for m, md in zip(msgs, metas)}
        assert {p for p, _ in delivered.values()} == {0, 1, 2}

        records = _consume(broker, topic, [0, 1, 2], len(msgs))
        verify_exact_readback(msgs, records)
        assert all(delivered[r.key] == (r.partition, r.offset) for r in records)
        assert {r.timestamp_type for r in records} == {0}  # CreateTime

        consumer = _consumer(broker)
        try:
            tps = [TopicPartition(topic, p) for p in range(3)]
            ends = consumer.end_offsets(tps)
            assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        finally:
            consumer.close()
        assert sum(ends.values()) == 100_000
        # kafka-python is idempotent by default (acks=all): the batches carry its producer id
        # and gap-free sequence numbers.
        assert_idempotent_batches(broker.data_dir, topic, 100_000)

        res = adm.delete_topics([topic], timeout_ms=30000)
        assert [t["error_code"] for t in res["topics"]] == [0]
        wait_until(lambda: topic not in adm.list_topics(), 15, message=f"{topic} gone from metadata")
    finally:
        adm.close()


@pytest.mark.parametrize("codec", CODECS)
def test_compression_codec_roundtrip(broker, codec):
    adm = _admin(broker)
    try:
        topic = unique_topic(f"kp-{codec}")
        _create_topic(adm, topic, 2)
    finally:
        adm.close()
    msgs = make_messages(20_000, src=codec)
    _produce(broker, topic, msgs, acks="all", compression_type=codec)
    verify_exact_readback(msgs, _consume(broker, topic, [0, 1], len(msgs)))
    # kafka-python compresses with every codec; the broker keeps the batches as sent.
    assert_batches_compressed(broker.data_dir, topic, codec)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, acks):
    adm = _admin(broker)
    try:
        topic = unique_topic(f"kp-acks{acks}")
        _create_topic(adm, topic, 3)
    finally:
        adm.close()
    msgs = make_messages(10_000, src=f"acks{acks}")
    metas = _produce(broker, topic, msgs, acks=acks)
    records = _consume(broker, topic, [0, 1, 2], len(msgs))
    verify_exact_readback(msgs, records)
    if acks != 0:  # with acks=0 there is no response and so no offsets
        delivered = {m.key: (md.partition, md.offset) for m, md in zip(msgs, metas)}
        assert all(delivered[r.key] == (r.partition, r.offset) for r in records)


def test_offsets_for_times(broker):
    adm = _admin(broker)
    try:
        topic = unique_topic("kp-times")
        _create_topic(adm, topic, 1)
    finally:
        adm.close()
    base = int(time.time() * 1000) - 3_600_000
    gap = 60_000
    a = make_messages(500, tag="a")
    b = make_messages(500, tag="b")
    _produce(broker, topic, a, timestamps=[base + 2 * i for i in range(500)], partition=0)
    _produce(broker, topic, b, timestamps=[base + gap + i for i in range(500)], partition=0)

    records = sorted(_consume(broker, topic, [0], 1000), key=lambda r: r.offset)
    assert [r.timestamp for r in records] == [base + 2 * i for i in range(500)] + [base + gap + i for i in range(500)]

    tp = TopicPartition(topic, 0)
    consumer = _consumer(broker)
    try:
        for t, expected_offset, expected_ts in [
            (base - 10, 0, base),
            (base, 0, base),
            (base + 1, 1, base + 2),          # between two timestamps: the next one
            (base + 998, 499, base + 998),
            (base + 999, 500, base + gap),    # in the gap: first message of the second batch
            (base + gap // 2, 500, base + gap),
            (base + gap + 250, 750, base + gap + 250),
        ]:
            got = consumer.offsets_for_times({tp: t})[tp]
            assert got is not None, f"no offset for ts=base{t - base:+d}"
            assert (got.offset, got.timestamp) == (expected_offset, expected_ts), f"ts=base{t - base:+d}"
        # Later than every message: no offset.
        assert consumer.offsets_for_times({tp: base + gap + 500})[tp] is None
    finally:
        consumer.close()


def test_create_existing_topic_and_bad_requests(broker):
    adm = _admin(broker)
    try:
        topic = unique_topic("kp-exists")
        _create_topic(adm, topic, 2)
        with pytest.raises(kerrors.TopicAlreadyExistsError):
            adm.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=30000)
        with pytest.raises(kerrors.InvalidTopicError):
            adm.create_topics({"bad/name": {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=30000)
        with pytest.raises(kerrors.InvalidReplicationFactorError):
            adm.create_topics({unique_topic("kp-rf3"): {"num_partitions": 1, "replication_factor": 3}},
                              timeout_ms=30000)
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            adm.delete_topics(["kp-no-such-topic"], timeout_ms=30000)
        assert len(adm.describe_topics([topic])[0]["partitions"]) == 2
    finally:
        adm.close()


def test_describe_log_dirs_and_cluster(broker):
    adm = _admin(broker)
    try:
        topic = unique_topic("kp-logdirs")
        _create_topic(adm, topic, 2)
        msgs = make_messages(2000)
        _produce(broker, topic, msgs[:1500], partition=0)
        _produce(broker, topic, msgs[1500:], partition=1)

        cluster = adm.describe_cluster()
        assert len(cluster["brokers"]) == 1
        assert cluster["controller_id"] == cluster["brokers"][0]["broker_id"]

        [per_broker] = adm.describe_log_dirs({topic: [0, 1]})
        [log_dir] = per_broker["log_dirs"]
        assert log_dir["error_code"] == 0
        assert log_dir["log_dir"].rstrip("/") == str(broker.data_dir).rstrip("/")
        [t] = [t for t in log_dir["topics"] if t["name"] == topic]
        sizes = {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
        assert set(sizes) == {0, 1}
        # The reported sizes are the segment files' sizes, but for the zero padding (less
        # than 4 KiB) an active segment written with O_DIRECT ends in.
        for p in (0, 1):
            on_disk = sum(f.stat().st_size for f in (broker.data_dir / f"{topic}-{p}").glob("*.log"))
            assert on_disk - 4096 < sizes[p] <= on_disk and sizes[p] > 0
        assert sizes[0] > sizes[1]
    finally:
        adm.close()
