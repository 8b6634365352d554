"""The dashboard: counts by status for today / 7 / 30 days, the per-day chart, volume per
app and server, the queue, and failing servers."""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from hub.admin import dashboard
from hub.admin.common import has_field
from hub.admin.dashboard import dashboard_data, day_bounds
from hub.admin.servers import sent_counts_query
from hub.models import SmtpServer

from .test_admin_support import body, make_log


@pytest.fixture(autouse=True)
def in_english():
    # Labels built outside a request use the default language (Chinese); read English.
    with translation.override("en"):
        yield


def local(day_offset: int, hour: int, minute: int = 0) -> datetime.datetime:
    tz = timezone.get_current_timezone()
    today = timezone.localdate()
    return datetime.datetime.combine(today + datetime.timedelta(days=day_offset), datetime.time(hour, minute), tz)


@pytest.fixture
def traffic(make_server, make_app):
    relay, backup = make_server(name="relay"), make_server(name="backup")
    shop, blog = make_app(relay, name="shop").app, make_app(backup, name="blog").app
    for _ in range(3):
        make_log(shop, relay, status="sent", created_at=local(0, 9))
    make_log(shop, relay, status="failed", created_at=local(0, 9, 30))
    make_log(shop, None, status="queued", created_at=local(0, 10))  # the oldest waiting one
    make_log(blog, None, status="queued", created_at=local(0, 11))
    make_log(blog, None, status="retrying", created_at=local(0, 10, 30))
    for _ in range(2):
        make_log(blog, backup, status="sent", created_at=local(-3, 8))
    make_log(shop, relay, status="failed", created_at=local(-20, 8))
    for _ in range(5):
        make_log(shop, relay, status="sent", created_at=local(-40, 8))  # outside every window
    return {"relay": relay, "backup": backup, "shop": shop, "blog": blog}


def test_counts_by_status_and_window(traffic):
    data = dashboard_data(now=local(0, 12))
    table = {row["status"]: row["values"] for row in data["status_table"]}
    assert table["sent"] == [3, 5, 5]
    assert table["failed"] == [1, 1, 2]
    assert table["queued"] == [2, 2, 2]
    assert table["retrying"] == [1, 1, 1]
    assert table["sending"] == [0, 0, 0]
    assert data["today"]["sent"] == 3 and data["today"]["failed"] == 1


def test_per_day_chart(traffic):
    data = dashboard_data(now=local(0, 12))
    chart = json.loads(data["chart_data"])
    assert len(chart["labels"]) == 30
    sent, failed, in_flight = (d["data"] for d in chart["datasets"])
    assert sent[-1] == 3 and sent[-4] == 2 and sum(sent) == 5
    assert failed[-1] == 1 and failed[-21] == 1 and sum(failed) == 2
    assert in_flight[-1] == 3 and sum(in_flight) == 3
    options = json.loads(data["chart_options"])
    assert options["scales"]["x"]["stacked"] and options["scales"]["y"]["stacked"]


def test_queue_depth_and_oldest_age(traffic):
    queue = dashboard_data(now=local(0, 12))["queue"]
    assert (queue["queued"], queue["retrying"], queue["sending"], queue["depth"]) == (2, 1, 0, 3)
    assert queue["oldest"] == local(0, 10)
    assert queue["oldest_age"] == "2 h 0 min"


def test_volume_per_app_and_server_over_seven_days(traffic):
    data = dashboard_data(now=local(0, 12))
    apps = {r["name"]: (r["total"], r["sent"], r["failed"]) for r in data["apps"]}
    assert apps == {f"{traffic['shop'].pk} shop": (5, 3, 1), f"{traffic['blog'].pk} blog": (4, 2, 0)}
    servers = {r["name"]: (r["total"], r["sent"], r["failed"]) for r in data["servers"]}
    assert servers[str(traffic["relay"])] == (4, 3, 1)
    assert servers[str(traffic["backup"])] == (2, 2, 0)
    assert servers["(not delivered yet)"] == (3, 0, 0)


def test_day_bounds_are_local_midnights():
    bounds = day_bounds(30, now=local(0, 0, 5))
    assert len(bounds) == 31
    assert bounds[-2] == local(0, 0) and bounds[-1] == local(1, 0) and bounds[0] == local(-29, 0)


def test_dashboard_page_shows_the_figures(su, make_server, make_app):
    app = make_app(make_server()).app
    for _ in range(4):
        make_log(app, status="sent", created_at=timezone.now())
    text = body(su.get("/admin/"))
    assert 'id="hub-dashboard"' in text
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">4</span>' in text
    assert 'class="chart"' in text and "data-type=\"bar\"" in text
    assert "/static/unfold/js/chart/chart.js" in text  # bundled, not from a CDN
    assert "cdn." not in text.lower()


@pytest.mark.skipif(not has_field(SmtpServer, "failing_since"), reason="no server health fields in this model")
def test_failing_servers_are_listed(su, make_server):
    bad = make_server(name="broken-relay")
    make_server(name="fine-relay")
    SmtpServer.objects.filter(pk=bad.pk).update(failing_since=local(0, 8), last_error="cannot connect: refused",
                                                last_error_at=local(0, 9))
    failing = dashboard_data()["failing"]
    assert [f["name"] for f in failing] == [str(bad)]
    text = body(su.get("/admin/"))
    assert 'id="hub-failing"' in text and "cannot connect: refused" in text and "fine-relay" not in text
    listing = body(su.get("/admin/hub/smtpserver/"))
    assert "failing since" in listing


def test_no_failing_block_when_all_is_well(su, make_server):
    make_server()
    assert 'id="hub-failing"' not in body(su.get("/admin/"))


def test_staff_without_send_log_permission_sees_no_figures(staff_factory):
    r = staff_factory("hub.view_app").get("/admin/")
    assert r.status_code == 200 and 'id="hub-dashboard"' not in body(r)
    r = staff_factory("hub.view_sendlog").get("/admin/")
    assert 'id="hub-dashboard"' in body(r)


# --- cost: covering indexes, a minute of cache ----------------------------------------------------

def test_dashboard_figures_are_cached_for_a_minute(su, make_server, make_app):
    app = make_app(make_server()).app
    make_log(app, status="sent", created_at=timezone.now())
    first = body(su.get("/admin/"))
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">1</span>' in first
    make_log(app, status="sent", created_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        again = body(su.get("/admin/"))
    # Served from the cache: the new message is not counted yet, and no query reads send logs
    # but the sidebar's bounded badge count.
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">1</span>' in again
    reads = [q["sql"] for q in queries if "hub_sendlog" in q["sql"]]
    assert len(reads) == 1 and "LIMIT 1000" in reads[0], reads
    assert cache.get(dashboard.cache_key()) is not None
    cache.delete(dashboard.cache_key())  # as when the minute is over
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">2</span>' in body(su.get("/admin/"))


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan")
@pytest.mark.parametrize("query", ["daily", "apps", "servers", "usage"])
def test_aggregates_read_covering_indexes(db, query):
    bounds = day_bounds()
    qs = {
        "daily": lambda: dashboard.daily_counts_query(bounds),
        "apps": lambda: dashboard.volume_query(bounds[-8], bounds[-1], "app_id"),
        "servers": lambda: dashboard.volume_query(bounds[-8], bounds[-1], "smtp_server_id"),
        "usage": lambda: sent_counts_query([1, 2], timezone.now()),
    }[query]()
    plan = qs.explain()
    assert "USING COVERING INDEX" in plan and "SCAN hub_sendlog" not in plan, plan


def test_a_resend_from_the_admin_is_counted_at_once(su, make_server, make_app):
    app = make_app(make_server()).app
    row = make_log(app, status="failed", created_at=timezone.now())
    assert '<span id="hub-queue-depth">0</span>' in body(su.get("/admin/"))  # now cached
    assert cache.get(dashboard.cache_key("en")) is not None
    assert su.post(f"/admin/hub/sendlog/{row.pk}/resend/").status_code == 302
    # Whoever resent it sees it counted on the next view, not a minute later.
    assert '<span id="hub-queue-depth">1</span>' in body(su.get("/admin/"))


def test_after_the_minute_the_page_shows_the_older_figures_and_refreshes_them_behind(su, make_server, make_app,
                                                                                     monkeypatch):
    app = make_app(make_server()).app
    make_log(app, status="sent", created_at=timezone.now())
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">1</span>' in body(su.get("/admin/"))
    make_log(app, status="sent", created_at=timezone.now())
    key = dashboard.cache_key("en")
    entry = cache.get(key)
    cache.set(key, {**entry, "at": entry["at"] - dashboard.CACHE_SECONDS}, dashboard.STALE_SECONDS)  # a minute on
    started = []
    monkeypatch.setattr(dashboard, "refresh_in_background", started.append)
    with CaptureQueriesContext(connection) as queries:
        page = body(su.get("/admin/"))
    assert '<span id="hub-sent-today" class="text-green-700 dark:text-green-400">1</span>' in page  # not waited for
    assert [q["sql"] for q in queries if "hub_sendlog" in q["sql"] and "LIMIT 1000" not in q["sql"]] == []
    assert started == [key]


@pytest.mark.django_db(transaction=True)
def test_the_background_refresh_stores_fresh_figures(make_server, make_app, monkeypatch):
    import threading

    app = make_app(make_server()).app
    make_log(app, status="sent", created_at=timezone.now())
    go, real = threading.Event(), dashboard.traffic_data
    monkeypatch.setattr(dashboard, "traffic_data", lambda now: go.wait(10) and real(now))
    with translation.override("en"):
        key = dashboard.cache_key()
        cache.set(key, {"at": 0.0, "traffic": {"today": {}}}, dashboard.STALE_SECONDS)
        thread = dashboard.refresh_in_background(key)
        assert dashboard.refresh_in_background(key) is None  # one at a time
    go.set()
    thread.join(30)
    entry = cache.get(key)
    assert entry["at"] > 0 and entry["traffic"]["today"]["sent"] == 1
    assert key not in dashboard._refreshing
