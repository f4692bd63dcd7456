"""KafkaJS, the Node.js client, against a real broker: tests/node/kafkajs_roundtrip.js
(admin, an idempotent producer with keys, headers and gzip, acks 0/1/all, a consumer
group reading everything back in order, committed offsets, offsets by time, delete),
run with node. scripts/test installs Node.js (apt) and the pinned kafkajs (npm ci)."""

import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_kafkajs_roundtrip(broker):
    node = shutil.which("node")
    assert node, "node is not installed (scripts/test installs it)"
    assert (NODE_DIR / "node_modules" / "kafkajs").is_dir(), "kafkajs missing: npm ci in tests/node (scripts/test does)"
    cp = subprocess.run([node, "kafkajs_roundtrip.js", broker.bootstrap], cwd=NODE_DIR, capture_output=True,
                        text=True, timeout=180)
    assert cp.returncode == 0, f"stdout: {cp.stdout[-2000:]}\nstderr: {cp.stderr[-4000:]}"
    assert "10000 records round-tripped through 3 partitions" in cp.stdout, cp.stdout
