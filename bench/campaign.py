"""A campaign of N recipients (issue 13) through real qcluster(s) to Postfix's smtp-sink.

    .venv/bin/python bench/campaign.py [--recipients 1000000] [--db sqlite|mariadb]
        [--hour-speed 0] [--hour-seconds 3600] [--clusters 1] [--q-workers 3] [--kill-at 0.5]

The hub runs as deployed (bench/hub.py: a fresh database migrated and provisioned with the
hub's own commands, gunicorn for the transactional probe, `manage.py qcluster`). This
process fills list A with N contacts (0.5% of them unsubscribed) and list B with N/100, half
of which are also in A (duplicates), through the contacts store's bulk insert; makes and
checks a template; starts the campaign (state 2) and measures, printing JSON:

- delivered rate (campaign rows sent per second, first to last `sent_at`, and at the sink);
- time from "start" to the first campaign message out;
- peak RSS of every process (gunicorn and its workers, each qcluster process, the sink);
- database bytes per recipient (growth of the database during the campaign / rows);
- hour_speed: the busiest 10-minute window of `sent_at` (scaled by --hour-seconds, the
  hub's HUB_CAMPAIGN_HOUR_SECONDS) against hour_speed/6 + 1%;
- transactional latency while the campaign runs: a probe sends one message through
  `POST /api.php` every --probe-interval seconds; accept -> `sent_at`, p50/p99;
- accounting: contacts read = sent + failed + skipped (+ waiting), one row per recipient,
  duplicates at the sink (by X-SMTPHub-Log-ID);
- with --kill-at F: the first qcluster's process group is SIGKILLed once F of the recipients
  reached the sink, a new one started, and this process runs the sweeps (what the clusters'
  one-minute schedules do) until the campaign is complete.

- the load: contacts per second into the two lists (hub.contacts.store, as an import);
- in the same run, after the campaign, each to a sink of its own (bench/peers.py): the
  smtplib baseline (--baseline-messages, 2 processes) and django-post_office sending the
  campaign's own recipients (`send_many`, then `send_queued_mail --processes 2`;
  --po-recipients, bench/.work/po-venv from bench/setup.sh); the hub's delivered rate over each.

Every phase is bounded (--stall-timeout without progress at the sink, --budget-minutes).
Nothing is written in the repository unless --out names a file; the scratch directory is
removed unless --keep. (Over 400 lines: one script a reader follows from the load to the
report; the reusable pieces live in hub.py, sink.py, procstat.py, peers.py.)"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(BENCH))

import common  # bench/common.py, found through the path above

HTML = ('<html><body><h1>你好 {{fullname|朋友}}</h1><p>' + "本月新品上架，欢迎选购。" * 60 +
        '</p><p><a href="https://shop.example.com/?u={{var1}}">商店</a> · <a href="{{webview_url}}">在浏览器中查看</a>'
        ' · <a href="{{unsubscribe_url}}">退订</a></p></body></html>')
CHUNK = 20_000



def log(msg: str) -> None:
    print(f"[campaign {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 1)


def fill(account, n: int, unsubscribed_every: int = 200, overlap: bool = False):
    """Two lists through hub.contacts.store, as the import job writes them."""
    from django.db import transaction
    from django.utils import timezone

    from hub.contacts import services, store
    from hub.contacts.models import Contact
    from hub.contacts.normalize import row_values

    a, b = services.create_list(account, "bench A"), services.create_list(account, "bench B")
    for mail_list, emails in ((a, (f"user{i}@example{i % 97}.com" for i in range(n))),
                              (b, (f"user{i}@example{i % 97}.com" if i % 2 else f"extra{i}@other.example"
                                   for i in range(max(1, n // 100))))):
        batch = []
        for i, email in enumerate(emails):
            batch.append(row_values([email, f"读者 {i}", "", "", "", "北京", f"v{i}"]))
            if len(batch) == CHUNK:
                with transaction.atomic():
                    store.bump(mail_list.pk, store.insert(mail_list, batch, now=timezone.now()))
                batch = []
        if batch:
            with transaction.atomic():
                store.bump(mail_list.pk, store.insert(mail_list, batch, now=timezone.now()))
    # Every unsubscribed_every-th contact of A has unsubscribed (one UPDATE: at 1M, loading
    # the ids would take longer than the inserts).
    from django.db.models import F, IntegerField
    from django.db.models.functions import Mod

    first = Contact.objects.filter(mail_list=a).order_by("id").values_list("id", flat=True).first() or 0
    (Contact.objects.filter(mail_list=a).annotate(k=Mod(F("id") - first, unsubscribed_every, output_field=IntegerField()))
     .filter(k=0).update(subscribed=False))
    return [a, b]



def db_bytes() -> int:
    return common.db_bytes("hub_sendlog")


def table_bytes() -> dict[str, int]:
    """SQLite only (when compiled with dbstat): bytes of the outbox table and each of its
    indexes, and of the delivery attempts (one per try, written by the core)."""
    from django.db import DatabaseError, connection

    if connection.vendor != "sqlite":
        return {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT d.name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                           "WHERE m.tbl_name IN ('hub_sendlog', 'hub_deliveryattempt') GROUP BY d.name")
            return {name: int(size) for name, size in cursor.fetchall()}
    except DatabaseError as exc:  # dbstat not compiled in: the total above still stands
        log(f"no dbstat: {exc}")
        return {}


class PeakRss:
    """Peak RSS of every process under the given roots, sampled in a thread."""

    def __init__(self, procstat, interval: float = 0.5) -> None:
        self.procstat, self.interval = procstat, interval
        self.roots: dict[str, list[int]] = {}
        self.peaks: dict[int, tuple[str, int]] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.roots.setdefault(name, []).append(pid)

    def _label(self, group: str, pid: int) -> str:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        return f"{group} {pid} {cmd[-60:].strip()}"

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            procs = self.procstat.snapshot()
            for group, roots in list(self.roots.items()):
                for root in roots:
                    for pid in self.procstat.descendants(root, procs):
                        rss = procs[pid][2]
                        if pid not in self.peaks:
                            self.peaks[pid] = (self._label(group, pid), rss)
                        elif rss > self.peaks[pid][1]:
                            self.peaks[pid] = (self.peaks[pid][0], rss)

    def start(self) -> PeakRss:
        self.thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self.stop_event.set()
        self.thread.join(timeout=5)
        return {label: round(rss / 2**20, 1) for label, rss in sorted(self.peaks.values())}


def probe(port: int, appid: str, secret: str, interval: float, stop: threading.Event, ids: list[int]) -> None:
    """One transactional message every `interval` seconds through the send API."""
    i = 0
    while not stop.wait(interval):
        i += 1
        body = urllib.parse.urlencode({"action": "send", "appid": appid, "appsecret": secret,
                                       "to": f"probe{i}@example.com", "subject": f"订单 #{i}",
                                       "message": f"<p>probe {i}</p>"})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", "/api.php", body, {"Content-Type": "application/x-www-form-urlencoded"})
            answer = json.loads(conn.getresponse().read() or b"{}")
            if answer.get("id"):
                ids.append(int(answer["id"]))
        except (OSError, ValueError) as exc:
            log(f"probe {i} failed: {exc}")
        finally:
            conn.close()


def busiest_window(times: list[float], window: float) -> int:
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def rate_by_tenth(times: list[float]) -> list[float]:
    """Delivered msgs/s in each tenth of the span from the first to the last message: does
    the rate hold as the outbox grows?"""
    if len(times) < 10:
        return []
    times = sorted(times)
    first, span = times[0], (times[-1] - times[0]) or 1e-9
    counts = [0] * 10
    for t in times:
        counts[min(9, int((t - first) / span * 10))] += 1
    return [round(n / (span / 10), 1) for n in counts]


def mariadb_settings() -> dict:
    """MariaDB's settings that bear on a large campaign's speed (docs/campaigns.md: the 1M
    runs), recorded with each run so runs on differently set servers are not compared."""
    from django.db import connection

    if connection.vendor != "mysql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit, @@version")
        pool, flush, version = cursor.fetchone()
    return {"innodb_buffer_pool_size": int(pool), "innodb_flush_log_at_trx_commit": int(flush), "version": version}


def comparisons(args, work: Path, rows, delivered: float | None) -> dict:
    """The smtplib baseline and django-post_office for the campaign's own recipients, in this
    same run, each to a sink of its own (bench/peers.py); ratios of the hub's delivered rate."""
    peers = common.bench_module("peers")
    out: dict = {}
    n_base = min(args.recipients, 100_000) if args.baseline_messages is None else args.baseline_messages
    if n_base:
        log(f"smtplib baseline: {n_base:,} messages, 2 processes")
        out["smtplib"] = peers.smtplib_baseline(work, n_base)
        out["hub_vs_smtplib"] = round(delivered / out["smtplib"]["rate"], 2) if delivered else None
    n_po = rows.count() if args.po_recipients is None else min(args.po_recipients, rows.count())
    if n_po:
        recipients = work / "recipients.txt"
        with open(recipients, "w", encoding="utf-8") as f:
            f.writelines(address + "\n" for address in rows.order_by("id").values_list("to", flat=True).iterator(chunk_size=10_000))
        log(f"post_office: send_many {n_po:,} recipients, then send_queued_mail --processes {args.po_processes}")
        po_python = Path(args.po_python) if args.po_python else peers.PO_PYTHON
        out["post_office"] = peers.post_office(work, recipients, n_po, args.po_processes, po_python)
        rate = out["post_office"].get("rate")
        out["hub_vs_post_office"] = round(delivered / rate, 2) if delivered and rate else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, default=1_000_000, help="contacts in list A")
    ap.add_argument("--db", choices=("sqlite", "mariadb"), default="sqlite")
    ap.add_argument("--hour-speed", type=int, default=0, help="0 = no limit (the speed run)")
    ap.add_argument("--hour-seconds", type=float, default=3600.0, help="HUB_CAMPAIGN_HOUR_SECONDS (time scale)")
    ap.add_argument("--clusters", type=int, default=1)
    ap.add_argument("--q-workers", type=int, default=2, help="per cluster (no worker is kept by a campaign)")
    ap.add_argument("--rtt-ms", type=float, default=0.0,
                    help="put bench/delayproxy.py (this round trip, ± --jitter-ms) between the hub and its sink")
    ap.add_argument("--jitter-ms", type=float, default=5.0)
    ap.add_argument("--max-connections", type=int, default=None,
                    help="the sink server's max_connections in the hub (default: the model's, 5)")
    ap.add_argument("--kill-at", type=float, default=0.0, help="SIGKILL the first cluster at this fraction")
    ap.add_argument("--probe-interval", type=float, default=1.0)
    ap.add_argument("--baseline-seconds", type=float, default=15.0, help="probe alone before the campaign")
    ap.add_argument("--stall-timeout", type=float, default=120.0)
    ap.add_argument("--budget-minutes", type=float, default=240.0)
    ap.add_argument("--hub-env", action="append", default=[], help="KEY=VALUE for the hub's processes")
    ap.add_argument("--baseline-messages", type=int, default=None,
                    help="smtplib baseline messages (default: recipients, at most 100,000); 0 = skip")
    ap.add_argument("--po-recipients", type=int, default=None,
                    help="post_office: send_many + send_queued_mail for this many of the campaign's recipients "
                         "(default: all of them); 0 = skip")
    ap.add_argument("--po-processes", type=int, default=2)
    ap.add_argument("--po-python", default=None, help="the post_office venv's python (bench/setup.sh makes it)")
    ap.add_argument("--out")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true", help="py-spy the qcluster(s); top functions in the JSON")
    args = ap.parse_args()

    hub_mod, sink_mod, procstat = common.bench_module("hub"), common.bench_module("sink"), common.bench_module("procstat")
    work = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    extra = {"HUB_CAMPAIGN_HOUR_SECONDS": str(args.hour_seconds)}
    if args.kill_at:
        extra.update(HUB_CAMPAIGN_STALE_SECONDS="10", HUB_STUCK_SENDING_SECONDS="10", HUB_WAKEUP_STALE_SECONDS="5",
                     HUB_STUCK_QUEUED_SECONDS="10")
    extra.update(kv.split("=", 1) for kv in args.hub_env)
    hub = hub_mod.Hub(work, db=args.db, q_workers=args.q_workers, extra_env=extra)
    sink = sink_mod.Sink(work)
    peaks = PeakRss(procstat)
    stop_probe = threading.Event()
    proxy = None
    profiles = common.bench_module("profiles")
    probe_ids: list[int] = []
    deadline = time.monotonic() + args.budget_minutes * 60
    try:
        sink.start()
        if args.rtt_ms:
            proxy = sink_mod.DelayProxy(sink.port, args.rtt_ms, args.jitter_ms, work)
        log(f"preparing a fresh {args.db} database in {work}")
        hub.prepare(sink_port=proxy.port if proxy else sink.port, max_connections=args.max_connections)
        os.environ.update(hub.env(DJANGO_SETTINGS_MODULE="smtphub.settings"))
        import django

        django.setup()
        from django.db import connection
        from django.db.models import Max, Min

        from hub import sweeper
        from hub.campaigns import dispatch, services
        from hub.campaigns.models import Campaign, State
        from hub.mailtemplates import services as templates
        from hub.mailtemplates.check import run_check
        from hub.models import App, SendLog

        app = App.objects.select_related("account").get(pk=int(hub.appid))
        account = app.account
        t0 = time.monotonic()
        lists = fill(account, args.recipients)
        fill_seconds = time.monotonic() - t0
        log(f"filled the lists in {fill_seconds:.0f} s")
        tpl = templates.create_template(account, name="bench", subjects="你好 {{fullname|朋友}}|十一月新品", html=HTML)
        run_check(tpl.pk, tpl.revision)
        before, tables_before = db_bytes(), table_bytes()
        hub.start_web()
        peaks.add("gunicorn", hub.web.pid)
        peaks.add("sink", sink.proc.pid)
        spies = []
        for i, proc in enumerate(hub.start_clusters(args.clusters)):
            peaks.add("qcluster", proc.pid)
            if args.profile:
                spies += profiles.start(BENCH / ".work" / "tools" / "bin" / "py-spy", work, {f"qcluster{i + 1}": proc.pid})
        peaks.start()
        threading.Thread(target=probe, args=(hub.port, hub.appid, hub.appsecret, args.probe_interval, stop_probe,
                                             probe_ids), daemon=True).start()
        time.sleep(args.baseline_seconds)  # the probe alone: transactional latency without a campaign
        fields = services.Fields(template_ids=[tpl.pk], list_ids=[m.pk for m in lists], send_account="all",
                                 send_fullname="性能测试", hour_speed=args.hour_speed)
        started_at = time.time()
        campaign = services.create_campaign(account, fields, State.SENDING, count=False)
        log(f"campaign {campaign.pk} started")
        killed_at = None
        last_count, last_change = -1, time.monotonic()
        expected = args.recipients
        while True:
            time.sleep(1.0)
            state = Campaign.objects.filter(pk=campaign.pk).values_list("state", flat=True).first()
            counted = sink.counted()
            if counted != last_count:
                last_count, last_change = counted, time.monotonic()
            if state == State.DONE:
                break
            if args.kill_at and killed_at is None and counted >= args.kill_at * expected:
                victim = hub.clusters.pop(0)
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=30)
                killed_at = {"sink_count": counted, "at": round(time.time() - started_at, 1)}
                log(f"SIGKILLed qcluster at {counted:,} messages; starting a new one")
                for proc in hub.start_clusters(1):
                    peaks.add("qcluster-restarted", proc.pid)
            if killed_at is not None:
                sweeper.sweep()
                dispatch.sweep()
            if time.monotonic() - last_change > args.stall_timeout or time.monotonic() > deadline:
                raise SystemExit(f"no progress at the sink for {args.stall_timeout} s (or out of budget); "
                                 f"state {state}, {counted} at the sink; logs in {work}")
        done_at = time.time()
        stop_probe.set()
        time.sleep(max(2.0, args.probe_interval * 2))
        for _ in range(60):
            if not SendLog.objects.filter(pk__in=probe_ids).exclude(status__in=SendLog.FINAL).exists():
                break
            time.sleep(1)
        rss = peaks.stop()
        campaign.refresh_from_db()
        rows = SendLog.objects.filter(campaign_id=campaign.pk)
        span = rows.filter(status="sent").aggregate(first=Min("sent_at"), last=Max("sent_at"))
        sent_times = [t.timestamp() for t in rows.filter(status="sent").values_list("sent_at", flat=True)]
        window = 600 * args.hour_seconds / 3600
        probe_rows = list(SendLog.objects.filter(pk__in=probe_ids, status="sent").values_list(
            "created_at", "claimed_at", "sent_at"))
        timed = [(c.timestamp(), (s - c).total_seconds() * 1000) for c, _cl, s in probe_rows]
        # accept -> claimed by a drain (waiting behind campaign mail shows here)
        to_claim = [(cl - c).total_seconds() * 1000 for c, cl, _s in probe_rows
                    if cl and started_at <= c.timestamp() <= done_at]
        # Where a probe's time went while the campaign ran: accept -> claimed by a drain ->
        # its (last) attempt started by a crew thread -> attempt done (build, SMTP) -> sent_at.
        from hub.models import DeliveryAttempt

        attempts = {}
        for log_id, started, duration in DeliveryAttempt.objects.filter(log_id__in=probe_ids).order_by("id").values_list(
                "log_id", "started_at", "duration_ms"):
            attempts[log_id] = (started, duration)
        stages: dict[str, list[float]] = {"accept_to_claim": [], "claim_to_start": [], "attempt": [],
                                          "attempt_end_to_sent": []}
        worst = []
        for pk, c, cl, s in SendLog.objects.filter(pk__in=probe_ids, status="sent").values_list(
                "pk", "created_at", "claimed_at", "sent_at"):
            if not (cl and pk in attempts and started_at <= c.timestamp() <= done_at):
                continue
            st, dur = attempts[pk]
            parts = {"accept_to_claim": (cl - c).total_seconds() * 1000, "claim_to_start": (st - cl).total_seconds() * 1000,
                     "attempt": float(dur or 0), "attempt_end_to_sent": (s - st).total_seconds() * 1000 - (dur or 0)}
            for name, ms in parts.items():
                stages[name].append(ms)
            worst.append(((s - c).total_seconds() * 1000, {"at_s": round(c.timestamp() - started_at, 1),
                                                            **{k: round(v) for k, v in parts.items()}}))
        worst.sort(key=lambda w: -w[0])
        alone = [ms for at, ms in timed if at < started_at]
        probes = [ms for at, ms in timed if started_at <= at <= done_at]
        after, tables_after = db_bytes(), table_bytes()
        report = sink.report("X-SMTPHub-Log-ID")
        progress = services.progress(campaign)
        n_rows = rows.count()
        seconds = (span["last"] - span["first"]).total_seconds() if span["first"] else 0
        result = {
            "database": connection.vendor, "recipients_list_a": args.recipients, "clusters": args.clusters,
            "q_workers": args.q_workers, "max_connections": args.max_connections, "hour_speed": args.hour_speed,
            "rtt_ms": args.rtt_ms, "jitter_ms": args.jitter_ms if args.rtt_ms else 0,
            "hour_seconds": args.hour_seconds,
            "contacts_read": campaign.total, "rows": n_rows, "skipped": campaign.skipped,
            "sent": progress.sent, "failed": progress.failed, "waiting": progress.waiting,
            "accounted": progress.sent + progress.failed + progress.waiting + sum(campaign.skipped.values())
            == campaign.total,
            "one_row_per_recipient": len(set(rows.values_list("contact_id", flat=True))) == n_rows,
            "sink": {"counted": report.counted, "files": report.files, "unique_ids": report.unique,
                     "duplicates": report.duplicates, "missing_id": report.missing_id},
            "delivered_per_s": round(progress.sent / seconds, 1) if seconds else None,
            "campaign_seconds": round(done_at - started_at, 1),
            "time_to_first_message_s": round(span["first"].timestamp() - started_at, 2) if span["first"] else None,
            "rate_by_tenth": rate_by_tenth(sent_times), "mariadb": mariadb_settings(),
            "busiest_window": {"window_s": window, "messages": busiest_window(sent_times, window),
                               "limit": round(args.hour_speed / 6 * 1.01) if args.hour_speed else None},
            "transactional_ms_during": {"n": len(probes), "p50": pct(probes, 0.5), "p99": pct(probes, 0.99),
                                        "max": round(max(probes), 1) if probes else None},
            "transactional_ms_alone": {"n": len(alone), "p50": pct(alone, 0.5), "p99": pct(alone, 0.99)},
            "transactional_accept_to_claim_ms_during": {"p50": pct(to_claim, 0.5), "p99": pct(to_claim, 0.99)},
            "transactional_stages_ms_during": {name: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)}
                                               for name, v in stages.items()},
            "transactional_worst_5": [{"ms": round(ms), **parts} for ms, parts in worst[:5]],
            "db_bytes_per_recipient": round((after - before) / max(1, n_rows), 1),
            "table_bytes_per_recipient": {name: round((size - tables_before.get(name, 0)) / max(1, n_rows), 1)
                                          for name, size in tables_after.items()},
            "peak_rss_mb": rss, "killed": killed_at, "loadavg_at_end": os.getloadavg(),
        }
        result["fill"] = {"contacts": args.recipients + max(1, args.recipients // 100),
                          "seconds": round(fill_seconds, 1),
                          "per_s": round((args.recipients + args.recipients // 100) / max(fill_seconds, 0.001))}
        by_role: dict[str, float] = {}
        for label, mb in rss.items():
            role = label.split(" ")[0]
            by_role[role] = max(by_role.get(role, 0.0), mb)
        result["peak_rss_max_mb_by_role"] = by_role
        hub.stop()  # the comparisons run alone on the machine
        if spies:
            profiles.stop(spies)
            result["profile"] = profiles.summarize(work)
        result["comparisons"] = comparisons(args, work, rows, result["delivered_per_s"])
        text = json.dumps(result, indent=2, ensure_ascii=False)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        ok = result["accounted"] and result["one_row_per_recipient"] and (args.kill_at or report.duplicates == 0)
        return 0 if ok else 1
    finally:
        stop_probe.set()
        hub.stop()
        if proxy is not None:
            proxy.stop()
        sink.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
