"""The campaign pages of the admin: list, add (through the services' rules), the change page
with progress, pause / resume / cancel, approve / reject, and the settings page."""

from __future__ import annotations

from django.utils import timezone

from hub.campaigns import services
from hub.campaigns.models import Campaign, CampaignSettings, State
from hub.tests.test_admin_support import body

from .conftest import run_until

URL = "/admin/campaigns/campaign/"


def form(world, **overrides) -> dict:
    data = {"account": world.account.pk, "name": "十一月", "templates_input": ",".join(str(t.pk) for t in world.templates),
            "lists_input": ",".join(str(m.pk) for m in world.lists), "send_domain": "all",
            "send_account": "news@example.com", "send_fullname": "Acme", "send_replyto": "", "send_qty_start": 1,
            "send_qty": 0, "send_time_0": timezone.localtime().strftime("%Y-%m-%d"),
            "send_time_1": timezone.localtime().strftime("%H:%M:%S"), "hour_speed": 0, "subs_link": "on",
            "track_status": 0, "track_domain": "", "start": State.ON_HOLD}
    data.update(overrides)
    return data


def test_add_then_start_pause_resume_cancel(su, world, run_queue):
    page = body(su.get(URL))
    assert "/admin/campaigns/campaignsettings/" in page  # sidebar
    assert su.get(f"{URL}add/").status_code == 200
    response = su.post(f"{URL}add/", form(world))
    assert response.status_code == 302, body(response)[-3000:]
    campaign = Campaign.objects.get()
    assert campaign.state == State.ON_HOLD and campaign.send_fullname == "Acme"
    page = body(su.get(f"{URL}{campaign.pk}/change/"))
    assert "sent / contacts" in page and "十一月" in page
    assert su.get(f"{URL}{campaign.pk}/resume/").status_code == 200  # the confirmation page
    su.post(f"{URL}{campaign.pk}/resume/")
    campaign.refresh_from_db()
    assert campaign.state == State.SENDING
    su.post(f"{URL}{campaign.pk}/pause/")
    campaign.refresh_from_db()
    assert campaign.state == State.PAUSED
    su.post(f"{URL}{campaign.pk}/resume/")
    campaign = run_until(run_queue, campaign, (State.DONE,))
    page = body(su.get(f"{URL}{campaign.pk}/change/"))
    assert "8 / 12" in page  # sent / contacts
    su.post(f"{URL}{campaign.pk}/cancel/")  # not possible any more
    campaign.refresh_from_db()
    assert campaign.state == State.DONE


def test_bad_input_is_shown_and_nothing_saved(su, world):
    response = su.post(f"{URL}add/", form(world, hour_speed=5, templates_input="999999"))
    assert response.status_code == 200 and not Campaign.objects.exists()


def test_operator_review(su, world):
    CampaignSettings.objects.create(account=world.account, needs_review=True)
    campaign = services.create_campaign(world.account, world.fields(), State.SENDING)
    assert campaign.state == State.WAITING
    su.post(f"{URL}{campaign.pk}/approve/")
    campaign.refresh_from_db()
    assert (campaign.verify_status, campaign.state) == (1, State.SENDING)
    assert su.get("/admin/campaigns/campaignsettings/").status_code == 200


def test_a_campaign_row_is_not_resent_from_the_send_log(world):
    import pytest

    from hub.admin.logs import resend
    from hub.campaigns import dispatch
    from hub.models import SendLog
    from hub.refusals import Refusal

    campaign = services.create_campaign(world.account, world.fields(send_qty=1), State.SENDING)
    dispatch.run(campaign.pk, campaign.run_token, budget=0.1)
    row = SendLog.objects.get(campaign_id=campaign.pk)
    with pytest.raises(Refusal):
        resend(row)
    assert SendLog.objects.count() == 1
