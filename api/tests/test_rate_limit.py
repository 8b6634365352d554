"""The per-app API rate limit (App.rate_limit_per_minute, counted in the database per
calendar minute): over the limit the API answers 429 with a Retry-After header and the
API's JSON body, and writes nothing; other apps are not affected."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.models import ApiRateCounter, App, SendLog


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink)
    return smtp_sink, server, make_app(server, name="limited", rate_limit_per_minute=3)


@pytest.fixture(autouse=True)
def same_minute():
    """The limit counts per calendar minute: keep a test's requests inside one minute by
    starting it early in a minute (waits at most a few seconds, bounded)."""
    second = timezone.now().second
    if second >= 55:
        time.sleep(min(61 - second, 6))


def send(client, creds: dict, url: str = "/api.php", **fields):
    return post(client, url, good_fields(creds, **fields))


def assert_accepted(r) -> None:
    assert r.status_code == 200, r.content
    assert r.json()["code"] == 0


def assert_rate_limited(r) -> None:
    assert r.status_code == 429, r.content
    assert r["Content-Type"].startswith("application/json")
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "rate_limited", "请求过于频繁，请稍后再试")
    retry_after = r["Retry-After"]
    assert retry_after.isdigit(), retry_after  # delta-seconds, not an HTTP date
    assert 1 <= int(retry_after) <= 60


def test_fourth_request_in_a_minute_is_429(client, hub, run_queue):
    sink, _server, p = hub
    for i in range(3):
        assert_accepted(send(client, p.creds, subject=f"m{i}"))
    assert SendLog.objects.count() == 3 and OrmQ.objects.count() == 1  # one drain for all three

    for url in ("/api.php", "/api/v1/send"):
        assert_rate_limited(send(client, p.creds, url=url, subject="one too many"))

    # Nothing written for the refused requests, nothing more sent.
    assert SendLog.objects.count() == 3
    assert OrmQ.objects.count() == 1
    assert not SendLog.objects.filter(subject="one too many").exists()
    assert run_queue() == 1
    assert sorted(m.message["Subject"] for m in sink.messages) == ["m0", "m1", "m2"]


def test_retry_after_is_the_rest_of_the_minute(client, hub):
    _sink, _server, p = hub
    for _ in range(3):
        send(client, p.creds)
    before = timezone.now()
    r = send(client, p.creds)
    after = timezone.now()
    assert_rate_limited(r)
    # Seconds until the next calendar minute, as seen around the request.
    assert 60 - after.second <= int(r["Retry-After"]) <= 60 - before.second


def test_other_apps_are_not_affected(client, hub, make_app):
    _sink, server, p = hub
    other = make_app(server, name="other", rate_limit_per_minute=3)
    unlimited = make_app(server, name="unlimited")
    for _ in range(3):
        assert_accepted(send(client, p.creds))
    assert_rate_limited(send(client, p.creds))

    for _ in range(3):
        assert_accepted(send(client, other.creds))
    for _ in range(10):
        assert_accepted(send(client, unlimited.creds))
    assert SendLog.objects.filter(app=other.app).count() == 3
    assert SendLog.objects.filter(app=unlimited.app).count() == 10


def test_wrong_credentials_do_not_use_up_the_limit(client, hub):
    # Only requests the app made count: nobody can exhaust an app's quota with its AppID alone.
    _sink, _server, p = hub
    wrong = {"appid": str(p.app.id), "appsecret": "guess"}
    for _ in range(5):
        assert send(client, wrong).status_code == 401
    for _ in range(3):
        assert_accepted(send(client, p.creds))
    assert_rate_limited(send(client, p.creds))


def test_a_new_minute_starts_a_new_count(client, hub):
    _sink, _server, p = hub
    for _ in range(3):
        assert_accepted(send(client, p.creds))
    assert_rate_limited(send(client, p.creds))
    # Pretend the minute is over: the counter of this minute now belongs to the previous one.
    ApiRateCounter.objects.update(window_start=timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1))

    assert_accepted(send(client, p.creds))
    assert SendLog.objects.count() == 4


def test_limit_zero_means_no_limit(client, hub):
    _sink, _server, p = hub
    App.objects.filter(pk=p.app.pk).update(rate_limit_per_minute=0)
    for _ in range(8):
        assert_accepted(send(client, p.creds))
    assert not ApiRateCounter.objects.exists()
