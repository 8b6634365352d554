"""Counting again from the send log: the counters and failure rows of one account (or all),
recomputed from its final SendLog rows with the receiver's rules (hub.stats.counting), for
mail delivered before this app was installed, or after a restore. `manage.py stats_rebuild`.

It reads every final row of the account once (streamed, a few fields, no bodies) and writes
the counters in bulk, in one transaction that first deletes the account's old ones. Bounces
and complaints are not in the send log: rebuilding drops them (the command says so). Rows
delivered while it runs may be counted twice or not at all: run it while delivery is
stopped, or for an account that is not sending."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from email.utils import getaddresses

from django.db import transaction
from django.utils import timezone

from hub.delivery.bounces import failure_type
from hub.models import Account, SendLog

from .counting import COUNTS, MARKER_CHARS, local_hour
from .models import SLOTS, TYPES, Failure, Tally

FIELDS = ("id", "app__account_id", "status", "to", "cc", "bcc", "rcpt_to", "refused_recipients", "failure_type",
          "campaign_id", "subject", "quota_charged", "created_at", "updated_at")


@dataclass
class Rebuilt:
    rows: int = 0
    counters: int = 0
    failures: int = 0


def _recipients(row: dict) -> list[str]:
    texts = [row["rcpt_to"]] if row["rcpt_to"] else [row["to"], row["cc"], row["bcc"]]
    return [addr.lower() for text in texts if text for _n, addr in getaddresses([text]) if addr]


def rebuild(account: Account | None = None, chunk: int = 5000) -> Rebuilt:
    rows = SendLog.objects.filter(status__in=SendLog.FINAL, app__account__isnull=False)
    if account is not None:
        rows = rows.filter(app__account=account)
    quota_types = dict(Account.objects.values_list("pk", "quota_type"))
    counters: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(COUNTS))
    failures: list[Failure] = []
    index = {name: i for i, name in enumerate(COUNTS)}
    done = Rebuilt()
    for row in rows.values(*FIELDS).iterator(chunk_size=chunk):
        done.rows += 1
        at = row["updated_at"]  # the delivery writes the outcome and updated_at together
        day, hour = timezone.localdate(at), local_hour(at)
        campaign = row["campaign_id"] or 0
        key = (row["app__account_id"], day, hour, campaign, row["subject"][:MARKER_CHARS] if campaign else "",
               row["id"] % SLOTS)
        refused = {a.lower(): v for a, v in (row["refused_recipients"] or {}).items()}
        rebate = (row["status"] == SendLog.Status.FAILED and row["quota_charged"] > 0 and not (
            quota_types.get(row["app__account_id"]) == Account.QuotaType.DAILY
            and timezone.localdate(row["created_at"]) != day))
        c = counters[key]
        for email in _recipients(row):
            if row["status"] == SendLog.Status.SENT and email not in refused:
                c[index["sent"]] += 1
            else:
                kind = failure_type(*refused[email]) if email in refused else row["failure_type"]
                c[index["failed"]] += 1
                if kind in TYPES:
                    c[index[f"type_{kind}"]] += 1
                failures.append(Failure(account_id=row["app__account_id"], day=day, at=at, campaign_id=campaign,
                                        email=email[:254], failure_type=kind if kind in TYPES else None,
                                        kind=Failure.Kind.FAILED, log_id=row["id"]))
            if row["quota_charged"] > 0:
                c[index["charged"]] += 1
                c[index["rebated"]] += int(rebate)
    with transaction.atomic():
        old_counters = Tally.objects.all() if account is None else Tally.objects.filter(account=account)
        old_failures = Failure.objects.all() if account is None else Failure.objects.filter(account=account)
        old_counters.delete()
        old_failures.delete()
        Tally.objects.bulk_create(
            (Tally(account_id=k[0], day=k[1], hour=k[2], campaign_id=k[3], marker=k[4], slot=k[5],
                   **dict(zip(COUNTS, v, strict=True))) for k, v in counters.items()), batch_size=1000)
        Failure.objects.bulk_create(failures, batch_size=2000)
    done.counters, done.failures = len(counters), len(failures)
    return done
