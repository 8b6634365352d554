"""hub.campaigns.services.unsent_count: the rows of a campaign not final yet, read as short
ranges of the (campaign_id, status) index (it runs on every top-up once the last contacts
are read; `NOT status IN (sent, failed)` read the campaign's whole range)."""

from __future__ import annotations

import pytest
from django.db import connection

from hub.campaigns import services
from hub.models import SendLog

S = SendLog.Status


def test_it_counts_every_status_but_the_final_ones(world):
    for n, status in enumerate([S.QUEUED, S.SENDING, S.RETRYING, S.HELD, S.SENT, S.SENT, S.FAILED]):
        SendLog.objects.create(app=world.app, to=f"r{n}@example.com", subject="s", campaign_id=4242, contact_id=n,
                               priority=1, status=status)
    SendLog.objects.create(app=world.app, to="other@example.com", subject="s", campaign_id=4343, contact_id=1,
                           priority=1, status=S.QUEUED)
    assert services.unsent_count(4242) == 4
    assert set(services.UNFINISHED) | set(SendLog.FINAL) == set(S)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan")
def test_it_reads_short_index_ranges(db):
    qs = SendLog.objects.filter(campaign_id=1, status__in=services.UNFINISHED)
    plan = qs.explain()
    assert "SEARCH" in plan and "campaign_id=? AND status=?" in plan, plan
