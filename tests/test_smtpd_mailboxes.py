"""Mailboxes (hub.domains) as SMTP submission credentials of the real `manage.py smtpd`:
AUTH as the full address, From enforced at DATA, a disabled mailbox or a changed password
ends the session's right to send, and the relayed mail is DKIM-signed (verified with dkimpy
against the test DNS server)."""

from __future__ import annotations

import smtplib

import dkim
import pytest

from hub.models import Account, SendLog
from tests.test_smtpd import auth_login, client_tls, connect, html_message, queued_id, submit

SPF, MX = "spf.hub.test", "mx.hub.test"
PASSWORD = "mailbox-pass-1"


@pytest.fixture
def mailbox_hub(transactional_db, settings, dns_server, smtp_sink, make_server, make_app):
    from hub.domains import mailboxes, services, signer

    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST = SPF, MX
    signer.clear_cache()
    account = Account.objects.create(name="mailbox-co")
    server = make_server(smtp_sink, from_email="news@example.org")
    p = make_app(server, account=account, name="mailbox app")
    dns_server.add("example.org", "TXT", f"v=spf1 include:{SPF} -all")
    dns_server.add("example.org", "MX", f"10 {MX}")
    domain = services.add_domain(account, "example.org")
    for key in domain.keys.all():
        dns_server.add(key.dns_name, "TXT", key.record)
    domain = services.run_check(domain)
    assert domain.dkim_ok
    box = mailboxes.add_mailbox(account, "sales@example.org", PASSWORD)  # the real hasher: the child checks it
    yield smtp_sink, p, box
    signer.clear_cache()


def login(smtpd, tls_files, user: str, password: str) -> smtplib.SMTP:
    conn = connect(smtpd)
    conn.starttls(context=client_tls(tls_files))
    conn.ehlo()
    code, resp = auth_login(conn, user, password)
    assert code == 235, resp
    return conn


def test_mailbox_auth_sends_only_from_itself_and_is_signed(start_smtpd, tls_files, mailbox_hub, run_queue,
                                                            dns_server):
    sink, p, _box = mailbox_hub
    smtpd = start_smtpd()
    with login(smtpd, tls_files, "Sales@Example.org", PASSWORD) as conn:
        # Another From (also of the same domain), or two From addresses: refused at DATA.
        for sender in ("boss@example.org", "sales@example.org, boss@example.org"):
            code, reply = submit(conn, "sales@example.org", ["to@example.net"],
                                 html_message(From=sender, To="to@example.net", Subject="x"))
            assert (code, reply) == (550, "5.7.1 From must be the address you logged in as"), sender
        assert SendLog.objects.count() == 0
        code, reply = submit(conn, "sales@example.org", ["to@example.net"],
                             html_message(From='"销售部" <SALES@example.org>', To="to@example.net", Subject="你好"))
        assert code == 250, reply
    row = SendLog.objects.get(pk=queued_id(reply))
    assert row.app_id == p.app.id  # sent as the mailbox's app
    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    data = sink.messages[-1].content
    assert dkim.verify(data, dnsfunc=dns_server.dkim_dnsfunc)
    d = dkim.DKIM(data)
    assert d.verify(idx=1, dnsfunc=dns_server.dkim_dnsfunc)  # the Ed25519 signature


@pytest.mark.parametrize("user,password", [
    ("sales@example.org", "wrong-password"), ("nobody@example.org", PASSWORD), ("sales@example.org", "")])
def test_wrong_mailbox_credentials_refused(start_smtpd, tls_files, mailbox_hub, user, password):
    smtpd = start_smtpd()
    with connect(smtpd) as conn:
        conn.starttls(context=client_tls(tls_files))
        conn.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            auth_login(conn, user, password)
        assert caught.value.smtp_code == 535
    assert SendLog.objects.count() == 0


def test_disabled_or_changed_mailbox_stops_an_open_session(start_smtpd, tls_files, mailbox_hub):
    from hub.domains import mailboxes

    _sink, p, _box = mailbox_hub
    smtpd = start_smtpd()
    with login(smtpd, tls_files, "sales@example.org", PASSWORD) as conn:
        mailboxes.edit_mailbox(p.app.account, "sales@example.org", enabled=False)
        code, resp = conn.mail("sales@example.org")
        assert code == 535, resp
    with connect(smtpd) as conn:
        conn.starttls(context=client_tls(tls_files))
        conn.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            auth_login(conn, "sales@example.org", PASSWORD)
    mailboxes.edit_mailbox(p.app.account, "sales@example.org", enabled=True)
    with login(smtpd, tls_files, "sales@example.org", PASSWORD) as conn:
        mailboxes.edit_mailbox(p.app.account, "sales@example.org", password="another-pass-2")
        code, resp = conn.mail("sales@example.org")
        assert code == 535, resp
    assert SendLog.objects.count() == 0


def test_app_credentials_still_work_and_may_send_any_from(start_smtpd, tls_files, mailbox_hub):
    _sink, p, _box = mailbox_hub
    smtpd = start_smtpd()
    with login(smtpd, tls_files, p.creds["appid"], p.secret) as conn:
        code, reply = submit(conn, "x@example.org", ["to@example.net"],
                             html_message(From="anyone@elsewhere.test", To="to@example.net", Subject="x"))
        assert code == 250, reply
