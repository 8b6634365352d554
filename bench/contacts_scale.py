"""Contacts at scale (issue 12): one list of N contacts, then what customers do with it.

    .venv/bin/python bench/contacts_scale.py [--contacts 1000000] [--db sqlite|mariadb] [--out FILE]

The hub runs as deployed (bench/hub.py: a fresh database, migrated and provisioned with the
hub's own commands, `gunicorn smtphub.wsgi -w 2`, no qcluster: accepted mail just waits in
the outbox). This process fills one list of the app's account with N contacts through the
contacts store's bulk insert (the import job's own path, without the file), then measures
and prints JSON:

(a) listing a page of 50: the service the APIs call (`search_contacts`, first page and a
    page 90% deep by `after_id` cursor, and 90% deep by offset as V28's `page=` asks), and
    over HTTP: `GET /api/v1/lists/<id>/contacts` (first page, `after_id` deep) and V28
    `mloperate.php?do=ml-addr-list&page=...` (first page, a page 90% deep);
(b) keyword search: a fullname substring and an address substring, each matching one
    contact (the worst case: the whole list is read), service and native API;
(c) `services.empty_list` of the whole list while a separate load process sends
    transactional mail through `POST /api.php` (2 client threads): the send API's latency
    before vs. during the empty, failures, and how long the empty took;
(d) database bytes per contact (the list's rows and indexes);
(e) exporting the list's unsubscribed addresses (V28 4.6, `mloperate.php?do=unsubscribe-export`),
    sparse (every 200th contact unsubscribed) and then dense (every 2nd): the whole download
    over HTTP and the service alone, seconds and lines.

Median, p99 and max in milliseconds over --calls calls (--search-calls for searches).
Goals (issue 12, at 1M): a page < 100 ms (p99), keyword search < 1 s (p99), the send path
not locked while a list empties (no send fails and the send p99 during the empty < 1 s).

`--db mariadb` uses the bench's MariaDB database (bench/setup.sh; dropped and re-created).
Every phase is bounded (--budget-minutes). Nothing is written in the repository unless
--out names a file; the scratch directory is removed unless --keep."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # Django's `hub` package ...
sys.path.append(str(BENCH))  # ... wins over bench/hub.py, loaded below under its own name

import common  # bench/common.py, found through the path above

PAGE = 50
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉"
AREAS = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "Shanghai", ""]
# Keyword searches, each matching exactly one contact (see fullname()/address()).
NAME_NEEDLE = "Needle 甲乙丙"
FILL_CHUNK = 20_000


def log(msg: str) -> None:
    print(f"[contacts-scale {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", file=sys.stderr, flush=True)


def stats(samples_ms: list[float]) -> dict:
    if not samples_ms:
        return {"n": 0}
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"n": len(ordered), "median_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2),
            "max_ms": round(ordered[-1], 2)}


def timed(fn, calls: int, deadline: float) -> dict:
    fn()  # warm-up (connection, caches), not counted
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
        if time.monotonic() > deadline:
            break
    return stats(samples)


# --- filling the list ---------------------------------------------------------------------------

def address(i: int) -> str:
    return f"user{i}@example{i % 97}.com"


def fullname(i: int, rng) -> str:
    if i == 1:
        return NAME_NEEDLE
    if i % 2:
        return rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")
    return f"User {i}"


def fill(mail_list, count: int) -> float:
    """count contacts through hub.contacts.store (one prepared INSERT, executemany, FILL_CHUNK
    rows per transaction with the list's counter), as the import job writes; returns rows/s."""
    import random

    from django.db import transaction
    from django.utils import timezone

    from hub.contacts import store
    from hub.contacts.normalize import row_values

    rng = random.Random(28)
    t0 = time.perf_counter()
    for start in range(0, count, FILL_CHUNK):
        rows = []
        for i in range(start, min(count, start + FILL_CHUNK)):
            birthday = f"{1960 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 4 == 0 else ""
            rows.append(row_values([address(i), fullname(i, rng), "MF"[i % 2] if i % 3 else "", birthday,
                                    f"13{i % 1000000000:09d}" if i % 5 else "", AREAS[i % len(AREAS)]]))
        with transaction.atomic():
            added = store.insert(mail_list, rows, now=timezone.now())
            store.bump(mail_list.pk, added)
        if start and start % 200_000 == 0:
            log(f"  {start:,} contacts")
    return count / (time.perf_counter() - t0)



def db_bytes() -> int:
    return common.db_bytes("contacts_contact")


# --- HTTP ---------------------------------------------------------------------------------------

class Client:
    """One HTTP/1.1 request per connection (gunicorn's sync workers close it anyway)."""

    def __init__(self, port: int, appid: str, secret: str):
        self.port = port
        self.auth = "Basic " + base64.b64encode(f"{appid}:{secret}".encode()).decode()

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path, headers={"Authorization": self.auth})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
        return body


def send_load(port: int, appid: str, secret: str, threads: int, stop, results) -> None:
    """A separate process (spawned: its own interpreter, so this process's work does not
    slow the clients down): `threads` clients POST one transactional mail at a time to
    /api.php until `stop` is set; puts [(wall-clock start, latency ms, HTTP status)] on
    `results`."""
    body = urllib.parse.urlencode({"action": "send", "appid": appid, "appsecret": secret, "to": "reader@example.com",
                                   "subject": "Your order", "message": "<p>Order 42 is on its way.</p>"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    samples: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            started, t0 = time.time(), time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", "/api.php", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status if b'"code": 0' in payload or b'"code":0' in payload else -response.status
            except OSError:
                status = 0
            finally:
                conn.close()
            with lock:
                samples.append((started, (time.perf_counter() - t0) * 1000, status))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(samples)


def window(samples: list[tuple[float, float, int]], start: float, end: float) -> dict:
    inside = [s for s in samples if start <= s[0] < end]
    failed = [s for s in inside if s[2] != 200]
    out = stats([s[1] for s in inside])
    out["failed"] = len(failed)
    out["requests_per_s"] = round(len(inside) / (end - start), 1) if end > start else None
    return out


# --- the measurements ---------------------------------------------------------------------------

def listing(account, mail_list, client: Client, count: int, first_id: int, calls: int, deadline: float) -> dict:
    from hub.contacts import services

    deep_after = first_id + int(count * 0.9)
    deep_page = max(1, int(count * 0.9) // PAGE)
    lid = mail_list.pk

    def check(rows) -> None:
        if len(rows) != PAGE:
            raise RuntimeError(f"a page had {len(rows)} rows, not {PAGE}")

    v28 = f"/apinew/mloperate.php?do=ml-addr-list&list_id={lid}&limit={PAGE}"
    v1 = f"/api/v1/lists/{lid}/contacts?limit={PAGE}"
    return {
        "services_first_page": timed(lambda: check(services.search_contacts(account, lid, limit=PAGE)[1]), calls,
                                     deadline),
        "services_after_id_deep": timed(lambda: check(services.search_contacts(
            account, lid, after_id=deep_after, limit=PAGE)[1]), calls, deadline),
        "services_offset_deep": timed(lambda: check(services.search_contacts(
            account, lid, offset=(deep_page - 1) * PAGE, limit=PAGE)[1]), calls, deadline),
        "v1_first_page": timed(lambda: client.get(v1), calls, deadline),
        "v1_after_id_deep": timed(lambda: client.get(f"{v1}&after_id={deep_after}"), calls, deadline),
        "v28_page_1": timed(lambda: client.get(f"{v28}&page=1"), calls, deadline),
        f"v28_page_{deep_page}": timed(lambda: client.get(f"{v28}&page={deep_page}"), calls, deadline),
    }


def searching(account, mail_list, client: Client, count: int, calls: int, deadline: float) -> dict:
    from hub.contacts import services

    lid = mail_list.pk
    # Two rare keywords (one match: the page query reads the whole list) and a common one
    # (a surname: the page fills at once, the total is a COUNT over the whole list).
    needles = {"fullname": NAME_NEEDLE[:9], "address": address(count - 3).split("@")[0] + "@",
               "fullname_common": "王"}
    out = {}
    for what, keyword in needles.items():
        def service(keyword=keyword, rare=what != "fullname_common") -> None:
            total, rows = services.search_contacts(account, lid, keyword=keyword, limit=PAGE)
            wrong = (total, len(rows)) != (1, 1) if rare else not rows
            if wrong:
                raise RuntimeError(f"keyword {keyword!r}: {total} found")

        out[f"services_{what}"] = timed(service, calls, deadline)
        query = urllib.parse.urlencode({"q": keyword, "limit": PAGE})
        out[f"v1_{what}"] = timed(lambda query=query: client.get(f"/api/v1/lists/{lid}/contacts?{query}"), calls,
                                  deadline)
    out["keywords"] = needles
    return out


def emptying(account, mail_list, hub, threads: int, before_s: float) -> dict:
    """The load process runs `before_s` seconds alone, then services.empty_list runs here
    (its own database connection, as a request's would), then the load stops."""
    from hub.contacts import services

    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    load = ctx.Process(target=send_load, args=(hub.port, hub.appid, hub.appsecret, threads, stop, results))
    load.start()
    try:
        time.sleep(1.0)  # the clients' start (an interpreter), not measured
        begin = time.time()
        time.sleep(before_s)
        empty_start = time.time()
        removed = services.empty_list(account, mail_list.pk)
        empty_end = time.time()
        time.sleep(1.0)
        stop.set()
        samples = results.get(timeout=120)
    finally:
        stop.set()
        load.join(timeout=30)
        if load.is_alive():
            load.kill()
    mail_list.refresh_from_db()
    from hub.models import SendLog

    return {"removed": removed, "empty_seconds": round(empty_end - empty_start, 2),
            "rows_per_s": round(removed / max(1e-9, empty_end - empty_start)),
            "list_counter_after": mail_list.contact_count,
            "send_before": window(samples, begin, empty_start),
            "send_during": window(samples, empty_start, empty_end),
            "send_failed_total": sum(1 for s in samples if s[2] != 200),
            # Every send the clients saw accepted is a row of the outbox (or the count is wrong).
            "sends_accepted": sum(1 for s in samples if s[2] == 200), "outbox_rows": SendLog.objects.count()}


def exporting(account, mail_list, client: Client, count: int) -> dict:
    """(e): unsubscribe every `step`-th contact (one UPDATE), then read the whole export."""
    from django.utils import timezone

    from hub.contacts import services
    from hub.contacts.models import Contact

    found = {}
    for name, step in (("sparse_every_200th", 200), ("dense_every_2nd", 2)):
        ids = Contact.objects.filter(mail_list=mail_list).order_by("id").values_list("id", flat=True)[::step]
        for start in range(0, len(ids), 10_000):
            Contact.objects.filter(pk__in=ids[start:start + 10_000]).update(subscribed=False,
                                                                            unsubscribed_at=timezone.now())
        t0 = time.perf_counter()
        served = sum(1 for _c in services.unsubscribed_contacts(account, mail_list.pk))
        t1 = time.perf_counter()
        body = client.get(f"/apinew/mloperate.php?do=unsubscribe-export&id={mail_list.pk}")
        t2 = time.perf_counter()
        lines = body.count(b"\n")
        if served != lines or served < count // step:
            raise RuntimeError(f"export: {served} from the service, {lines} over HTTP, expected {count // step}+")
        found[name] = {"lines": lines, "service_seconds": round(t1 - t0, 2), "http_seconds": round(t2 - t1, 2)}
    return found


def goals(result: dict) -> dict:
    met = {}
    if "listing" in result:
        met["page_p99_under_100ms"] = max(v["p99_ms"] for v in result["listing"].values()) < 100
    if "search" in result:
        met["keyword_search_p99_under_1s"] = max(v["p99_ms"] for k, v in result["search"].items()
                                                 if k != "keywords") < 1000
    if "empty" in result:
        during = result["empty"]["send_during"]
        met["send_not_locked_during_empty"] = (during.get("n", 0) > 0 and during["failed"] == 0
                                               and during["p99_ms"] < 1000)
    return met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--db", choices=("sqlite", "mariadb"), default="sqlite")
    ap.add_argument("--calls", type=int, default=50, help="calls per listing measurement")
    ap.add_argument("--search-calls", type=int, default=20, help="calls per keyword search measurement")
    ap.add_argument("--send-threads", type=int, default=2, help="client threads of the send load")
    ap.add_argument("--before-seconds", type=float, default=10.0, help="send load alone before the empty")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--budget-minutes", type=float, default=60.0, help="the measurements stop early after this")
    ap.add_argument("--phases", default="listing,search,export,empty",
                    help="which measurements, in this order (comma-separated; the empty ends the list)")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (database, logs)")
    args = ap.parse_args()
    if not set(args.phases.split(",")) <= {"listing", "search", "export", "empty"}:
        ap.error("--phases: listing, search, export, empty")
    if args.contacts < 20 * PAGE:
        ap.error(f"--contacts must be at least {20 * PAGE}")

    hub_mod, sink_mod = common.bench_module("hub"), common.bench_module("sink")
    work = Path(tempfile.mkdtemp(prefix="bench-contacts-"))
    hub = hub_mod.Hub(work, db=args.db, web_workers=args.web_workers)
    deadline = time.monotonic() + args.budget_minutes * 60
    try:
        log(f"preparing a fresh {args.db} database in {work}")
        hub.prepare(sink_port=sink_mod.free_port())  # nothing listens there: no qcluster delivers
        os.environ.update(hub.env(DJANGO_SETTINGS_MODULE="smtphub.settings", LOG_LEVEL="WARNING"))
        import django

        django.setup()
        from django.db import connection

        from hub.contacts import services
        from hub.contacts.models import Contact
        from hub.models import App

        account = App.objects.select_related("account").get(pk=int(hub.appid)).account
        mail_list = services.create_list(account, "bench 1M")
        other = services.create_list(account, "a small other list")  # the big one is not alone
        services.add_contact(account, other.pk, "someone@example.com")
        before = db_bytes()
        log(f"filling one list with {args.contacts:,} contacts")
        fill_rate = fill(mail_list, args.contacts)
        added = db_bytes() - before
        mail_list.refresh_from_db()
        first_id = Contact.objects.filter(mail_list=mail_list).order_by("id").values_list("id", flat=True)[0]
        log(f"  {fill_rate:,.0f} rows/s; starting gunicorn")
        hub.start_web()
        client = Client(hub.port, hub.appid, hub.appsecret)

        result: dict = {"database": connection.vendor, "contacts": args.contacts,
                        "list_counter": mail_list.contact_count, "fill_rows_per_s": round(fill_rate),
                        "db_bytes_added": added, "db_bytes_per_contact": round(added / args.contacts, 1)}
        phases = {
            "listing": lambda: listing(account, mail_list, client, args.contacts, first_id, args.calls, deadline),
            "search": lambda: searching(account, mail_list, client, args.contacts, args.search_calls, deadline),
            "export": lambda: exporting(account, mail_list, client, args.contacts),
            "empty": lambda: emptying(account, mail_list, hub, args.send_threads, args.before_seconds),
        }
        for phase in args.phases.split(","):
            log(phase)
            result[phase] = phases[phase]()
        result["goals"] = goals(result)
        result["loadavg_at_end"] = os.getloadavg()
        text = json.dumps(result, indent=2, ensure_ascii=False)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        return 0
    finally:
        hub.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
