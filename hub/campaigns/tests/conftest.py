"""Fixtures of the campaign tests: an account with an app whose SMTP server is an in-process
sink, two overlapping lists (with an unsubscribed and a suppressed contact), two checked
templates, and a short dispatcher run so the in-process queue runner (`run_queue`) turns."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hub.campaigns import render, services
from hub.campaigns.models import Campaign
from hub.contacts import services as contacts
from hub.contacts.models import Contact, MailList
from hub.mailtemplates import services as templates
from hub.mailtemplates.check import run_check
from hub.mailtemplates.models import Template
from hub.models import Account, Suppression

HTML = ('<html><body><h1>你好 {{fullname|朋友}}</h1><p>' + "本月新品上架，欢迎选购。" * 40 +
        '</p><p><a href="https://shop.example.com/">商店</a> · <a href="{{webview_url}}">在浏览器中查看</a> · '
        '<a href="{{unsubscribe_url}}">退订</a></p></body></html>')


@pytest.fixture(autouse=True)
def _fast_dispatcher(settings):
    settings.HUB_CAMPAIGN_RUN_SECONDS = 0.3
    settings.HUB_CAMPAIGN_POLL_SECONDS = 0.01
    settings.HUB_CAMPAIGN_TOPUP_SECONDS = 0
    settings.HUB_PUBLIC_URL = "https://mail.example.com"
    settings.HUB_DRAIN_GATHER_MS = 0
    render.clear_caches()  # ids are reused between tests


@pytest.fixture
def run_queue(run_queue, django_capture_on_commit_callbacks):
    """The root run_queue, plus what runs after a commit in production (the top-ups that the
    rows' outcomes schedule, topup.py): the test's own transaction never commits, so the
    callbacks are captured and run after each round, as often as they queue more work."""

    def run() -> int:
        total = 0
        while True:
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                n = run_queue()
            total += n
            if not n and not callbacks:
                return total

    return run


def checked(template: Template) -> Template:
    template.refresh_from_db()
    run_check(template.pk, template.revision)
    template.refresh_from_db()
    assert template.check_status == Template.CheckStatus.PASSED, template.findings
    return template


@dataclass
class World:
    account: Account
    app: object
    sink: object
    lists: list[MailList]
    templates: list[Template]

    def fields(self, **overrides) -> services.Fields:
        values = {"template_ids": [t.pk for t in self.templates], "list_ids": [m.pk for m in self.lists],
                  "send_account": "news@example.com", "send_fullname": "Acme 商城"}
        values.update(overrides)
        return services.Fields(**values)


def add(account, mail_list, emails, **fields) -> list[Contact]:
    return [contacts.add_contact(account, mail_list.pk, e, **fields) for e in emails]




@pytest.fixture
def world(account, smtp_sink, make_server, make_app) -> World:
    server = make_server(smtp_sink, from_email="news@example.com")
    app = make_app(server, account=account).app
    a = contacts.create_list(account, "A")
    b = contacts.create_list(account, "B")
    # A: a1..a6; a4 unsubscribed. B: b1..b4 plus a2 and a3 (overlap), a3 suppressed.
    add(account, a, [f"a{i}@x.example" for i in range(1, 7)])
    Contact.objects.filter(email="a4@x.example").update(subscribed=False)
    add(account, b, [f"b{i}@y.example" for i in range(1, 5)] + ["a2@x.example", "a3@x.example"])
    Suppression.objects.create(app=app, email="a3@x.example", reason="hard bounce")
    t1 = checked(templates.create_template(account, name="T1", subjects="你好 {{fullname|朋友}}|十一月新品",
                                           html=HTML))
    t2 = checked(templates.create_template(account, name="T2", subjects="第二封", html=HTML.replace("h1", "h2")))
    return World(account, app, smtp_sink, [a, b], [t1, t2])


def run_until(run_queue, campaign: Campaign, states: tuple[int, ...], rounds: int = 200) -> Campaign:
    for _ in range(rounds):
        run_queue()
        campaign.refresh_from_db()
        if campaign.state in states:
            return campaign
    raise AssertionError(f"campaign stuck in state {campaign.state}")
