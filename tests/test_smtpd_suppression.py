"""The real SMTP submission server honours the ACCOUNT's suppression list: an address that
complained about (or hard-bounced for) any app of the account gets 550 at RCPT, nothing is
written; an unsubscribe (campaign mail only) does not stop a submission."""

from __future__ import annotations

import pytest

from hub.models import SendLog, Suppression
from tests.test_smtpd import SENDER, assert_nothing_written, auth_login, connect, hub  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_account_wide_complaint_is_refused_and_unsubscribe_is_not(start_smtpd, tls_files, hub):  # noqa: F811
    sink, _server, p = hub
    Suppression.objects.create(account=p.app.account, email="angry@example.com", cause="complaint")
    Suppression.objects.create(account=p.app.account, email="reader@example.com", cause="unsubscribe",
                               bulk_only=True)
    smtpd = start_smtpd()
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        code, resp = conn.rcpt("angry@example.com")
        assert code == 550 and b"suppressed" in resp
        assert conn.docmd("DATA")[0] == 503
    assert_nothing_written(sink)
    with connect(smtpd, tls_files) as conn:
        assert auth_login(conn, p.creds["appid"], p.secret)[0] == 235
        assert conn.mail(SENDER)[0] == 250
        assert conn.rcpt("reader@example.com")[0] == 250
    assert SendLog.objects.count() == 0  # (no DATA sent: only the RCPT answer is checked)
