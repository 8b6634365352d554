"""SMTP Hub performance harness: the hub end to end against the raw limit (smtplib) and a
peer (django-post_office), all to the same Postfix smtp-sink, in one run.

    bash bench/setup.sh            # once per machine (root): wrk, smtp-sink, MariaDB, peer venv
    bench/run                      # everything: 20,000 messages (5,000 for the secondary hub runs)
    bench/run --quick              # 1,000 messages, SQLite only, no two-sender runs
    bench/run --parts hub-sqlite --messages 2000 --profile   # py-spy the hub

Writes bench/results/<UTC timestamp>-<full|quick>.json (+ .md with the table) unless --out.
Parts: baseline, hub-sqlite, hub-sqlite-2q, hub-mariadb, po-default, po-batch1000, po-dual
(the default), and hub-sqlite-drain on request. See bench/README.md for what each measures.

Over 400 lines on purpose: the harness is one script a reader follows top to bottom, part
by part; the reusable pieces already live in hub.py, sink.py, procstat.py and profiles.py."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import message as M
import profiles
from procstat import Sampler, snapshot
from sink import DelayProxy, Sink, stop_process

from hub import REPO, Hub, mariadb_cli

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
PO_PYTHON = WORK / "po-venv" / "bin" / "python"
PY_SPY = WORK / "tools" / "bin" / "py-spy"

ALL_PARTS = ["baseline", "baseline-30ms", "hub-sqlite", "hub-sqlite-30ms", "hub-sqlite-drain",
             "hub-sqlite-drain-30ms", "hub-sqlite-2q", "hub-mariadb", "hub-mariadb-drain", "hub-batch",
             "hub-batch-30ms", "hub-batch-drain", "po-default", "po-default-30ms", "po-batch1000", "po-dual"]
FULL_PARTS = list(ALL_PARTS)
QUICK_PARTS = ["baseline", "baseline-30ms", "hub-sqlite", "hub-sqlite-30ms", "hub-sqlite-drain",
               "hub-sqlite-drain-30ms", "hub-batch", "hub-batch-30ms", "po-default", "po-default-30ms",
               "po-batch1000"]
# Parts named *-30ms deliver through bench/delayproxy.py (--rtt-ms, default 30, ± --jitter-ms 5)
# in front of the sink, as if the SMTP server were a real provider across the internet.


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


# --- machine facts -------------------------------------------------------------------------

def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, check=False, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else ""
    postfix_version = ""
    changelog = WORK / "postfix" / "usr" / "share" / "doc" / "postfix" / "changelog.Debian.gz"
    if changelog.exists():
        import gzip
        with gzip.open(changelog, "rt") as f:
            postfix_version = f.readline().split("(")[1].split(")")[0]
    git = _cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = bool(_cmd("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"))
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "debian": debian,
        "python": platform.python_version(),
        "hub_python": _cmd(str(REPO / ".venv" / "bin" / "python"), "-c", "import platform;print(platform.python_version())"),
        "wrk": _cmd("wrk", "-v").split("\n")[0], "postfix_smtp_sink": postfix_version,
        "mariadb": _cmd("mariadb", "--version"),
        "peer_requirements": (BENCH / "requirements-peer.txt").read_text().split(),
        "git_commit": git + ("+dirty" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


# --- waiting for delivery ------------------------------------------------------------------

def wait_delivered(sink: Sink, expected: int, stall: float, deadline: float,
                   db_final=None) -> tuple[bool, str]:
    """Wait until the sink has `expected` messages (and, if given, db_final() says every row
    is final). Gives up when nothing moves for `stall` seconds or at `deadline`."""
    last, last_change = -1, time.monotonic()
    while True:
        got = sink.counted()
        done = got >= expected
        if done and (db_final is None or db_final()):
            return True, ""
        if got != last:
            last, last_change = got, time.monotonic()
        now = time.monotonic()
        if not sink.alive():
            return False, f"smtp-sink exited: {sink.last_words()}"
        if now - last_change > stall:
            return False, f"stalled: {got}/{expected} at the sink for {stall:.0f}s"
        if now > deadline:
            return False, f"deadline: {got}/{expected} at the sink"
        time.sleep(0.1 if not done else 0.25)


# --- the contenders ------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(args.workdir) if args.workdir else WORK / "runs" / stamp
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        self.stamp = stamp
        self.results: dict[str, dict] = {}
        # Every wait is bounded by the phase timeout and by the run's overall budget.
        self.deadline = time.monotonic() + args.budget_minutes * 60

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def bound(self) -> float:
        """Seconds the current phase may still take."""
        return max(1.0, min(self.args.phase_timeout, self.remaining()))

    # -- baseline -------------------------------------------------------------------------
    def baseline(self, rtt: bool = False) -> None:
        n = self.args.messages
        for build in ("compat32",) if rtt else ("compat32", "emailmessage"):
            name = f"baseline_{build}" + ("_30ms" if rtt else "")
            log(f"{name}: {n} messages, smtplib, {self.args.baseline_processes} processes, one connection each")
            sink = Sink(self.run_dir / name).start()
            proxy = DelayProxy(sink.port, self.args.rtt_ms, self.args.jitter_ms, self.run_dir / name) if rtt else None
            try:
                out = subprocess.run(
                    [sys.executable, str(BENCH / "baseline.py"), "--port", str(proxy.port if proxy else sink.port),
                     "--count", str(n),
                     "--build", build, "--processes", str(self.args.baseline_processes)], check=False,
                    capture_output=True, text=True, timeout=self.bound())
                if out.returncode != 0:
                    raise RuntimeError(f"baseline failed: {out.stderr[-2000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                time.sleep(0.3)
                rep = sink.report("X-Bench-Seq")
            finally:
                if proxy:
                    proxy.stop()
                sink.stop()
            self.results[name] = {
                "messages": n, "processes": res["processes"], "seconds": res["seconds"],
                "rate": res["rate"], "at_sink": rep.counted, "unique_at_sink": rep.unique,
                "duplicates": rep.duplicates, "lost": n - rep.unique,
            }
            log(f"  {res['rate']} msgs/s ({rep.counted} at sink)")

    # -- the hub ----------------------------------------------------------------------------
    def hub(self, name: str, db: str, clusters: int = 1, drain: bool = False, profile: bool = False,
            secondary: bool = False, rtt: bool = False, batch: bool = False) -> None:
        a = self.args
        n = a.batch_messages if batch else (a.secondary_messages if secondary else a.messages)
        workdir = self.run_dir / name
        threads = a.web_threads or "per gunicorn.conf.py"
        log(f"{name}: {n} sends through wrk (-t{a.wrk_threads} -c{a.wrk_connections}) -> gunicorn -w{a.web_workers}"
            f" --threads {threads} -> {clusters} qcluster x {a.q_workers} workers on {db}" + (" (queue first, then drain)" if drain else ""))
        sink = Sink(workdir).start()
        proxy = DelayProxy(sink.port, a.rtt_ms, a.jitter_ms, workdir) if rtt else None
        hub = Hub(workdir, db=db, web_workers=a.web_workers, web_threads=a.web_threads, q_workers=a.q_workers,
                  extra_env=a.hub_env)
        sampler = spies = wrk = None
        try:
            hub.prepare(proxy.port if proxy else sink.port, max_connections=a.max_connections)
            hub.start_web()
            if not drain:
                hub.start_clusters(clusters)
            body = urllib.parse.urlencode({
                "action": "send", "appid": hub.appid, "appsecret": hub.appsecret, "to": M.RECIPIENT,
                "to_name": M.RECIPIENT_NAME, "subject": M.SUBJECT, "message": M.HTML,
                "from_name": M.SENDER_NAME,
            })
            body_file = workdir / "body.txt"
            body_file.write_text(body)
            groups = {"gunicorn": [hub.web.pid], "smtp-sink": [sink.proc.pid]}
            if proxy:
                groups["delayproxy"] = [proxy.proc.pid]
            if hub.clusters:
                groups["qcluster"] = [p.pid for p in hub.clusters]
            if db == "mariadb":
                groups["mariadb"] = mariadb_pids()
            sampler = Sampler(groups).start()
            spies = []
            if profile:
                spies += profiles.start(PY_SPY, workdir, {"gunicorn": hub.web.pid,
                                                          **{f"qcluster{i + 1}": p.pid for i, p in enumerate(hub.clusters)}})
            t0 = time.time()
            if batch:
                w, t_sent = self._batch_client(hub, n, sampler)
                wrk = None
            else:
                w, t_sent, wrk = self._wrk(hub, n, sampler, workdir, body_file)
            log(f"  API: {w['accepted']} accepted in {t_sent - t0:.1f}s, p50 {w['latency_ms']['p50']} ms,"
                f" p99 {w['latency_ms']['p99']} ms")
            t_q = None
            if drain:
                t_q = time.time()
                for i, proc in enumerate(hub.start_clusters(clusters)):
                    sampler.add("qcluster", proc.pid)
                    if profile:
                        spies += profiles.start(PY_SPY, workdir, {f"qcluster{i + 1}": proc.pid})
            rows = hub.accounting()["rows"]

            def db_final() -> bool:
                counts = hub.status_counts()
                return counts.get("sent", 0) + counts.get("failed", 0) >= rows

            ok, why = wait_delivered(sink, rows, a.stall_timeout, time.monotonic() + self.bound(), db_final)
            procs = sampler.stop()
            sampler = None
            if spies:
                profiles.stop(spies)
            acc = hub.accounting()
            rep = sink.report("X-SMTPHub-Log-ID")
        finally:
            if sampler:
                sampler.stop()
            if spies:
                profiles.stop(spies)
            stop_process(wrk, sig=signal.SIGINT, timeout=10) if wrk else None
            hub.stop()
            if proxy:
                proxy.stop()
            sink.stop()

        accepted = w["accepted"]
        sent = acc["by_status"].get("sent", 0)
        start = t_q if drain else acc["first_accept"]
        delivery_s = (rep.last_mtime - start) if rep.last_mtime and start else None
        api_span = (acc["last_accept"] - acc["first_accept"]) if acc["rows"] > 1 else None
        res = {
            "config": {"db": db, "qclusters": clusters,
                       "web": f"gunicorn -w {a.web_workers} --threads {a.web_threads or 'per gunicorn.conf.py'}",
                       "q_workers_each": a.q_workers, "wrk": f"-t{a.wrk_threads} -c{a.wrk_connections}",
                       "drain": drain, "profiled": profile, "extra_env": a.hub_env,
                       "rtt_ms": a.rtt_ms if rtt else 0, "jitter_ms": a.jitter_ms if rtt else 0,
                       "client": "bench/batch_client.py (POST /api/v1/send/batch)" if batch else "wrk (POST /api.php)",
                       "max_connections": a.max_connections},
            "api": {"accepted": accepted, "refused": w["refused"], "issued": w["issued"],
                    "wall_seconds": round(t_sent - t0, 3), "accepted_per_s": rate(accepted, t_sent - t0),
                    "accepted_per_s_server": rate(acc["rows"] - 1, api_span),
                    "latency_ms": w["latency_ms"], "wrk_errors": w["errors"], "refused_sample": w.get("refused_sample"),
                    **({"requests": w["requests"], "batch": w["batch"]} if batch else {})},
            "delivery": {"from": "qcluster start" if drain else "first accept",
                         "seconds": round(delivery_s, 3) if delivery_s else None,
                         "rate": rate(rep.unique, delivery_s),
                         "sink_span_rate": rate(rep.files - 1, (rep.last_mtime - rep.first_mtime)
                                                if rep.files > 1 else None),
                         "complete": ok, "incomplete_reason": why},
            "accounting": {
                "accepted": accepted, "rows": acc["rows"], "sent_rows": sent, "by_status": acc["by_status"],
                "attempts": acc["attempts"], "at_sink": rep.counted, "dumped": rep.files,
                "unique_at_sink": rep.unique, "duplicates": rep.duplicates, "missing_id": rep.missing_id,
                "lost": accepted - rep.unique,
                "ok": accepted == acc["rows"] == sent == rep.unique == rep.counted and rep.duplicates == 0,
            },
            "processes": procs,
            "workdir": str(workdir),
            "sqlite_path": str(hub.sqlite_path) if db == "sqlite" else None,
            "sink_dumps": str(sink.dumps),
        }
        if profile:
            res["profile"] = profiles.summarize(workdir)
        self.results[name.replace("-", "_")] = res
        log(f"  delivery: {res['delivery']['rate']} msgs/s; accounting ok={res['accounting']['ok']} "
            f"(accepted {accepted}, rows {acc['rows']}, sent {sent}, at sink {rep.counted}, dup {rep.duplicates})"
            + (f"; {why}" if why else ""))

    def _wrk(self, hub: Hub, n: int, sampler: Sampler, workdir: Path, body_file: Path):
        """wrk POSTs exactly n form-encoded sends; returns (result, end time, process)."""
        a = self.args
        done_dir = workdir / "wrk-done"
        done_dir.mkdir()
        wrk_log = open(workdir / "wrk.out", "wb")  # noqa: SIM115 - the child process writes to it
        wrk = subprocess.Popen(
            ["wrk", "-t", str(a.wrk_threads), "-c", str(a.wrk_connections), "-d", f"{int(self.bound())}s",
             "--timeout", "30s", "--latency", "-s", str(BENCH / "send.lua"), f"http://127.0.0.1:{hub.port}",
             "--", str(body_file), str(n), str(a.wrk_threads), str(done_dir)],
            stdout=wrk_log, stderr=subprocess.STDOUT, start_new_session=True)
        sampler.add("wrk", wrk.pid)
        deadline = time.monotonic() + self.bound()
        while len(list(done_dir.iterdir())) < a.wrk_threads and wrk.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        t_sent = time.time()
        stop_process(wrk, sig=signal.SIGINT, timeout=30)  # wrk's main thread sleeps -d otherwise
        wrk_log.close()
        wrk_text = (workdir / "wrk.out").read_text(errors="replace")
        bench_lines = [line for line in wrk_text.splitlines() if line.startswith("BENCH ")]
        if not bench_lines:
            raise RuntimeError(f"wrk printed no result:\n{wrk_text[-3000:]}")
        return json.loads(bench_lines[-1][6:]), t_sent, wrk

    def _batch_client(self, hub: Hub, n: int, sampler: Sampler):
        """bench/batch_client.py POSTs n messages in batches of --batch-size; returns
        (result, end time)."""
        a = self.args
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "batch_client.py"), "--port", str(hub.port), "--appid", hub.appid,
             "--appsecret", hub.appsecret, "--count", str(n), "--batch", str(a.batch_size),
             "--threads", str(a.batch_threads)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler.add("batch-client", proc.pid)
        out, err = proc.communicate(timeout=self.bound())
        t_sent = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"batch client failed: {err[-2000:]}")
        res = json.loads(out.strip().splitlines()[-1])
        res["issued"] = n
        if res["errors"]:
            log(f"  batch API errors: {res['errors'][:2]}")
        return res, t_sent

    # -- django-post_office -----------------------------------------------------------------
    def post_office(self, name: str, batch: int | None, senders: int = 1, rtt: bool = False) -> None:
        a, n = self.args, self.args.messages
        if not PO_PYTHON.exists():
            raise SystemExit(f"{PO_PYTHON} is missing: run `bash bench/setup.sh` first")
        workdir = self.run_dir / name
        workdir.mkdir(parents=True)
        template = self.run_dir / "po-template.sqlite3"
        if not template.exists():
            self._po(["manage.py", "migrate", "-v", "0"], template)
        db = workdir / "po.sqlite3"
        shutil.copy(template, db)
        log(f"{name}: queue {n} in post_office, then {senders} x send_queued_mail --processes {a.po_processes}"
            f" (BATCH_SIZE {batch or 'default (100)'})")
        t = time.time()
        self._po(["queue_mail.py", str(n)], db)
        queue_s = time.time() - t
        sink = Sink(workdir).start()
        proxy = DelayProxy(sink.port, a.rtt_ms, a.jitter_ms, workdir) if rtt else None
        procs = []
        try:
            extra = {"BENCH_SINK_PORT": str(proxy.port if proxy else sink.port)}
            if batch:
                extra["BENCH_PO_BATCH_SIZE"] = str(batch)
            sampler = Sampler({"smtp-sink": [sink.proc.pid]}).start()
            t0 = time.time()
            for i in range(senders):
                # A lock file each, as on separate machines (one lock would make them take turns).
                cmd = [str(PO_PYTHON), "manage.py", "send_queued_mail", "--processes", str(a.po_processes),
                       "-L", str(workdir / f"sender{i + 1}")]
                logf = open(workdir / f"sender{i + 1}.log", "wb")  # noqa: SIM115 - the child process writes to it
                procs.append(subprocess.Popen(cmd, cwd=BENCH / "peer", env=self._po_env(db, extra), stdout=logf,
                                              stderr=subprocess.STDOUT, start_new_session=True))
                sampler.add("post_office", procs[-1].pid)
            codes = []
            for proc in procs:
                try:
                    codes.append(proc.wait(timeout=self.bound()))
                except subprocess.TimeoutExpired:
                    stop_process(proc, timeout=10)
                    codes.append("timeout")
            t1 = time.time()
            time.sleep(0.3)
            stats = sampler.stop()
            rep = sink.report("X-Bench-Seq")
        finally:
            for proc in procs:
                stop_process(proc, timeout=10)
            if proxy:
                proxy.stop()
            sink.stop()
        import sqlite3
        con = sqlite3.connect(db)
        by_status = dict(con.execute("SELECT status, COUNT(*) FROM post_office_email GROUP BY status").fetchall())
        con.close()
        names = {0: "sent", 1: "failed", 2: "queued", 3: "requeued"}
        by_status = {names.get(k, str(k)): v for k, v in by_status.items()}
        res = {
            "config": {"batch_size": batch or 100, "senders": senders, "processes_each": a.po_processes,
                       "db": "sqlite", "rtt_ms": a.rtt_ms if rtt else 0, "jitter_ms": a.jitter_ms if rtt else 0},
            "messages": n, "queue_seconds": round(queue_s, 2), "seconds": round(t1 - t0, 3),
            "rate": rate(rep.unique, t1 - t0),
            "sink_span_rate": rate(rep.files - 1, (rep.last_mtime - rep.first_mtime) if rep.files > 1 else None),
            "exit_codes": codes,
            "accounting": {"queued": n, "by_status": by_status, "at_sink": rep.counted, "dumped": rep.files,
                           "unique_at_sink": rep.unique, "duplicates": rep.duplicates, "lost": n - rep.unique},
            "processes": stats,
        }
        self.results[name.replace("-", "_").replace("po_", "post_office_")] = res
        log(f"  {res['rate']} msgs/s; at sink {rep.counted}, unique {rep.unique}, duplicates {rep.duplicates},"
            f" exit {codes}")

    def _po_env(self, db: Path, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        env.update(BENCH_PO_DB=str(db), PYTHONUNBUFFERED="1", **(extra or {}))
        return env

    def _po(self, argv: list[str], db: Path) -> None:
        out = subprocess.run([str(PO_PYTHON), *argv], check=False, cwd=BENCH / "peer", env=self._po_env(db),
                             capture_output=True, text=True, timeout=self.bound())
        if out.returncode != 0:
            raise RuntimeError(f"post_office {argv[0]} failed:\n{out.stdout}\n{out.stderr[-3000:]}")


def mariadb_pids() -> list[int]:
    pids = []
    for pid in snapshot():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm in ("mariadbd", "mysqld"):
            pids.append(pid)
    return pids


# --- ratios, goals, table ------------------------------------------------------------------

def derive(results: dict) -> tuple[dict, dict]:
    r = results
    hub = r.get("hub_sqlite", {}).get("delivery", {}).get("rate")
    drain = r.get("hub_sqlite_drain", {}).get("delivery", {}).get("rate")
    base = r.get("baseline_compat32", {}).get("rate")
    po_d = r.get("post_office_default", {}).get("rate")
    po_b = r.get("post_office_batch1000", {}).get("rate")
    hub_30 = r.get("hub_sqlite_30ms", {}).get("delivery", {}).get("rate")
    drain_30 = r.get("hub_sqlite_drain_30ms", {}).get("delivery", {}).get("rate")
    base_30 = r.get("baseline_compat32_30ms", {}).get("rate")
    po_30 = r.get("post_office_default_30ms", {}).get("rate")
    batch = r.get("hub_batch", {})
    batch_30 = r.get("hub_batch_30ms", {}).get("delivery", {}).get("rate")
    batch_alone = r.get("hub_batch_drain", {})
    # The accept rate of the batch API: the web tier alone when that part ran (no worker
    # competing for the 2 cores), else with the worker delivering meanwhile.
    batch_accept = (batch_alone or batch).get("api", {}).get("accepted_per_s")

    def ratio(x, y):
        return round(x / y, 3) if x and y else None

    ratios = {
        "basis": "hub = hub_sqlite delivery rate (first accept -> last message at the sink, API load running);"
                 " baseline = baseline_compat32; post_office = send_queued_mail wall time",
        "hub_vs_baseline": ratio(hub, base),
        "hub_vs_post_office_default": ratio(hub, po_d),
        "hub_vs_post_office_batch1000": ratio(hub, po_b),
        "hub_drain_vs_baseline": ratio(drain, base),
        "hub_drain_vs_post_office_default": ratio(drain, po_d),
        "hub_drain_vs_post_office_batch1000": ratio(drain, po_b),
        "baseline_emailmessage_vs_compat32": ratio(r.get("baseline_emailmessage", {}).get("rate"), base),
        # Issue 16 (latency): hub = end to end (hub_sqlite*), hub_drain = the worker alone.
        "hub_30ms_vs_hub_0ms": ratio(hub_30, hub),
        "hub_30ms_vs_baseline_0ms": ratio(hub_30, base),
        "hub_30ms_vs_post_office_30ms": ratio(hub_30, po_30),
        "hub_drain_30ms_vs_hub_drain_0ms": ratio(drain_30, drain),
        "hub_drain_30ms_vs_baseline_0ms": ratio(drain_30, base),
        "hub_drain_30ms_vs_post_office_30ms": ratio(drain_30, po_30),
        "baseline_30ms_vs_baseline_0ms": ratio(base_30, base),
        "post_office_30ms_vs_post_office_0ms": ratio(po_30, po_d),
        "batch_api_accept_per_s": batch_accept,
        "batch_api_end_to_end_vs_baseline": ratio(batch.get("delivery", {}).get("rate"), base),
        # The same through the batch API (POST /api/v1/send/batch), where the web tier is not
        # the bottleneck: what the delivery engine does at 30 ms when the API keeps up.
        "hub_batch_30ms_vs_hub_batch_0ms": ratio(batch_30, batch.get("delivery", {}).get("rate")),
        "hub_batch_30ms_vs_baseline_0ms": ratio(batch_30, base),
        "hub_batch_30ms_vs_post_office_30ms": ratio(batch_30, po_30),
    }
    api = r.get("hub_sqlite", {}).get("api", {})
    goals = {}
    if ratios["hub_vs_baseline"] is not None:
        goals["delivered >= 50% of cheap baseline"] = ratios["hub_vs_baseline"] >= 0.5
    if ratios["hub_vs_post_office_default"] is not None:
        goals[">= 2x post_office default"] = ratios["hub_vs_post_office_default"] >= 2
    if ratios["hub_vs_post_office_batch1000"] is not None:
        goals[">= 1x post_office batch 1000"] = ratios["hub_vs_post_office_batch1000"] >= 1
    if "hub_sqlite_2q" in r:
        goals["zero duplicates with two qclusters"] = r["hub_sqlite_2q"]["accounting"]["duplicates"] == 0
    if api:
        goals["API >= 1000 req/s on SQLite"] = (api.get("accepted_per_s") or 0) >= 1000
        goals["API p99 < 50 ms on SQLite"] = api["latency_ms"]["p99"] < 50
    # The same two with the API alone on the machine (hub-sqlite-drain queues everything
    # before its qcluster starts): what the web tier can take, apart from delivery.
    alone = r.get("hub_sqlite_drain", {}).get("api", {})
    if alone:
        goals["API alone (no worker running) >= 1000 req/s on SQLite"] = (alone.get("accepted_per_s") or 0) >= 1000
        goals["API alone (no worker running) p99 < 50 ms on SQLite"] = alone["latency_ms"]["p99"] < 50
    # Issue 16.
    if ratios["hub_30ms_vs_hub_0ms"] is not None:
        goals["30 ms: hub >= 0.8x its own 0 ms rate"] = ratios["hub_30ms_vs_hub_0ms"] >= 0.8
    if ratios["hub_30ms_vs_baseline_0ms"] is not None:
        goals["30 ms: hub >= 0.8x baseline at 0 ms"] = ratios["hub_30ms_vs_baseline_0ms"] >= 0.8
    if ratios["hub_30ms_vs_post_office_30ms"] is not None:
        goals["30 ms: hub >= 5x post_office at 30 ms"] = ratios["hub_30ms_vs_post_office_30ms"] >= 5
    if ratios["hub_drain_vs_baseline"] is not None:
        goals["0 ms: worker alone >= 0.8x baseline"] = ratios["hub_drain_vs_baseline"] >= 0.8
    if ratios["batch_api_end_to_end_vs_baseline"] is not None:
        goals["batch API end to end >= 0.6x baseline"] = ratios["batch_api_end_to_end_vs_baseline"] >= 0.6
    if batch_accept is not None:
        goals["batch API >= 10000 messages accepted/s on SQLite"] = batch_accept >= 10000
    return ratios, goals


def table(results: dict, ratios: dict, goals: dict) -> str:
    lines = ["| contender | messages | delivered msgs/s | API req/s | p50 / p99 ms | at sink | dup | lost | CPU s (group) | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]

    def cpu(procs: dict) -> tuple[str, str]:
        return (", ".join(f"{k} {v['cpu_seconds']}" for k, v in procs.items()),
                ", ".join(f"{k} {v['peak_rss_mb']}" for k, v in procs.items()))

    for name, res in results.items():
        if name.startswith("baseline"):
            lines.append(f"| {name} | {res['messages']} | {res['rate']} | | | {res['at_sink']} | {res['duplicates']}"
                         f" | {res['lost']} | | |")
        elif name.startswith("hub"):
            api, d, acc = res["api"], res["delivery"], res["accounting"]
            c, m = cpu(res["processes"])
            lines.append(f"| {name} | {acc['accepted']} | {d['rate']} | {api['accepted_per_s']} | "
                         f"{api['latency_ms']['p50']} / {api['latency_ms']['p99']} | {acc['at_sink']} | "
                         f"{acc['duplicates']} | {acc['lost']} | {c} | {m} |")
        else:
            acc = res["accounting"]
            c, m = cpu(res["processes"])
            lines.append(f"| {name} | {res['messages']} | {res['rate']} | | | {acc['at_sink']} | {acc['duplicates']}"
                         f" | {acc['lost']} | {c} | {m} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ratios.items() if k != "basis" and v is not None]
    if goals:
        lines += ["", "| goal | met |", "|---|---|"] + [f"| {k} | {'yes' if v else 'NO'} |" for k, v in goals.items()]
    return "\n".join(lines)


def _terminate(signum, _frame) -> None:
    # Turn SIGTERM (and a SIGINT that a background shell told us to ignore) into an
    # exception, so the `finally` blocks stop every process this run started.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"1,000 messages; parts {','.join(QUICK_PARTS)}")
    ap.add_argument("--messages", type=int, help="messages per contender (default 20000, quick 1000)")
    ap.add_argument("--secondary-messages", type=int,
                    help="messages for hub-sqlite-drain, hub-sqlite-2q, hub-mariadb and hub-mariadb-drain "
                         "(default: min(messages, 5000), so a full run stays under 30 min)")
    ap.add_argument("--rtt-ms", type=float, default=30.0, help="round trip the *-30ms parts add (default 30)")
    ap.add_argument("--jitter-ms", type=float, default=5.0, help="± jitter on that round trip (default 5)")
    ap.add_argument("--max-connections", type=int, default=40,
                    help="the sink server's max_connections in the hub (when the hub has the field)")
    ap.add_argument("--batch-size", type=int, default=500, help="messages per batch API request")
    ap.add_argument("--batch-messages", type=int,
                    help="messages for hub-batch and hub-batch-drain (default max(messages, 5000): "
                         "ten requests of 500 at least)")
    ap.add_argument("--batch-threads", type=int, default=2, help="batch API client threads")
    ap.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the hub's processes (experiments, e.g. Q_SAVE_LIMIT=-1)")
    ap.add_argument("--parts", help=f"comma-separated subset of {','.join(ALL_PARTS)}")
    ap.add_argument("--out", help="result JSON path (default bench/results/<stamp>-<mode>.json)")
    ap.add_argument("--workdir", help="scratch dir (default bench/.work/runs/<stamp>); kept after the run")
    ap.add_argument("--profile", action="store_true", help="py-spy the hub's gunicorn and qcluster (hub parts)")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--web-threads", type=int, default=None,
                    help="threads per gunicorn worker (more than 1 makes gunicorn use gthread workers)")
    ap.add_argument("--q-workers", type=int, default=2)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--wrk-connections", type=int, default=8)
    ap.add_argument("--baseline-processes", type=int, default=2)
    ap.add_argument("--po-processes", type=int, default=2)
    ap.add_argument("--stall-timeout", type=float, default=60, help="give up when nothing arrives for this long")
    ap.add_argument("--phase-timeout", type=float, default=900, help="upper bound of any one phase (s)")
    ap.add_argument("--budget-minutes", type=float,
                    help="upper bound of the whole run (default 28, quick 10): a phase still running "
                         "then is cut short and reported incomplete; parts not started are skipped")
    args = ap.parse_args(argv)
    if args.messages is None:
        args.messages = 1000 if args.quick else 20000
    if args.budget_minutes is None:
        args.budget_minutes = 10 if args.quick else 28
    if args.secondary_messages is None:
        args.secondary_messages = min(args.messages, 5000)
    if args.batch_messages is None:
        args.batch_messages = max(args.messages, 5000)
    for n in (args.messages, args.secondary_messages):
        if n < 1 or n > 200_000:
            ap.error("message counts must be between 1 and 200000")
    try:
        args.hub_env = dict(item.split("=", 1) for item in args.hub_env)
    except ValueError:
        ap.error("--hub-env takes KEY=VALUE")
    parts = args.parts.split(",") if args.parts else (QUICK_PARTS if args.quick else FULL_PARTS)
    unknown = [p for p in parts if p not in ALL_PARTS]
    if unknown:
        ap.error(f"unknown parts: {unknown}")
    if shutil.which("wrk") is None and any(p.startswith("hub") for p in parts):
        raise SystemExit("wrk is missing: run `bash bench/setup.sh` first")
    if "hub-mariadb" in parts or "hub-mariadb-drain" in parts:
        mariadb_cli("SELECT 1")

    bench = Bench(args)
    meta = machine_facts()
    started = time.time()
    log(f"parts {','.join(parts)}; {args.messages} messages each; scratch {bench.run_dir}")
    steps = {
        "baseline": bench.baseline,
        "baseline-30ms": lambda: bench.baseline(rtt=True),
        "hub-sqlite": lambda: bench.hub("hub-sqlite", "sqlite", profile=args.profile),
        "hub-sqlite-30ms": lambda: bench.hub("hub-sqlite-30ms", "sqlite", profile=args.profile, rtt=True),
        "hub-sqlite-drain-30ms": lambda: bench.hub("hub-sqlite-drain-30ms", "sqlite", drain=True,
                                                   profile=args.profile, secondary=True, rtt=True),
        "hub-batch": lambda: bench.hub("hub-batch", "sqlite", profile=args.profile, batch=True),
        "hub-batch-30ms": lambda: bench.hub("hub-batch-30ms", "sqlite", profile=args.profile, batch=True, rtt=True),
        "hub-batch-drain": lambda: bench.hub("hub-batch-drain", "sqlite", drain=True, profile=args.profile,
                                             batch=True),
        "hub-sqlite-drain": lambda: bench.hub("hub-sqlite-drain", "sqlite", drain=True, profile=args.profile,
                                              secondary=True),
        "hub-sqlite-2q": lambda: bench.hub("hub-sqlite-2q", "sqlite", clusters=2, profile=args.profile,
                                           secondary=True),
        "hub-mariadb": lambda: bench.hub("hub-mariadb", "mariadb", profile=args.profile,
                                         secondary=True),
        "hub-mariadb-drain": lambda: bench.hub("hub-mariadb-drain", "mariadb", drain=True, profile=args.profile,
                                               secondary=True),
        "po-default": lambda: bench.post_office("po-default", None),
        "po-default-30ms": lambda: bench.post_office("po-default-30ms", None, rtt=True),
        "po-batch1000": lambda: bench.post_office("po-batch1000", 1000),
        "po-dual": lambda: bench.post_office("po-dual", None, senders=2),
    }
    skipped = []
    for part in ALL_PARTS:
        if part in parts:
            if bench.remaining() < 30:
                log(f"{part}: skipped, the time budget ({args.budget_minutes} min) is used up")
                skipped.append(part)
                continue
            steps[part]()
    meta["loadavg_at_end"] = os.getloadavg()
    meta["total_seconds"] = round(time.time() - started, 1)
    ratios, goals = derive(bench.results)
    doc = {"bench": "smtphub", "mode": "quick" if args.quick else "full", "messages": args.messages,
           "secondary_messages": args.secondary_messages, "batch_messages": args.batch_messages,
           "hub_env": args.hub_env,
           "parts": parts, "started_utc": bench.stamp, "machine": meta, "ratios": ratios,
           "hub_vs_baseline": ratios["hub_vs_baseline"],
           "hub_vs_post_office_default": ratios["hub_vs_post_office_default"],
           "hub_vs_post_office_batch1000": ratios["hub_vs_post_office_batch1000"],
           **{k: ratios[k] for k in ("hub_30ms_vs_hub_0ms", "hub_30ms_vs_baseline_0ms",
                                     "hub_30ms_vs_post_office_30ms", "batch_api_accept_per_s")},
           "goals": goals, "skipped_parts": skipped, "budget_minutes": args.budget_minutes,
           "results": bench.results}
    out = Path(args.out) if args.out else BENCH / "results" / f"{bench.stamp}-{doc['mode']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    text = table(bench.results, ratios, goals)
    out.with_suffix(".md").write_text(
        f"# SMTP Hub bench {bench.stamp} ({doc['mode']}, {args.messages} messages)\n\n"
        f"Machine: {meta['cpus']} x {meta['cpu_model']}, {meta['memory_gb']} GB, commit {meta['git_commit']}\n\n"
        + text + "\n")
    print(text)
    log(f"wrote {out} in {meta['total_seconds']}s")
    bad = [n for n, r in bench.results.items() if n.startswith("hub") and not r["accounting"]["ok"]]
    if bad:
        log(f"ACCOUNTING FAILED: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
