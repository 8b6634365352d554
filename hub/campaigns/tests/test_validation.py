"""Bad parameters are refused with a clear code and nothing written; another account's
templates and lists are "does not exist"; add-task is limited to 100 an hour."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hub.campaigns import services
from hub.campaigns.models import AddTaskCounter, Campaign, CampaignSettings, State
from hub.contacts import services as contacts
from hub.mailtemplates import services as templates
from hub.mailtemplates.models import Template

from .conftest import HTML


def refused(world, code: str, state: int = State.SCHEDULED, **fields) -> None:
    with pytest.raises(services.CampaignError) as exc:
        services.create_campaign(world.account, world.fields(**fields), state)
    assert exc.value.code == code, exc.value.message
    assert Campaign.objects.count() == 0
    assert AddTaskCounter.objects.count() == 0


def test_bad_parameters_are_refused_and_nothing_is_written(world, other):
    theirs = templates.create_template(other, name="x", subjects="s", html=HTML)
    their_list = contacts.create_list(other, "theirs")
    red = templates.create_template(world.account, name="red", subjects="s", html="<form></form>")
    Template.objects.filter(pk=red.pk).update(check_status=Template.CheckStatus.REFUSED, colour="red")
    refused(world, "invalid_template", template_ids=[])
    refused(world, "invalid_template", template_ids=[theirs.pk])
    refused(world, "invalid_template", template_ids=[999999])
    refused(world, "template_refused", template_ids=[red.pk])
    refused(world, "invalid_list", list_ids=[])
    refused(world, "invalid_list", list_ids=[their_list.pk])
    refused(world, "invalid_sender", send_account="nobody@example.com")
    refused(world, "invalid_sender", send_account="not an address")
    refused(world, "invalid_sender", send_account="all", send_domain="other.example")
    refused(world, "invalid_sender", send_account="all", send_domain="bad domain")
    refused(world, "invalid_replyto", send_replyto="nope")
    refused(world, "invalid_range", send_qty_start=0)
    refused(world, "invalid_range", send_qty_start=10, send_qty=5)
    refused(world, "invalid_speed", hour_speed=99)
    refused(world, "invalid_speed", hour_speed=75_001)
    refused(world, "invalid_track", track_status=3)
    refused(world, "invalid_track", track_domain="bad domain!")
    refused(world, "receipt_unavailable", is_need_receipt=True)
    for state in (State.DONE, State.STOPPED, State.ERROR, State.INGESTING):
        refused(world, "invalid_status", state=state)


def test_sender_rules(world):
    assert services.create_campaign(world.account, world.fields(send_account="all", send_domain="example.com")).app_ids
    assert services.create_campaign(world.account, world.fields(send_account="all", send_domain="all")).app_ids
    CampaignSettings.objects.create(account=world.account, read_receipts=True)
    assert services.create_campaign(world.account, world.fields(is_need_receipt=True)).is_need_receipt


def test_content_cannot_change_once_started(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    before = Campaign.objects.get(pk=campaign.pk).list_ids
    with pytest.raises(services.CampaignError) as exc:
        services.edit_campaign(world.account, campaign.pk, services.Fields(list_ids=[world.lists[0].pk]))
    assert exc.value.code == "task_started"
    assert Campaign.objects.get(pk=campaign.pk).list_ids == before
    # Speed and sender name may change while it runs.
    services.edit_campaign(world.account, campaign.pk, services.Fields(hour_speed=500, send_fullname="新名字"))
    assert Campaign.objects.get(pk=campaign.pk).hour_speed == 500


def test_other_accounts_campaign_is_not_found_everywhere(world, other):
    campaign = services.create_campaign(world.account, world.fields())
    for call in (lambda: services.get_campaign(other, campaign.pk),
                 lambda: services.edit_campaign(other, campaign.pk, services.Fields(name="x")),
                 lambda: services.delete_campaign(other, campaign.pk),
                 lambda: services.pause(other, campaign.pk), lambda: services.resume(other, campaign.pk),
                 lambda: services.cancel(other, campaign.pk)):
        with pytest.raises(services.CampaignError) as exc:
            call()
        assert exc.value.code == "not_exist" and exc.value.http_status == 404
    assert Campaign.objects.filter(pk=campaign.pk, name="").exists()


def test_add_task_is_limited_to_100_an_hour(world):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    AddTaskCounter.objects.create(account=world.account, hour=hour, count=99)
    services.create_campaign(world.account, world.fields())
    with pytest.raises(services.CampaignError) as exc:
        services.create_campaign(world.account, world.fields())
    assert (exc.value.code, exc.value.http_status) == ("too_many_requests", 429)
    assert Campaign.objects.count() == 1
    assert AddTaskCounter.objects.get().count == 100


def test_review_gates_sending(world, run_queue):
    CampaignSettings.objects.create(account=world.account, needs_review=True)
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    assert (campaign.verify_status, campaign.state, campaign.run_token) == (0, State.WAITING, "")
    rejected = services.review(campaign.pk, approve=False, operator="op")
    assert (rejected.verify_status, rejected.state) == (2, State.WAITING)
    services.edit_campaign(world.account, campaign.pk, services.Fields(template_ids=[world.templates[0].pk]))
    assert Campaign.objects.get(pk=campaign.pk).verify_status == 0  # back to review after a change
    approved = services.review(campaign.pk, approve=True, operator="op")
    assert (approved.verify_status, approved.state) == (1, State.SENDING)


def test_delete(world):
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    with pytest.raises(services.CampaignError) as exc:
        services.delete_campaign(world.account, campaign.pk)
    assert exc.value.code == "task_running"
    services.pause(world.account, campaign.pk)
    services.delete_campaign(world.account, campaign.pk)
    assert not Campaign.objects.exists()
