"""CPU per send and per delivered message, in one process, without gunicorn or qcluster.

    .venv/bin/python bench/inprocess.py [--messages 2000] [--profile api|worker] [--campaign]

A fresh SQLite database in a temporary directory; the bench message (message.py, no text
part, as the wrk script sends it); smtp-sink as the server (bash bench/setup.sh first).
  * api:    POSTs form-encoded sends to /api.php through Django's test client
            (CPU ms per request; the test client itself costs ~0.3 ms of it)
  * worker: hub.delivery.outbox.drain() of the queued messages to smtp-sink (CPU ms per message)
  * with --campaign, the worker side is a campaign of --messages recipients instead (one
    list filled as the import does, bench/campaign.py's template): drains until the campaign
    is done, its top-ups (the rows' creation) included, as a qcluster worker runs it
The end-to-end numbers are bench/run's; this is for seeing what one change to the hot path
buys, with --profile for a cProfile listing of one side."""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.append(str(BENCH))

import message as M
from sink import Sink


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--profile", choices=["api", "worker"])
    ap.add_argument("--campaign", action="store_true", help="the worker side delivers a campaign")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smtphub-inprocess-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="smtphub.settings", DATABASE_URL=f"sqlite:///{work / 'hub.sqlite3'}",
        HUB_VAR_DIR=str(work), DEBUG="0", ALLOWED_HOSTS="*", SECRET_KEY=base64.b64encode(os.urandom(40)).decode(),
        HUB_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        HUB_SECRET_HASH_KEY=base64.b64encode(os.urandom(32)).decode(), HUB_ENV_FILE=str(work / "none.env"))
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.test import Client

    from hub.delivery.outbox import drain
    from hub.delivery.transport import pool
    from hub.models import SendLog

    logging.disable(logging.INFO)
    warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic here
    sink = Sink(work).start()
    try:
        call_command("migrate", verbosity=0)
        out = io.StringIO()
        call_command("hub_smtp", "add", "--name", "sink", "--host", "127.0.0.1", "--port", str(sink.port),
                     "--from-email", M.SENDER, stdout=out)
        server = json.loads(out.getvalue())["id"]
        out = io.StringIO()
        call_command("hub_app", "add", "--name", "bench", "--smtp", str(server), "--from-name", M.SENDER_NAME,
                     stdout=out)
        app = json.loads(out.getvalue())
        body = urlencode({"action": "send", "appid": app["appid"], "appsecret": app["appsecret"],
                          "to": M.RECIPIENT, "to_name": M.RECIPIENT_NAME, "subject": M.SUBJECT,
                          "message": M.HTML, "from_name": M.SENDER_NAME})
        client = Client()

        def send() -> None:
            r = client.post("/api.php", body, content_type="application/x-www-form-urlencoded")
            assert r.status_code == 200, r.content

        for _ in range(20):  # warm up, then deliver the warm-up messages
            send()
        drain()
        result = {"messages": a.messages, "campaign": a.campaign}
        if a.campaign:  # the worker side only: the campaign makes its own rows
            sides = [("worker", campaign_run(int(app["appid"]), a.messages))]
        else:
            sides = [("api", lambda: [send() for _ in range(a.messages)]), ("worker", drain)]
        for side, run in sides:
            profile = cProfile.Profile() if a.profile == side else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            done = run()
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            count = done if isinstance(done, int) else a.messages  # a campaign: those sent
            result[f"{side}_cpu_ms_each"] = round(cpu / count * 1000, 3)
            result[f"{side}_wall_ms_each"] = round(wall / count * 1000, 3)
            if profile:
                pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pool.close_all()
        result["sent"] = SendLog.objects.filter(status=SendLog.Status.SENT).count() - 20
        # A campaign's list A: every 200th contact has unsubscribed.
        expected = a.messages - a.messages // 200 if a.campaign else a.messages
        result["profiled"] = a.profile
        print(json.dumps(result))
        if result["sent"] != expected:
            raise SystemExit(f"only {result['sent']} of {expected} messages were sent")
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


def campaign_run(app_id: int, n: int):
    """A campaign of n recipients, started; returns the function that delivers it."""
    import campaign as C  # bench/campaign.py: its list filling and template

    from hub.campaigns import dispatch, services
    from hub.campaigns.models import Campaign, State
    from hub.delivery.outbox import drain
    from hub.mailtemplates import services as templates
    from hub.mailtemplates.check import run_check
    from hub.models import App, SendLog

    account = App.objects.select_related("account").get(pk=app_id).account
    lists = C.fill(account, n)
    tpl = templates.create_template(account, name="bench", subjects="你好 {{fullname|朋友}}|十一月新品", html=C.HTML)
    run_check(tpl.pk, tpl.revision)
    fields = services.Fields(template_ids=[tpl.pk], list_ids=[lists[0].pk], send_account="all",
                             send_fullname="性能测试")

    def run() -> int:
        campaign = services.create_campaign(account, fields, State.SENDING, count=False)
        for _ in range(10 * n):
            # The dispatcher's slice (queued as a task on start; its "continued" slices too),
            # then the drain, whose rows' outcomes top the campaign up as they finish.
            dispatch.run(campaign.pk, campaign.run_token)
            drain()
            if Campaign.objects.filter(pk=campaign.pk, state=State.DONE).exists():
                return SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.SENT).count()
            time.sleep(0.05)  # a top-up's trailing timer
        raise SystemExit("the campaign did not finish")

    return run


if __name__ == "__main__":
    main()
