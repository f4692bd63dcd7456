"""Acceptance tests with kcat (the librdkafka command-line client) run as a subprocess.

kcat has no admin API: topics are created and deleted with `fjord topics` (the
kafka-topics.sh equivalent shipped with the broker), or auto-created by Metadata.
kcat -P has no per-message headers or timestamps: -H headers apply to every message,
and timestamps are the producer's clock (CreateTime)."""

import json
import shutil
import subprocess
import time

import pytest

from fjord_testlib import (CODECS, Message, Record, fjord_cli, key_of, assert_batches_compressed, unique_topic,
                           value_of, verify_exact_readback, wait_until)

KCAT = shutil.which("kcat") or "/usr/bin/kcat"
HEADER_ARGS = ["-H", "src=kcat", "-H", "rep=a", "-H", "rep=b"]
HEADERS = [("src", b"kcat"), ("rep", b"a"), ("rep", b"b")]

pytestmark = pytest.mark.skipif(shutil.which(KCAT) is None, reason="kcat not installed")


def kcat_messages(n, tag=""):
    return [Message(key_of(i, tag), value_of(i, tag), list(HEADERS)) for i in range(n)]


def kcat(broker, *args, stdin=None, timeout=120):
    cp = subprocess.run([KCAT, "-b", broker.bootstrap, *args], input=stdin, capture_output=True, timeout=timeout)
    assert cp.returncode == 0, (f"kcat {' '.join(args)} exited {cp.returncode}\n"
                                f"stderr: {cp.stderr.decode(errors='replace')[-3000:]}")
    return cp


def kcat_produce(broker, topic, msgs, *extra):
    payload = b"".join(m.key + b":" + m.value + b"\n" for m in msgs)
    cp = kcat(broker, "-P", "-t", topic, "-K:", *HEADER_ARGS, *extra, stdin=payload)
    err = cp.stderr.decode(errors="replace")
    assert "Delivery failed" not in err and "ERROR" not in err, err[-3000:]


def kcat_consume(broker, topic, expected, *extra):
    """Reads the whole topic (all partitions) from the beginning; -e exits at the end."""
    cp = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q", *extra)
    records = []
    for line in cp.stdout.decode().splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        hdrs = j.get("headers") or []
        records.append(Record(j["partition"], j["offset"], j["key"].encode(), j["payload"].encode(),
                              [(hdrs[k], hdrs[k + 1].encode()) for k in range(0, len(hdrs), 2)],
                              j["ts"], j["tstype"]))
    assert len(records) == expected, f"kcat read {len(records)} records of {topic}, expected {expected}"
    return records


def metadata(broker):
    return json.loads(kcat(broker, "-L", "-J").stdout)


def topic_partition_count(broker, topic):
    for t in metadata(broker)["topics"]:
        if t["topic"] == topic:
            return len(t["partitions"])
    return None


def create_topic(broker, topic, partitions):
    # kcat has no admin API: CreateTopics through the fjord CLI.
    fjord_cli("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
              "--partitions", str(partitions), "--replication-factor", "1")
    wait_until(lambda: topic_partition_count(broker, topic) == partitions, 15,
               message=f"{topic} with {partitions} partitions")


def query_offset(broker, topic, partition, ts):
    out = kcat(broker, "-Q", "-t", f"{topic}:{partition}:{ts}").stdout.decode().strip()
    # "<topic> [<partition>] offset <offset>"
    assert out.startswith(f"{topic} [{partition}] offset "), out
    return int(out.rsplit(" ", 1)[1])


# -------------------------------------------------------------------- tests

def test_produce_consume_100k_keyed_with_headers_then_delete(broker):
    topic = unique_topic("kc-100k")
    create_topic(broker, topic, 3)
    msgs = kcat_messages(100_000)
    kcat_produce(broker, topic, msgs, "-X", "acks=all")
    records = kcat_consume(broker, topic, len(msgs))
    per_partition = verify_exact_readback(msgs, records)
    assert set(per_partition) == {0, 1, 2}
    assert {r.timestamp_type for r in records} == {"create"}

    # Delete through the fjord CLI (DeleteTopics), then it is gone from metadata.
    fjord_cli("topics", "--bootstrap-server", broker.bootstrap, "--delete", "--topic", topic)
    wait_until(lambda: topic_partition_count(broker, topic) is None, 15, message=f"{topic} gone")
    listed = fjord_cli("topics", "--bootstrap-server", broker.bootstrap, "--list").stdout.split()
    assert topic not in listed


def test_auto_created_topic(broker):
    # Producing to an unknown topic auto-creates it (Metadata with auto-create) with the
    # broker default num.partitions=1.
    topic = unique_topic("kc-auto")
    assert topic_partition_count(broker, topic) is None
    msgs = kcat_messages(1000)
    kcat_produce(broker, topic, msgs)
    assert topic_partition_count(broker, topic) == 1
    verify_exact_readback(msgs, kcat_consume(broker, topic, len(msgs)))


@pytest.mark.parametrize("codec", CODECS)
def test_compression_codec_roundtrip(broker, codec):
    topic = unique_topic(f"kc-{codec}")
    create_topic(broker, topic, 2)
    msgs = kcat_messages(20_000, tag=codec)
    kcat_produce(broker, topic, msgs, "-z", codec, "-X", "acks=all")
    verify_exact_readback(msgs, kcat_consume(broker, topic, len(msgs)))


# kcat 1.7.1 is built on librdkafka 2.0.2, which compresses gzip/snappy/lz4 only if the
# broker's ApiVersions lists Produce v0 (as Apache Kafka 4.x still does, KAFKA-18659),
# and lz4 only if it lists FindCoordinator; otherwise it silently sends uncompressed.
# kcat's librdkafka (2.0.2) compresses only when ApiVersions advertises Produce from v0
# (Kafka 4 does, KAFKA-18659) and lists FindCoordinator (for LZ4): Fjord does both.


@pytest.mark.parametrize("codec", CODECS)
def test_compression_codec_batches_stored_compressed(broker, codec):
    topic = unique_topic(f"kc-disk-{codec}")
    create_topic(broker, topic, 1)
    msgs = kcat_messages(2000, tag=codec)
    kcat_produce(broker, topic, msgs, "-z", codec)
    assert_batches_compressed(broker.data_dir, topic, codec)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    topic = unique_topic(f"kc-acks{acks}")
    create_topic(broker, topic, 3)
    msgs = kcat_messages(10_000, tag=f"acks{acks}")
    kcat_produce(broker, topic, msgs, "-X", f"acks={acks}")
    # kcat exits after flushing; then everything must be there.
    verify_exact_readback(msgs, kcat_consume(broker, topic, len(msgs)))


def test_query_offsets_by_timestamp(broker):
    topic = unique_topic("kc-times")
    create_topic(broker, topic, 1)
    first = kcat_messages(500, tag="a")
    second = kcat_messages(500, tag="b")
    kcat_produce(broker, topic, first)
    time.sleep(1.5)  # a known gap in (producer-assigned CreateTime) timestamps
    kcat_produce(broker, topic, second)
    records = sorted(kcat_consume(broker, topic, 1000), key=lambda r: r.offset)
    ts = [r.timestamp for r in records]
    assert [r.offset for r in records] == list(range(1000))
    max_first, min_second = max(ts[:500]), min(ts[500:])
    assert min_second - max_first >= 1000, "no gap between the two batches' timestamps"

    def expected(t):
        return next((o for o, x in enumerate(ts) if x >= t), -1)

    for t in [ts[0] - 1000, ts[0], ts[250], max_first, max_first + 1, (max_first + min_second) // 2,
              min_second, ts[750], max(ts)]:
        assert query_offset(broker, topic, 0, t) == expected(t), f"kcat -Q at ts {t}"
    assert expected((max_first + min_second) // 2) == 500
    # Later than every message: no such offset (-1 = end).
    assert query_offset(broker, topic, 0, max(ts) + 1) == -1
