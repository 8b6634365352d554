"""CPU per send and per delivered message, in one process, without gunicorn or qcluster.

    .venv/bin/python bench/inprocess.py [--messages 2000] [--profile api|worker]

A fresh SQLite database in a temporary directory; the bench message (message.py, no text
part, as the wrk script sends it); smtp-sink as the server (bash bench/setup.sh first).
  * api:    POSTs form-encoded sends to /api.php through Django's test client
            (CPU ms per request; the test client itself costs ~0.3 ms of it)
  * worker: hub.delivery.outbox.drain() of the queued messages to smtp-sink (CPU ms per message)
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

import message as M  # noqa: E402
from sink import Sink  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--profile", choices=["api", "worker"])
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
        result = {"messages": a.messages}
        for side, run in (("api", lambda: [send() for _ in range(a.messages)]), ("worker", drain)):
            profile = cProfile.Profile() if a.profile == side else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            run()
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            result[f"{side}_cpu_ms_each"] = round(cpu / a.messages * 1000, 3)
            result[f"{side}_wall_ms_each"] = round(wall / a.messages * 1000, 3)
            if profile:
                pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pool.close_all()
        result["sent"] = SendLog.objects.filter(status=SendLog.Status.SENT).count() - 20
        result["profiled"] = a.profile
        print(json.dumps(result))
        if result["sent"] != a.messages:
            raise SystemExit(f"only {result['sent']} of {a.messages} messages were sent")
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
