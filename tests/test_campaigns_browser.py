"""A campaign created and started in the back office, in a real browser (headless Chromium,
as tests/test_browser.py), delivered by a real qcluster worker to an in-process SMTP sink:
log in, fill the add form (templates, lists, sender, start now), save, and watch the
progress on the campaign's page reach every recipient."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from hub.campaigns.models import Campaign, State
from hub.contacts import services as contacts
from hub.mailtemplates import services as templates
from hub.mailtemplates.check import run_check
from hub.models import Account
from tests.faults import Clusters

from .test_browser import CHROMEDRIVER, CHROMIUM, click, fill, select, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver"),
]
HTML = '<p>你好 {{fullname|朋友}}</p>' + "<p>本月新品上架，欢迎选购。</p>" * 30 + '<a href="{{unsubscribe_url}}">退订</a>'


@pytest.fixture
def worker(live_server, transactional_db, tmp_path):
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    clusters = Clusters(tmp_path)
    clusters.start(workers=2, env={"HUB_CAMPAIGN_RUN_SECONDS": "5", "HUB_CAMPAIGN_POLL_SECONDS": "0.05"})
    try:
        yield clusters
    finally:
        clusters.stop_all()


def test_create_and_start_a_campaign_in_the_admin(live_server, browser, worker, smtp_sink, make_server, make_app):
    account = Account.objects.create(name="acme")
    make_app(make_server(smtp_sink, from_email="news@example.com"), account=account)
    mail_list = contacts.create_list(account, "浏览器客户")
    for i in range(5):
        contacts.add_contact(account, mail_list.pk, f"reader{i}@example.com", fullname=f"读者{i}")
    t = templates.create_template(account, name="月刊", subjects="你好 {{fullname|朋友}}", html=HTML)
    run_check(t.pk, t.revision)
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    base, d = live_server.url, browser

    d.get(f"{base}/admin/login/")
    fill(d, "username", "admin")
    fill(d, "password", "a-long-test-password")
    click(d, "button[type=submit]")
    wait_for(d, "#hub-dashboard")

    d.get(f"{base}/admin/campaigns/campaign/add/")
    wait_for(d, "input[name=templates_input]")
    fill(d, "account", str(account.pk))
    fill(d, "name", "浏览器活动")
    fill(d, "templates_input", str(t.pk))
    fill(d, "lists_input", str(mail_list.pk))
    fill(d, "send_account", "news@example.com")
    fill(d, "send_fullname", "Acme 商城")
    select(d, "start", str(State.SENDING))
    click(d, "button[name=_continue]")

    wait_for(d, "a[href$='/pause/']")
    campaign = Campaign.objects.get()
    assert campaign.name == "浏览器活动" and campaign.time_start is not None
    deadline = time.monotonic() + 60
    while Campaign.objects.get(pk=campaign.pk).state != State.DONE:
        worker.check_alive()
        assert time.monotonic() < deadline, worker.logs()
        time.sleep(0.3)
    d.get(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page = wait_for(d, "body").text
    assert "5 / 5" in page  # sent / contacts
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [f"reader{i}@example.com" for i in range(5)]
    assert {str(m.message["Subject"]) for m in smtp_sink.messages} == {f"你好 读者{i}" for i in range(5)}
