"""The back office of bounces: reports listed and filtered (read-only), bounce mailboxes with a
write-only password and "poll now", and the sidebar entries."""

from __future__ import annotations

from conftest import free_port
from hub.inbound import process
from hub.inbound.models import BounceMailbox, Report

from .conftest import sample


def test_reports_list_and_filter(su, sent):
    row, other_row = sent.row(), sent.row(to="fan@example.com")
    process.process(sample("postfix-user-unknown.eml", row), verp_log_id=row.id)
    process.process(sample("arf-yahoo.eml", other_row), verp_log_id=other_row.id)
    page = su.get("/admin/inbound/report/", {"kind__exact": "complaint"})
    assert page.status_code == 200
    assert b"fan@example.com" in page.content and b"ghost@example.com" not in page.content
    report = Report.objects.get(kind="bounce")
    assert su.get(f"/admin/inbound/report/{report.pk}/change/").status_code == 200  # view only
    assert su.get("/admin/inbound/report/add/").status_code == 403
    assert b"Bounce and complaint reports" in su.get("/admin/").content


def test_mailbox_password_is_write_only_and_poll_reports_errors(su, account):
    data = {"account": account.pk, "name": "fbl", "host": "127.0.0.1", "port": free_port(), "security": "none",
            "verify_tls": "on", "username": "bounces", "password": "p4ss-word", "folder": "INBOX", "enabled": "on"}
    r = su.post("/admin/inbound/bouncemailbox/add/", data)
    assert r.status_code == 302, r.content[:2000]
    box = BounceMailbox.objects.get()
    assert box.get_password() == "p4ss-word" and "p4ss-word" not in box.password_encrypted
    page = su.get(f"/admin/inbound/bouncemailbox/{box.pk}/change/")
    assert b"p4ss-word" not in page.content and box.password_encrypted.encode() not in page.content
    r = su.post("/admin/inbound/bouncemailbox/", {"action": "poll_now", "_selected_action": [box.pk]}, follow=True)
    assert b"cannot connect" in r.content
    assert not Report.objects.exists()


def test_listener_refuses_to_start_without_a_bounce_domain(settings):
    import pytest
    from django.core.management import CommandError, call_command

    settings.HUB_BOUNCE_DOMAIN = ""
    with pytest.raises(CommandError, match="HUB_BOUNCE_DOMAIN"):
        call_command("hub_inbound")
