// KafkaJS (the Node.js client) against a real Fjord broker: every check throws on a
// mismatch and the process exits non-zero. Run by tests/python/test_kafkajs.py:
//   node kafkajs_roundtrip.js HOST:PORT
// Admin (create, metadata, offsets, offsets by time, delete), an idempotent producer
// with keys, headers and gzip, plain producers with acks 0/1/all, a consumer group that
// reads everything back exactly and in order per partition, and its committed offsets.
'use strict';
const assert = require('node:assert/strict');
const { Kafka, logLevel, CompressionTypes, Partitioners } = require('kafkajs');

const RECORDS = 10000;
const BATCH = 500;
const PARTITIONS = 3;

function message(n) {
  return { key: `key-${n % 97}`, value: `value-${n}`, headers: { n: String(n), src: 'kafkajs' } };
}

async function produceAll(kafka, topic) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let b = 0; b < RECORDS / BATCH; b++) {
    const messages = Array.from({ length: BATCH }, (_, i) => message(b * BATCH + i));
    const compression = b % 2 ? CompressionTypes.GZIP : CompressionTypes.None;
    await producer.send({ topic, messages, acks: -1, compression });
  }
  await producer.disconnect();
}

// Reads `expected` records with a consumer group; returns them per partition in order.
async function consumeAll(kafka, topic, groupId, expected) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const byPartition = new Map();
  let count = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${count} of ${expected} in 60 s`)), 60000);
    consumer.run({
      eachMessage: async ({ partition, message: m }) => {
        if (!byPartition.has(partition)) byPartition.set(partition, []);
        byPartition.get(partition).push(m);
        count += 1;
        if (count === expected) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  // Let the auto-commit (5 s interval, and on disconnect) record the final offsets.
  await consumer.disconnect();
  return byPartition;
}

function checkReadback(byPartition) {
  const seen = new Set();
  for (const [partition, msgs] of byPartition) {
    msgs.forEach((m, i) => {
      assert.equal(m.offset, String(i), `partition ${partition}: offsets are dense from 0`);
      const n = Number(m.headers.n.toString());
      assert.equal(m.value.toString(), `value-${n}`);
      assert.equal(m.key.toString(), `key-${n % 97}`);
      assert.equal(m.headers.src.toString(), 'kafkajs');
      if (i > 0) {
        const prev = Number(msgs[i - 1].headers.n.toString());
        assert.ok(prev < n, `partition ${partition}: produce order kept (${prev} before ${n})`);
      }
      assert.ok(!seen.has(n), `record ${n} read once`);
      seen.add(n);
    });
  }
  assert.equal(seen.size, RECORDS, 'every record read back');
}

function total(offsets) {
  return offsets.reduce((sum, o) => sum + Number(o.high), 0);
}

async function checkAcks(kafka, admin, topic) {
  for (const acks of [0, 1, -1]) {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const before = total(await admin.fetchTopicOffsets(topic));
    await producer.send({ topic, acks, messages: Array.from({ length: 100 }, (_, i) => ({ value: `acks${acks}-${i}` })) });
    await producer.disconnect();
    // acks=0 gets no response: wait for the broker to have appended.
    for (let tries = 0; ; tries++) {
      const after = total(await admin.fetchTopicOffsets(topic));
      if (after - before === 100) break;
      assert.ok(tries < 50, `acks=${acks}: 100 records appended`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function main() {
  const kafka = new Kafka({ clientId: 'fjord-kafkajs-test', brokers: [process.argv[2]], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `kafkajs-${process.pid}`;
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true }), true);
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  assert.equal(meta.topics[0].partitions.length, PARTITIONS);

  const startMs = Date.now();
  await produceAll(kafka, topic);
  const offsets = await admin.fetchTopicOffsets(topic);
  assert.equal(total(offsets), RECORDS, 'end offsets sum to the records sent');

  const groupId = `kafkajs-group-${process.pid}`;
  checkReadback(await consumeAll(kafka, topic, groupId, RECORDS));
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  for (const p of committed.partitions) {
    const end = offsets.find((o) => o.partition === p.partition).high;
    assert.equal(p.offset, end, `group ${groupId} committed the end of partition ${p.partition}`);
  }

  // ListOffsets by time: before the first record is offset 0; after the last is the end.
  const early = await admin.fetchTopicOffsetsByTimestamp(topic, startMs - 60000);
  assert.ok(early.every((o) => o.offset === '0'), JSON.stringify(early));
  const late = await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() + 60000);
  for (const o of late) {
    assert.equal(o.offset, offsets.find((e) => e.partition === o.partition).high, JSON.stringify(late));
  }

  await checkAcks(kafka, admin, topic);
  await admin.deleteTopics({ topics: [topic] });
  assert.ok(!(await admin.listTopics()).includes(topic), 'topic deleted');
  await admin.disconnect();
  console.log(`kafkajs: ${RECORDS} records round-tripped through ${PARTITIONS} partitions`);
}

main().catch((e) => { console.error(e); process.exit(1); });
