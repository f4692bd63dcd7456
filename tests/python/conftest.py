"""Fixtures for the Python acceptance suite: real `fjord server` processes.

Each broker listens on an ephemeral loopback port (never 9092); the port is
parsed from the single line the broker prints on stdout. The broker's stderr
goes to a log file next to its data dir; when a test fails, the tail of every
broker log of that test is attached to the pytest report.

Processes are only ever stopped by their own PID (terminate / kill).
"""

import atexit
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "fjord"
LISTEN_RE = re.compile(r"^fjord: listening on (127\.0\.0\.1:(\d+))\s*$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def fjord_bin() -> Path:
    """Path of the fjord binary: $FJORD_BIN, else target/release/fjord in the repo."""
    p = Path(os.environ.get("FJORD_BIN", str(DEFAULT_BIN)))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


class BrokerError(RuntimeError):
    pass


_LIVE_PROCS = set()


@atexit.register
def _kill_leftover_brokers():
    # Safety net for an interrupted run: only the processes this suite started, by PID.
    for proc in list(_LIVE_PROCS):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class FjordBroker:
    """One fjord broker process on a data dir; can be stopped, killed, restarted."""

    def __init__(self, base_dir: Path, overrides=None, name="broker"):
        self.binary = fjord_bin()
        if not self.binary.exists():
            raise BrokerError(f"fjord binary not found at {self.binary} "
                              "(build with `cargo build --release` or set FJORD_BIN)")
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / f"{name}.log"
        self.overrides = dict(overrides or {})
        self.proc = None
        self.bootstrap = None
        self.port = None
        self.starts = 0
        self.exit_codes = []  # return codes of every process that ended
        self._stdout_thread = None

    # ----------------------------------------------------------- lifecycle
    def _command(self):
        cmd = [str(self.binary), "server",
               "--override", "listeners=PLAINTEXT://127.0.0.1:0",
               "--override", f"log.dirs={self.data_dir}"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def start(self, timeout=START_TIMEOUT_S):
        if self.running:
            raise BrokerError("broker already running")
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== fjord start #{self.starts}: {' '.join(self._command())}\n".encode())
        log.flush()
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE,
                                     stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        _LIVE_PROCS.add(self.proc)
        lines = queue.Queue()
        proc = self.proc

        def pump():
            # Forward stdout lines; keep draining so the broker never blocks on a full pipe.
            for raw in iter(proc.stdout.readline, b""):
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        self._stdout_thread = threading.Thread(target=pump, daemon=True)
        self._stdout_thread.start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise BrokerError(f"broker did not print its listening line within {timeout}s\n"
                                  + self.log_tail())
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                self.exit_codes.append(code)
                _LIVE_PROCS.discard(self.proc)
                self.proc = None
                raise BrokerError(f"broker exited with {code} before listening\n" + self.log_tail())
            m = LISTEN_RE.match(line.strip())
            if m:
                self.bootstrap = m.group(1)
                self.port = int(m.group(2))
                return self
            self.kill()
            raise BrokerError(f"unexpected first stdout line from broker: {line!r}\n" + self.log_tail())

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """Clean shutdown: SIGTERM and wait. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_codes.append("timeout")
                self.proc = None
                raise BrokerError(f"broker did not exit within {timeout}s of SIGTERM\n" + self.log_tail())
        code = self.proc.returncode
        self.exit_codes.append(code)
        _LIVE_PROCS.discard(self.proc)
        self.proc = None
        return code

    def kill(self):
        """kill -9 (crash)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.exit_codes.append(code)
        _LIVE_PROCS.discard(self.proc)
        self.proc = None
        return code

    def restart(self, clean=True, timeout=START_TIMEOUT_S):
        """Stop (SIGTERM if clean, else SIGKILL) and start again on the same data dir."""
        if clean:
            code = self.stop()
            if code not in (0, None):
                raise BrokerError(f"broker exited with {code} on SIGTERM\n" + self.log_tail())
        else:
            self.kill()
        return self.start(timeout=timeout)

    # ----------------------------------------------------------------- logs
    def log_text(self):
        try:
            return ANSI_RE.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=80):
        text = self.log_text().splitlines()
        return f"--- {self.log_path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])

    def __repr__(self):
        return f"<FjordBroker {self.bootstrap} data={self.data_dir} pid={self.proc.pid if self.proc else None}>"


@pytest.fixture
def broker_factory(request, tmp_path):
    """Returns start(overrides=None) -> running FjordBroker.

    Every broker started is stopped at teardown with SIGTERM; the teardown
    fails if a broker exited non-zero on SIGTERM or logged a panic.
    """
    brokers = []
    request.node._fjord_brokers = brokers

    def start(overrides=None, name=None):
        name = name or f"broker{len(brokers)}"
        b = FjordBroker(tmp_path / name, overrides=overrides, name=name)
        brokers.append(b)
        return b.start()

    yield start

    problems = []
    for b in brokers:
        try:
            code = b.stop()
        except BrokerError as e:
            problems.append(str(e))
            continue
        if code not in (0, None):
            problems.append(f"{b.log_path}: broker exited with {code} on SIGTERM")
        if "panicked at" in b.log_text():
            problems.append(f"{b.log_path}: broker panicked\n{b.log_tail()}")
    if problems:
        pytest.fail("broker teardown problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    """A fresh single-node broker on an empty data dir."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "_fjord_brokers", []):
            rep.sections.append((f"fjord broker log {b.log_path}", b.log_tail(120)))
