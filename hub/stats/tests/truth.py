"""The counts the reports must equal, computed independently of hub.stats from the raw
SendLog rows: each final row's envelope recipients (parsed here with the standard library),
sent unless the server refused that recipient or the row failed; the day and hour of the
outcome from the row's last update (the delivery writes the outcome and updated_at at the
same instant); quota one unit per recipient of a charged message, given back for a failed
row unless a `day` account's charge was on an earlier day."""

from __future__ import annotations

from collections import Counter, defaultdict
from email.utils import getaddresses

from django.utils import timezone

from hub.delivery.bounces import failure_type  # the classifier is the core's, not under test here
from hub.models import Account, SendLog


def recipients(row: SendLog) -> list[str]:
    texts = [row.rcpt_to] if row.rcpt_to else [row.to, row.cc, row.bcc]
    return [addr.lower() for text in texts if text for _n, addr in getaddresses([text]) if addr]


def expected(account: Account) -> dict[tuple, Counter]:
    """{(day, campaign id or 0, marker or ''): Counter(sent, failed, type_N, charged, rebated)}."""
    out: dict[tuple, Counter] = defaultdict(Counter)
    rows = SendLog.objects.filter(app__account=account, status__in=SendLog.FINAL)
    for row in rows:
        refused = {a.lower(): v for a, v in (row.refused_recipients or {}).items()}
        day = timezone.localdate(row.updated_at)
        key = (day, row.campaign_id or 0, row.subject[:100] if row.campaign_id else "")
        for rcpt in recipients(row):
            c = out[key]
            if row.status == SendLog.Status.SENT and rcpt not in refused:
                c["sent"] += 1
            else:
                c["failed"] += 1
                if rcpt in refused:
                    kind = failure_type(*refused[rcpt])
                else:
                    kind = row.failure_type
                if kind:
                    c[f"type_{kind}"] += 1
            if row.quota_charged:
                c["charged"] += 1
                charged_on = timezone.localdate(row.created_at)
                if row.status == SendLog.Status.FAILED and not (
                        account.quota_type == Account.QuotaType.DAILY and charged_on != day):
                    c["rebated"] += 1
    return {k: +v for k, v in out.items()}


def counted(account: Account) -> dict[tuple, Counter]:
    """The same shape from hub.stats' counters (summed over hours and slots)."""
    from hub.stats.counting import COUNTS
    from hub.stats.models import Tally

    out: dict[tuple, Counter] = defaultdict(Counter)
    for t in Tally.objects.filter(account=account):
        c = out[(t.day, t.campaign_id, t.marker)]
        for name in COUNTS:
            c[name] += getattr(t, name)
    return {k: +v for k, v in out.items() if +v}
