"""What a newcomer's first hour in the back office found (issue 17), in both languages:
delivery attempts named like objects, dates with minutes on one page and seconds on the
next, the task queue's English name in the Chinese admin, no favicon, a test timeout that
differed from the server's. The layout of long values is checked in a real browser
(tests/test_admin_layout_browser.py); here only that the rule is on every admin page."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.test import Client
from django.utils import timezone, translation

from hub.models import DeliveryAttempt

from .test_admin_support import body, make_log

LANGS = [("en", "en"), ("zh-CN,zh;q=0.9", "zh-hans")]
STAMP = re.compile(r"\b2026-03-04 05:06:07\b")


@pytest.fixture
def log_with_attempt(make_server, make_app):
    server = make_server(name="relay-one")
    app = make_app(server, name="shop").app
    when = timezone.make_aware(datetime.datetime(2026, 3, 4, 5, 6, 7))
    row = make_log(app, server, created_at=when, sent_at=when, message_id="<abc@example.com>")
    attempt = DeliveryAttempt.objects.create(log=row, server=server, result="sent", smtp_code=250,
                                             smtp_reply="2.0.0 Ok", started_at=when)
    return row, attempt


@pytest.mark.parametrize(("accept", "lang"), LANGS)
def test_attempts_are_not_labelled_as_objects(su, log_with_attempt, accept, lang):
    row, _attempt = log_with_attempt
    text = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/", HTTP_ACCEPT_LANGUAGE=accept))
    assert f'<html lang="{lang}"' in text
    assert "relay-one" in text and "2.0.0 Ok" in text  # the attempt's row is there
    assert "DeliveryAttempt object" not in text and "DeliveryAttempt" not in text


def test_an_attempt_names_itself_in_the_users_language(log_with_attempt):
    _row, attempt = log_with_attempt
    with translation.override("en"):
        assert str(attempt) == "Sent on relay-one at 2026-03-04 05:06:07"
    with translation.override("zh-hans"):
        assert str(attempt) == "2026-03-04 05:06:07 在 relay-one 上：已发送"


@pytest.mark.parametrize(("accept", "lang"), LANGS)
def test_dates_show_seconds_in_one_format_on_list_and_detail(su, log_with_attempt, accept, lang):
    row, _attempt = log_with_attempt
    listing = body(su.get("/admin/hub/sendlog/", HTTP_ACCEPT_LANGUAGE=accept))
    detail = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/", HTTP_ACCEPT_LANGUAGE=accept))
    assert f'<html lang="{lang}"' in detail
    assert len(STAMP.findall(listing)) == 1  # created
    # created, sent and the attempt's start, each to the second, as in the list.
    assert len(STAMP.findall(detail)) == 3
    assert "05:06<" not in detail and "5:06 a.m." not in detail and "2026年" not in detail


def test_long_values_wrap_on_every_admin_page(su, log_with_attempt):
    row, _attempt = log_with_attempt
    for url in ("/admin/", f"/admin/hub/sendlog/{row.pk}/change/"):
        text = body(su.get(url))
        assert ".readonly { overflow-wrap: anywhere; }" in text, url
    # The Message-ID has a line of its own rather than a third of one.
    detail = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert re.search(r'grid lg:grid-cols-3[^"]*">\s*<div[^>]*>\s*<div[^>]*>\s*<label[^>]*>Message-ID', detail) is None


@pytest.mark.parametrize(("accept", "title", "not_wanted"), [
    ("en", "Task queue administration", "任务队列"),
    ("zh-CN", "任务队列 管理", "Task queue"),
])
def test_the_task_queue_is_named_in_the_users_language(su, accept, title, not_wanted):
    text = body(su.get("/admin/django_q/", HTTP_ACCEPT_LANGUAGE=accept))
    assert title in text
    assert not_wanted not in text
    # Its pages too (the model names come from django-q2's own catalog).
    page = body(su.get("/admin/django_q/schedule/", HTTP_ACCEPT_LANGUAGE=accept))
    assert not_wanted not in page


def test_favicon_is_declared_and_served(su, client: Client):
    text = body(su.get("/admin/"))
    assert '<link rel="icon" href="/static/hub/favicon.svg" type="image/svg+xml"' in text
    # Anonymous pages (the login page) and a browser's blind /favicon.ico find it too.
    assert 'rel="icon" href="/static/hub/favicon.svg"' in body(client.get("/admin/login/"))
    r = client.get("/favicon.ico")
    assert r.status_code == 301 and r["Location"] == "/static/hub/favicon.svg"


def test_the_favicon_file_is_a_static_file():
    from django.contrib.staticfiles import finders

    path = finders.find("hub/favicon.svg")
    assert path
    with open(path, encoding="utf-8") as f:
        assert f.read().startswith("<svg ")


@pytest.mark.parametrize(("accept", "same", "capped"), [
    ("en", "Timeout: 30 s per step.", ("Timeout: 30 s per step (the server's setting, used for delivery); "
                                       "this test waits at most 20 s per step")),
    ("zh-CN", "超时：每一步 30 秒。", "超时：每一步 30 秒（该服务器的设置，投递时使用）；为使页面及时响应，本测试每一步最多等待 20 秒"),
])
def test_test_pages_show_the_servers_own_timeout(su, make_server, settings, accept, same, capped):
    server = make_server(timeout=30)
    settings.HUB_ADMIN_TEST_TIMEOUT = 30
    for action in ("test-connection", "send-test"):
        text = html.unescape(body(su.get(f"/admin/hub/smtpserver/{server.pk}/{action}/",
                                         HTTP_ACCEPT_LANGUAGE=accept)))
        assert same in text, action
    settings.HUB_ADMIN_TEST_TIMEOUT = 20  # the default cap, below the server's 30 s
    for action in ("test-connection", "send-test"):
        text = html.unescape(body(su.get(f"/admin/hub/smtpserver/{server.pk}/{action}/",
                                         HTTP_ACCEPT_LANGUAGE=accept)))
        assert capped in text, action
        assert "Timeout: 20 s per step." not in text and "每一步 20 秒。" not in text


def test_timeout_note_names_the_cap_only_when_it_applies(settings):
    from hub.admin.servers import timeout_note

    settings.HUB_ADMIN_TEST_TIMEOUT = 20
    with translation.override("en"):
        assert timeout_note(5) == "Timeout: 5 s per step."
        assert "at most 20 s" in timeout_note(300) and "Timeout: 300 s" in timeout_note(300)
