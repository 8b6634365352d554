"""The domains pages of the admin: DNS status and records, check and rotation actions,
keys (public halves only), mailboxes (hashed passwords); no private key on any page; the
nav section; the domains_dkim command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hub.domains import services
from hub.domains.models import DkimKey, Domain, Mailbox
from hub.models import App
from hub.tests.test_admin_support import body


@pytest.fixture
def verified(account, dns_server, publish):
    domain = services.add_domain(account, "example.org")
    publish(domain)
    return services.run_check(domain)


def private_fragments(domain) -> list[str]:
    out = []
    for key in domain.keys.all():
        text = key.get_private_key()
        out.append(text.splitlines()[1] if "BEGIN" in text else text)
    return out


def test_pages_show_status_and_records_never_private_keys(su, verified):
    pages = [body(su.get(url)) for url in (
        "/admin/domains/domain/", f"/admin/domains/domain/{verified.pk}/change/", "/admin/domains/dkimkey/",
        *(f"/admin/domains/dkimkey/{k.pk}/change/" for k in verified.keys.all()), "/admin/")]
    assert "example.org" in pages[0] and "Verified" in pages[0]
    rsa = verified.keys.get(algorithm=DkimKey.Algorithm.RSA)
    assert "hub._domainkey.example.org" in pages[1] and rsa.public_key in pages[1]
    assert "include:spf.hub.test" in pages[1]
    for page in pages:
        assert "PRIVATE KEY" not in page and "private_key_encrypted" not in page
        assert rsa.private_key_encrypted not in page
        for fragment in private_fragments(verified):
            assert fragment not in page
    assert "Sending domains" in pages[-1] and "Mailboxes" in pages[-1]  # the nav section


def test_add_domain_in_admin_makes_keys(su, account, dns_server):
    r = su.post("/admin/domains/domain/add/", {"account": account.pk, "name": "New.Example"})
    assert r.status_code == 302, body(r)[:2000]
    domain = Domain.objects.get(name="new.example")
    assert domain.keys.count() == 2 and domain.checked_at is not None
    before = Domain.objects.count()
    r = su.post("/admin/domains/domain/add/", {"account": account.pk, "name": "new.EXAMPLE."})
    assert r.status_code == 200 and "already registered" in body(r) and Domain.objects.count() == before


def test_check_and_rotation_actions(su, verified, dns_server, publish):
    url = "/admin/domains/domain/"
    dns_server.set("example.org", "MX")
    su.post(url, {"action": "check_now", "_selected_action": [verified.pk]})
    verified.refresh_from_db()
    assert verified.status == Domain.Status.BROKEN
    su.post(url, {"action": "rotate_keys", "_selected_action": [verified.pk]})
    assert verified.keys.filter(state=DkimKey.State.NEXT).count() == 2
    page = body(su.get(f"/admin/domains/domain/{verified.pk}/change/"))
    assert page.count("_domainkey.example.org") >= 4  # active and next published during the switch
    r = su.post(url, {"action": "activate_next_keys", "_selected_action": [verified.pk]}, follow=True)
    assert "publish these records first" in body(r)
    assert verified.keys.filter(state=DkimKey.State.NEXT).count() == 2
    publish(verified, spf=False, mx=False, states=("next",))
    su.post(url, {"action": "activate_next_keys", "_selected_action": [verified.pk]})
    assert verified.keys.filter(state=DkimKey.State.ACTIVE).count() == 2
    assert verified.keys.filter(state=DkimKey.State.RETIRED).count() == 2


def test_mailbox_admin_hashes_the_password(su, verified, account):
    app = App(name="a", account=account)
    app.rotate_secret()
    app.save()
    r = su.post("/admin/domains/mailbox/add/", {"domain": verified.pk, "local_part": "Info", "password": "password1",
                                                "app": app.pk, "enabled": "on"})
    assert r.status_code == 302, body(r)[:3000]
    box = Mailbox.objects.get(address="info@example.org")
    assert box.check_password("password1") and "password1" not in box.password_hash
    page = body(su.get(f"/admin/domains/mailbox/{box.pk}/change/"))
    assert box.password_hash not in page
    # An app of another account is refused, nothing written.
    from hub.models import Account

    foreign = App(name="f", account=Account.objects.create(name="foreign"))
    foreign.rotate_secret()
    foreign.save()
    r = su.post("/admin/domains/mailbox/add/", {"domain": verified.pk, "local_part": "x", "password": "password1",
                                                "app": foreign.pk, "enabled": "on"})
    assert r.status_code == 200 and not Mailbox.objects.filter(address="x@example.org").exists()


def test_command_prints_records_and_rotates(verified, dns_server, publish):
    out = StringIO()
    call_command("domains_dkim", "records", "Example.org", stdout=out)
    text = out.getvalue()
    assert "hub._domainkey.example.org" in text and "PRIVATE" not in text
    call_command("domains_dkim", "rotate", "example.org", stdout=StringIO())
    with pytest.raises(CommandError, match="next_key_not_published"):
        call_command("domains_dkim", "activate", "example.org", stdout=StringIO())
    call_command("domains_dkim", "activate", "example.org", "--force", stdout=StringIO())
    assert verified.keys.filter(state=DkimKey.State.RETIRED).count() == 2
    with pytest.raises(CommandError, match="no domain"):
        call_command("domains_dkim", "check", "nothing.example", stdout=StringIO())
