"""Shared helpers for the fjord Python acceptance tests: message generation and
exact read-back verification, independent of the client library."""

import struct
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from conftest import fjord_bin

CODECS = ["gzip", "snappy", "lz4", "zstd"]

_FILLER = "the quick brown fox jumps over the lazy dog "


def unique_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def key_of(i, tag=""):
    return f"key{tag}-{i:08d}".encode()


def value_of(i, tag=""):
    # Variable-length, compressible text; no ':' or newlines so kcat can carry it.
    filler = _FILLER * (1 + i % 4)
    return f"value{tag}-{i:08d}|{filler[: 20 + (i * 7) % 90]}".encode()


def index_of(key: bytes) -> int:
    return int(key.rsplit(b"-", 1)[1])


@dataclass
class Message:
    key: bytes
    value: bytes
    headers: list = field(default_factory=list)  # [(str, bytes)], order preserved


def make_messages(n, tag="", headers=True, src="py"):
    msgs = []
    for i in range(n):
        hdrs = []
        if headers:
            # A repeated header name checks that duplicates and their order survive.
            hdrs = [("idx", str(i).encode()), ("src", src.encode()), ("rep", b"a"), ("rep", b"b" * (i % 3))]
        msgs.append(Message(key_of(i, tag), value_of(i, tag), hdrs))
    return msgs


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list
    timestamp: int = None
    timestamp_type: int = None


def verify_exact_readback(produced, records, *, start_offsets=None, check_headers=True):
    """Every produced message is read back exactly once, byte for byte, and per partition
    the offsets are consecutive (from start_offsets[p], default 0) and the messages are in
    produce order (produce order == index order)."""
    assert records, "nothing was consumed"
    by_index = {index_of(m.key): m for m in produced}
    assert len(by_index) == len(produced), "test bug: duplicate keys produced"

    seen = Counter()
    mismatches = []
    per_partition = defaultdict(list)
    for r in records:
        i = index_of(r.key)
        seen[i] += 1
        exp = by_index.get(i)
        if exp is None:
            mismatches.append(f"unexpected record key={r.key!r} at p{r.partition}@{r.offset}")
        else:
            if r.value != exp.value:
                mismatches.append(f"value mismatch for index {i} at p{r.partition}@{r.offset}: "
                                  f"{r.value[:60]!r} != {exp.value[:60]!r}")
            if check_headers and list(r.headers or []) != list(exp.headers):
                mismatches.append(f"header mismatch for index {i} at p{r.partition}@{r.offset}: "
                                  f"{r.headers!r} != {exp.headers!r}")
        per_partition[r.partition].append(r)
        if len(mismatches) > 10:
            break
    assert not mismatches, "\n".join(mismatches)

    dups = {i: c for i, c in seen.items() if c > 1}
    assert not dups, f"{len(dups)} messages read more than once, e.g. {list(dups.items())[:5]}"
    missing = [i for i in by_index if i not in seen]
    assert not missing, f"{len(missing)} of {len(produced)} messages never read back, e.g. {missing[:10]}"
    assert len(records) == len(produced)

    for p, recs in per_partition.items():
        start = (start_offsets or {}).get(p, 0)
        offsets = [r.offset for r in recs]
        assert offsets == list(range(start, start + len(recs))), (
            f"partition {p}: offsets not consecutive from {start}: first bad at "
            f"{next(k for k, o in enumerate(offsets) if o != start + k)}")
        idx = [index_of(r.key) for r in recs]
        assert idx == sorted(idx), f"partition {p}: messages out of produce order"
    return per_partition


def wait_until(predicate, timeout, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last={last!r})")


def fjord_cli(*args, timeout=60, check=True):
    """Runs the `fjord` CLI (e.g. `fjord topics ...`) and returns the CompletedProcess."""
    cp = subprocess.run([str(fjord_bin()), *args], capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"fjord {' '.join(args)} exited {cp.returncode}\nstdout:{cp.stdout}\nstderr:{cp.stderr}")
    return cp


_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def partition_dirs(data_dir: Path, topic: str):
    """The partition directories (<topic>-<n>) of a topic in a broker's log dir."""
    return sorted(d for d in Path(data_dir).iterdir()
                  if d.is_dir() and d.name.rsplit("-", 1)[0] == topic and d.name.rsplit("-", 1)[1].isdigit())


def segment_batches(data_dir: Path, topic: str):
    """Headers of every record batch in the topic's segment files, read straight from the
    Kafka on-disk format (v2 batch header: baseOffset int64, batchLength int32,
    partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16, lastOffsetDelta
    int32, baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
    baseSequence int32, recordCount int32)."""
    batches = []
    for d in partition_dirs(data_dir, topic):
        partition = int(d.name.rsplit("-", 1)[1])
        for seg in sorted(d.glob("*.log")):
            data = seg.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if length <= 0:
                    break
                magic = data[pos + 16]
                assert magic == 2, f"{seg}: batch at {pos} has magic {magic}"
                (attributes, last_delta, base_ts, max_ts, pid, epoch, base_seq, count) = \
                    struct.unpack_from(">hiqqqhii", data, pos + 21)
                batches.append({
                    "partition": partition, "base_offset": base, "last_offset": base + last_delta,
                    "count": count, "codec": _CODEC_NAMES.get(attributes & 0x7, attributes & 0x7),
                    "log_append_time": bool(attributes & 0x8), "base_timestamp": base_ts,
                    "max_timestamp": max_ts, "producer_id": pid, "producer_epoch": epoch,
                    "base_sequence": base_seq,
                })
                pos += 12 + length
    return batches


def assert_batches_compressed(data_dir: Path, topic: str, codec: str, min_fraction=0.95):
    """The topic's batches on disk are stored with the producer's codec. Clients may send a
    tiny batch uncompressed when compression would not shrink it, so 'none' batches are
    allowed as long as the codec's batches hold at least min_fraction of the records."""
    batches = segment_batches(data_dir, topic)
    assert batches, f"no batches on disk for {topic}"
    by_codec = Counter()
    for b in batches:
        by_codec[b["codec"]] += b["count"]
    total = sum(by_codec.values())
    assert set(by_codec) <= {codec, "none"} and by_codec[codec] >= min_fraction * total, (
        f"records per batch codec on disk: {dict(by_codec)} (expected {codec})")


def assert_idempotent_batches(data_dir: Path, topic: str, expected_records: int):
    """Every batch on disk carries one producer id/epoch from InitProducerId, and per partition
    the sequence numbers run from 0 without gaps or repeats."""
    batches = segment_batches(data_dir, topic)
    assert sum(b["count"] for b in batches) == expected_records
    pids = {(b["producer_id"], b["producer_epoch"]) for b in batches}
    assert len(pids) == 1 and all(pid >= 0 and epoch >= 0 for pid, epoch in pids), f"producer ids: {pids}"
    for p in sorted({b["partition"] for b in batches}):
        expected_seq = 0
        for b in (b for b in batches if b["partition"] == p):
            assert b["base_sequence"] == expected_seq, (
                f"partition {p} batch at offset {b['base_offset']}: sequence {b['base_sequence']}, "
                f"expected {expected_seq}")
            expected_seq += b["count"]
