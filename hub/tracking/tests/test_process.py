"""The processor: the aggregates it keeps are checked against counts computed here, from
the raw hits, independently; each hit is told once as an event."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from hub import events
from hub.tracking import instrument, process, reports
from hub.tracking.models import CampaignTrack, Hit, Link, LinkClick, Recipient

from .conftest import make_tracked
from .test_classify import CHROME, GMAIL_PROXY, IPHONE_MAIL


@pytest.fixture
def told():
    seen: list[events.Event] = []

    def receiver(sender, event, **kwargs):
        if event.kind in (events.Kind.OPENED, events.Kind.CLICKED):  # not the fixtures' own `sent`
            seen.append(event)

    events.happened.connect(receiver, weak=False)
    yield seen
    events.happened.disconnect(receiver)


def add_hit(tracked, i, kind, at, agent=CHROME, ip="114.114.114.114", link=None, head=False):
    return Hit.objects.create(kind=kind, campaign_id=tracked.campaign.pk, log_id=tracked.rows[i].pk,
                              link_id=link, at=at, ip=ip, user_agent=agent, head=head)


def expected_from_hits(hits: list[Hit], machine: set[int]):
    """Counts the straightforward way: per recipient, human and machine opens and clicks."""
    per = defaultdict(lambda: {"open": 0, "click": 0, "m_open": 0, "m_click": 0})
    link_total, link_people = defaultdict(int), defaultdict(set)
    for hit in sorted(hits, key=lambda h: h.pk):
        p = per[hit.log_id]
        is_machine = hit.pk in machine
        if hit.kind == "o":
            p["m_open" if is_machine else "open"] += 1
        else:
            if is_machine:
                p["m_click"] += 1
            else:
                if p["open"] == 0:
                    p["open"] += 1  # a click is an open when none was seen
                p["click"] += 1
                link_total[hit.link_id] += 1
                link_people[hit.link_id].add(hit.log_id)
    return per, link_total, link_people


def test_counts_match_an_independent_count_and_every_hit_is_told(account, told):
    tracked = make_tracked(account, n=6)
    table = instrument.table_for(tracked.campaign.pk, tracked.template)
    a, b = table.static["https://shop.example.com/a?x=1&amp;y=2"], table.static["https://shop.example.com/b"]
    t0 = timezone.now() - timedelta(minutes=30)
    made = [
        add_hit(tracked, 0, "o", t0),
        add_hit(tracked, 0, "o", t0 + timedelta(minutes=5), agent=IPHONE_MAIL, ip="223.104.1.1"),
        add_hit(tracked, 0, "c", t0 + timedelta(minutes=6), link=a, ip="1.2.4.8"),
        add_hit(tracked, 1, "c", t0 + timedelta(minutes=1), link=b),  # a click, no open: counts as one
        add_hit(tracked, 1, "c", t0 + timedelta(minutes=2), link=b),
        add_hit(tracked, 2, "o", t0, agent=GMAIL_PROXY, ip="66.249.84.1"),  # machine only
        add_hit(tracked, 3, "o", t0, agent="Mozilla/5.0", ip="17.1.1.1"),  # Apple MPP, then a person
        add_hit(tracked, 3, "o", t0 + timedelta(minutes=9)),
        add_hit(tracked, 4, "o", t0, head=True),
    ]
    machine = {made[5].pk, made[6].pk, made[8].pk}
    per, link_total, link_people = expected_from_hits(made, machine)
    assert process.process() == len(made)
    assert Hit.objects.count() == 0
    track = CampaignTrack.objects.get(campaign=tracked.campaign)
    humans = {k for k, p in per.items() if p["open"]}
    machines_only = {k for k, p in per.items() if p["m_open"] and not p["open"]}
    assert track.open_unique == len(humans) == 3
    assert track.open_total == sum(p["open"] for p in per.values())
    assert track.machine_open_unique == len(machines_only) == 2
    assert track.machine_open_total == sum(p["m_open"] for p in per.values())
    assert track.click_unique == len({k for k, p in per.items() if p["click"]})
    assert track.click_total == sum(p["click"] for p in per.values())
    for link in Link.objects.filter(campaign=tracked.campaign):
        assert link.click_total == link_total.get(link.pk, 0)
        assert link.click_unique == len(link_people.get(link.pk, ()))
    for rec in Recipient.objects.filter(campaign=tracked.campaign):
        p = per[rec.log_id]
        assert (rec.open_total, rec.click_total, rec.machine_open_total, rec.machine_click_total) == (
            p["open"], p["click"], p["m_open"], p["m_click"])
    r0 = Recipient.objects.get(log_id=tracked.rows[0].pk)
    assert (r0.ip_first, r0.ip_last, r0.device, r0.browser) == ("114.114.114.114", "1.2.4.8", "pc", "Chrome")
    assert r0.addr_first.startswith("中国") and r0.open_first == t0 and r0.click_total == 1
    r3 = Recipient.objects.get(log_id=tracked.rows[3].pk)
    assert (r3.open_total, r3.machine_open_total, r3.machine_reason) == (1, 1, "apple_mpp")
    assert LinkClick.objects.get(recipient__log_id=tracked.rows[1].pk, link_id=b).click_total == 2
    # One event per hit, with its machine flag.
    assert len(told) == len(made)
    kinds = [(e.kind, e.log_id, e.data["machine"]) for e in told]
    assert (events.Kind.OPENED, tracked.rows[2].pk, True) in kinds
    clicked = [e for e in told if e.kind == events.Kind.CLICKED]
    assert {e.data["url"] for e in clicked} == {"https://shop.example.com/a?x=1&y=2", "https://shop.example.com/b"}
    assert all(e.campaign_id == tracked.campaign.pk and e.account_id == account.pk and e.email for e in told)


def test_scanner_clicking_every_link_at_once_and_too_soon(account):
    tracked = make_tracked(account, n=2, sent_ago=5)
    table = instrument.table_for(tracked.campaign.pk, tracked.template)
    links = list(table.static.values())
    now = timezone.now()
    for j, link in enumerate(links):  # a gateway follows every link within a second
        add_hit(tracked, 0, "c", now + timedelta(hours=1, milliseconds=200 * j), link=link)
    add_hit(tracked, 1, "o", now)  # 5 seconds after delivery
    process.process()
    track = CampaignTrack.objects.get(campaign=tracked.campaign)
    assert (track.click_unique, track.click_total, track.open_unique) == (0, 0, 0)
    # A scanner's clicks are no open of any kind: only row 1's too-soon open is a machine open.
    assert (track.machine_click_unique, track.machine_click_total, track.machine_open_unique) == (1, len(links), 1)
    assert track.breakdown["machine"] == {"click_burst": len(links), "too_soon": 1}


def test_hits_of_vanished_rows_are_dropped_not_counted(account, told):
    tracked = make_tracked(account, n=1)
    Hit.objects.create(kind="o", campaign_id=tracked.campaign.pk, log_id=999_999, at=timezone.now())
    Hit.objects.create(kind="c", campaign_id=tracked.campaign.pk, log_id=tracked.rows[0].pk, link_id=999_999,
                       at=timezone.now())
    assert process.process() == 2
    assert Hit.objects.count() == 0 and Recipient.objects.count() == 0 and told == []


def test_batches_and_reruns_count_each_hit_once(account, monkeypatch):
    tracked = make_tracked(account, n=3, sent_ago=7200)
    monkeypatch.setattr(process, "BATCH", 4)
    at = timezone.now() - timedelta(hours=1)
    for i in range(10):
        add_hit(tracked, i % 3, "o", at + timedelta(seconds=i))
    assert process.process() == 10
    assert process.process() == 0
    track = reports.track_of(tracked.campaign)
    assert (track.open_unique, track.open_total) == (3, 10)
    assert sum(track.breakdown["open_hour"].values()) == 10


def test_a_burst_split_over_two_batches_is_still_a_burst(account):
    tracked = make_tracked(account, n=1, sent_ago=7200)
    links = list(instrument.table_for(tracked.campaign.pk, tracked.template).static.values())
    at = timezone.now() - timedelta(minutes=10)
    add_hit(tracked, 0, "c", at, link=links[0])
    add_hit(tracked, 0, "c", at + timedelta(milliseconds=300), link=links[1])
    process.process()  # two links: no burst yet (the campaign has 3 tracked static links)
    add_hit(tracked, 0, "c", at + timedelta(milliseconds=600), link=links[2])
    process.process()
    track = CampaignTrack.objects.get(campaign=tracked.campaign)
    assert (track.click_total, track.machine_click_total) == (2, 1)
    assert track.breakdown["machine"] == {"click_burst": 1}
