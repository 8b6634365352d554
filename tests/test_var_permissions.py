"""The data directory and the SQLite files are the hub user's only (issue 17 item 11: var/
was 0755 and the database 0644): settings make var/ 0700 and the database file 0600 at every
start, and SQLite's -wal/-shm files take the database file's mode."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def start_django(var_dir: Path) -> None:
    env = {**os.environ, "HUB_VAR_DIR": str(var_dir), "DATABASE_URL": "", "DJANGO_SETTINGS_MODULE": "smtphub.settings"}
    subprocess.run([sys.executable, "-c", "import os; os.umask(0o022); import django; django.setup()"],
                   cwd=REPO_ROOT, env=env, check=True, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_is_0700_and_the_database_0600(tmp_path):
    var = tmp_path / "var"
    start_django(var)
    assert mode(var) == 0o700
    assert mode(var / "smtphub.sqlite3") == 0o600


def test_an_existing_open_data_dir_is_closed_at_start(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)
    db = var / "smtphub.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    for path in var.iterdir():
        os.chmod(path, 0o644)
    start_django(var)
    assert mode(var) == 0o700
    assert {p.name: mode(p) for p in var.iterdir()} == {p.name: 0o600 for p in var.iterdir()}


def test_sqlite_gives_its_wal_files_the_database_files_mode(tmp_path):
    var = tmp_path / "var"
    start_django(var)
    with sqlite3.connect(var / "smtphub.sqlite3") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        assert (var / "smtphub.sqlite3-wal").exists()
        assert mode(var / "smtphub.sqlite3-wal") == 0o600
