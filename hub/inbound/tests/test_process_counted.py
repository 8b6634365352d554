"""A real DSN processed end to end reaches the statistics: hub.inbound emits `bounced` with
the SendLog id, and hub.stats' receiver counts it (bounced, and its failure type) for the
message's account, on the day it arrived, with a Failure row for the failure exports."""

from __future__ import annotations

from django.db.models import Sum

from hub.inbound import process
from hub.models import FailureType
from hub.stats.models import Failure, Tally

from .conftest import sample


def test_a_dsn_is_counted_as_a_bounce_of_its_account(sent, account, other):
    row = sent.row()
    assert process.process(sample("postfix-user-unknown.eml", row), verp_log_id=row.id)

    mine = Tally.objects.filter(account=account).aggregate(bounced=Sum("bounced"),
                                                          not_exist=Sum(f"type_{FailureType.NOT_EXIST}"))
    assert mine == {"bounced": 1, "not_exist": 1}
    assert not Tally.objects.filter(account=other).exists()
    failure = Failure.objects.get()
    assert (failure.account_id, failure.email, failure.failure_type, failure.log_id) == (
        account.id, "ghost@example.com", FailureType.NOT_EXIST, row.id)
