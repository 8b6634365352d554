"""SSRF: only http/https URLs to global addresses; private, loopback, link-local and
metadata addresses are refused when saved and, for names, at every connection."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hub import events
from hub.webhooks import outbox, signing
from hub.webhooks.models import Attempt, Event
from hub.webhooks.targets import TargetError, address_allowed, parse_kinds, validate_url


@pytest.mark.parametrize("url, code", [
    ("", "url_error"),
    ("ftp://example.com/x", "url_error"),
    ("file:///etc/passwd", "url_error"),
    ("javascript:alert(1)", "url_error"),
    ("http://", "url_error"),
    ("https://user:pass@example.com/", "url_error"),
    ("https://example.com/a b", "url_error"),
    ("https://example.com/\r\nX-Evil: 1", "url_error"),
    ("https://example.com:99999/", "url_error"),
    ("https://example.com/#frag", "url_error"),
    ("https://example.com/" + "a" * 2000, "url_error"),
    ("http://127.0.0.1/", "url_forbidden"),
    ("http://localhost:8000/", "url_forbidden"),
    ("http://api.localhost/", "url_forbidden"),
    ("http://10.1.2.3/", "url_forbidden"),
    ("http://192.168.0.1/", "url_forbidden"),
    ("http://172.16.0.1/", "url_forbidden"),
    ("http://169.254.169.254/latest/meta-data/", "url_forbidden"),
    ("http://100.64.0.1/", "url_forbidden"),
    ("http://0.0.0.0/", "url_forbidden"),
    ("http://[::1]/", "url_forbidden"),
    ("http://[fd00::1]/", "url_forbidden"),
    ("http://[fe80::1]/", "url_forbidden"),
    ("http://[::ffff:127.0.0.1]/", "url_forbidden"),
    ("http://224.0.0.1/", "url_forbidden"),
])
def test_refused_urls(settings, url, code):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    with pytest.raises(TargetError) as info:
        validate_url(url)
    assert info.value.code == code


def test_accepted_urls(settings):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    assert validate_url(" https://hooks.example.com/x?y=1 ") == "https://hooks.example.com/x?y=1"
    assert validate_url("http://93.184.216.34:8080/") == "http://93.184.216.34:8080/"
    assert not address_allowed("127.0.0.1") and address_allowed("8.8.8.8")
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = ["10.0.0.0/8"]
    assert validate_url("http://10.1.2.3/") == "http://10.1.2.3/" and not address_allowed("192.168.1.1")


def test_kinds():
    assert parse_kinds(["failed", "SENT", " sent "]) == "sent,failed"
    for bad in ([], ["sent", "deleted"], ""):
        with pytest.raises(TargetError):
            parse_kinds(bad)


def test_a_name_resolving_to_loopback_is_refused_at_connection(settings, receiver, make_endpoint, account):
    """`localhost` passed when loopback was allowed; once it is not, the connection to the
    address the name resolves to is refused, and the receiver hears nothing."""
    make_endpoint(account, receiver.url.replace("127.0.0.1", "localhost"))
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    events.emit(events.Event(kind=events.Kind.SENT, email="a@example.com", at=timezone.now(), account_id=account.pk))
    assert outbox.deliver_due() == 1
    attempt = Attempt.objects.get()
    assert not attempt.ok and attempt.status_code is None and attempt.error.startswith("refused:")
    assert receiver.requests == [] and Event.objects.get().status == "pending"


def test_signature_verification_rules():
    body = b'{"events":[]}'
    headers = signing.headers("s" * 20, body, "d1", now=1_000_000)
    assert signing.verify("s" * 20, headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body, now=1_000_100)
    assert not signing.verify("s" * 20, headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body,
                              now=1_000_000 + 301)  # replayed after the window
    assert not signing.verify("s" * 20, headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body + b" ",
                              now=1_000_000)  # altered body
    assert not signing.verify("t" * 20, headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body, now=1_000_000)
    assert not signing.verify("s" * 20, "1000001", headers["X-Hub-Signature"], body, now=1_000_000)  # other time
    assert not signing.verify("s" * 20, "x", headers["X-Hub-Signature"], body, now=1_000_000)


def test_system_check_refuses_a_bad_network(settings):
    from hub.webhooks.checks import webhook_settings

    assert webhook_settings(None) == []
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = ["10.0.0.0/8", "not-a-network"]
    settings.HUB_WEBHOOK_BATCH = 0
    assert [e.id for e in webhook_settings(None)] == ["webhooks.E001", "webhooks.E002"]


def test_internationalized_urls_are_sent_in_ascii(settings):
    settings.HUB_WEBHOOK_ALLOW_NETWORKS = []
    assert validate_url("https://例子.测试/回调?客户=老王") == (
        "https://xn--fsqu00a.xn--0zwm56d/%E5%9B%9E%E8%B0%83?%E5%AE%A2%E6%88%B7=%E8%80%81%E7%8E%8B")
    with pytest.raises(TargetError):
        validate_url("https://" + "é" * 70 + ".com/")  # a label over 63 characters
