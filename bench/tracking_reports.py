"""Tracking reports at scale (issue 14): V28 3.1-3.5 over a campaign of N recipients.

    .venv/bin/python bench/tracking_reports.py [--recipients 1000000] [--calls 20] [--out FILE]

A fresh SQLite database (bench/hub.py's, migrated with the hub's own commands) gets a tracked
campaign with N sent outbox rows, N/5 recipients who opened (a third of them clicked one of 10
links), and the counters the processor would have written (filled directly: this measures the
reports, bench/tracking_hits.py the counting). Then each report is called --calls times through
Django's test client in this process (the full V28 view: Basic auth, tenancy, XML): 3.1
overview for an ended campaign (counters only) and for a running one (sent/failed counted on
the outbox index), 3.5 link-stat, 3.3 click-detail for one link and 3.2 open-detail /
3.4 trackexport (streamed: time to the first chunk, and the whole answer once). Prints JSON."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(BENCH))
import common  # (bench/common.py, found through the path above)


def log(msg: str) -> None:
    print(f"[reports {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 1) if ordered else None


def _sent(xml: bytes) -> int:
    """The running overview's <real_send_count>: checks the counters add up to the rows."""
    import xml.etree.ElementTree as ET

    found = ET.fromstring(xml).find(".//real_send_count")
    return int(found.text) if found is not None and (found.text or "").strip().isdigit() else -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--out")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    hub_mod, sink_mod = common.bench_module("hub"), common.bench_module("sink")
    work = Path(tempfile.mkdtemp(prefix="bench-track-reports-"))
    hub = hub_mod.Hub(work, db="sqlite")
    try:
        log(f"preparing a fresh SQLite database in {work}")
        hub.prepare(sink_port=sink_mod.free_port())
        os.environ.update(hub.env(DJANGO_SETTINGS_MODULE="smtphub.settings", LOG_LEVEL="WARNING"))
        import django

        django.setup()

        from django.db import transaction
        from django.test import Client
        from django.utils import timezone

        from hub.campaigns.models import Campaign
        from hub.models import App, SendLog
        from hub.tracking.models import CampaignTrack, Link, LinkClick, Recipient

        app = App.objects.select_related("account").get(pk=int(hub.appid))
        n = args.recipients
        now = timezone.now()
        campaign = Campaign.objects.create(account=app.account, template_ids=[1], list_ids=[], track_status=2,
                                           sn="bench-reports", state=3, queued=n, sent_count=n, time_end=now)
        started = time.perf_counter()
        log(f"{n:,} outbox rows")
        first_log = None
        for start in range(0, n, 5000):
            with transaction.atomic():
                made = SendLog.objects.bulk_create([
                    SendLog(app=app, to=f"r{i}@example{i % 97}.com", subject="s", campaign_id=campaign.pk,
                            contact_id=i + 1, priority=1, status=SendLog.Status.SENT, sent_at=now)
                    for i in range(start, min(n, start + 5000))])
            first_log = first_log or made[0].pk
        links = [Link.objects.create(campaign=campaign, url=f"https://shop.example.com/p/{j}", url_hash=f"{j:064d}",
                                     click_unique=n // 150, click_total=n // 100, click_first=now, click_last=now)
                 for j in range(10)]
        openers = n // 5
        log(f"{openers:,} recipients who opened, a third clicked")
        for start in range(0, openers, 5000):
            with transaction.atomic():
                recs = Recipient.objects.bulk_create([
                    Recipient(campaign=campaign, log_id=first_log + i, contact_id=i + 1, email=f"r{i}@example{i % 97}.com",
                              browser="Chrome", os="Windows", device="pc", ip_first="114.114.114.114",
                              ip_last="114.114.114.114", addr_first="中国 江苏省 南京", addr_last="中国 江苏省 南京",
                              open_total=2, open_first=now, open_last=now, click_total=1 if i % 3 == 0 else 0,
                              click_first=now if i % 3 == 0 else None, click_last=now if i % 3 == 0 else None)
                    for i in range(start, min(openers, start + 5000))])
                LinkClick.objects.bulk_create([
                    LinkClick(campaign=campaign, link=links[r.log_id % 10], recipient=r, click_total=1, click_first=now,
                              click_last=now) for r in recs if r.click_total])
        CampaignTrack.objects.create(campaign=campaign, account=app.account, open_unique=openers,
                                     open_total=2 * openers, open_first=now, open_last=now,
                                     click_unique=openers // 3, click_total=openers // 3, click_first=now, click_last=now)
        running = Campaign.objects.create(account=app.account, template_ids=[1], list_ids=[], track_status=2,
                                          sn="bench-running", state=2, queued=n)
        SendLog.objects.filter(campaign_id=campaign.pk).update(campaign_id=running.pk)  # the same rows, running
        # The statistics counters the delivery engine's events would have kept for those rows
        # (hub.stats, what a running campaign's overview reads).
        log("statistics counters for the running campaign")
        from hub.stats.rebuild import rebuild
        rebuild(app.account)
        fill_seconds = time.perf_counter() - started
        # The ended campaign keeps its counters; the rows now belong to the running one.
        client = Client(HTTP_HOST="localhost")
        auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{hub.appid}:{hub.appsecret}".encode()).decode()}

        def timed(url: str, calls: int, first_chunk: bool = False) -> dict:
            times, firsts, size = [], [], 0
            for _ in range(calls):
                t0 = time.perf_counter()
                response = client.get(url, **auth)
                assert response.status_code == 200, (url, response.status_code)
                if getattr(response, "streaming", False):
                    chunks = iter(response.streaming_content)
                    next(chunks)
                    firsts.append((time.perf_counter() - t0) * 1000)
                    if first_chunk:
                        response.close()
                        continue
                    size = sum(len(c) for c in chunks)
                else:
                    size = len(response.content)
                times.append((time.perf_counter() - t0) * 1000)
            out = {"calls": calls}
            if times:
                out.update(p50_ms=pct(times, 0.5), p99_ms=pct(times, 0.99), bytes=size)
            if firsts:
                out.update(first_chunk_p50_ms=pct(firsts, 0.5), first_chunk_p99_ms=pct(firsts, 0.99))
            return out

        base = "/mm-ms/apinew/track.php?do="
        track_id = CampaignTrack.objects.get(campaign=campaign).pk
        log("measuring")
        result = {
            "bench": "tracking_reports", "database": "sqlite", "recipients": n, "openers": openers,
            "fill_seconds": round(fill_seconds, 1),
            "3.1 overview (ended: counters)": timed(base + f"overview&id={campaign.pk}", args.calls),
            "3.1 overview (running: statistics counters)": timed(base + f"overview&id={running.pk}", args.calls),
            "3.1 running overview's sent": _sent(client.get(base + f"overview&id={running.pk}", **auth).content),
            "3.5 link-stat": timed(base + f"link-stat&id={campaign.pk}", args.calls),
            "3.3 click-detail one link (first chunk)": timed(base + f"click-detail&id={campaign.pk}&link_id={links[0].pk}",
                                                             args.calls, first_chunk=True),
            "3.2 open-detail (first chunk)": timed(base + f"open-detail&id={campaign.pk}", args.calls, first_chunk=True),
            "3.2 open-detail (whole)": timed(base + f"open-detail&id={campaign.pk}", 1),
            "3.4 trackexport (whole)": timed(f"/mm-ms/apinew/trackexport.php?track_id={track_id}", 1),
            "loadavg_at_end": os.getloadavg(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        text = json.dumps(result, indent=2, ensure_ascii=False)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        return 0
    finally:
        hub.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
