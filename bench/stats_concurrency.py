"""The statistics counters under concurrent deliveries (issue 14): do concurrent increments
of the same counter row (hub.stats Tally) serialize badly or deadlock?

    .venv/bin/python bench/stats_concurrency.py --db mariadb --mariadb smtphub:smtphub@smtphub_bench14c \\
        [--events 4000] [--out FILE]

A fresh database (bench/hub.py, migrated and provisioned), then in this process: one
campaign's rows in state `sending`, and for each case W writer threads (each its own
database connection, as the delivery crew's threads) record outcomes the way the delivery
engine does: per message one transaction with the outcome UPDATE of the row and, with the
receiver, the `sent` / `failed` event told through hub.events (hub.stats' upsert of the
counter row, plus a Failure row for the 3% failed). Cases:

- `without`: the outcome UPDATE alone (no event told): the base;
- `spread`: the rows in random order, so the counter slot (SendLog id mod SLOTS) varies as
  in a real drain: threads meet on one counter row about 1 / SLOTS of the time;
- `hot`: only rows of one slot: every transaction of every thread updates the same counter
  row (the worst case, as if SLOTS were 1).

Per case: wall µs per event (total wall / events: the throughput), per-transaction latency
median and p99, and every database error by code (MariaDB 1213 = deadlock, 1205 = lock wait
timeout), which the bench counts and does not retry. Counters are checked afterwards against
the number of events recorded."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(BENCH))

import common  # bench/common.py, found through the path above

FAILED_EVERY = 33


def log(msg: str) -> None:
    print(f"[stats-concurrency {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", file=sys.stderr, flush=True)


def make_rows(app, campaign_id: int, n: int) -> list[int]:
    from hub.models import SendLog

    rows = [SendLog(app=app, to=f"c{i}@example{i % 7}.com", subject=f"[campaign {campaign_id}] template 1 subject 1",
                    campaign_id=campaign_id, contact_id=i + 1, priority=1, source=SendLog.Source.CAMPAIGN,
                    status=SendLog.Status.SENDING, quota_charged=1, from_email="news@example.com")
            for i in range(n)]
    SendLog.objects.bulk_create(rows, batch_size=2000)
    return list(SendLog.objects.filter(campaign_id=campaign_id).order_by("id").values_list("id", flat=True))


def writer(ids: list[int], with_receiver: bool, campaign_id: int, latencies: list, errors: dict,
           start: threading.Barrier) -> None:
    from django.db import DatabaseError, connection, transaction
    from django.utils import timezone

    from hub import events
    from hub.models import SendLog

    q = connection.ops.quote_name
    table = q(SendLog._meta.db_table)
    sent_sql = f"UPDATE {table} SET {q('status')} = 'sent', {q('sent_at')} = %s, {q('smtp_code')} = 250 WHERE id = %s"
    failed_sql = (f"UPDATE {table} SET {q('status')} = 'failed', {q('failure_type')} = 1, {q('smtp_code')} = 550 "
                  "WHERE id = %s")
    mine: list[float] = []
    try:
        start.wait()
        for pk in ids:
            failed = pk % FAILED_EVERY == 0
            t0 = time.perf_counter()
            try:
                with transaction.atomic():
                    now = timezone.now()
                    with connection.cursor() as cursor:
                        cursor.execute(failed_sql if failed else sent_sql, [pk] if failed else [now, pk])
                    if with_receiver:
                        events.emit(events.Event(
                            kind=events.Kind.FAILED if failed else events.Kind.SENT, email=f"c{pk}@example.com",
                            at=now, log_id=pk, campaign_id=campaign_id, data={"failure_type": 1} if failed else {}))
            except DatabaseError as exc:
                code = str(exc.args[0]) if exc.args else type(exc).__name__
                errors[code] = errors.get(code, 0) + 1
                continue
            mine.append((time.perf_counter() - t0) * 1e6)
    finally:
        latencies.extend(mine)
        connection.close()


def case(ids: list[int], writers: int, with_receiver: bool, campaign_id: int) -> dict:
    parts = [ids[k::writers] for k in range(writers)]
    latencies: list[float] = []
    errors: dict = {}
    start = threading.Barrier(writers + 1)
    threads = [threading.Thread(target=writer, args=(p, with_receiver, campaign_id, latencies, errors, start))
               for p in parts]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ordered = sorted(latencies)
    return {"writers": writers, "events": len(ids), "committed": len(latencies), "errors": errors,
            "wall_us_per_event": round(wall / len(ids) * 1e6, 1),
            "txn_median_us": round(statistics.median(ordered), 1) if ordered else None,
            "txn_p99_us": round(ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)], 1) if ordered else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "mariadb"), default="mariadb")
    ap.add_argument("--mariadb", metavar="USER:PASSWORD@DATABASE", help="as bench/stats_reports.py")
    ap.add_argument("--events", type=int, default=4000, help="events per case")
    ap.add_argument("--writers", default="1,2,4")
    ap.add_argument("--out")
    args = ap.parse_args()
    hub_mod, sink_mod = common.bench_module("hub"), common.bench_module("sink")
    common.use_mariadb_login(hub_mod, args.mariadb)
    work = Path(tempfile.mkdtemp(prefix="bench-statsc-"))
    hub = hub_mod.Hub(work, db=args.db)
    started = time.time()
    try:
        log(f"preparing a fresh {args.db} database")
        hub.prepare(sink_port=sink_mod.free_port())
        os.environ.update(hub.env(DJANGO_SETTINGS_MODULE="smtphub.settings", LOG_LEVEL="WARNING"))
        import django

        django.setup()
        from django.db import connection
        from django.db.models import Sum

        from hub.campaigns.models import Campaign, State
        from hub.models import App
        from hub.stats.models import SLOTS, Failure, Tally

        app = App.objects.select_related("account").get(pk=int(hub.appid))
        campaign = Campaign.objects.create(account=app.account, name="concurrency", template_ids=[],
                                           state=State.SENDING)
        writer_counts = [int(w) for w in args.writers.split(",")]
        cases = [(w, label) for w in writer_counts for label in ("without", "spread", "hot")]
        log(f"{len(cases)} cases of {args.events:,} events: making the rows")
        # Enough rows of the hot slot for every hot case, and of any slot for the others.
        ids = make_rows(app, campaign.pk, args.events * len(writer_counts) * (SLOTS + 2))
        hot = [pk for pk in ids if pk % SLOTS == 0]
        others = [pk for pk in ids if pk % SLOTS != 0] + hot[args.events * len(writer_counts):]
        hot = hot[:args.events * len(writer_counts)]
        random.Random(14).shuffle(others)
        result: dict = {"database": connection.vendor, "slots": SLOTS, "events_per_case": args.events,
                        "loadavg_at_start": os.getloadavg(), "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                        "cases": []}
        told = 0
        for writers, label in cases:
            pool = hot if label == "hot" else others
            chosen, pool[:] = pool[:args.events], pool[args.events:]
            log(f"  {writers} writer(s), {label}")
            out = case(chosen, writers, label != "without", campaign.pk)
            out["case"] = label
            told += out["committed"] if label != "without" else 0
            result["cases"].append(out)
        counted = Tally.objects.filter(campaign_id=campaign.pk).aggregate(s=Sum("sent"), f=Sum("failed"))
        result["counters_equal_events"] = (counted["s"] or 0) + (counted["f"] or 0) == told
        result["failure_rows"] = Failure.objects.filter(campaign_id=campaign.pk).count()
        result["loadavg_at_end"] = os.getloadavg()
        result["minutes"] = round((time.time() - started) / 60, 1)
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
