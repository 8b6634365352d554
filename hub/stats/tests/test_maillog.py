"""The send log (V28 2.6, /api/v1/stats/maillog) at the service: `mail_to` is the whole To,
case-insensitive, served by the sendlog_to index, and only the caller's account's messages;
every page (deep ones too) is exactly the slice a plain ORDER BY created_at, id OFFSET gives,
also where times tie across the account's apps."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.models import SendLog
from hub.stats import services

from .factory import at, record

S, F = SendLog.Status.SENT, SendLog.Status.FAILED
DAY = date(2012, 3, 2)


@pytest.fixture
def apps(account, other, make_app):
    return make_app(account=account).app, make_app(account=account).app, make_app(account=other).app


def test_mail_to_is_the_whole_to_case_insensitively_and_the_callers_own(account, other, apps):
    a1, a2, b = apps
    mine = [record(a1, "Dup@X.example", S, at("2012-03-02 10:00")),
            record(a2, "dup@x.example", F, at("2012-03-02 11:00"), failure_type=3)]
    theirs = record(b, "dup@x.example", S, at("2012-03-02 10:30"))
    record(a1, "undup@x.example", S, at("2012-03-02 10:00"))  # contains the address: not it
    record(a1, "dup@x.example.cn", S, at("2012-03-02 10:00"))
    record(a1, "dup@x.example", S, at("2012-03-03 10:00"))  # another day
    record(a1, "t1@x.example", S, at("2012-03-02 10:00"))

    items, more = services.mail_log(account, DAY, mail_to="dup@x.example")
    assert [(i["id"], i["to"], i["status"]) for i in items] == [
        (mine[0].pk, "Dup@X.example", "sent"), (mine[1].pk, "dup@x.example", "failed")]
    assert more is False
    assert [i["id"] for i in services.mail_log(account, DAY, mail_to="DUP@x.EXAMPLE")[0]] == [r.pk for r in mine]
    # The other account asking for the same address: its own message only, and the reverse.
    assert [i["id"] for i in services.mail_log(other, DAY, mail_to="dup@x.example")[0]] == [theirs.pk]
    assert services.mail_log(other, DAY, mail_to="t1@x.example") == ([], False)
    assert services.mail_log(account, DAY, mail_to="nobody@x.example") == ([], False)


def test_mail_to_reads_the_recipient_index(account, apps):
    record(apps[0], "dup@x.example", S, at("2012-03-02 10:00"))
    with CaptureQueriesContext(connection) as queries:
        services.mail_log(account, DAY, mail_to="dup@x.example")
    page = next(q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and "hub_sendlog" in q["sql"])
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + page)
            plan = " ".join(str(r[-1]) for r in cursor.fetchall())
            assert "INDEX sendlog_to" in plan and "SCAN" not in plan, plan
        else:  # MariaDB: (id, select_type, table, type, possible_keys, key, ...) per table read
            cursor.execute("EXPLAIN " + page)
            plan = [dict(zip([c[0] for c in cursor.description], row, strict=True)) for row in cursor.fetchall()]
            # On a table this small the planner may prefer the day's range (it does at 1M rows
            # take sendlog_to: bench/stats_reports.py --db mariadb); here: it can use it.
            sendlog = [r for r in plan if r["table"] == "hub_sendlog"]
            assert "sendlog_to" in (sendlog[0]["possible_keys"] or "").split(","), plan


def plain_offset(account, day: date, offset: int, limit: int) -> list[int]:
    """The reference: the day's rows of the account's apps, ORDER BY created_at, id, OFFSET."""
    start = services.local_day_start(day)
    return list(SendLog.objects.filter(app__account=account, created_at__gte=start,
                                       created_at__lt=start + timedelta(days=1))
                .order_by("created_at", "id").values_list("id", flat=True)[offset:offset + limit])


def test_every_page_is_the_plain_offset_slice(account, other, apps):
    a1, a2, b = apps
    # Ties: the same time for rows of both apps in alternating order (the old covering index
    # ordered a tie by app, not id), another account's rows between them, a row made later
    # with an earlier time, and rows of the days around.
    tie = at("2012-03-02 09:00")
    for i in range(9):
        record((a2, a1)[i % 2], f"r{i}@x.example", S if i % 3 else F, tie, failure_type=None if i % 3 else 1)
        record(b, f"b{i}@y.example", S, tie)
    for i in range(7):
        record((a1, a2)[i % 2], f"s{i}@x.example", S, at("2012-03-02 12:00") + timedelta(seconds=i // 2))
    record(a1, "early@x.example", S, at("2012-03-02 00:00"))
    record(a1, "before@x.example", S, at("2012-03-01 23:59"))
    record(a2, "after@x.example", S, at("2012-03-03 00:00"))
    everything = plain_offset(account, DAY, 0, 1000)
    assert len(everything) == 17
    for limit in (1, 4, 7, 17, 100):
        seen = []
        for page in range(1, 20):
            items, more = services.mail_log(account, DAY, page=page, limit=limit)
            ids = [i["id"] for i in items]
            assert ids == plain_offset(account, DAY, (page - 1) * limit, limit), (limit, page)
            assert more == (page * limit < len(everything))
            seen += ids
            if not more:
                break
        assert seen == everything
    # An item is the row's own fields (the page's rows fetched by id after the ids' page).
    first = services.mail_log(account, DAY, page=2, limit=1)[0][0]
    row = SendLog.objects.get(pk=everything[1])
    assert (first["id"], first["to"], first["status"], first["error_type"]) == (
        row.pk, row.to, row.status, row.failure_type)
    assert services.mail_log(account, DAY, page=18, limit=1) == ([], False)
