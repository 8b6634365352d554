"""Campaigns honour the account's suppression list whatever put an address on it (a
complaint or bounce report from any app, an unsubscribe event, an administrator), and a
campaign row whose recipient complained after dispatch is dropped at claim time."""

from __future__ import annotations

from django.utils import timezone

from hub import events
from hub.campaigns import dispatch, services
from hub.campaigns.models import State
from hub.campaigns.tests.conftest import _fast_dispatcher, run_until, world  # noqa: F401  (fixtures)
from hub.inbound import process
from hub.models import FailureType, SendLog, Suppression

from .conftest import sample


def test_campaign_skips_addresses_suppressed_for_the_account(world, run_queue):  # noqa: F811
    # a5: an unsubscribe told by hub.events; b1: an administrator's entry (no app).
    events.emit(events.Event(kind=events.Kind.UNSUBSCRIBED, email="a5@x.example", at=timezone.now(),
                             account_id=world.account.id))
    Suppression.objects.create(account=world.account, email="b1@y.example", cause="manual")
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    campaign = run_until(run_queue, campaign, (State.DONE,))
    received = sorted(m.rcpt_tos[0] for m in world.sink.messages)
    assert "a5@x.example" not in received and "b1@y.example" not in received and "a3@x.example" not in received
    assert campaign.skipped["suppressed"] == 3


def test_complaint_after_dispatch_drops_the_queued_row(world, run_queue):  # noqa: F811
    campaign = services.create_campaign(world.account, world.fields(send_qty=2), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.2)  # rows written, not yet delivered
    queued = SendLog.objects.get(campaign_id=campaign.pk, to="a2@x.example")
    # An earlier message to a2 (another app of the account) draws a complaint now.
    earlier = SendLog.objects.create(app=world.app, to="a2@x.example", subject="s", html_body="x",
                                     status=SendLog.Status.SENT, message_id="<earlier@example.org>")
    process.process(sample("arf-yahoo.eml", earlier), verp_log_id=earlier.id)

    run_until(run_queue, campaign, (State.DONE,))

    queued.refresh_from_db()
    assert (queued.status, queued.failure_type) == (SendLog.Status.FAILED, FailureType.COMPLAINT)
    assert [m.rcpt_tos[0] for m in world.sink.messages] == ["a1@x.example"]


def test_a_signed_unsubscribe_link_suppresses_campaign_mail_for_the_account(client, account):
    """End to end: the contact's own link (hub.contacts emits `unsubscribed`, this app's
    receiver applies the account's policy); transactional mail to the address still goes."""
    from hub.contacts import services as contacts
    from hub.models import Suppression

    mail_list = contacts.create_list(account, "读者", "")
    contact = contacts.add_contact(account, mail_list.pk, "Reader@Example.com")
    assert client.post(contacts.unsubscribe_url(contact), {"confirm": "1"}).status_code == 200
    entry = Suppression.objects.get(account=account)
    assert (entry.email, entry.cause, entry.bulk_only) == ("reader@example.com", "unsubscribe", True)


def test_the_imap_poll_is_scheduled(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="inbound-imap-poll")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("hub.inbound.tasks.poll_mailboxes", "I", 5)
