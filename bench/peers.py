"""The comparisons bench/campaign.py runs in the same invocation as the campaign, each to a
Postfix smtp-sink of its own (so the campaign's sink counts only the hub's messages):

- `smtplib_baseline`: bench/baseline.py, plain smtplib, P processes on one connection each,
  building each message (compat32): the cheap limit for Python;
- `post_office`: django-post_office (bench/.work/po-venv, made by bench/setup.sh) sending the
  campaign's own recipients: `mail.send_many` (its bulk path, bench/peer/queue_recipients.py)
  then `manage.py send_queued_mail --processes P`, timed from the start of sending to its end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PO_PYTHON = BENCH / ".work" / "po-venv" / "bin" / "python"


def _sink(workdir: Path, name: str):
    sys.path.insert(0, str(BENCH))
    from sink import Sink  # bench/sink.py (this module is loaded by path, as campaign.py loads it)

    return Sink(workdir, name).start()


def smtplib_baseline(workdir: Path, count: int, processes: int = 2, timeout: float = 3600) -> dict:
    sink = _sink(workdir, "baseline-sink")
    try:
        out = subprocess.run([sys.executable, str(BENCH / "baseline.py"), "--port", str(sink.port), "--count",
                              str(count), "--build", "compat32", "--processes", str(processes)],
                             check=False, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"baseline failed: {out.stderr[-2000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        time.sleep(0.3)
        rep = sink.report("X-Bench-Seq")
    finally:
        sink.stop()
        shutil.rmtree(sink.dumps, ignore_errors=True)
    return {"messages": count, "processes": processes, "seconds": res["seconds"], "rate": res["rate"],
            "unique_at_sink": rep.unique, "duplicates": rep.duplicates}


def post_office(workdir: Path, recipients_file: Path, count: int, processes: int = 2,
                po_python: Path = PO_PYTHON, timeout: float = 6 * 3600) -> dict:
    """Queue `count` recipients of `recipients_file` (one address a line) with send_many, then
    time send_queued_mail --processes `processes` to its end."""
    if not po_python.exists():
        return {"skipped": f"{po_python} is missing: run `bash bench/setup.sh` (or pass --po-python)"}
    po_dir = workdir / "post_office"
    po_dir.mkdir(parents=True, exist_ok=True)
    db = po_dir / "po.sqlite3"
    sink = _sink(po_dir, "sink")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(BENCH_PO_DB=str(db), BENCH_SINK_PORT=str(sink.port), PYTHONUNBUFFERED="1")

    def po(*argv: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(po_python), *argv], check=False, cwd=BENCH / "peer", env=env,
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"post_office {argv[0]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        return out

    try:
        po("manage.py", "migrate", "-v", "0")
        t = time.time()
        po("queue_recipients.py", str(recipients_file), str(count))
        queue_s = time.time() - t
        t0 = time.time()
        sender = subprocess.Popen([str(po_python), "manage.py", "send_queued_mail", "--processes", str(processes),
                                   "-L", str(po_dir / "lock")], cwd=BENCH / "peer", env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        peak_rss = _peak_rss_while(sender, timeout)
        seconds = time.time() - t0
        time.sleep(0.3)
        rep = sink.report("X-Bench-Seq")
    finally:
        sink.stop()
        shutil.rmtree(sink.dumps, ignore_errors=True)
    size = db.stat().st_size if db.exists() else 0
    shutil.rmtree(po_dir, ignore_errors=True)
    return {"messages": count, "processes": processes, "queue_seconds": round(queue_s, 1),
            "seconds": round(seconds, 1), "rate": round(rep.unique / seconds, 1) if seconds else None,
            "unique_at_sink": rep.unique, "duplicates": rep.duplicates, "lost": count - rep.unique,
            "db_bytes_per_message": round(size / max(1, count), 1), "peak_rss_mb": peak_rss}


def _peak_rss_while(proc: subprocess.Popen, timeout: float) -> dict[str, float]:
    """Wait for `proc`, sampling the peak RSS of it and its children (by pid) every 0.5 s."""
    from procstat import descendants, snapshot  # bench/procstat.py

    peaks: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("send_queued_mail ran out of time")
        procs = snapshot()
        for pid in descendants(proc.pid, procs):
            peaks[pid] = max(peaks.get(pid, 0), procs[pid][2])
        time.sleep(0.5)
    return {str(pid): round(rss / 2**20, 1) for pid, rss in sorted(peaks.items())}
