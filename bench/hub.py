"""The hub as deployed: gunicorn (N workers) + `manage.py qcluster` (M workers each, one or
more clusters), on SQLite or MariaDB, provisioned with the hub's own commands. Nothing in
here imports the hub: it runs the repo's virtualenv in subprocesses, like an operator."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from procstat import descendants, snapshot
from sink import free_port, stop_process

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

MARIADB = {"user": "smtphub_bench", "password": "bench", "host": "127.0.0.1", "port": 3306,
           "name": "smtphub_bench"}


def mariadb_cli(sql: str, database: str | None = None, timeout: float = 60) -> str:
    cmd = ["mariadb", "-h", MARIADB["host"], "-P", str(MARIADB["port"]), "-u", MARIADB["user"],
           f"-p{MARIADB['password']}", "-N", "-B"]
    if database:
        cmd.append(database)
    out = subprocess.run(cmd + ["-e", sql], check=False, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"mariadb: {out.stderr.strip()} (run `bash bench/setup.sh`?)")
    return out.stdout


def _parse_ts(value) -> float | None:
    """A created_at value from SQLite (text) or the mariadb CLI (text), stored in UTC."""
    if value in (None, "", "NULL"):
        return None
    text = str(value).replace("T", " ").split("+")[0]
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()


@dataclass
class Hub:
    workdir: Path
    db: str = "sqlite"  # or "mariadb"
    web_workers: int = 2
    web_threads: int | None = None  # None: as gunicorn.conf.py says
    q_workers: int = 2
    python: Path = REPO / ".venv" / "bin" / "python"
    web: subprocess.Popen | None = None
    clusters: list[subprocess.Popen] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    appid: str = ""
    appsecret: str = ""

    def __post_init__(self) -> None:
        self.var = self.workdir / "var"
        self.logs = self.workdir / "logs"
        self.gunicorn = self.python.parent / "gunicorn"
        if not self.python.exists():
            raise SystemExit(f"{self.python} is missing: create the repo's virtualenv first")

    # --- environment and database ------------------------------------------------------
    @property
    def sqlite_path(self) -> Path:
        return self.var / "smtphub-bench.sqlite3"

    @property
    def database_url(self) -> str:
        if self.db == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        m = MARIADB
        return f"mysql://{m['user']}:{m['password']}@{m['host']}:{m['port']}/{m['name']}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        env.update(
            DATABASE_URL=self.database_url,
            HUB_VAR_DIR=str(self.var),
            DEBUG="0",
            SECRET_KEY=self._secret_key,
            HUB_ENCRYPTION_KEYS=self._fernet_key,
            HUB_SECRET_HASH_KEY=self._hash_key,
            Q_WORKERS=str(self.q_workers),
            PYTHONUNBUFFERED="1",
        )
        env.pop("REDIS_URL", None)  # the ORM broker, as the default deployment
        env.update(self.extra_env)
        env.update(extra)
        return env

    def reset(self) -> None:
        if self.var.exists():
            shutil.rmtree(self.var)
        self.var.mkdir(parents=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._secret_key = secrets.token_urlsafe(40)
        self._fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self._hash_key = secrets.token_urlsafe(40)
        if self.db == "mariadb":
            mariadb_cli(f"DROP DATABASE IF EXISTS {MARIADB['name']}; CREATE DATABASE {MARIADB['name']} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")

    def manage(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        out = subprocess.run([str(self.python), "manage.py", *args], check=False, cwd=REPO, env=self.env(), input=stdin,
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args[:2])} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def prepare(self, sink_port: int, max_connections: int | None = None) -> None:
        """Fresh database, migrated, one SMTP server (the sink) and one app. `max_connections`
        is the server's connection limit, set only when this hub has the field (issue 16)."""
        self.reset()
        self.manage("migrate", "--noinput", "-v", "0")
        extra = []
        if max_connections and "--max-connections" in self.manage("hub_smtp", "add", "--help"):
            extra = ["--max-connections", str(max_connections)]
        server = json.loads(self.manage("hub_smtp", "add", "--name", "bench-sink", "--host", "127.0.0.1",
                                        "--port", str(sink_port), "--security", "none",
                                        "--from-email", "bench@example.com", "--timeout", "30", *extra))
        app = json.loads(self.manage("hub_app", "add", "--name", "bench", "--smtp", str(server["id"]),
                                     "--from-name", "性能测试 Sender", "--type", "server"))
        self.appid, self.appsecret = str(app["appid"]), app["appsecret"]

    # --- processes ---------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child process writes to it
        return subprocess.Popen(cmd, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_web(self, timeout: float = 60) -> None:
        self.port = free_port()
        self.web = self._spawn("gunicorn", [str(self.gunicorn), "smtphub.wsgi", "-w", str(self.web_workers),
                                            *(["--threads", str(self.web_threads)] if self.web_threads else []),
                                            "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "10"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.logs / 'gunicorn.log'}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api.php", timeout=2)
            except urllib.error.HTTPError:
                pass  # 405 for GET: Django answers
            except OSError:
                time.sleep(0.1)
                continue
            self._wait_for_web_workers(deadline)
            return
        raise RuntimeError(f"gunicorn did not answer in {timeout}s")

    def _wait_for_web_workers(self, deadline: float) -> None:
        """Until every gunicorn worker has booted: the first answer needs only one, and the
        measurements (and the smoke test's process count) must not depend on the others'
        speed."""
        while len(descendants(self.web.pid, snapshot())) < 1 + self.web_workers:
            if time.monotonic() > deadline or self.web.poll() is not None:
                raise RuntimeError(f"gunicorn's {self.web_workers} workers did not start: see {self.logs}")
            time.sleep(0.1)

    def start_clusters(self, count: int = 1, timeout: float = 60) -> list[subprocess.Popen]:
        """Start `count` qcluster processes, as `count` machines would, and wait until each
        says it is running."""
        started = []
        for i in range(count):
            name = f"qcluster{i + 1}"
            (self.logs / f"{name}.log").unlink(missing_ok=True)
            started.append((name, self._spawn(name, [str(self.python), "manage.py", "qcluster"])))
        deadline = time.monotonic() + timeout
        for name, proc in started:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: see {self.logs / (name + '.log')}")
                text = (self.logs / f"{name}.log").read_text(errors="replace")
                # django-q2 says so in English or, with LANGUAGE_CODE=zh-hans, in Chinese.
                if "running." in text or "正在运行" in text:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not running after {timeout}s: see {self.logs}")
                time.sleep(0.1)
            self.clusters.append(proc)
        return [p for _n, p in started]

    def stop(self) -> None:
        for proc in self.clusters:
            stop_process(proc, timeout=30)
        self.clusters = []
        stop_process(self.web, timeout=20)
        self.web = None

    # --- what the database says --------------------------------------------------------
    def query(self, sql: str) -> list[tuple]:
        if self.db == "sqlite":
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=30)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        rows = mariadb_cli(sql, database=MARIADB["name"])
        return [tuple(line.split("\t")) for line in rows.splitlines() if line.strip()]

    def status_counts(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.query("SELECT status, COUNT(*) FROM hub_sendlog GROUP BY status")}

    def accounting(self) -> dict:
        counts = self.status_counts()
        (first, last, attempts, n), = self.query(
            "SELECT MIN(created_at), MAX(created_at), COALESCE(SUM(attempts), 0), COUNT(*) FROM hub_sendlog")
        return {"rows": int(n), "by_status": counts, "attempts": int(attempts),
                "first_accept": _parse_ts(first), "last_accept": _parse_ts(last)}
