"""Helpers for the process-level fault tests (tests/test_faults.py): real `manage.py qcluster`
processes against the test database, a counting aiosmtpd sink, and the fault report.

`python -m tests.faults` prints var/fault-report.json (written by the tests) as a Markdown
table: fault, messages accepted, sent, failed, lost, duplicates seen at the sink.

Django is imported lazily, so printing the report needs no settings."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from conftest import free_port, stop_process, subprocess_database_url

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT_PATH = REPO_ROOT / "var" / "fault-report.json"
STOP_DEADLINE = 15.0  # seconds a cluster gets to stop on SIGTERM before it is SIGKILLed
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


# --- the database a child process must use -----------------------------------------------

def database_label() -> str:
    from django.db import connection

    return {"sqlite": "SQLite", "mysql": "MariaDB"}.get(connection.vendor, connection.vendor)


# --- qcluster processes ------------------------------------------------------------------

class QCluster:
    """One `manage.py qcluster` process in its own session (process group), so SIGKILL can
    take the whole cluster - sentinel, pusher, monitor and workers - at once."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, name: str):
        self.proc, self.log_path, self.name = proc, log_path, name
        self.killed = False  # killed on purpose: not an unexpected exit

    @classmethod
    def start(cls, log_path: Path, *, name: str = "qcluster", workers: int = 2, redis_url: str | None = None,
              env: dict[str, str] | None = None) -> QCluster:
        """Start a cluster on the test database. `redis_url` None means: the broker this test
        process uses (settings.REDIS_URL, normally empty = ORM broker); `env` adds HUB_*
        overrides (strings)."""
        from django.conf import settings

        child_env = {
            **os.environ,
            # DEBUG=1 and no keys: the child derives the same development keys from
            # SECRET_KEY as this process (hub/crypto.py), so it can decrypt the SMTP
            # passwords stored here; with DEBUG off the system checks refuse those keys.
            "DEBUG": "1",
            "DATABASE_URL": subprocess_database_url(),
            "REDIS_URL": settings.REDIS_URL if redis_url is None else redis_url,
            "Q_WORKERS": str(workers),
            "LOG_LEVEL": "INFO",  # delivery_tasks_started() reads the cluster's log
            **(env or {}),
        }
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=child_env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(proc, log_path, name)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # pgid == pid: start_new_session made it the leader
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group, the way an OOM killer or a power cut would."""
        self.killed = True
        self._killpg(signal.SIGKILL)
        self.proc.wait(timeout=STOP_DEADLINE)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_DEADLINE; either way no worker outlives it."""
        stop_process(self.proc, STOP_DEADLINE)

    def delivery_tasks_started(self) -> int:
        """How many delivery tasks (`hub.tasks.drain`, or an old-style `hub.tasks.deliver`)
        this cluster's workers took (from its log)."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return 0
        return len(re.findall(r"processing (?:drain 'hub\.tasks\.drain'|deliver-\d+ 'hub\.tasks\.deliver')", text))

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""


class Clusters:
    """The clusters one test started; `stop_all()` (in a fixture's teardown) stops them all."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[QCluster] = []

    def start(self, **kwargs) -> QCluster:
        name = kwargs.pop("name", f"qcluster-{len(self.started) + 1}")
        cluster = QCluster.start(self.log_dir / f"{name}.log", name=name, **kwargs)
        self.started.append(cluster)
        return cluster

    def check_alive(self) -> None:
        """Raise (with its log) when a cluster that should be running has exited."""
        for cluster in self.started:
            if not cluster.killed and not cluster.alive:
                raise AssertionError(f"{cluster.name} exited with {cluster.proc.returncode}:\n{cluster.log_tail()}")

    def logs(self) -> str:
        return "\n".join(f"--- {c.name} ---\n{c.log_tail(2000)}" for c in self.started)

    def stop_all(self) -> None:
        errors = []
        for cluster in self.started:
            try:
                cluster.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, clusters: Clusters | None = None,
               poll: float = 0.2, between: Callable[[], object] | None = None) -> None:
    """Poll `condition` until true; fail after `timeout` seconds (with the clusters' logs).
    `between` runs after each unsuccessful poll (e.g. a sweep)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if clusters is not None:
            clusters.check_alive()
        if time.monotonic() > deadline:
            logs = clusters.logs() if clusters is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        if between is not None:
            between()
        time.sleep(poll)


# --- a counting SMTP sink ----------------------------------------------------------------

@dataclass
class Arrival:
    """One DATA command the sink received: which SendLog row (X-SMTPHub-Log-ID), when the
    message had fully arrived (wall clock), and what the sink answered."""

    log_id: int | None
    arrived_at: float
    reply: str = ""

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")


class CountingHandler:
    """An aiosmtpd handler that records every DATA by X-SMTPHub-Log-ID. Subclasses script the
    answer by overriding `reply()`. `delay` (seconds, may change while running) keeps each
    message in flight before the answer goes out. By default the message counts as accepted
    only when the answer goes out (a DATA cancelled mid-delay, because the server stopped or
    the client hung up, was never taken); with `accept_before_delay` the sink takes the
    message first and is slow to say so, like an MTA that has queued the message: a client
    that dies in that gap leaves a delivered message it never heard about."""

    def __init__(self, delay: float = 0.0, accept_before_delay: bool = False):
        self.delay = delay
        self.accept_before_delay = accept_before_delay
        self.arrivals: list[Arrival] = []
        self.in_data = 0  # DATA commands being answered right now
        self.lock = threading.Lock()

    async def reply(self, arrival: Arrival, seen_before: int) -> str:
        """The answer to this DATA; `seen_before` = earlier DATAs with the same log id."""
        return "250 2.0.0 Ok: queued"

    async def handle_DATA(self, server, session, envelope) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content or b"")
        raw_id = (headers.get("X-SMTPHub-Log-ID") or "").strip()
        arrival = Arrival(int(raw_id) if raw_id.isdigit() else None, time.time())
        with self.lock:
            seen_before = sum(1 for a in self.arrivals if a.log_id == arrival.log_id)
            self.arrivals.append(arrival)
            self.in_data += 1
        try:
            if self.accept_before_delay:
                arrival.reply = await self.reply(arrival, seen_before)
            if self.delay:
                await asyncio.sleep(self.delay)
            if not self.accept_before_delay:
                arrival.reply = await self.reply(arrival, seen_before)
        finally:
            with self.lock:
                self.in_data -= 1
        return arrival.reply

    # --- what the sink saw ---
    def accepted_counts(self) -> Counter:
        with self.lock:
            return Counter(a.log_id for a in self.arrivals if a.accepted)

    def offered_counts(self) -> Counter:
        with self.lock:
            return Counter(a.log_id for a in self.arrivals)

    def accepted_times(self) -> list[float]:
        with self.lock:
            return sorted(a.arrived_at for a in self.arrivals if a.accepted)


class CountingSink:
    """A real SMTP server on 127.0.0.1 around a CountingHandler. Has the attributes conftest's
    `make_server(sink)` reads (host, port, username, password)."""

    username = ""
    password = ""

    def __init__(self, handler: CountingHandler):
        from aiosmtpd.controller import Controller

        self.handler = handler
        self.host, self.port = "127.0.0.1", free_port()
        self.controller = Controller(handler, hostname=self.host, port=self.port)
        self.controller.start()
        self.running = True

    def stop(self) -> None:
        """Stop listening and drop every open session (clients see a disconnect, new
        connections are refused)."""
        if self.running:
            self.running = False
            self.controller.stop()


# --- measuring and reporting -------------------------------------------------------------

@dataclass
class FaultResult:
    """One row of the fault table."""

    fault: str
    accepted: int
    sent: int
    failed: int
    lost: int
    duplicates: int
    database: str = ""
    test: str = ""
    note: str = ""
    recorded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def measure(fault: str, log_ids: Iterable[int], sinks: Iterable[CountingHandler], note: str = "") -> FaultResult:
    """Count the outcome of the accepted messages `log_ids`:
    lost = rows gone, or not final (sent/failed), or `sent` without the sink ever accepting
    them; duplicates = extra accepted copies of one log id at the sinks (all sinks together)."""
    from hub.models import SendLog

    ids = list(log_ids)
    statuses = dict(SendLog.objects.filter(pk__in=ids).values_list("id", "status"))
    seen: Counter = Counter()
    for handler in sinks:
        seen.update(handler.accepted_counts())
    sent = [i for i in ids if statuses.get(i) == SendLog.Status.SENT]
    failed = [i for i in ids if statuses.get(i) == SendLog.Status.FAILED]
    not_final = [i for i in ids if statuses.get(i) not in SendLog.FINAL]
    sent_unseen = [i for i in sent if not seen[i]]
    wanted = set(ids)
    duplicates = sum(count - 1 for log_id, count in seen.items() if log_id in wanted and count > 1)
    return FaultResult(fault=fault, accepted=len(ids), sent=len(sent), failed=len(failed),
                       lost=len(not_final) + len(sent_unseen), duplicates=duplicates,
                       database=database_label(), note=note)


def record(result: FaultResult, test: str, path: Path = REPORT_PATH) -> None:
    """Store `result` in the report, replacing an earlier entry of the same test on the same
    database (the SQLite and MariaDB runs each keep their row). Locked: two pytest runs may
    write at once."""
    result.test = test
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = _load(path)
        entries = [e for e in entries if (e.get("test"), e.get("database")) != (test, result.database)]
        entries.append(asdict(result))
        entries.sort(key=lambda e: (e.get("test", ""), e.get("database", "")))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _load(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def markdown_table(entries: list[dict]) -> str:
    head = ("| Fault | Database | Accepted | Sent | Failed | Lost | Duplicates at sink | Notes |\n"
            "|---|---|---:|---:|---:|---:|---:|---|")
    lines = [head]
    for e in entries:
        cells = [e.get("fault", ""), e.get("database", ""), e.get("accepted", ""), e.get("sent", ""),
                 e.get("failed", ""), e.get("lost", ""), e.get("duplicates", ""), e.get("note", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else REPORT_PATH
    entries = _load(path)
    if not entries:
        print(f"no fault results in {path}: run `pytest tests/test_faults.py` first", file=sys.stderr)
        return 1
    print(markdown_table(entries))
    return 0


# --- Redis (the two-cluster throttle test) -----------------------------------------------

def redis_test_url() -> str:
    """The Redis db the tests may use and flush (CI exports HUB_TEST_REDIS_URL)."""
    return os.environ.get("HUB_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


def redis_reachable(url: str) -> str:
    """'' when Redis answers PING at `url`, else why not."""
    try:
        import redis

        redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip the Redis test
        return f"{type(exc).__name__}: {exc}"


def flush_redis(url: str) -> None:
    import redis

    redis.from_url(url, socket_connect_timeout=2, socket_timeout=5).flushdb()


def redis_clusters_running(url: str) -> int:
    """Clusters currently reporting their status to this Redis db (each sentinel refreshes
    a `django_q:<name>:cluster:<id>` key every few seconds)."""
    import redis

    return len(redis.from_url(url, socket_connect_timeout=2, socket_timeout=5).keys("django_q:*:cluster:*"))


def use_redis_broker(monkeypatch, settings, url: str) -> None:
    """Make this test process queue tasks on Redis the way a process started with REDIS_URL
    does: the hub enqueues after commit (settings.REDIS_URL) and django-q2's broker, which
    reads its configuration once at import, talks to Redis instead of the ORM."""
    from django_q.conf import Conf

    settings.REDIS_URL = url
    settings.Q_CLUSTER = {**{k: v for k, v in settings.Q_CLUSTER.items() if k != "orm"}, "redis": url}
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)


# --- processes by /proc (Linux) --------------------------------------------------------------

def process_tree(root: int) -> set[int]:
    """`root` and every process below it now (from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, (_state, ppid) in _process_table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that still run (zombies count as gone: they await their reaper)."""
    table = _process_table()
    return {pid for pid in pids if pid in table and table[pid][0] != "Z"}


def _process_table() -> dict[int, tuple[str, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text("utf-8", "replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(entry)] = (fields[0], int(fields[1]))
    return table


if __name__ == "__main__":
    raise SystemExit(main())
