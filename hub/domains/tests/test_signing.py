"""DKIM signatures on delivered mail, verified with dkimpy against the test DNS server the
way a receiving MTA does: API mail, SMTP-relayed mail (the hub rewrote From and its own
headers), Ed25519 second signatures, unverified domains, signing failures."""

from __future__ import annotations

import logging

import dkim
import pytest

from hub.delivery.outbox import deliver_batch
from hub.domains import services, signer
from hub.domains.models import DkimKey, Domain
from hub.models import SendLog
from hub.sending import SendRequest, accept, accept_raw


@pytest.fixture
def verified(account, dns_server, publish):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    domain = services.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED and domain.dkim_ok
    return domain


@pytest.fixture
def sink(smtp_sink_factory):
    return smtp_sink_factory()


@pytest.fixture
def app(account, sink, make_server, make_app):
    server = make_server(sink, from_email="news@example.org")
    return make_app(server, account=account, from_name="新闻").app


def delivered(sink, row_id: int) -> bytes:
    deliver_batch([row_id])
    row = SendLog.objects.get(pk=row_id)
    assert row.status == SendLog.Status.SENT, row.error
    return sink.messages[-1].content


def signatures(data: bytes) -> list[dict]:
    d = dkim.DKIM(data)
    return [dict(dkim.util.parse_tag_value(value)) for name, value in d.headers if name.lower() == b"dkim-signature"]


def verify_all(data: bytes, dns_server) -> list[bool]:
    d = dkim.DKIM(data)
    count = len(signatures(data))
    return [d.verify(idx=i, dnsfunc=dns_server.dkim_dnsfunc) for i in range(count)]


def test_api_mail_gets_rsa_and_ed25519_signatures(verified, app, sink, dns_server):
    row = accept(app, SendRequest(to="someone@example.net", subject="订单 shipped", message="<p>你好</p>"))
    data = delivered(sink, row.id)
    sigs = signatures(data)
    assert [(s[b"a"], s[b"s"], s[b"d"]) for s in sigs] == [
        (b"rsa-sha256", b"hub", b"example.org"), (b"ed25519-sha256", b"hub-ed25519", b"example.org")]
    assert sigs[0][b"c"] == b"relaxed/relaxed"
    assert dkim.verify(data, dnsfunc=dns_server.dkim_dnsfunc)  # what most receivers do: the first
    assert verify_all(data, dns_server) == [True, True]
    # Signed after the hub's own headers were set: they are in the message as signed.
    assert b"X-SMTPHub-Log-ID: %d" % row.id in data
    # A change after signing breaks it: the check above is a real one.
    assert not dkim.verify(data.replace(b"Subject:", b"Subject: X"), dnsfunc=dns_server.dkim_dnsfunc)


RAW = (b"From: =?utf-8?b?5byg5LiJ?= <client@elsewhere.test>\r\n"
       b"To: someone@example.net\r\n"
       b"Subject: relayed\r\n"
       b"X-SMTPHub-Log-ID: 999\r\n"
       b"Bcc: hidden@example.net\r\n"
       b"\r\n"
       b"Hello from SMTP.\r\n")


def test_smtp_relayed_mail_with_rewritten_from_is_signed(verified, app, sink, dns_server):
    row = accept_raw(app, ["someone@example.net"], RAW, "127.0.0.1")
    data = delivered(sink, row.id)
    # The hub changed the headers (From rewritten to the server's sender, Reply-To added,
    # Bcc and the client's X-SMTPHub-* dropped, its own set) and then signed.
    assert b"news@example.org" in data and b"Reply-To:" in data and b"Bcc:" not in data
    assert b"X-SMTPHub-Log-ID: 999" not in data
    assert verify_all(data, dns_server) == [True, True]


def test_rsa_only_domain_gets_one_signature(account, app, sink, dns_server, publish, settings):
    settings.HUB_DKIM_ED25519 = False
    domain = services.add_domain(account, "example.org")
    publish(domain)
    services.run_check(domain)
    data = delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    assert [s[b"a"] for s in signatures(data)] == [b"rsa-sha256"]
    assert dkim.verify(data, dnsfunc=dns_server.dkim_dnsfunc)


def test_unverified_domain_and_other_accounts_domain_are_not_signed(account, app, sink, dns_server, publish):
    domain = services.add_domain(account, "example.org")  # no records published: pending
    assert domain.status == Domain.Status.PENDING
    data = delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    assert signatures(data) == []
    # Verified, but by another account than the sending app's.
    from hub.models import Account

    Domain.objects.filter(pk=domain.pk).update(account=Account.objects.create(name="someone-else"),
                                              status=Domain.Status.VERIFIED)
    signer.clear_cache()
    data = delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    assert signatures(data) == []


def test_broken_domain_still_signs(verified, app, sink, dns_server):
    dns_server.set("example.org", "MX")
    assert services.run_check(verified).status == Domain.Status.BROKEN
    signer.clear_cache()
    data = delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    assert dkim.verify(data, dnsfunc=dns_server.dkim_dnsfunc)


def test_signing_failure_sends_unsigned_and_logs(verified, app, sink, dns_server, caplog):
    # A key that no configured encryption key decrypts (e.g. HUB_ENCRYPTION_KEYS changed).
    DkimKey.objects.filter(domain=verified).update(private_key_encrypted="not-a-fernet-token")
    caplog.set_level(logging.ERROR, logger="hub.delivery.signing")
    row = accept(app, SendRequest(to="x@example.net", subject="s", message="m"))
    data = delivered(sink, row.id)
    assert signatures(data) == []
    assert f"signing SendLog {row.id} failed" in caplog.text and "DecryptionError" in caplog.text and "BEGIN" not in caplog.text


def test_keys_are_encrypted_at_rest_and_never_logged(verified, app, sink, caplog):
    caplog.set_level(logging.DEBUG)
    key = verified.keys.get(algorithm=DkimKey.Algorithm.RSA)
    pem = key.get_private_key()
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert "PRIVATE KEY" not in key.private_key_encrypted and pem not in key.private_key_encrypted
    delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    services.start_rotation(verified)
    services.activate_next(verified, force=True)
    services.run_check(verified)
    secrets = [k.get_private_key() for k in verified.keys.all()]
    assert len(secrets) == 4
    for secret in secrets:
        fragment = secret.splitlines()[1] if "BEGIN" in secret else secret  # an Ed25519 seed is one line
        assert fragment not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


def test_rotation_publishes_both_then_switches(verified, app, sink, dns_server, publish):
    nxt = services.start_rotation(verified)
    assert {k.state for k in nxt} == {"next"}
    names = [r.name for r in services.records(verified)]
    assert "hub._domainkey.example.org" in names and nxt[0].dns_name in names  # both published
    with pytest.raises(services.DomainError) as info:
        services.activate_next(verified)  # the next record is not in DNS yet
    assert info.value.code == "next_key_not_published"
    with pytest.raises(services.DomainError):
        services.start_rotation(verified)  # one rotation at a time
    publish(verified, spf=False, mx=False, states=("next",))
    services.activate_next(verified)
    signer.clear_cache()
    assert set(verified.keys.filter(state="retired").values_list("selector", flat=True)) == {"hub", "hub-ed25519"}
    data = delivered(sink, accept(app, SendRequest(to="x@example.net", subject="s", message="m")).id)
    assert [s[b"s"] for s in signatures(data)] == [nxt[0].selector.encode(), nxt[1].selector.encode()]
    assert verify_all(data, dns_server) == [True, True]


def test_from_domain_reads_the_first_from_field_of_the_head():
    from hub.domains.signer import from_domain

    folded = (b"Subject: hi\r\nfrom: =?utf-8?b?5ZWG5Z+O?=\r\n <News@Shop.Example.COM>\r\n"
              b"X-From: other@else.example\r\nFrom: second@else.example\r\n\r\nFrom: body@body.example\r\n")
    assert from_domain(folded) == "shop.example.com"
    assert from_domain(b"X-From: a@x.example\r\nTo: b@y.example\r\n\r\nFrom: c@z.example\r\n") == ""
    assert from_domain(b"From: a@XN--BCHER-KVA.example.\r\n\r\n") == "xn--bcher-kva.example"
