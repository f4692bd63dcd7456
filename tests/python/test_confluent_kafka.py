"""Acceptance tests with confluent-kafka (librdkafka) against a real fjord broker."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition, TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, OffsetSpec, ResourceType)

import confluent_helpers as ck
from fjord_testlib import (CODECS, assert_batches_compressed, assert_idempotent_batches, make_messages, unique_topic,
                           verify_exact_readback, wait_until)


def _delivered_positions(reports, messages):
    return {messages[n].key: (p, o) for n, p, o, _ in reports}


def test_produce_consume_100k_keyed_with_headers_then_delete(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-100k")
    ck.create_topic(adm, topic, partitions=3)

    msgs = make_messages(100_000, src="confluent")
    reports = ck.produce(broker.bootstrap, topic, msgs, extra_conf={"acks": "all"})
    delivered = _delivered_positions(reports, msgs)
    assert {p for p, _ in delivered.values()} == {0, 1, 2}, "keys should spread over all partitions"

    records = ck.consume(broker.bootstrap, topic, [0, 1, 2], len(msgs))
    per_partition = verify_exact_readback(msgs, records)
    # Each record is where the delivery report said it was.
    for r in records:
        assert delivered[r.key] == (r.partition, r.offset)
    for p, recs in per_partition.items():
        assert ck.watermarks(broker.bootstrap, topic, p) == (0, len(recs))
    # Timestamps default to CreateTime and are set by the client.
    assert {r.timestamp_type for r in records} == {TIMESTAMP_CREATE_TIME}

    ck.delete_topic(adm, topic)
    wait_until(lambda: topic not in ck.topic_names(adm), 15, message=f"{topic} gone from metadata")


def test_delete_then_recreate_starts_empty(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-recreate")
    ck.create_topic(adm, topic, partitions=2)
    msgs = make_messages(500)
    ck.produce(broker.bootstrap, topic, msgs)
    ck.delete_topic(adm, topic)
    wait_until(lambda: topic not in ck.topic_names(adm), 15, message=f"{topic} gone from metadata")

    ck.create_topic(adm, topic, partitions=1)
    assert ck.watermarks(broker.bootstrap, topic, 0) == (0, 0)
    msgs2 = make_messages(10, tag="new")
    ck.produce(broker.bootstrap, topic, msgs2)
    verify_exact_readback(msgs2, ck.consume(broker.bootstrap, topic, [0], 10))


def test_delete_unknown_topic(broker):
    adm = ck.admin(broker)
    futs = adm.delete_topics(["no-such-topic-xyz"], operation_timeout=10, request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        futs["no-such-topic-xyz"].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.parametrize("codec", CODECS)
def test_compression_codec_roundtrip(broker, codec):
    adm = ck.admin(broker)
    topic = unique_topic(f"ck-{codec}")
    ck.create_topic(adm, topic, partitions=2)
    msgs = make_messages(20_000, src=codec)
    ck.produce(broker.bootstrap, topic, msgs, extra_conf={"compression.type": codec, "acks": "all"})
    records = ck.consume(broker.bootstrap, topic, [0, 1], len(msgs))
    verify_exact_readback(msgs, records)


# librdkafka only uses LZ4 when the broker's ApiVersions response lists FindCoordinator
# (its LZ4 feature is keyed on that API); otherwise it silently sends uncompressed
# batches. Fjord lists it, so lz4 batches must arrive compressed.
@pytest.mark.parametrize("codec", CODECS)
def test_compression_codec_batches_stored_compressed(broker, codec):
    adm = ck.admin(broker)
    topic = unique_topic(f"ck-disk-{codec}")
    ck.create_topic(adm, topic, partitions=1)
    msgs = make_messages(2_000, src=codec)
    ck.produce(broker.bootstrap, topic, msgs, extra_conf={"compression.type": codec})
    # With compression.type=producer (the default) the broker stores the producer's
    # compressed batches as they are.
    assert_batches_compressed(broker.data_dir, topic, codec)
    verify_exact_readback(msgs, ck.consume(broker.bootstrap, topic, [0], len(msgs)))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    adm = ck.admin(broker)
    topic = unique_topic(f"ck-acks{acks}")
    ck.create_topic(adm, topic, partitions=3)
    msgs = make_messages(10_000, src=f"acks{acks}")
    reports = ck.produce(broker.bootstrap, topic, msgs, extra_conf={"acks": acks})
    if acks == "0":
        # No response, so no offsets: just check everything arrived after flush.
        records = ck.consume(broker.bootstrap, topic, [0, 1, 2], len(msgs))
        verify_exact_readback(msgs, records)
    else:
        offsets = sorted(o for _, _, o, _ in reports)
        assert min(offsets) == 0
        records = ck.consume(broker.bootstrap, topic, [0, 1, 2], len(msgs))
        verify_exact_readback(msgs, records)
        delivered = _delivered_positions(reports, msgs)
        assert all(delivered[r.key] == (r.partition, r.offset) for r in records)


def test_idempotent_producer_no_duplicates(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-idem")
    ck.create_topic(adm, topic, partitions=3)
    msgs = make_messages(10_000, src="idempotent")
    reports = ck.produce(broker.bootstrap, topic, msgs,
                         extra_conf={"enable.idempotence": True, "acks": "all",
                                     "max.in.flight.requests.per.connection": 5,
                                     "batch.num.messages": 500, "linger.ms": 1})
    assert len(reports) == 10_000
    records = ck.consume(broker.bootstrap, topic, [0, 1, 2], 10_000, linger=1.0)
    assert len(records) == 10_000
    verify_exact_readback(msgs, records)
    total = sum(ck.watermarks(broker.bootstrap, topic, p)[1] for p in range(3))
    assert total == 10_000
    assert_idempotent_batches(broker.data_dir, topic, 10_000)


def test_offsets_for_times_and_list_offsets(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-times")
    ck.create_topic(adm, topic, partitions=2)
    base = int(time.time() * 1000) - 3_600_000  # an hour ago, well inside retention
    gap = 100_000

    # Partition 0: batch A (ts base..base+999), batch B after a 100 s gap
    # (ts base+gap..base+gap+999), then a tail C whose timestamps are older than A.
    a = make_messages(1000, tag="a")
    b = make_messages(1000, tag="b")
    c = make_messages(10, tag="c")
    ck.produce(broker.bootstrap, topic, a, timestamps=[base + i for i in range(1000)], partition=0)
    ck.produce(broker.bootstrap, topic, b, timestamps=[base + gap + i for i in range(1000)], partition=0)
    ck.produce(broker.bootstrap, topic, c, timestamps=[base - 1000] * 10, partition=0)
    # Partition 1: 100 messages at base+2*gap+i.
    d = make_messages(100, tag="d")
    ck.produce(broker.bootstrap, topic, d, timestamps=[base + 2 * gap + i for i in range(100)], partition=1)

    # The stored timestamps are the explicit CreateTimes.
    recs = ck.consume(broker.bootstrap, topic, [0], 2010)
    ts = [r.timestamp for r in sorted(recs, key=lambda r: r.offset)]
    assert ts == [base + i for i in range(1000)] + [base + gap + i for i in range(1000)] + [base - 1000] * 10
    assert {r.timestamp_type for r in recs} == {TIMESTAMP_CREATE_TIME}

    def first_offset_at_or_after(t):
        matches = [o for o, x in enumerate(ts) if x >= t]
        return matches[0] if matches else -1

    cases = [
        (0, base - 5000, 0),
        (0, base, 0),
        (0, base + 500, 500),
        (0, base + 999, 999),
        (0, base + 1000, 1000),          # first timestamp after the gap
        (0, base + gap // 2, 1000),      # inside the gap
        (0, base + gap, 1000),
        (0, base + gap + 999, 1999),
        (0, base + gap + 1000, -1),      # later than every timestamp: no offset
        (1, base + gap, 0),
        (1, base + 2 * gap + 50, 50),
        (1, base + 3 * gap, -1),
    ]
    for _, t, expected in cases[:9]:
        assert first_offset_at_or_after(t) == expected, "test bug"

    consumer = ck.new_consumer(broker.bootstrap)
    try:
        # One request per case: a ListOffsets request may name a partition only once.
        for p, t, expected in cases:
            [tp] = consumer.offsets_for_times([TopicPartition(topic, p, t)], timeout=30)
            assert tp.error is None, f"p{p} ts={t}: {tp.error}"
            assert (tp.partition, tp.offset) == (p, expected), f"offsets_for_times p{p} ts=base{t - base:+d}"
        # Both partitions in one request.
        got = consumer.offsets_for_times([TopicPartition(topic, 0, base + gap // 2),
                                          TopicPartition(topic, 1, base + 2 * gap + 50)], timeout=30)
        assert sorted((tp.partition, tp.offset) for tp in got) == [(0, 1000), (1, 50)]
    finally:
        consumer.close()

    # AdminClient.list_offsets: earliest, latest, max timestamp.
    specs = {
        TopicPartition(topic, 0): OffsetSpec.earliest(),
        TopicPartition(topic, 1): OffsetSpec.latest(),
    }
    res = {(tp.partition): f.result(timeout=30) for tp, f in adm.list_offsets(specs, request_timeout=30).items()}
    assert res[0].offset == 0
    assert res[1].offset == 100
    for spec, p, exp_off, exp_ts in [
        (OffsetSpec.earliest(), 0, 0, None),
        (OffsetSpec.latest(), 0, 2010, None),
        (OffsetSpec.max_timestamp(), 0, 1999, base + gap + 999),  # not the last offset: C is older
        (OffsetSpec.max_timestamp(), 1, 99, base + 2 * gap + 99),
        (OffsetSpec.for_timestamp(base + gap // 2), 0, 1000, base + gap),
    ]:
        f = adm.list_offsets({TopicPartition(topic, p): spec}, request_timeout=30)
        info = list(f.values())[0].result(timeout=30)
        assert info.offset == exp_off, f"list_offsets {spec} p{p}"
        if exp_ts is not None:
            assert info.timestamp == exp_ts, f"list_offsets {spec} p{p} timestamp"


# ---------------------------------------------------------------- admin API

def _describe_topic_configs(adm, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return adm.describe_configs([res], request_timeout=30)[res].result(timeout=30)


def test_alter_and_describe_configs(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-configs")
    ck.create_topic(adm, topic, partitions=1, config={"cleanup.policy": "delete"})

    before = _describe_topic_configs(adm, topic)
    assert "retention.ms" in before
    assert before["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert before["cleanup.policy"].value == "delete"
    assert before["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # Legacy AlterConfigs (replaces the topic's whole dynamic config set).
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "3600000"})
    with pytest.warns(DeprecationWarning):
        futs = adm.alter_configs([res], request_timeout=30)
    futs[res].result(timeout=30)
    after = _describe_topic_configs(adm, topic)
    assert after["retention.ms"].value == "3600000"
    assert after["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not after["retention.ms"].is_default
    # Non-incremental alter replaces every dynamic config: cleanup.policy is back to its default.
    assert after["cleanup.policy"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # IncrementalAlterConfigs: SET one key, then DELETE it again.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    adm.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)
    after = _describe_topic_configs(adm, topic)
    assert after["retention.ms"].value == "7200000"
    assert after["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after["segment.bytes"].value == "1048576"
    assert after["segment.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    adm.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)
    after = _describe_topic_configs(adm, topic)
    assert after["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after["retention.ms"].value == before["retention.ms"].value
    assert after["segment.bytes"].value == "1048576"


def test_describe_configs_unknown_topic(broker):
    adm = ck.admin(broker)
    res = ConfigResource(ResourceType.TOPIC, "no-such-topic-for-configs")
    with pytest.raises(KafkaException) as ei:
        adm.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions_grows_topic(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-grow")
    ck.create_topic(adm, topic, partitions=1)
    futs = adm.create_partitions([NewPartitions(topic, 3)], request_timeout=30)
    futs[topic].result(timeout=30)
    wait_until(lambda: ck.topic_partitions(adm, topic) == 3, 15, message="3 partitions")
    # The new partitions work.
    msgs = make_messages(300)
    for p in range(3):
        ck.produce(broker.bootstrap, topic, msgs[p * 100:(p + 1) * 100], partition=p)
    records = ck.consume(broker.bootstrap, topic, [0, 1, 2], 300)
    verify_exact_readback(msgs, records)
    assert {r.partition for r in records if r.key == msgs[250].key} == {2}

    # Shrinking is not allowed.
    futs = adm.create_partitions([NewPartitions(topic, 2)], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.INVALID_PARTITIONS


def test_create_topics_validate_only_creates_nothing(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-validate")
    futs = adm.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)],
                             validate_only=True, request_timeout=30)
    assert futs[topic].result(timeout=30) is None
    time.sleep(0.5)
    assert topic not in ck.topic_names(adm)
    # ...and the real creation afterwards still succeeds.
    ck.create_topic(adm, topic, partitions=4)


def test_create_existing_topic_fails(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-exists")
    ck.create_topic(adm, topic, partitions=2)
    futs = adm.create_topics([NewTopic(topic, num_partitions=5, replication_factor=1)], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.TOPIC_ALREADY_EXISTS
    assert ck.topic_partitions(adm, topic) == 2


@pytest.mark.parametrize("name", ["bad/name", "has space", "..", "x" * 250, "bad*name"])
def test_create_invalid_topic_name(broker, name):
    adm = ck.admin(broker)
    futs = adm.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        futs[name].result(timeout=30)
    # librdkafka names Kafka's INVALID_TOPIC_EXCEPTION (17) TOPIC_EXCEPTION.
    assert KafkaError.TOPIC_EXCEPTION == 17
    assert ck.error_code_of(ei.value) == KafkaError.TOPIC_EXCEPTION
    assert name not in ck.topic_names(adm)


def test_create_topic_replication_factor_3_on_single_broker(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-rf3")
    futs = adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.INVALID_REPLICATION_FACTOR
    assert topic not in ck.topic_names(adm)


def test_describe_cluster(broker):
    adm = ck.admin(broker)
    desc = adm.describe_cluster(request_timeout=30).result(timeout=30)
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    assert f"{node.host}:{node.port}" == broker.bootstrap
    assert desc.controller is not None and desc.controller.id == node.id
    assert desc.cluster_id


def test_delete_records_moves_log_start_offset(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-delrec")
    ck.create_topic(adm, topic, partitions=2)
    msgs = make_messages(1000)
    ck.produce(broker.bootstrap, topic, msgs[:600], partition=0)
    ck.produce(broker.bootstrap, topic, msgs[600:], partition=1)

    futs = adm.delete_records([TopicPartition(topic, 0, 250), TopicPartition(topic, 1, -1)],
                              request_timeout=30, operation_timeout=30)
    lows = {tp.partition: f.result(timeout=30).low_watermark for tp, f in futs.items()}
    assert lows == {0: 250, 1: 400}  # OFFSET_END (-1) deletes everything in the partition
    assert ck.watermarks(broker.bootstrap, topic, 0) == (250, 600)
    assert ck.watermarks(broker.bootstrap, topic, 1) == (400, 400)
    earliest = adm.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=30)
    assert list(earliest.values())[0].result(timeout=30).offset == 250

    # Reading from the beginning now starts at offset 250.
    records = ck.consume(broker.bootstrap, topic, [0], 350)
    verify_exact_readback(msgs[250:600], records, start_offsets={0: 250})

    # Beyond the high watermark is OFFSET_OUT_OF_RANGE.
    futs = adm.delete_records([TopicPartition(topic, 0, 601)], request_timeout=30, operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        list(futs.values())[0].result(timeout=30)
    assert ck.error_code_of(ei.value) == KafkaError.OFFSET_OUT_OF_RANGE


def test_message_larger_than_topic_max_message_bytes_is_rejected(broker):
    adm = ck.admin(broker)
    topic = unique_topic("ck-big")
    ck.create_topic(adm, topic, partitions=1, config={"max.message.bytes": "100000"})
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 10_000_000,
                  "compression.type": "none", "message.timeout.ms": 30000})
    results = []
    p.produce(topic, key=b"big", value=b"x" * 200_000, on_delivery=lambda err, msg: results.append(err))
    assert p.flush(60) == 0
    p.produce(topic, key=b"small", value=b"y" * 1000, on_delivery=lambda err, msg: results.append(err))
    assert p.flush(60) == 0
    del p
    assert len(results) == 2
    assert results[0] is not None and results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[0]
    assert results[1] is None
    # Only the small message was appended.
    assert ck.watermarks(broker.bootstrap, topic, 0) == (0, 1)
    [rec] = ck.consume(broker.bootstrap, topic, [0], 1)
    assert (rec.key, rec.value, rec.offset) == (b"small", b"y" * 1000, 0)


def test_a_position_past_the_epochs_end_is_validated_to_it(broker):
    """librdkafka checks a position that carries a leader epoch with OffsetForLeaderEpoch
    (KIP-320) before fetching from it. A position past the end of its epoch is log
    truncation, and the consumer moves to the epoch's end rather than resetting by
    auto.offset.reset, which without the check would send it back to the beginning."""
    adm = ck.admin(broker)
    topic = unique_topic("ck-epoch")
    ck.create_topic(adm, topic, partitions=1)
    ck.produce(broker.bootstrap, topic, make_messages(20, tag="a"), partition=0)
    # Offset 5 of epoch 0 is valid: read from there.
    c = ck.new_consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 5, leader_epoch=0)])
        first = c.consume(num_messages=1, timeout=30)
        assert [(m.offset(), m.leader_epoch()) for m in first if not m.error()] == [(5, 0)]
    finally:
        c.close()
    # Offset 30 of epoch 0, which ends at 20 here: validated to 20, so the next record
    # read is the next one written.
    c = ck.new_consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 30, leader_epoch=0)])
        assert [m.offset() for m in c.consume(num_messages=100, timeout=3) if not m.error()] == []
        ck.produce(broker.bootstrap, topic, make_messages(10, tag="b"), partition=0)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            got += [m.offset() for m in c.consume(num_messages=100, timeout=0.5) if not m.error()]
        assert got == list(range(20, 30))
    finally:
        c.close()
