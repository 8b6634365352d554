"""Native statistics API (/api/v1/stats/..., /api/v1/campaigns/{id}/report): the same figures as
V28 2.2-2.6 for the world of api/v28/tests/conftest_stats.py; bad input `invalid` with
nothing changed; another account's campaign `not_found`."""

from __future__ import annotations

import pytest

from api.conftest import StatsWorld as World
from hub.stats.tests.world import snapshot

V1 = "/api/v1/"


def get(client, tenant, path: str):
    return client.get(V1 + path, **tenant.headers)


def test_daily(client, world: World):
    data = get(client, world.a, "stats/daily?date=2012-03-02").json()
    assert data["date"] == "2012-03-02"
    assert data["all"] == {"sent": 4, "failed": 6, "failure_types": {"1": 2, "3": 2, "8": 1, "10": 1}, "bounced": 0,
                           "complained": 0, "quota_charged": 10, "quota_rebated": 5, "quota_net": 5}
    assert (data["campaigns"]["sent"], data["campaigns"]["failed"]) == (2, 3)


def test_tasks_failures_deduction_maillog(client, world: World):
    c = world.campaign
    tasks = get(client, world.a, f"stats/tasks?ident={c.sn}").json()
    assert [(t["campaign_id"], t["date"], t["skipped_invalid"], t["counts"]["sent"], t["counts"]["quota_rebated"])
            for t in tasks] == [(c.pk, "2012-03-02", 3, 2, 3)]
    by_day = get(client, world.a, "stats/tasks?date=2012-03-02").json()
    assert [t["campaign_id"] for t in by_day] == [0, c.pk]
    failures = get(client, world.a, "stats/failures?date=2012-03-02&date_end=2012-03-02&type=all&limit=4").json()
    assert len(failures) == 4
    rest = get(client, world.a, f"stats/failures?date=2012-03-02&date_end=2012-03-02&type=all"
                                f"&after_id={failures[-1]['id']}").json()
    assert sorted(f["email"] for f in failures + rest) == ["conn@x.example", "dup@x.example", "dup@x.example",
                                                           "f1@x.example", "f2@x.example", "t3@x.example"]
    assert [f["email"] for f in get(client, world.a, f"stats/failures?campaign_id={c.pk}&type=not_exist").json()] \
        == ["f1@x.example"]
    assert get(client, world.a, "stats/deduction?date=2012-03-02").json() == [
        {"account_id": world.a.account.pk, "company": "Alice 有限公司", "quota_type": "all", "recipients": 10,
         "quota_net": 5}]
    log = get(client, world.a, "stats/maillog?date=2012-03-02&mail_to=conn@x.example").json()
    assert [i["to"] for i in log["lists"]] == ["conn@x.example"] and log["more"] is False


def test_campaign_report(client, world: World):
    c = world.campaign
    r = get(client, world.a, f"campaigns/{c.pk}/report").json()
    assert (r["totals"]["sent"], r["totals"]["failed"]) == (2, 3)
    assert [(p["subject_no"], p["label"], p["counts"]["sent"], p["counts"]["failed"]) for p in r["subjects"]] == [
        (1, "双十一 · A", 1, 2), (2, "双十一 · B", 1, 1)]
    assert [(p["label"], p["counts"]["failed"]) for p in r["templates"]] == [("双十一", 3)]
    assert [h["counts"]["failed"] for h in r["hours"]] == [2, 1]  # 10:00 and 11:00 local


@pytest.mark.parametrize("path", [
    "stats/daily", "stats/daily?date=2012-13-01", "stats/tasks", "stats/tasks?date=x",
    "stats/tasks?date=2010-01-01&date_end=2012-03-02", "stats/failures?date=2012-03-02",
    "stats/failures?date=2012-03-02&type=11", "stats/failures?date=2012-03-02&type=all&limit=0",
    "stats/failures?type=all", "stats/deduction", "stats/maillog?date=2012-03-02&mail_to=nope",
    "stats/maillog?date=2012-03-02&limit=501", "stats/maillog?date=0001-01-01", "stats/tasks?date=9999-12-31"])
def test_bad_input_is_invalid_and_changes_nothing(client, world: World, path):
    before = snapshot()
    response = get(client, world.a, path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert snapshot() == before


def test_another_accounts_campaign_is_not_found(client, world: World):
    c = world.campaign
    for path in (f"campaigns/{c.pk}/report", f"stats/tasks?campaign_id={c.pk}", f"stats/tasks?ident={c.sn}",
                 f"stats/failures?campaign_id={c.pk}&type=all", f"stats/failures?ident={c.sn}&type=all"):
        response = get(client, world.b, path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert get(client, world.b, f"stats/daily?date=2012-03-02&customer_id={world.a.account.pk}").status_code in (
        403, 404)
