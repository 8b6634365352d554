"""What the webhooks receiver adds to every delivered message (hub.events -> outbox row).

    .venv/bin/python bench/webhooks_emit.py [--messages 5000]

A fresh SQLite database in a temporary directory. Each "message" is what
hub.delivery.attempt._finish does around the event: one transaction with an UPDATE of a
SendLog row and the `sent` event emitted inside it. Three runs, CPU microseconds per
message (process time; wall time beside it):
  * off:         no receiver connected (the cost before webhooks existed)
  * none:        the receiver connected, the account has no endpoint (every other account)
  * subscribed:  the account has one endpoint for `sent` (one outbox INSERT, and after the
                 commit the wake-up check: one SELECT, a drain being pending)
The differences to `off` are the added cost per message."""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smtphub-webhooks-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="smtphub.settings", DATABASE_URL=f"sqlite:///{work / 'hub.sqlite3'}",
        HUB_VAR_DIR=str(work), DEBUG="0", ALLOWED_HOSTS="*", SECRET_KEY=base64.b64encode(os.urandom(40)).decode(),
        HUB_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        HUB_SECRET_HASH_KEY=base64.b64encode(os.urandom(32)).decode(), HUB_ENV_FILE=str(work / "none.env"),
        LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        run(a.messages)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(n: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from hub import events
    from hub.models import Account, App, SendLog
    from hub.webhooks import subscriptions
    from hub.webhooks.models import Endpoint, Event

    account = Account.objects.create(name="bench")
    app = App(name="bench", account=account)
    app.rotate_secret()
    app.save()
    # Other accounts with endpoints, so the snapshot is not trivially empty.
    for i in range(20):
        other = Account.objects.create(name=f"other{i}")
        Endpoint(account=other, url="https://hooks.example.com/", kinds="sent,failed", secret_encrypted="x").save()
    row = SendLog.objects.create(app=app, to="r@example.com", subject="s", text_body="b")

    def messages() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            with transaction.atomic():
                SendLog.objects.filter(pk=row.pk).update(attempts=i)
                events.emit(events.Event(kind=events.Kind.SENT, email="r@example.com", at=timezone.now(),
                                         app_id=app.pk, log_id=row.pk, data={"smtp_code": 250}))
        return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6

    events.happened.disconnect(dispatch_uid="hub.webhooks")
    messages()  # warm-up
    results = {"off": messages()}
    events.happened.connect(subscriptions.on_event, dispatch_uid="hub.webhooks")
    results["none"] = messages()
    assert Event.objects.count() == 0
    Endpoint(account=account, url="https://hooks.example.com/", kinds="sent", secret_encrypted="x").save()
    results["subscribed"] = messages()
    assert Event.objects.filter(endpoint__account=account).count() == n
    base_cpu, _base_wall = results["off"]
    print(f"{n} messages per run (SQLite, one transaction each: UPDATE SendLog + emit `sent`)")
    print(f"{'run':<12}{'CPU us/msg':>12}{'wall us/msg':>13}{'added CPU us':>14}")
    for name, (cpu, wall) in results.items():
        print(f"{name:<12}{cpu:>12.1f}{wall:>13.1f}{cpu - base_cpu:>14.1f}")


if __name__ == "__main__":
    main()
