"""Smoke test of the performance harness (bench/): `bench/run --quick --messages 200
--parts hub-sqlite` must account for every message. It runs the hub as deployed (gunicorn +
qcluster on a scratch SQLite file), wrk and Postfix's smtp-sink, all on 127.0.0.1, so it
relies on `bash bench/setup.sh` (CI runs it first). Accounting only: no speed assertions."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MESSAGES = 200

pytestmark = pytest.mark.slow


_RUN: dict = {}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    # One harness run for the module: a failed run is reported once, not re-run per test.
    if "error" in _RUN:
        pytest.fail(_RUN["error"])
    if "result" not in _RUN:
        try:
            _RUN["result"] = _run_bench(tmp_path_factory)
        except AssertionError as exc:
            _RUN["error"] = str(exc)
            raise
    yield _RUN["result"]
    # As root the sink dumps under /tmp (nobody cannot enter pytest's private tmp dir).
    dumps = Path(_RUN["result"][0]["results"]["hub_sqlite"]["sink_dumps"])
    if dumps.parent.name.startswith("smtphub-bench-sink-"):
        shutil.rmtree(dumps.parent, ignore_errors=True)


def _run_bench(tmp_path_factory) -> tuple[dict, Path]:
    sink = BENCH / ".work" / "postfix" / "usr" / "sbin" / "smtp-sink"
    missing = [what for what, ok in (("wrk", shutil.which("wrk")), ("smtp-sink", sink.exists())) if not ok]
    assert not missing, f"{missing} not installed: run `bash bench/setup.sh` (as root) first"
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "result.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "HUB_", "Q_"))}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--messages", str(MESSAGES), "--parts", "hub-sqlite",
         "--out", str(out), "--workdir", str(tmp / "work"), "--stall-timeout", "60", "--phase-timeout", "240"], check=False,
        cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, f"bench/run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text()), out


def test_result_file_has_machine_facts_and_ratio_names(bench_run):
    doc, out = bench_run
    assert doc["mode"] == "quick" and doc["messages"] == MESSAGES
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["cpu_model"]
    # The ratios are always named; with only the hub part run they have nothing to compare to.
    for key in ("hub_vs_baseline", "hub_vs_post_office_default", "hub_vs_post_office_batch1000"):
        assert key in doc and doc[key] is None
    assert out.with_suffix(".md").read_text().count("hub_sqlite") == 1


def test_every_accepted_message_is_sent_once_and_reaches_the_sink(bench_run):
    doc, _out = bench_run
    res = doc["results"]["hub_sqlite"]
    acc = res["accounting"]
    assert res["api"]["issued"] == MESSAGES
    assert res["api"]["refused"] == 0, res["api"]["refused_sample"]
    assert acc["accepted"] == MESSAGES
    assert acc["rows"] == acc["sent_rows"] == MESSAGES
    assert acc["by_status"] == {"sent": MESSAGES}
    assert acc["at_sink"] == acc["dumped"] == acc["unique_at_sink"] == MESSAGES
    assert acc["duplicates"] == 0 and acc["lost"] == 0 and acc["missing_id"] == 0
    assert acc["ok"] is True
    assert res["delivery"]["complete"] is True


def test_accounting_matches_the_database_and_the_sink_independently(bench_run):
    """Recount from the raw evidence the harness left behind rather than trusting its sums."""
    doc, _out = bench_run
    res = doc["results"]["hub_sqlite"]
    con = sqlite3.connect(f"file:{res['sqlite_path']}?mode=ro", uri=True)
    try:
        rows = dict(con.execute("SELECT status, COUNT(*) FROM hub_sendlog GROUP BY status").fetchall())
        ids = {row[0] for row in con.execute("SELECT id FROM hub_sendlog")}
    finally:
        con.close()
    assert rows == {"sent": MESSAGES}
    seen: list[int] = []
    for dump in Path(res["sink_dumps"]).iterdir():
        found = re.search(rb"^X-SMTPHub-Log-ID: *(\d+)", dump.read_bytes(), re.MULTILINE | re.IGNORECASE)
        assert found, f"{dump} has no X-SMTPHub-Log-ID header"
        seen.append(int(found.group(1)))
    assert len(seen) == len(set(seen)) == MESSAGES  # none twice
    assert set(seen) == ids  # exactly the accepted rows, none lost


def test_process_groups_were_measured(bench_run):
    """What the harness guarantees, however busy the machine: every group is read when it is
    added or when the sampler starts, while it is known to be alive (bench/procstat.py), and
    gunicorn is sampled only after all its workers booted (bench/hub.py start_web), qcluster
    after it said "running" (its sentinel has spawned the workers, pusher and monitor by
    then). No CPU figure is asserted: those depend on the machine's load."""
    doc, _out = bench_run
    procs = doc["results"]["hub_sqlite"]["processes"]
    for group in ("gunicorn", "qcluster", "smtp-sink", "wrk"):
        assert group in procs, procs
        assert procs[group]["peak_rss_mb"] > 0
    # gunicorn master + 2 workers; qcluster's guard, pusher, monitor and workers.
    assert procs["gunicorn"]["peak_processes"] >= 3
    assert procs["qcluster"]["peak_processes"] >= 3
