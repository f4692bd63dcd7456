"""Consumer groups with kafka-python and confluent-kafka against the real broker:
subscribe, consume, commit, resume from the committed offset; the admin views."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition as KTopicPartition

GROUP_DELAY = {"group.initial.rebalance.delay.ms": "0"}


def produce(bootstrap, topic, n, partitions=2):
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, value=f"m{i}".encode(), partition=i % partitions)
    assert p.flush(30) == 0


def create(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def test_kafka_python_group_consumer_commits_and_resumes(broker_factory):
    broker = broker_factory(GROUP_DELAY)
    create(broker.bootstrap, "kp-topic", 2)
    produce(broker.bootstrap, "kp-topic", 100)
    c = KafkaConsumer("kp-topic", bootstrap_servers=broker.bootstrap, group_id="kp-group",
                      auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
    seen = []
    for msg in c:
        seen.append(msg.value)
        if len(seen) == 100:
            break
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(100))
    c.commit()
    committed = {p: c.committed(KTopicPartition("kp-topic", p)) for p in (0, 1)}
    assert committed == {0: 50, 1: 50}
    c.close()

    produce(broker.bootstrap, "kp-topic", 10)
    c2 = KafkaConsumer("kp-topic", bootstrap_servers=broker.bootstrap, group_id="kp-group",
                       auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
    more = []
    for msg in c2:
        more.append((msg.partition, msg.offset))
        if len(more) == 10:
            break
    c2.close()
    assert all(offset >= 50 for _, offset in more), more

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    listed = admin.list_groups()
    assert {"group_id": "kp-group", "protocol_type": "consumer", "group_state": "Empty", "group_type": "classic"} in listed
    offsets = admin.list_group_offsets("kp-group")
    offsets = offsets.get("kp-group", offsets)  # kafka-python 3 keys the result by group
    assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 50, 1: 50}, offsets
    admin.close()


def _two_consumers_read_all(conf, topic, n):
    """Two consumers of one group subscribe to a four-partition topic; returns them once
    they hold two partitions each and have read all `n` records between them."""
    consumers = [Consumer(conf) for _ in range(2)]
    for c in consumers:
        c.subscribe([topic])
    values = set()
    deadline = time.time() + 30
    while time.time() < deadline and (len(values) < n or any(len(c.assignment()) != 2 for c in consumers)):
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                values.add(m.value())
    assert len(values) == n
    assert sorted(len(c.assignment()) for c in consumers) == [2, 2]
    return consumers


def test_confluent_group_consumer_splits_partitions_and_commits(broker_factory):
    broker = broker_factory(GROUP_DELAY)
    create(broker.bootstrap, "ck-topic", 4)
    produce(broker.bootstrap, "ck-topic", 400, partitions=4)
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": "ck-group", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000}
    consumers = _two_consumers_read_all(conf, "ck-topic", 400)
    for c in consumers:
        c.commit(asynchronous=False)
    committed = consumers[0].committed([TopicPartition("ck-topic", p) for p in range(4)], timeout=10)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == 400
    for c in consumers:
        c.close()


def test_confluent_admin_lists_describes_and_deletes_group_offsets(broker_factory):
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient
    broker = broker_factory(GROUP_DELAY)
    create(broker.bootstrap, "adm-topic", 2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "adm-group"})
    c.commit(offsets=[TopicPartition("adm-topic", 0, 5), TopicPartition("adm-topic", 1, 7)], asynchronous=False)
    c.close()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups().result(30)
    assert "adm-group" in [g.group_id for g in listed.valid]
    described = admin.describe_consumer_groups(["adm-group"])["adm-group"].result(30)
    assert described.group_id == "adm-group" and described.members == []
    req = [ConsumerGroupTopicPartitions("adm-group")]
    offsets = admin.list_consumer_group_offsets(req)["adm-group"].result(30)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 5, 1: 7}
    # OffsetDelete through kafka-python (confluent-kafka's admin has no call for it).
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    result = kadmin.delete_group_offsets("adm-group", [KTopicPartition("adm-topic", 0)])
    kadmin.close()
    assert result, result
    offsets = admin.list_consumer_group_offsets(req)["adm-group"].result(30)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {1: 7}
    admin.delete_consumer_groups(["adm-group"])["adm-group"].result(30)
    assert "adm-group" not in [g.group_id for g in admin.list_consumer_groups().result(30).valid]


def test_confluent_consumer_protocol_kip848_shares_partitions_and_describes(broker_factory):
    """group.protocol=consumer: the broker assigns (uniform), the admin client sees the group."""
    from confluent_kafka.admin import AdminClient
    broker = broker_factory({"group.consumer.heartbeat.interval.ms": "500"})
    create(broker.bootstrap, "k848-topic", 4)
    produce(broker.bootstrap, "k848-topic", 400, partitions=4)
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": "k848-group", "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    consumers = _two_consumers_read_all(conf, "k848-topic", 400)
    for c in consumers:
        c.commit(asynchronous=False)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_consumer_groups(["k848-group"])["k848-group"].result(30)
    assert len(described.members) == 2
    assert sorted(len(m.assignment.topic_partitions) for m in described.members) == [2, 2]
    assert "k848-group" in [g.group_id for g in admin.list_consumer_groups().result(30).valid]
    committed = consumers[0].committed([TopicPartition("k848-topic", p) for p in range(4)], timeout=10)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == 400
    for c in consumers:
        c.close()
