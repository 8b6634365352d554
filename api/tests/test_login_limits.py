"""Failed-login limits over the HTTP API (issue 17 item 5): per client IP and per AppID,
failures only, shared through the database; 429 with Retry-After once over; the correct
secret never locked out by its AppID's count. And the credential check's shape (item 10):
a wrong AppID and a wrong secret do the same work."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub import access, crypto, queries
from hub.models import App, LoginFailureCounter, SendLog
from hub.refusals import Refusal

ATTACKER = "198.51.100.7"
OTHER_ATTACKERS = [f"203.0.113.{i}" for i in range(1, 60)]
OFFICE = "192.0.2.10"


@pytest.fixture
def hub(smtp_sink, make_server, make_app, settings, monkeypatch):
    settings.HUB_LOGIN_FAILURES_PER_IP = 5
    settings.HUB_LOGIN_FAILURES_PER_APP = 20
    settings.HUB_LOGIN_FAILURE_WINDOW = 300
    # Fixed windows start at multiples of their length, and a boundary resets the counts: the
    # counters' clock stands still 100 s into a window, so no test straddles one.
    start = datetime.fromtimestamp(time.time() // 300 * 300 + 100, tz=UTC)
    monkeypatch.setattr(access, "_clock", lambda: start)
    return smtp_sink, make_app(make_server(smtp_sink), name="target")


def send(client, creds: dict, ip: str):
    return post(client, "/api.php", good_fields(creds), REMOTE_ADDR=ip)


def wrong(creds: dict) -> dict:
    return {**creds, "appsecret": "not-the-secret"}


def test_an_ip_gets_its_limit_of_401_then_429_with_retry_after_and_nothing_written(client, hub):
    sink, p = hub
    codes = [send(client, wrong(p.creds), ATTACKER).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3
    r = send(client, wrong(p.creds), ATTACKER)
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "login_rate_limited", "登录失败次数过多，请稍后再试")
    assert 1 <= int(r["Retry-After"]) <= 300
    assert SendLog.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert sink.messages == []


def test_a_blocked_ip_is_refused_before_its_credentials_are_checked(client, hub, monkeypatch):
    _sink, p = hub
    for _ in range(5):
        send(client, wrong(p.creds), ATTACKER)
    checked = []
    monkeypatch.setattr(access, "authenticate", lambda *a: checked.append(a))
    assert send(client, p.creds, ATTACKER).status_code == 429
    assert checked == []


def test_successes_are_not_counted(client, hub):
    _sink, p = hub
    for _ in range(30):
        assert send(client, p.creds, OFFICE).status_code == 200
    assert LoginFailureCounter.objects.count() == 0


def test_the_correct_secret_still_works_while_its_appid_is_over_the_limit(client, hub):
    """Failures from many IPs put the AppID over its limit: further wrong secrets get 429,
    but the app itself, from its own IP with its own secret, keeps sending."""
    _sink, p = hub
    codes = [send(client, wrong(p.creds), ip).status_code for ip in OTHER_ATTACKERS[:25]]
    assert codes == [401] * 20 + [429] * 5
    assert send(client, wrong(p.creds), OTHER_ATTACKERS[30]).status_code == 429
    assert send(client, p.creds, OFFICE).status_code == 200
    assert SendLog.objects.count() == 1


def test_ipv6_counts_per_slash_64(client, hub):
    _sink, p = hub
    for i in range(5):
        assert send(client, wrong(p.creds), f"2001:db8:1:2::{i + 1}").status_code == 401
    assert send(client, wrong(p.creds), "2001:db8:1:2:ffff::9").status_code == 429
    assert send(client, wrong(p.creds), "2001:db8:1:3::1").status_code == 401


def test_a_new_window_starts_afresh_and_drops_old_counters(client, hub, monkeypatch):
    _sink, p = hub
    for _ in range(6):
        send(client, wrong(p.creds), ATTACKER)
    assert send(client, wrong(p.creds), ATTACKER).status_code == 429
    start, _left = access._window()
    monkeypatch.setattr(access, "_window", lambda: (start.replace(year=start.year + 1), 300))
    assert send(client, wrong(p.creds), ATTACKER).status_code == 401
    assert set(LoginFailureCounter.objects.values_list("window_start", flat=True)) == {start.replace(year=start.year + 1)}


def test_limits_are_off_at_zero(client, hub, settings):
    _sink, p = hub
    settings.HUB_LOGIN_FAILURES_PER_IP = settings.HUB_LOGIN_FAILURES_PER_APP = 0
    assert {send(client, wrong(p.creds), ATTACKER).status_code for _ in range(10)} == {401}


def test_3000_wrong_secrets_with_the_default_limits(client, smtp_sink, make_server, make_app, settings):
    """The issue's probe: 3,000 wrong secrets for one AppID from one IP were 3,000 × 401.
    With the defaults (30 per IP per 5 minutes) it is 30 × 401, then 429."""
    p = make_app(make_server(smtp_sink))
    codes = [send(client, wrong(p.creds), ATTACKER).status_code for _ in range(3000)]
    assert (codes.count(401), codes.count(429)) == (settings.HUB_LOGIN_FAILURES_PER_IP, 3000 - 30)
    assert codes[:30] == [401] * 30


# --- item 10: a wrong AppID and a wrong secret do the same work ------------------------------

@pytest.mark.parametrize("appid", ["999999", "not-a-number", "12345678901234567890"])
def test_wrong_appid_and_wrong_secret_make_the_same_calls(db, make_app, monkeypatch, appid):
    """Structural, not timed: the same query, the same App.check_secret, the same number of
    HMAC computations and comparisons, whichever part of the credentials is wrong."""
    p = make_app()

    def trace(appid: str, secret: str) -> list[str]:
        calls: list[str] = []

        def spy(name, func):
            def wrapper(*args, **kwargs):
                calls.append(name)
                return func(*args, **kwargs)
            return wrapper

        with monkeypatch.context() as m:
            m.setattr(queries, "app", spy("queries.app", queries.app))
            m.setattr(App, "check_secret", spy("App.check_secret", App.check_secret))
            m.setattr(crypto, "secret_digest", spy("crypto.secret_digest", crypto.secret_digest))
            m.setattr(crypto.hmac, "compare_digest", spy("hmac.compare_digest", crypto.hmac.compare_digest))
            with pytest.raises(Refusal) as refused:
                access.authenticate(appid, secret)
        assert refused.value.error == "invalid_credentials"
        return calls

    wrong_secret = trace(str(p.app.id), "x" * 32)
    wrong_appid = trace(appid, "x" * 32)
    assert wrong_secret == wrong_appid
    assert wrong_secret == ["queries.app", "App.check_secret"] + ["crypto.secret_digest", "hmac.compare_digest"] * 2
