"""confluent-kafka (librdkafka) helpers: admin, produce with delivery reports, and
manual-assignment consumption (fjord has no consumer groups: assign() only, never
subscribe() or commit)."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from fjord_testlib import Record, wait_until

OP_TIMEOUT_S = 30


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 30000})


def create_topic(adm, name, partitions=3, config=None):
    futs = adm.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=OP_TIMEOUT_S,
                             request_timeout=OP_TIMEOUT_S)
    futs[name].result(timeout=OP_TIMEOUT_S)
    wait_until(lambda: topic_partitions(adm, name) == partitions, 15,
               message=f"topic {name} with {partitions} partitions in metadata")


def topic_names(client):
    """All topic names from a Metadata request for all topics (never auto-creates)."""
    md = client.list_topics(timeout=OP_TIMEOUT_S)
    return set(md.topics)


def topic_partitions(client, name):
    md = client.list_topics(timeout=OP_TIMEOUT_S)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def delete_topic(adm, name):
    futs = adm.delete_topics([name], operation_timeout=OP_TIMEOUT_S, request_timeout=OP_TIMEOUT_S)
    futs[name].result(timeout=OP_TIMEOUT_S)


def error_code_of(excinfo_value):
    """KafkaError code from a KafkaException raised by a future."""
    err = excinfo_value.args[0]
    assert isinstance(err, KafkaError), f"unexpected exception payload {err!r}"
    return err.code()


def produce(bootstrap, topic, messages, *, timestamps=None, partition=None, extra_conf=None, flush_timeout=120):
    """Produces messages (fjord_testlib.Message) and returns the delivery reports as a list
    of (index-in-messages, partition, offset, timestamp tuple), asserting none failed."""
    conf = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "queue.buffering.max.kbytes": 1048576,
        "message.timeout.ms": 60000,
    }
    conf.update(extra_conf or {})
    p = Producer(conf)
    reports = [None] * len(messages)
    errors = []

    def make_cb(n):
        def cb(err, msg):
            if err is not None:
                errors.append((n, err))
            else:
                reports[n] = (n, msg.partition(), msg.offset(), msg.timestamp())
        return cb

    for n, m in enumerate(messages):
        kwargs = {"key": m.key, "value": m.value, "headers": m.headers, "on_delivery": make_cb(n)}
        if timestamps is not None:
            kwargs["timestamp"] = timestamps[n]
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        if n % 1000 == 0:
            p.poll(0)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after flush({flush_timeout})"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert all(r is not None for r in reports), "missing delivery reports"
    del p
    return reports


def new_consumer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "fjord-acceptance",  # required by the client; never used (assign only)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 10485760,
    }
    conf.update(extra)
    return Consumer(conf)


def consume(bootstrap, topic, partitions, expected, *, timeout=90, start_offsets=None, linger=0.3):
    """Reads from the given partitions (from start_offsets or the beginning) until `expected`
    records arrived or the deadline passed; then keeps polling `linger` seconds so extras
    (duplicates) would show up too."""
    c = new_consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, (start_offsets or {}).get(p, OFFSET_BEGINNING))
                  for p in partitions])
        records = []
        deadline = time.monotonic() + timeout
        extra_until = None
        while time.monotonic() < deadline:
            if len(records) >= expected:
                if extra_until is None:
                    extra_until = time.monotonic() + linger
                elif time.monotonic() > extra_until:
                    break
            for m in c.consume(num_messages=10000, timeout=0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                records.append(Record(m.partition(), m.offset(), m.key(), m.value(),
                                      m.headers() or [], m.timestamp()[1], m.timestamp()[0]))
        assert len(records) >= expected, (
            f"consumed only {len(records)} of {expected} records from {topic} within {timeout}s")
        return records
    finally:
        c.close()


def watermarks(bootstrap, topic, partition):
    c = new_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=OP_TIMEOUT_S)
    finally:
        c.close()
