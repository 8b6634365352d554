"""The public pixel and click endpoints: answers, headers, and refusals that write nothing."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from hub.tracking import hits, instrument, tokens
from hub.tracking.models import Hit, Link

from .conftest import make_tracked

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.fixture
def setup(account):
    tracked = make_tracked(account, n=2)
    table = instrument.table_for(tracked.campaign.pk, tracked.template)
    return tracked, table


def test_pixel_answers_a_gif_without_caching_and_records_one_hit(client, setup):
    tracked, _table = setup
    row = tracked.rows[0]
    response = client.get(f"/t/o/{tokens.open_token(tracked.campaign.pk, row.pk)}.gif", HTTP_USER_AGENT=UA,
                          REMOTE_ADDR="114.114.114.114")
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a") and len(response.content) == 42
    assert "no-store" in response["Cache-Control"] and response["Pragma"] == "no-cache"
    (hit,) = Hit.objects.all()
    assert (hit.kind, hit.campaign_id, hit.log_id, hit.ip, hit.user_agent, hit.head) == (
        "o", tracked.campaign.pk, row.pk, "114.114.114.114", UA, False)


def test_head_is_recorded_as_head(client, setup):
    tracked, _table = setup
    response = client.head(f"/t/o/{tokens.open_token(tracked.campaign.pk, tracked.rows[0].pk)}.gif")
    assert response.status_code == 200 and Hit.objects.get().head is True


def test_click_redirects_to_the_stored_target(client, setup):
    tracked, table = setup
    link_id = table.static["https://shop.example.com/a?x=1&amp;y=2"]
    response = client.get(f"/t/c/{tokens.click_token(tracked.campaign.pk, tracked.rows[1].pk, link_id)}",
                          HTTP_USER_AGENT=UA)
    assert response.status_code == 302 and response["Location"] == "https://shop.example.com/a?x=1&y=2"
    assert "no-store" in response["Cache-Control"]
    (hit,) = Hit.objects.all()
    assert (hit.kind, hit.link_id, hit.log_id, hit.url) == ("c", link_id, tracked.rows[1].pk, "")


def test_personal_click_redirects_to_its_signed_target(client, setup):
    tracked, table = setup
    (_pattern, link_id), = table.personal
    target = "https://shop.example.com/u?e=r0@x.example"
    token = tokens.click_token(tracked.campaign.pk, tracked.rows[0].pk, link_id, target)
    response = client.get(f"/t/c/{token}?u={quote(target, safe='')}")
    assert response.status_code == 302 and response["Location"] == target
    assert Hit.objects.get().url == target


def _forged(tracked, table) -> list[str]:
    c, r = tracked.campaign.pk, tracked.rows[0].pk
    static = table.static["https://shop.example.com/b"]
    (_pattern, personal), = table.personal
    good_open = tokens.open_token(c, r)
    good_click = tokens.click_token(c, r, static)
    target = "https://shop.example.com/u?e=r0@x.example"
    good_personal = tokens.click_token(c, r, personal, target)
    other_campaign_link = Link.objects.create(campaign=make_tracked(tracked.campaign.account, n=1,
                                                                    sn="other").campaign,
                                              url="https://evil.example/", url_hash="x" * 64)
    return [
        f"/t/o/{good_open[:-2]}zz.gif",  # signature altered
        f"/t/o/{c}.{r + 1}.{good_open.split('.')[-1]}.gif",  # another recipient
        f"/t/o/{c + 1}.{r}.{good_open.split('.')[-1]}.gif",  # another campaign
        "/t/o/1.2.AAAAAAAAAAAAAAAA.gif",
        "/t/o/not-a-token.gif",
        f"/t/c/{good_click[:-1]}A" if not good_click.endswith("A") else f"/t/c/{good_click[:-1]}B",
        f"/t/c/{c}.{r}.{static + 1}.{good_click.split('.')[-1]}",  # another link
        f"/t/c/{good_click}?u=https%3A%2F%2Fevil.example%2F",  # an open redirect attempt
        f"/t/c/{good_personal}?u=https%3A%2F%2Fevil.example%2F",  # the target swapped
        f"/t/c/{good_personal}",  # the target dropped
        # A correctly signed URL naming a link of another campaign (signed by us for that
        # campaign's rows only): refused because the link is not this campaign's.
        f"/t/c/{tokens.click_token(c, r, other_campaign_link.pk)}",
        "/t/c/" + "9" * 30,
    ]


def test_forged_and_altered_urls_are_404_and_write_nothing(client, setup):
    tracked, table = setup
    for url in _forged(tracked, table):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Location" not in response
    assert Hit.objects.count() == 0


def test_post_is_refused(client, setup):
    tracked, _table = setup
    response = client.post(f"/t/o/{tokens.open_token(tracked.campaign.pk, tracked.rows[0].pk)}.gif")
    assert response.status_code == 405 and Hit.objects.count() == 0


def test_a_hit_wakes_the_processor_once_per_interval(client, setup, settings, run_queue):
    tracked, _table = setup
    settings.HUB_TRACK_WAKE_SECONDS = 3600.0
    hits.reset_wake()
    for row in tracked.rows:
        client.get(f"/t/o/{tokens.open_token(tracked.campaign.pk, row.pk)}.gif", HTTP_USER_AGENT=UA)
    assert Hit.objects.count() == 2
    assert run_queue() == 1  # one processor task for two hits
    assert Hit.objects.count() == 0
