"""Postfix's smtp-sink, run from bench/.work/postfix (extracted by setup.sh, no daemon).

It accepts everything, dumps every message to its own file (`-d`, so duplicates can be
counted by a header that is unique per message) and keeps a running counter (`-c`,
"sess=N quit=N mesg=N"), which is the authoritative count of messages at the sink."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
POSTFIX = BENCH / ".work" / "postfix"
SINK_BIN = POSTFIX / "usr" / "sbin" / "smtp-sink"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _world_traversable(path: Path) -> bool:
    path = path.resolve()
    for p in [path, *path.parents]:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
    return True


@dataclass
class SinkReport:
    counted: int  # smtp-sink's own counter ("mesg=")
    files: int  # dumped messages
    unique: int  # distinct values of the id header
    duplicates: int  # files - unique
    missing_id: int  # dumped messages without the id header
    first_mtime: float | None
    last_mtime: float | None


class Sink:
    def __init__(self, workdir: Path, name: str = "sink") -> None:
        self.dir = workdir / name
        self.dumps = self.dir / "dumps"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sink:
        if not SINK_BIN.exists():
            raise SystemExit(f"{SINK_BIN} is missing: run `bash bench/setup.sh` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and not _world_traversable(self.dir):
            # smtp-sink drops privileges to nobody, who cannot reach a dump dir under a
            # private parent (pytest's tmp dirs are 0700): dump under /tmp instead.
            private = Path(tempfile.mkdtemp(prefix="smtphub-bench-sink-"))
            os.chmod(private, 0o755)
            self.dumps = private / "dumps"
        self.dumps.mkdir(parents=True, exist_ok=True)
        # smtp-sink drops privileges when started as root; the dump dir must stay writable.
        os.chmod(self.dumps, 0o777)
        cmd = [str(SINK_BIN), "-c"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        # 8 random hex digits are appended to every name; the per-second prefix keeps name
        # collisions (which would overwrite a dump) unlikely, and `-c` would expose one.
        cmd += ["-d", f"{self.dumps}/%H%M%S.", f"127.0.0.1:{self.port}", "1024"]
        env = dict(os.environ, LD_LIBRARY_PATH=str(POSTFIX / "usr" / "lib" / "postfix"))
        self.counter_file = open(self.dir / "counter.out", "wb")  # noqa: SIM115 - the child process writes to it
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.counter_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_port(self.port)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def last_words(self) -> str:
        return (self.dir / "counter.out").read_bytes()[-400:].decode(errors="replace").replace("\r", " ")

    def counted(self) -> int:
        """smtp-sink's running counter of messages received (".")."""
        data = (self.dir / "counter.out").read_bytes()[-200:]
        found = re.findall(rb"mesg=(\d+)", data)
        return int(found[-1]) if found else 0

    def files(self) -> int:
        try:
            return sum(1 for _ in os.scandir(self.dumps))
        except FileNotFoundError:
            return 0

    def report(self, id_header: str) -> SinkReport:
        key = f"\n{id_header}:".encode().lower()
        ids: set[bytes] = set()
        files = missing = 0
        first = last = None
        for entry in os.scandir(self.dumps):
            files += 1
            mtime = entry.stat().st_mtime
            first = mtime if first is None or mtime < first else first
            last = mtime if last is None or mtime > last else last
            with open(entry.path, "rb") as f:
                head = f.read(4096)
            pos = head.lower().find(key)
            if pos < 0:
                missing += 1
                continue
            end = head.find(b"\n", pos + len(key))
            ids.add(head[pos + len(key):end].strip())
        return SinkReport(self.counted(), files, len(ids), files - len(ids) - missing, missing, first, last)

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.proc = None
        if getattr(self, "counter_file", None):
            self.counter_file.close()


class DelayProxy:
    """bench/delayproxy.py in front of a sink: every exchange costs `rtt_ms` (± jitter)."""

    def __init__(self, target_port: int, rtt_ms: float, jitter_ms: float, log_dir: Path) -> None:
        self.port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / "delayproxy.log", "wb")  # noqa: SIM115 - the child process writes to it
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "delayproxy.py"), "--listen", f"127.0.0.1:{self.port}",
             "--target", f"127.0.0.1:{target_port}", "--rtt-ms", str(rtt_ms), "--jitter-ms", str(jitter_ms)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.log.close()


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop one process we started (in its own session): ask, wait, then kill its group."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group is this process's own session
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
