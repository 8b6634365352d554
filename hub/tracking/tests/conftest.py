"""Fixtures of the tracking tests: a tracked campaign of the `account` fixture with a
template of four links and N sent outbox rows, made directly (no dispatcher, no delivery:
the whole-campaign path is test_delivery.py's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from hub import events
from hub.campaigns import render as campaign_render
from hub.campaigns.models import Campaign
from hub.mailtemplates import services as templates
from hub.models import App, SendLog
from hub.tracking import hits, instrument

HTML = ('<html><body><p>你好 {{fullname|朋友}}</p>'
        '<a href="https://shop.example.com/a?x=1&amp;y=2">A</a> <a class="b" href=\'https://shop.example.com/b\'>B</a>'
        '<a href="https://shop.example.com/u?e={{email}}">personal</a>'
        '<a href="https://shop.example.com/a?x=1&amp;y=2">A again</a>'
        '<a href="mailto:sales@example.com">mail</a> <a href="tel:+8610123">tel</a> <a href="#top">top</a>'
        '<a href="/relative">rel</a> <a href="{{webview_url}}">view</a> <a href="{{unsubscribe_url}}">退订</a>'
        '<a href="http://plain.example.org/">C</a></body></html>')


@pytest.fixture(autouse=True)
def _tracking_settings(settings):
    settings.HUB_PUBLIC_URL = "https://mail.example.com"
    settings.HUB_TRACK_DEFAULT_DOMAIN = ""
    settings.HUB_TRACK_WAKE_SECONDS = 3600.0
    instrument.clear_caches()
    hits.clear_caches()
    hits.reset_wake()
    campaign_render.clear_caches()


@dataclass
class Tracked:
    campaign: Campaign
    template: object
    app: App
    rows: list[SendLog]


def make_app(account) -> App:
    app = App(name=f"{account.name} app", account=account)
    app.rotate_secret()
    app.save()
    return app


def make_tracked(account, n: int = 5, track_status: int = 2, sent_ago: float = 3600.0, sn: str = "") -> Tracked:
    template = templates.create_template(account, name="T", subjects="主题", html=HTML)
    campaign = Campaign.objects.create(account=account, template_ids=[template.pk], list_ids=[],
                                       track_status=track_status, sn=sn or f"20261130000000-{account.pk}-1",
                                       state=3, queued=n)
    app = make_app(account)
    sent_at = timezone.now() - timedelta(seconds=sent_ago)
    rows = [SendLog.objects.create(app=app, to=f"r{i}@x.example", subject="s", campaign_id=campaign.pk,
                                   contact_id=1000 + i, priority=1, status=SendLog.Status.SENT, sent_at=sent_at)
            for i in range(n)]
    for row in rows:  # as the delivery engine tells its outcomes (the statistics counters hear it)
        events.emit(events.Event(kind=events.Kind.SENT, email=row.to, at=sent_at, app_id=app.pk,
                                 account_id=account.pk, log_id=row.pk, campaign_id=campaign.pk,
                                 contact_id=row.contact_id, data={"smtp_code": 250}))
    return Tracked(campaign, template, app, rows)


@pytest.fixture
def tracked(account) -> Tracked:
    return make_tracked(account)
