"""A tracked campaign through the real dispatcher and drain to the sink: the delivered mail
carries the pixel and signed links; following them counts the open and the click."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from hub.campaigns import services
from hub.campaigns.models import State
from hub.campaigns.tests.conftest import _fast_dispatcher, run_until, world  # noqa: F401  (fixtures)
from hub.models import SendLog
from hub.tracking import process, reports
from hub.tracking.models import TrackDomain

from .test_classify import CHROME


def test_tracked_campaign_mail_opens_and_clicks(world, run_queue, client, settings):  # noqa: F811
    TrackDomain.objects.create(account=world.account, domain="t.acme.example", is_cname=True, is_default=True)
    campaign = services.create_campaign(world.account, world.fields(send_qty=2, track_status=2), State.SENDING)
    campaign = run_until(run_queue, campaign, (State.DONE,))
    SendLog.objects.filter(campaign_id=campaign.pk).update(sent_at=SendLog.objects.get(
        campaign_id=campaign.pk, to="a1@x.example").sent_at.replace(year=2020))  # long ago: no "too soon"
    messages = {m.rcpt_tos[0]: m.message for m in world.sink.messages}
    html = messages["a1@x.example"].get_body(("html",)).get_content()
    pixel = re.search(r'<img src="(https://t\.acme\.example/t/o/[^"]+\.gif)"', html).group(1)
    links = re.findall(r'href="(https://t\.acme\.example/t/c/[^"]+)"', html)
    assert len(links) == 1  # the shop link; the web view and unsubscribe links stay as they are
    assert 'href="https://mail.example.com/unsubscribe/' in html
    assert client.get(urlsplit(pixel).path, HTTP_USER_AGENT=CHROME).status_code == 200
    response = client.get(urlsplit(links[0]).path, HTTP_USER_AGENT=CHROME)
    assert response.status_code == 302 and response["Location"] == "https://shop.example.com/"
    process.process()
    track = reports.track_of(campaign)
    assert (track.open_unique, track.open_total, track.click_unique, track.click_total) == (1, 1, 1, 1)
    (link,) = reports.links(campaign)
    assert (link.url, link.click_total) == ("https://shop.example.com/", 1)
