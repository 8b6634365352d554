"""Link rewriting and the pixel (hub.tracking.instrument), called by the campaign renderer."""

from __future__ import annotations

import html as html_lib
import re
import time

from django.urls import resolve

from hub.mailtemplates.personalize import render
from hub.tracking import instrument, tokens
from hub.tracking.models import Link, TrackDomain

from .conftest import HTML, make_tracked

HREF = re.compile(r'href="([^"]*)"')


def rendered(tracked, row, email="r0@x.example"):
    html = render(tracked.template, {"email": email}, {"unsubscribe_url": "https://mail.example.com/unsubscribe/tok/",
                                                      "webview_url": "https://mail.example.com/view/tok/"}).html
    return instrument.instrument(html, row, tracked.campaign, tracked.template)


def test_link_table_holds_http_links_once_and_skips_the_rest():
    assert instrument.source_links(HTML) == [
        ("https://shop.example.com/a?x=1&amp;y=2", False), ("https://shop.example.com/b", False),
        ("https://shop.example.com/u?e={{email}}", True), ("http://plain.example.org/", False)]


def test_links_rewritten_and_pixel_added(account):
    tracked = make_tracked(account, n=1)
    row = tracked.rows[0]
    out = rendered(tracked, row)
    links = {link.url: link for link in Link.objects.filter(campaign=tracked.campaign)}
    assert set(links) == {"https://shop.example.com/a?x=1&y=2", "https://shop.example.com/b",
                          "https://shop.example.com/u?e={{email}}", "http://plain.example.org/"}
    hrefs = [html_lib.unescape(h) for h in HREF.findall(out)] + re.findall(r"href='([^']*)'", out)
    tracked_hrefs = [h for h in hrefs if h.startswith("https://mail.example.com/t/c/")]
    assert len(tracked_hrefs) == 5  # A twice, B, personal, C
    # Untouched: mailto, tel, anchor, relative, web view, unsubscribe.
    for kept in ("mailto:sales@example.com", "tel:+8610123", "#top", "/relative", "https://mail.example.com/view/tok/",
                 "https://mail.example.com/unsubscribe/tok/"):
        assert kept in hrefs
    # Each tracked href resolves to the click view with a token that verifies.
    for href in tracked_hrefs:
        path, _sep, query = href.removeprefix("https://mail.example.com").partition("?")
        match = resolve(path)
        target = query.removeprefix("u=")
        from urllib.parse import unquote
        signed = tokens.read_click(match.kwargs["token"], unquote(target))
        assert signed is not None and signed.campaign_id == tracked.campaign.pk and signed.log_id == row.pk
    # The pixel sits before </body>.
    pixel = re.search(r'<img src="(https://mail.example.com/t/o/([^"]+)\.gif)"', out)
    assert pixel and out.index(pixel.group(0)) < out.index("</body>")
    assert tokens.read_open(pixel.group(2)) == tokens.Signed(tracked.campaign.pk, row.pk)


def test_opens_only_campaign_keeps_links(account):
    tracked = make_tracked(account, n=1, track_status=1)
    out = rendered(tracked, tracked.rows[0])
    assert "/t/c/" not in out and "/t/o/" in out and Link.objects.count() == 0


def test_untracked_campaign_is_unchanged(account):
    tracked = make_tracked(account, n=1, track_status=0)
    html = render(tracked.template, {}, {}).html
    assert instrument.instrument(html, tracked.rows[0], tracked.campaign, tracked.template) == html


def test_tracking_domain_verified_default_and_fallbacks(account, settings):
    tracked = make_tracked(account, n=1)
    campaign, row = tracked.campaign, tracked.rows[0]
    assert instrument.base_url(campaign) == "https://mail.example.com"
    settings.HUB_TRACK_DEFAULT_DOMAIN = "t.hub.example"
    instrument.clear_caches()
    assert instrument.base_url(campaign) == "https://t.hub.example"
    TrackDomain.objects.create(account=account, domain="click.acme.example", is_default=True, is_cname=True)
    TrackDomain.objects.create(account=account, domain="unverified.acme.example", is_cname=False)
    instrument.clear_caches()
    assert instrument.base_url(campaign) == "https://click.acme.example"
    campaign.track_domain = "unverified.acme.example"  # not verified: not used
    instrument.clear_caches()
    assert instrument.base_url(campaign) == "https://click.acme.example"
    TrackDomain.objects.create(account=account, domain="own.acme.example", is_cname=True)
    campaign.track_domain = "own.acme.example"
    instrument.clear_caches()
    assert "https://own.acme.example/t/o/" in rendered(tracked, row)


def test_no_base_url_leaves_the_mail_alone(account, settings):
    settings.HUB_PUBLIC_URL = ""
    tracked = make_tracked(account, n=1)
    html = "<html><body><a href='https://x.example/'>x</a></body></html>"
    assert instrument.instrument(html, tracked.rows[0], tracked.campaign, tracked.template) == html


def test_cost_per_message_is_measured(account, capsys):
    tracked = make_tracked(account, n=1)
    row = tracked.rows[0]
    html = render(tracked.template, {"email": "a@x.example"}, {}).html * 20  # ~100 links, 20 KB
    instrument.instrument(html, row, tracked.campaign, tracked.template)  # builds the table once
    n = 300
    started = time.perf_counter()
    for _ in range(n):
        out = instrument.instrument(html, row, tracked.campaign, tracked.template)
    per_message = (time.perf_counter() - started) / n * 1e6
    assert out.count("/t/c/") == 100
    with capsys.disabled():
        print(f"\ninstrument: {per_message:.0f} µs per message ({len(html)} bytes, 100 tracked links)")


def test_a_link_that_is_only_a_placeholder_never_catches_the_hubs_own_pages(account):
    tracked = make_tracked(account, n=1)
    tracked.template.html = ('<html><body><a href="{{var1}}">own</a> <a href="{{webview_url}}">view</a>'
                             '<a href="{{unsubscribe_url}}">退订</a></body></html>')
    tracked.template.revision += 1
    html = render(tracked.template, {"var1": "https://partner.example/x?id=7"},
                  {"unsubscribe_url": "https://mail.example.com/unsubscribe/tok/",
                   "webview_url": "https://mail.example.com/view/tok/"}).html
    out = instrument.instrument(html, tracked.rows[0], tracked.campaign, tracked.template)
    hrefs = [html_lib.unescape(h) for h in HREF.findall(out)]
    assert hrefs[1:] == ["https://mail.example.com/view/tok/", "https://mail.example.com/unsubscribe/tok/"]
    assert hrefs[0].startswith("https://mail.example.com/t/c/") and hrefs[0].endswith(
        "?u=https%3A%2F%2Fpartner.example%2Fx%3Fid%3D7")
