"""VERP return paths (hub.delivery.verp): a signed per-message bounce address on
HUB_BOUNCE_DOMAIN, used as MAIL FROM only by servers with `verp_return_path` on."""

from __future__ import annotations

import pytest

from api.tests.test_send_api import good_fields, post
from hub.delivery import verp
from hub.models import SendLog


@pytest.fixture(autouse=True)
def _domain(settings):
    settings.HUB_BOUNCE_DOMAIN = "bounce.example"


def test_round_trip():
    addr = verp.address(1234)
    assert addr.startswith("b-4d2-") and addr.endswith("@bounce.example")
    assert len(addr.partition("@")[0]) <= 64
    assert verp.parse(addr) == 1234
    assert verp.parse(f"<{addr.upper()}>") == 1234  # some MTAs change the case


@pytest.mark.parametrize("addr", [
    "b-4d2-0000000000000000000a@bounce.example",   # forged signature
    "b-4d3-{sig}@bounce.example",                   # another id with this message's signature
    "b-4d2-{sig}@other.example",                    # another domain
    "b-4d2-{sig}x@bounce.example",
    "postmaster@bounce.example",
    "b--@bounce.example",
    "",
    "not an address",
])
def test_anything_else_is_refused(addr):
    sig = verp.address(1234).split("-")[2].partition("@")[0]
    assert verp.parse(addr.format(sig=sig)) is None


def test_old_key_still_verifies_after_a_rotation(settings):
    addr = verp.address(77)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    assert verp.parse(addr) == 77
    settings.SECRET_KEY_FALLBACKS = []
    assert verp.parse(addr) is None


def test_no_bounce_domain_no_verp(settings):
    addr = verp.address(5)
    settings.HUB_BOUNCE_DOMAIN = ""
    assert verp.parse(addr) is None


@pytest.mark.parametrize("verp_on,domain,expect_verp", [(True, "bounce.example", True), (False, "bounce.example", False),
                                                        (True, "", False)])
def test_mail_from_is_the_bounce_address_only_where_enabled(client, smtp_sink, make_server, make_app, run_queue,
                                                            settings, verp_on, domain, expect_verp):
    settings.HUB_BOUNCE_DOMAIN = domain
    p = make_app(make_server(smtp_sink, from_email="news@example.org", verp_return_path=verp_on))
    r = post(client, "/api.php", good_fields(p.creds, to="alice@example.com"))
    assert r.status_code == 200
    assert run_queue() == 1
    row = SendLog.objects.get()
    (received,) = smtp_sink.messages
    if expect_verp:
        assert received.mail_from == verp.address(row.id)
        assert verp.parse(received.mail_from) == row.id
    else:
        assert received.mail_from == "news@example.org"
    # The From header is the sender's either way: only the envelope changes.
    assert "news@example.org" in received.message["From"]
