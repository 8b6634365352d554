"""The SMTP submission server and accounts: an account out of service is refused at MAIL,
exhausted quota at DATA (a 4xx, so the client keeps the message), and nothing is written;
an accepted message takes one unit per envelope recipient. Real `manage.py smtpd` process,
as tests/test_smtpd.py (whose fixtures and helpers these tests use)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub import quota
from hub.models import Account, SendLog
from tests.test_smtpd import SENDER, assert_nothing_written, auth_login, connect, html_message, queued_id, submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def metered_app(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink, from_email=SENDER)
    account = Account.objects.create(name="smtp-客户", quota_type=Account.QuotaType.TOTAL, quota_total=3,
                                     quota_available=3)
    return smtp_sink, account, make_app(server, name="SMTP 客户端", account=account)


def test_quota_is_taken_per_recipient_and_exhaustion_gets_452_at_data(start_smtpd, tls_files, metered_app):
    _sink, account, p = metered_app
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        code, reply = submit(conn, SENDER, ["a@example.com", "b@example.com"],
                             html_message(From=SENDER, To="a@example.com", Subject="one"))
        assert code == 250, reply
        assert SendLog.objects.get(pk=queued_id(reply)).quota_charged == 2
        code, reply = submit(conn, SENDER, ["c@example.com", "d@example.com"],
                             html_message(From=SENDER, To="c@example.com", Subject="two"))
        assert (code, reply) == (452, "4.7.1 Sending quota of this account exhausted, try again later")
    assert SendLog.objects.count() == 1
    assert Account.objects.get(pk=account.pk).quota_available == 1


def test_an_account_out_of_service_is_refused_at_mail(start_smtpd, tls_files, metered_app):
    sink, account, p = metered_app
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        # Expired while the session was open: the next transaction is refused.
        Account.objects.filter(pk=account.pk).update(service_end=quota.today() - timedelta(days=1))
        code, resp = conn.mail(SENDER)
        assert (code, resp) == (550, b"5.7.1 Sending service of this account has expired")
        Account.objects.filter(pk=account.pk).update(service_end=None, enabled=False)
        code, resp = conn.mail(SENDER)
        assert (code, resp) == (550, b"5.7.1 Account disabled")
    assert_nothing_written(sink)
    assert Account.objects.get(pk=account.pk).quota_available == 3
