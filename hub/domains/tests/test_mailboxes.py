"""Mailbox services and their SMTP login (hub.access.admit_smtp_login with the registered
checker): the right password gives the mailbox's app and its From; everything else is the
same invalid_credentials, counted by the failed-login limits."""

from __future__ import annotations

import pytest

from hub import access
from hub.domains import mailboxes, services
from hub.domains.models import Mailbox
from hub.models import App, LoginFailureCounter
from hub.refusals import Refusal


@pytest.fixture
def app(account):
    app = App(name="mail app", account=account)
    app.rotate_secret()
    app.save()
    return app


@pytest.fixture
def box(account, app, dns_server, publish):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    services.run_check(domain)
    return mailboxes.add_mailbox(account, "Sales@example.org", "password1")


def test_login_gives_app_and_from(box, app):
    got, extra = access.admit_smtp_login("SALES@example.org", "password1", "127.0.0.1")
    assert got == app and extra.must_send_from == "sales@example.org" and extra.still_valid()
    mailboxes.edit_mailbox(box.domain.account, box.address, password="password2")
    assert not extra.still_valid()


@pytest.mark.parametrize("login,password", [("sales@example.org", "nope-nope"), ("ghost@example.org", "password1"),
                                            ("x" * 300 + "@example.org", "password1")])
def test_bad_logins_are_counted_failures(box, login, password):
    with pytest.raises(Refusal) as info:
        access.admit_smtp_login(login, password, "192.0.2.5")
    assert info.value.error == "invalid_credentials"
    assert LoginFailureCounter.objects.filter(key="192.0.2.5").get().count == 1


def test_disabled_mailbox_app_or_domain_cannot_log_in(box, app, dns_server):
    mailboxes.edit_mailbox(box.domain.account, box.address, enabled=False)
    with pytest.raises(Refusal):
        access.admit_smtp_login("sales@example.org", "password1", None)
    mailboxes.edit_mailbox(box.domain.account, box.address, enabled=True)
    App.objects.filter(pk=app.pk).update(enabled=False)
    with pytest.raises(Refusal) as info:
        access.admit_smtp_login("sales@example.org", "password1", None)
    assert info.value.error == "app_disabled"


def test_appid_logins_unchanged(app):
    secret = app.rotate_secret()
    app.save()
    got, extra = access.admit_smtp_login(str(app.pk), secret, None)
    assert got == app and extra is None


def test_default_app_and_no_app(account, box, app):
    assert box.app == app
    App.objects.filter(pk=app.pk).update(enabled=False)
    before = Mailbox.objects.count()
    with pytest.raises(services.DomainError) as info:
        mailboxes.add_mailbox(account, "other@example.org", "password1")
    assert info.value.code == "no_app" and Mailbox.objects.count() == before


@pytest.mark.parametrize("address", ["@example.org", "a..b@example.org", ".a@example.org", "a b@example.org",
                                     "a@bad_domain", "x" * 65 + "@example.org"])
def test_bad_addresses(address):
    with pytest.raises(services.DomainError) as info:
        mailboxes.normalize_mailbox(address)
    assert info.value.code == "mailbox_format_error"
