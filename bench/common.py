"""Pieces the Django-side benches share (campaign.py, contacts_scale.py): loading a bench
module by path, and the database's size in use."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def bench_module(name: str):
    """bench/<name>.py under the name bench_<name>: bench/hub.py cannot be imported as `hub`,
    which is the Django app these benches also import."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def db_bytes(analyze_table: str) -> int:
    """Needs Django set up. SQLite: pages in use (WAL checkpointed first, free pages not counted). MariaDB: data +
    index length of the schema, after ANALYZE of `analyze_table` (InnoDB's statistics lag)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            values = []
            for pragma in ("page_count", "freelist_count", "page_size"):
                cursor.execute(f"PRAGMA {pragma}")
                values.append(cursor.fetchone()[0])
            return (values[0] - values[1]) * values[2]
        cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(analyze_table)}")
        cursor.fetchall()
        cursor.execute("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                       "WHERE table_schema = DATABASE()")
        return int(cursor.fetchone()[0])


def use_mariadb_login(hub_mod, spec: str | None) -> None:
    """--mariadb USER:PASSWORD@DATABASE: the login and database bench/hub.py's Hub uses
    instead of its own (the database is dropped and re-created)."""
    if spec:
        login, _at, name = spec.rpartition("@")
        user, _colon, password = login.partition(":")
        hub_mod.MARIADB.update(user=user, password=password, name=name)
