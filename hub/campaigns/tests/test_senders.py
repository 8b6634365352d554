"""Verified sending domains and mailboxes (hub.domains) as campaign senders: the From is the
mailbox (the envelope sender stays the delivering server's), DKIM-signed with the domain's
key, which dkimpy verifies against the record published on the test DNS server; a domain
that is not verified (or another account's) is refused as invalid_sender, nothing written."""

from __future__ import annotations

import dkim
import pytest

from hub.campaigns import services
from hub.campaigns.models import AddTaskCounter, Campaign, State
from hub.domains import mailboxes, signer
from hub.domains import services as domains
from hub.domains.models import Domain

from .conftest import run_until


@pytest.fixture
def brand(world, dns_server, settings):
    """brand.example verified for the world's account, its records on the test DNS server,
    with the mailbox news@brand.example sending through the world's app."""
    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST, settings.HUB_DKIM_SELECTOR = "spf.hub.test", "mx.hub.test", "hub"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    signer.clear_cache()
    domain = domains.add_domain(world.account, "brand.example")
    dns_server.add("brand.example", "TXT", "v=spf1 include:spf.hub.test -all")
    dns_server.add("brand.example", "MX", "10 mx.hub.test")
    for key in domain.keys.filter(state="active"):
        dns_server.add(key.dns_name, "TXT", key.record)
    domain = domains.run_check(domain)
    assert domain.status == Domain.Status.VERIFIED
    mailboxes.add_mailbox(world.account, "news@brand.example", "a-long-password-1", app=world.app)
    yield domain
    signer.clear_cache()


def refused(world, **fields) -> None:
    with pytest.raises(services.CampaignError) as exc:
        services.create_campaign(world.account, world.fields(**fields), State.SENDING)
    assert exc.value.code == "invalid_sender", exc.value.message
    assert Campaign.objects.count() == 0 and AddTaskCounter.objects.count() == 0


def test_mailbox_sender_is_the_from_and_dkim_verifies(world, brand, run_queue, dns_server):
    campaign = services.create_campaign(world.account, world.fields(send_account="News@Brand.example", send_qty=2),
                                        State.SENDING)
    assert campaign.senders == [[world.app.pk, "news@brand.example"]]
    run_until(run_queue, campaign, (State.DONE,))
    assert len(world.sink.messages) == 2
    for received in world.sink.messages:
        msg = received.message
        assert msg["From"].addresses[0].addr_spec == "news@brand.example"
        assert msg["From"].addresses[0].display_name == "Acme 商城"
        assert received.mail_from == "news@example.com"  # the envelope: the server's sender
        sig = dict(dkim.util.parse_tag_value(dkim.DKIM(received.content).headers[0][1]))
        assert (sig[b"d"], sig[b"s"]) == (b"brand.example", b"hub")
        assert dkim.verify(received.content, dnsfunc=dns_server.dkim_dnsfunc)
        # A real check: a changed From no longer verifies.
        assert not dkim.verify(received.content.replace(b"news@brand.example", b"news@brand.examplf", 1),
                               dnsfunc=dns_server.dkim_dnsfunc)


def test_domain_and_all_include_mailboxes_and_rows_alternate(world, brand, run_queue):
    campaign = services.create_campaign(world.account, world.fields(send_account="all", send_domain="brand.example",
                                                                    send_qty=2), State.SENDING)
    assert campaign.senders == [[world.app.pk, "news@brand.example"]]
    services.cancel(world.account, campaign.pk)
    every = services.create_campaign(world.account, world.fields(send_account="all", send_domain="all"),
                                     State.SENDING)
    # The server's sender (From = whatever server delivers) and the mailbox, round-robin.
    assert every.senders == [[world.app.pk, ""], [world.app.pk, "news@brand.example"]]
    every = run_until(run_queue, every, (State.DONE,))
    froms = sorted(m.message["From"].addresses[0].addr_spec for m in world.sink.messages)
    assert froms == ["news@brand.example"] * 4 + ["news@example.com"] * 4  # 8 recipients


def test_any_address_of_a_verified_domain_without_a_mailbox(world, brand, run_queue):
    campaign = services.create_campaign(world.account, world.fields(send_account="promo@brand.example", send_qty=1),
                                        State.SENDING)
    assert campaign.senders == [[world.app.pk, "promo@brand.example"]]
    run_until(run_queue, campaign, (State.DONE,))
    (received,) = world.sink.messages
    assert received.message["From"].addresses[0].addr_spec == "promo@brand.example"


def test_unverified_other_accounts_and_disabled_senders_are_refused(world, brand, other, dns_server):
    domains.add_domain(world.account, "pending.example")  # no records: stays pending
    domains.add_domain(other, "theirs.example")
    Domain.objects.filter(name="theirs.example").update(status=Domain.Status.VERIFIED)
    refused(world, send_account="news@pending.example")
    refused(world, send_account="all", send_domain="pending.example")
    refused(world, send_account="news@theirs.example")
    refused(world, send_account="all", send_domain="theirs.example")
    mailboxes.edit_mailbox(world.account, "news@brand.example", enabled=False)
    refused(world, send_account="news@brand.example")
    refused(world, send_account="all", send_domain="brand.example")
    # A domain whose verification lapsed (deleted and re-added: pending) is no sender either.
    Domain.objects.filter(name="brand.example").update(status=Domain.Status.PENDING)
    refused(world, send_account="promo@brand.example")
