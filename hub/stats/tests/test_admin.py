"""The back office: the campaign report page (SVG chart, failure types, per template and
subject, the tracking spot), its downloads (CSV, XLSX read back with openpyxl, failures CSV),
the results on the campaign's own page with the link to the report, the dashboard's
campaign figures; and who may see them."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from hub.campaigns.models import Campaign, State
from hub.models import SendLog

from .factory import record
from .world import build


@pytest.fixture
def campaigns(account, other, make_app):
    return build(account, make_app(account=account).app, other, make_app(account=other).app)


def test_report_page_with_charts(su, campaigns):
    c, _other = campaigns
    response = su.get(reverse("admin:stats_campaign_report", args=[c.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for marker in ('id="hub-report-sent"', 'id="hub-report-hours"', 'id="hub-report-types"', 'id="hub-report-parts"',
                   'id="hub-report-tracking"', 'id="hub-report-downloads"'):
        assert marker in html
    # The hourly chart is an SVG that parses, one group (bar) per hour with outcomes: 10:00 and 11:00.
    svg = html[html.index("<svg"):html.index("</svg>") + 6]
    root = ET.fromstring(svg)
    bars = root.findall("{http://www.w3.org/2000/svg}g")
    assert len(bars) == 2 and "✓ 2" in bars[0].findtext("{http://www.w3.org/2000/svg}title")
    assert "Address does not exist" in html and "Invalid address" in html  # failure types
    assert "双十一 · A" in html and "双十一 · B" in html
    assert "href" not in svg and "<script" not in svg  # drawn here: nothing fetched
    assert su.get(reverse("admin:stats_campaign_report", args=[999999])).status_code == 404


def test_report_downloads(su, campaigns):
    c, _other = campaigns
    url = "admin:stats_campaign_report_export"
    response = su.get(reverse(url, args=[c.pk, "csv"]))
    assert response["Content-Disposition"] == f'attachment; filename="campaign-{c.pk}.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["Totals"] and rows[2][:2] == ["2", "3"]
    book = load_workbook(io.BytesIO(su.get(reverse(url, args=[c.pk, "xlsx"])).content), read_only=True)
    assert book.sheetnames == ["Totals", "Per hour", "Per template", "Per subject", "Failed recipients"]
    totals = list(book["Totals"].iter_rows(values_only=True))
    assert totals[1][:2] == (2, 3)
    failed = list(book["Failed recipients"].iter_rows(values_only=True))
    assert sorted(r[0] for r in failed[1:]) == ["dup@x.example", "f1@x.example", "f2@x.example"]
    streamed = b"".join(su.get(reverse(url, args=[c.pk, "failures.csv"])).streaming_content).decode("utf-8-sig")
    assert sorted(r[0] for r in list(csv.reader(io.StringIO(streamed)))[1:]) == [
        "dup@x.example", "f1@x.example", "f2@x.example"]
    assert su.get(reverse(url, args=[c.pk, "pdf"])).status_code == 404


def test_campaign_page_shows_sent_and_failed_per_template_and_subject(su, campaigns):
    c, _other = campaigns
    html = su.get(reverse("admin:campaigns_campaign_change", args=[c.pk])).content.decode()
    assert 'id="hub-campaign-results"' in html and reverse("admin:stats_campaign_report", args=[c.pk]) in html
    table = html[html.index('id="hub-campaign-results"'):]
    table = table[:table.index("</table>")]
    assert "双十一 · A" in table and "66.7%" in table  # subject A: 1 sent, 2 failed


def test_dashboard_campaign_figures(su, campaigns, account, make_app):
    c, _other = campaigns
    app = make_app(account=account).app
    record(app, "today@x.example", SendLog.Status.SENT, timezone.now(), campaign_id=c.pk, template_id=0)
    Campaign.objects.filter(pk=c.pk).update(state=State.SENDING)
    html = su.get(reverse("admin:index")).content.decode()
    assert 'id="hub-dashboard-campaigns"' in html
    assert 'id="hub-campaign-sent-today" class="text-green-700 dark:text-green-400">1<' in html
    assert 'id="hub-campaigns-running">1<' in html
    assert reverse("admin:stats_campaign_report", args=[c.pk]) in html


def test_staff_without_campaign_permission_sees_no_report(staff_factory, campaigns):
    c, _other = campaigns
    client = staff_factory("hub.view_sendlog")
    assert client.get(reverse("admin:stats_campaign_report", args=[c.pk])).status_code == 403
    assert client.get(reverse("admin:stats_campaign_report_export", args=[c.pk, "csv"])).status_code == 403
    assert 'id="hub-dashboard-campaigns"' not in client.get(reverse("admin:index")).content.decode()


def test_failed_recipients_list(su, campaigns):
    response = su.get(reverse("admin:stats_failure_changelist"))
    assert response.status_code == 200 and "conn@x.example" in response.content.decode()


def test_report_shows_the_campaigns_opens_and_clicks(su, campaigns):
    """The tracking app's counters, people and machines apart, with a link to its report."""
    from hub.tracking.models import CampaignTrack

    campaign, _other = campaigns
    campaign.track_status = 2
    campaign.save(update_fields=["track_status"])
    track = CampaignTrack.objects.create(campaign=campaign, account=campaign.account, open_unique=7,
                                         machine_open_unique=3, click_unique=2)
    text = su.get(reverse("admin:stats_campaign_report", args=[campaign.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Opened by 7 people" in text and "opened only by machines (privacy proxies, scanners): 3" in text
    assert "Clicked by 2 people" in text
    assert f"/admin/tracking/campaigntrack/{track.pk}/change/" in text
