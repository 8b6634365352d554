"""Property: whatever mix of final rows the delivery engine records (several recipients, some
refused, sent or failed, with or without a type, transactional or campaign rows with their
markers, charged or not, today's or yesterday's charge), the counters equal the independent
count from the raw rows. The outcome is told exactly as the delivery engine tells it
(hub.delivery.attempt._emit_outcome, inside the recording transaction)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.delivery.attempt import _emit_outcome
from hub.models import Account, SendLog
from hub.stats.models import Failure, Tally

from .truth import counted, expected

ADDRESSES = [f"r{i}@x.example" for i in range(6)]
REPLIES = [(550, "5.1.1 User unknown"), (552, "5.2.2 Mailbox full"), (550, "5.7.1 spam detected"), (554, "refused")]

row_strategy = st.fixed_dictionaries({
    "to": st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3, unique=True),
    "refused": st.lists(st.tuples(st.integers(0, 2), st.sampled_from(REPLIES)), max_size=2),
    "status": st.sampled_from([SendLog.Status.SENT, SendLog.Status.FAILED]),
    "failure_type": st.one_of(st.none(), st.integers(1, 10)),
    "campaign": st.one_of(st.none(), st.integers(1, 3)),
    "subject_no": st.integers(1, 2),
    "charged": st.booleans(),
    "yesterday": st.booleans(),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_strategy, min_size=1, max_size=8), daily=st.booleans())
def test_counters_equal_the_raw_rows_for_any_outcomes(make_app, account, rows, daily):
    Tally.objects.all().delete()
    Failure.objects.all().delete()
    SendLog.objects.all().delete()
    Account.objects.filter(pk=account.pk).update(quota_type=Account.QuotaType.DAILY if daily else
                                                 Account.QuotaType.TOTAL)
    account.refresh_from_db()
    app = make_app(account=account).app
    now = timezone.now()
    for i, r in enumerate(rows):
        one = r["campaign"] is not None
        to = r["to"][:1] if one else r["to"]
        refused = {to[k]: list(reply) for k, reply in r["refused"] if k < len(to)}
        status = r["status"]
        row = SendLog.objects.create(
            app=app, to=", ".join(to), subject=f"[campaign {r['campaign']}] template 7 subject {r['subject_no']}"
            if one else f"message {i}", campaign_id=r["campaign"], contact_id=i if one else None,
            status=status, failure_type=(r["failure_type"] if status == SendLog.Status.FAILED else None),
            refused_recipients=refused, quota_charged=len(to) if r["charged"] else 0,
            created_at=now - timedelta(days=1) if r["yesterday"] else now, smtp_code=250 if status == "sent" else 550)
        row.refresh_from_db()  # updated_at as stored: the outcome's time
        with transaction.atomic():
            _emit_outcome(row, row.status, row.updated_at)
    assert counted(account) == expected(account)
    failed = sum(c["failed"] for c in expected(account).values())
    assert Failure.objects.filter(account=account).count() == failed
