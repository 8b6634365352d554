"""Contact import speed: generate a CSV (5% invalid addresses, 5% duplicates, mixed Chinese
names, a Chinese header row), import it through the real job (hub.contacts.imports: the
upload checks, then the chunked run, in this process with no time budget, as the
`contacts_import` command does) and print JSON: rows/s, peak RSS, database bytes added,
and whether every row is accounted for (imported + invalid + duplicate = rows).

    .venv/bin/python bench/import_contacts.py [--rows 1000000]
    DATABASE_URL=mysql://user:pass@host/db .venv/bin/python bench/import_contacts.py

Without DATABASE_URL: a fresh SQLite database in a temporary directory (settings as
production: WAL, synchronous=NORMAL). With it: that database (migrated first; a list of
its own, left in place). Goal (issue 12): >= 50,000 rows/s on SQLite, >= 25,000 on MariaDB,
peak RSS under 200 MB."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉"
AREAS = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "Shanghai", ""]


def generate(path: Path, rows: int, seed: int = 12) -> dict:
    """rows data lines after a header. Row i: i % 20 == 7 is invalid, i % 20 == 13 repeats
    row i - 13's address in upper case (a duplicate), the rest are new addresses."""
    rng = random.Random(seed)
    expected = {"invalid": 0, "duplicate": 0, "imported": 0}
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("邮箱,姓名,性别,生日,手机,地区\n")
        for i in range(rows):
            kind = i % 20
            if kind == 7:
                email = f"broken-{i}.example.com" if i % 40 == 7 else f"user{i}@"
                expected["invalid"] += 1
            elif kind == 13 and i >= 13:
                email = f"User{i - 13}@Example{(i - 13) % 97}.COM"
                expected["duplicate"] += 1
            else:
                email = f"user{i}@example{i % 97}.com"
                expected["imported"] += 1
            if i % 2:
                name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")
            else:
                name = f"User {i}"
            sex = "M" if i % 3 == 0 else ("F" if i % 3 == 1 else "")
            birthday = f"{1960 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 4 == 0 else ""
            phone = f"13{i % 1000000000:09d}" if i % 5 else ""
            f.write(f"{email},{name},{sex},{birthday},{phone},{AREAS[i % len(AREAS)]}\n")
    return expected


def db_bytes(connection, work: Path | None) -> int:
    if connection.vendor == "sqlite":
        name = Path(connection.settings_dict["NAME"])
        return sum(p.stat().st_size for p in name.parent.glob(name.name + "*") if p.is_file())
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                       "WHERE table_schema = DATABASE()")
        return int(cursor.fetchone()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (file and SQLite database)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    env = {"DJANGO_SETTINGS_MODULE": "smtphub.settings", "HUB_VAR_DIR": str(work / "var"),
           "HUB_IMPORT_DIR": str(work / "imports"), "HUB_IMPORT_MAX_BYTES": str(10 * 1024**3),
           "LOG_LEVEL": "WARNING"}
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{work / 'hub.sqlite3'}"
    os.environ.update(env)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from hub.contacts import imports, services
        from hub.contacts.models import ImportJob
        from hub.models import Account

        call_command("migrate", verbosity=0)
        source = work / "contacts.csv"
        t0 = time.perf_counter()
        expected = generate(source, args.rows)
        generated_s = time.perf_counter() - t0

        account, _created = Account.objects.get_or_create(name="bench-import")
        mail_list = services.create_list(account, f"bench {time.strftime('%Y%m%d-%H%M%S')}")
        before = db_bytes(connection, work)
        t0 = time.perf_counter()
        with open(source, "rb") as f:
            job = imports.start_import(account, mail_list.pk, f, source.name, queue=False)
        stored_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        outcome = imports.run(job.pk, job.run_token, time_budget=0)
        run_s = time.perf_counter() - t1
        total_s = time.perf_counter() - t0
        job = ImportJob.objects.get(pk=job.pk)
        mail_list.refresh_from_db()
        added = db_bytes(connection, work) - before
        counts = {"rows": job.count_all, "imported": job.count_imported, "invalid": job.count_invalid,
                  "duplicate": job.count_duplicate}
        print(json.dumps({
            "database": connection.vendor,
            "rows": args.rows,
            "file_bytes": source.stat().st_size,
            "outcome": outcome,
            "status": job.status,
            "rows_per_s": round(args.rows / total_s),
            "rows_per_s_job_only": round(args.rows / run_s),
            "seconds": {"generate": round(generated_s, 2), "upload_checks": round(stored_s, 2),
                        "job": round(run_s, 2), "upload_and_job": round(total_s, 2)},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "db_bytes_added": added,
            "db_bytes_per_contact": round(added / max(1, job.count_imported), 1),
            "counts": counts,
            "expected": expected,
            "accounted": job.count_all == job.count_imported + job.count_invalid + job.count_duplicate == args.rows,
            "counts_as_expected": (job.count_imported, job.count_invalid, job.count_duplicate) == (
                expected["imported"], expected["invalid"], expected["duplicate"]),
            "list_counter_ok": mail_list.contact_count == job.count_imported,
        }, indent=2))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
