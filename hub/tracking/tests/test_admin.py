"""The tracking pages of the admin: the opens-and-clicks report and the tracking domains."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from hub.tracking import instrument, process
from hub.tracking.models import CampaignTrack, Hit, TrackDomain

from .conftest import make_tracked
from .test_classify import CHROME, GMAIL_PROXY


def test_report_shows_people_and_machines_apart(su, account):
    tracked = make_tracked(account, n=3, sent_ago=7200)
    table = instrument.table_for(tracked.campaign.pk, tracked.template)
    link = table.static["https://shop.example.com/b"]
    at = timezone.now() - timedelta(minutes=20)
    rows, c = tracked.rows, tracked.campaign.pk
    Hit.objects.create(kind="o", campaign_id=c, log_id=rows[0].pk, at=at, ip="114.114.114.114", user_agent=CHROME)
    Hit.objects.create(kind="c", campaign_id=c, log_id=rows[0].pk, link_id=link, at=at, ip="114.114.114.114",
                       user_agent=CHROME)
    Hit.objects.create(kind="o", campaign_id=c, log_id=rows[1].pk, at=at, ip="66.249.84.1", user_agent=GMAIL_PROXY)
    process.process()
    track = CampaignTrack.objects.get(campaign=tracked.campaign)
    listing = su.get("/admin/tracking/campaigntrack/")
    assert listing.status_code == 200 and str(tracked.campaign) in listing.content.decode()
    page = su.get(f"/admin/tracking/campaigntrack/{track.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="human-opens">1<' in html and 'id="machine-opens">1<' in html and 'id="human-clicks">1<' in html
    assert "<svg" in html and "https://shop.example.com/b" in html and "gmail_proxy" in html and "Chrome" in html
    assert "中国" in html  # the location of 114.114.114.114
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere
    assert su.get("/admin/tracking/campaigntrack/999999/change/").status_code == 302


def test_domain_added_only_with_the_right_cname(su, account, dns_server, settings):
    settings.HUB_TRACK_CNAME_TARGET = "count.hub.test"
    dns_server.add("t.acme.example", "CNAME", "count.hub.test")
    response = su.post("/admin/tracking/trackdomain/add/", {"account": account.pk, "domain": "wrong.acme.example"})
    assert response.status_code == 200 and "count.hub.test" in response.content.decode()
    assert TrackDomain.objects.count() == 0
    response = su.post("/admin/tracking/trackdomain/add/", {"account": account.pk, "domain": "t.acme.example",
                                                           "is_default": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    domain = TrackDomain.objects.get()
    assert (domain.domain, domain.is_default, domain.is_cname) == ("t.acme.example", True, True)
    dns_server.set("t.acme.example", "CNAME", "elsewhere.example")
    su.post("/admin/tracking/trackdomain/", {"action": "check_now", "_selected_action": [domain.pk]})
    domain.refresh_from_db()
    assert domain.is_cname is False
    assert "Tracking domains" in su.get("/admin/").content.decode()
