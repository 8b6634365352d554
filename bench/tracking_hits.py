"""Tracking endpoints under a burst (issue 14): >= 1,000 hits/s with p99 < 50 ms on SQLite,
no event lost.

    .venv/bin/python bench/tracking_hits.py [--hits 20000] [--recipients 2000] [--clients 2]
        [--threads 8] [--web-workers 2] [--out bench/results/<stamp>-tracking-hits.json]

The hub runs as deployed (bench/hub.py: a fresh SQLite database migrated with the hub's own
commands, gunicorn with gunicorn.conf.py's workers). This process makes a tracked campaign
(one template with 4 links, --recipients sent outbox rows), builds the signed pixel and
click URLs the mails would carry (two opens for each click), then wrk (bench/track.lua,
--connections keep-alive connections; or with --client python, --clients processes of
--threads threads) fetches them all, each once. It reports hits/s (all answers, first request to last answer), p50/p99
latency as the clients saw it, and the answers by status. Then it runs the processor here
(no qcluster: the measurement of the web tier is not disturbed by counting) until no raw hit
is left, and checks that every answered hit became exactly one event of the right kind and
that the campaign's counters add up to the hits. Exit status 1 when a check fails."""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(BENCH))
import common  # (bench/common.py, found through the path above)

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
HTML = ('<html><body><p>你好 {{fullname|朋友}}</p>' + "<p>本月新品上架，欢迎选购。</p>" * 20 +
        ''.join(f'<a href="https://shop.example.com/p/{i}">商品 {i}</a>' for i in range(4)) +
        '<a href="{{unsubscribe_url}}">退订</a></body></html>')


def log(msg: str) -> None:
    print(f"[tracking {time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 2)


def client_process(port: int, paths: list[str], threads: int, start_at: float, queue) -> None:
    """Fetch `paths` with `threads` keep-alive connections; put [(t0, t1, status)] on `queue`."""
    samples: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    slices = [paths[i::threads] for i in range(threads)]

    def run(mine: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local = []
        for path in mine:
            t0 = time.perf_counter()
            for attempt in (1, 2):
                try:
                    conn.request("GET", path, headers={"User-Agent": UA, "Connection": "keep-alive"})
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    if response.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    break
                except (http.client.HTTPException, ConnectionError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    status = -1
                    if attempt == 2:
                        break
            local.append((t0, time.perf_counter(), status))
        conn.close()
        with lock:
            samples.extend(local)

    while time.time() < start_at:  # every client process starts together
        time.sleep(0.001)
    workers = [threading.Thread(target=run, args=(s,)) for s in slices]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # perf_counter is per process: send offsets from this process's start with wall time.
    base_wall, base_perf = time.time(), time.perf_counter()
    queue.put([(base_wall - (base_perf - t0), base_wall - (base_perf - t1), s) for t0, t1, s in samples])


def run_wrk(port: int, paths: list[str], connections: int, workdir: Path) -> dict:
    """bench/track.lua over `paths`; rate from launch to the last thread's done file."""
    import signal
    import subprocess

    threads = 2
    paths_file, done_dir = workdir / "paths.txt", workdir / "wrk-done"
    paths_file.write_text("\n".join(paths) + "\n")
    done_dir.mkdir(exist_ok=True)
    started = time.monotonic()
    wrk = subprocess.Popen(["wrk", "-t", str(threads), "-c", str(connections), "-d", "600", "--timeout", "30s",
                            "--latency", "-s", str(BENCH / "track.lua"), f"http://127.0.0.1:{port}", "--",
                            str(paths_file), str(threads), str(done_dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while len(list(done_dir.iterdir())) < threads and wrk.poll() is None and time.monotonic() - started < 600:
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    wrk.send_signal(signal.SIGINT)
    out, _err = wrk.communicate(timeout=60)
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    result = json.loads(line[len("BENCH "):])
    result["seconds"] = round(elapsed, 2)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--recipients", type=int, default=2_000)
    ap.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                    help="wrk (C, bench/track.lua: the client costs little CPU) or Python client processes")
    ap.add_argument("--connections", type=int, default=16, help="wrk: connections (over 2 threads)")
    ap.add_argument("--clients", type=int, default=2, help="python: client processes")
    ap.add_argument("--threads", type=int, default=8, help="threads (connections) per client process")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--web-threads", type=int, default=None, help="gunicorn threads per worker (default: conf)")
    ap.add_argument("--worker-class", choices=("gthread", "sync"), default=None,
                    help="gunicorn's worker class (default: gunicorn.conf.py's, gthread)")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    hub_mod, sink_mod = common.bench_module("hub"), common.bench_module("sink")
    work = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    hub = hub_mod.Hub(work, db="sqlite", web_workers=args.web_workers, web_threads=args.web_threads,
                      extra_env={"WEB_WORKER_CLASS": args.worker_class} if args.worker_class else {})
    load_before = os.getloadavg()
    try:
        log(f"preparing a fresh SQLite database in {work}")
        hub.prepare(sink_port=sink_mod.free_port())
        os.environ.update(hub.env(DJANGO_SETTINGS_MODULE="smtphub.settings", LOG_LEVEL="WARNING",
                                  HUB_PUBLIC_URL="https://mail.example.com"))
        import django

        django.setup()
        from datetime import timedelta

        from django.utils import timezone

        from hub import events
        from hub.campaigns.models import Campaign
        from hub.mailtemplates import services as templates
        from hub.models import App, SendLog
        from hub.tracking import instrument, process, tokens
        from hub.tracking.models import CampaignTrack, Hit

        app = App.objects.select_related("account").get(pk=int(hub.appid))
        template = templates.create_template(app.account, name="bench", subjects="主题", html=HTML)
        campaign = Campaign.objects.create(account=app.account, template_ids=[template.pk], list_ids=[], track_status=2,
                                           sn="bench-tracking", state=3, queued=args.recipients)
        sent_at = timezone.now() - timedelta(days=1)
        SendLog.objects.bulk_create([SendLog(app=app, to=f"r{i}@example.com", subject="s", campaign_id=campaign.pk,
                                             contact_id=i + 1, priority=1, status=SendLog.Status.SENT, sent_at=sent_at)
                                     for i in range(args.recipients)], batch_size=1000)
        rows = list(SendLog.objects.filter(campaign_id=campaign.pk).values_list("pk", flat=True))
        links = list(instrument.table_for(campaign.pk, template).static.values())
        paths, kinds = [], {"o": 0, "c": 0}
        for i in range(args.hits):
            row = rows[i % len(rows)]
            if i % 3 == 2:
                paths.append(f"/t/c/{tokens.click_token(campaign.pk, row, links[i % len(links)])}")
                kinds["c"] += 1
            else:
                paths.append(f"/t/o/{tokens.open_token(campaign.pk, row)}.gif")
                kinds["o"] += 1
        log(f"starting gunicorn ({args.web_workers} workers)")
        hub.start_web()
        # Warm each worker (imports, the first query) with forged URLs: 404, nothing written.
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
            conn.request("GET", "/t/o/1.1.AAAAAAAAAAAAAAAA.gif")
            conn.getresponse().read()
            conn.close()
        if args.client == "wrk":
            log(f"{args.hits} hits from wrk, {args.connections} connections")
            measured = run_wrk(hub.port, paths, args.connections, work)
            load_during = os.getloadavg()
            wall = measured["seconds"]
            answered = measured["pixels"] + measured["clicks"]
            statuses = {"200": measured["pixels"], "302": measured["clicks"], "other": measured["other"]}
            latency = {k: round(v, 2) for k, v in measured["latency_ms"].items()}
            errors = measured["errors"]
        else:
            log(f"{args.hits} hits from {args.clients} x {args.threads} connections")
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            start_at = time.time() + 2.0
            procs = [ctx.Process(target=client_process, args=(hub.port, paths[i::args.clients], args.threads,
                                                              start_at, queue)) for i in range(args.clients)]
            for p in procs:
                p.start()
            samples = []
            for _ in procs:
                samples.extend(queue.get(timeout=1800))
            for p in procs:
                p.join(timeout=60)
            load_during = os.getloadavg()
            wall = max(s[1] for s in samples) - min(s[0] for s in samples)
            latencies = [(s[1] - s[0]) * 1000 for s in samples]
            statuses = {}
            for s in samples:
                statuses[str(s[2])] = statuses.get(str(s[2]), 0) + 1
            answered = statuses.get("200", 0) + statuses.get("302", 0)
            latency = {"p50": pct(latencies, 0.50), "p90": pct(latencies, 0.90), "p99": pct(latencies, 0.99),
                       "max": round(max(latencies), 2)}
            errors = {}
        stored = Hit.objects.count()
        log(f"{answered / wall:,.0f} hits/s, p99 {latency['p99']} ms; processing {stored} raw hits")

        told = {"opened": 0, "clicked": 0}

        def count(sender, event, **kwargs):
            told[event.kind.value] += 1

        events.happened.connect(count, weak=False)
        t0 = time.perf_counter()
        taken = 0
        while Hit.objects.exists():
            taken += process.process(deadline_seconds=600)
        processing = time.perf_counter() - t0
        track = CampaignTrack.objects.get(campaign=campaign)
        counted_opens = track.open_total + track.machine_open_total
        counted_clicks = track.click_total + track.machine_click_total
        checks = {
            "every request answered 200/302": answered == args.hits,
            "every answered hit stored": stored == answered,
            "every stored hit processed": taken == stored and not Hit.objects.exists(),
            "one event per hit": told == {"opened": kinds["o"], "clicked": kinds["c"]},
            # A recipient's first click counts as an open when no open came before it.
            "counters add up": counted_clicks == kinds["c"] and kinds["o"] <= counted_opens <= kinds["o"] + track.click_unique,
            "people, not machines": track.machine_open_total == 0 and track.machine_click_total == 0,
        }
        result = {
            "bench": "tracking_hits", "database": "sqlite", "cpus": os.cpu_count(),
            "hits": args.hits, "recipients": args.recipients, "client": args.client,
            **({"connections": args.connections} if args.client == "wrk" else
               {"clients": args.clients, "threads": args.threads}),
            "web_workers": args.web_workers, "web_threads": args.web_threads or "gunicorn.conf.py",
            "worker_class": args.worker_class or "gunicorn.conf.py (gthread)",
            "opens": kinds["o"], "clicks": kinds["c"],
            "hits_per_s": round(answered / wall), "seconds": round(wall, 2), "latency_ms": latency,
            "statuses": statuses, "client_errors": errors, "raw_hits_stored": stored,
            "processing": {"hits": taken, "seconds": round(processing, 2),
                           "hits_per_s": round(taken / processing) if processing else None},
            "events": told,
            "counters": {"open_unique": track.open_unique, "open_total": track.open_total,
                         "click_unique": track.click_unique, "click_total": track.click_total},
            "checks": checks,
            "goals": {"hits_per_s >= 1000": answered / wall >= 1000,
                      "p99 < 50 ms": (latency["p99"] or 1e9) < 50, "no event lost": all(checks.values())},
            "loadavg_before": load_before, "loadavg_during": load_during, "loadavg_at_end": os.getloadavg(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        text = json.dumps(result, indent=2, ensure_ascii=False)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        return 0 if all(checks.values()) else 1
    finally:
        hub.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
