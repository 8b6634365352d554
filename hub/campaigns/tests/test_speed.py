"""hour_speed: the token bucket's arithmetic and a simulated 25 minutes on a fake clock (no
wall-clock rates): rows are made no faster than hour_speed, never more than two seconds'
worth waiting, and an idle stretch saves up no burst. The busiest 10-minute window of the
rows' due times stays within hour_speed/6 + 1%."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hub.campaigns import dispatch, services, topup
from hub.campaigns.models import State
from hub.contacts.models import Contact, MailList
from hub.models import SendLog

T0 = timezone.now().replace(microsecond=0)


def test_bucket_take():
    rate = 2.0  # rows per second
    n, nxt = dispatch.bucket_take(None, T0, rate, 100)
    assert n == 1 and nxt == T0 + timedelta(seconds=0.5)  # a new bucket starts empty: the current token
    assert dispatch.bucket_take(nxt, T0, rate, 100) == (0, nxt)  # nothing until the next is due
    n, nxt2 = dispatch.bucket_take(nxt, T0 + timedelta(seconds=1.5), rate, 100)
    assert n == 3 and nxt2 == nxt + timedelta(seconds=1.5)
    # A long idle stretch: at most one second of tokens (plus the current one).
    n, _ = dispatch.bucket_take(nxt2, T0 + timedelta(hours=5), rate, 100)
    assert n == 3
    assert dispatch.bucket_take(None, T0, rate, 0)[0] == 0  # the backlog is full


def test_room_caps_the_backlog():
    campaign = type("C", (), {"hour_speed": 7200, "bucket_at": None})()
    late = T0 + timedelta(seconds=5)
    bucket = {"hour_speed": 7200, "bucket_at": T0}
    assert dispatch.room(type("C", (), bucket)(), waiting=0, at=late)[0] == 3  # one second of catch-up
    assert dispatch.room(campaign, waiting=0, at=T0)[0] == 1
    assert dispatch.room(type("C", (), bucket)(), waiting=4, at=late)[0] == 1
    assert dispatch.room(campaign, waiting=5, at=T0)[0] == 0  # the backlog: two seconds, at least 5 rows


def test_simulated_half_hour_holds_the_hourly_limit(world, monkeypatch):
    big = MailList.objects.create(account=world.account, name="big")
    Contact.objects.bulk_create([Contact(account=world.account, mail_list=big, email=f"u{i:05d}@z.example")
                                 for i in range(3200)])
    hour_speed = 6000  # 100 a minute, 1000 per 10 minutes
    campaign = services.create_campaign(world.account, world.fields(list_ids=[big.pk], hour_speed=hour_speed),
                                        State.SENDING)
    ctx = dispatch.context_for(campaign)
    clock = [T0]
    monkeypatch.setattr(dispatch, "now", lambda: clock[0])
    for i in range(1500):  # 25 minutes in one-second steps
        clock[0] = T0 + timedelta(seconds=i)
        stalled = 300 <= i < 600  # the workers stall for five minutes: nothing is taken
        campaign.refresh_from_db()
        dispatch.step(campaign, campaign.run_token, ctx)
        if not stalled:
            SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.QUEUED).update(
                status=SendLog.Status.SENT)
    times = sorted(SendLog.objects.filter(campaign_id=campaign.pk).values_list("created_at", flat=True))
    assert len(times) > 1500
    window, busiest, j = timedelta(minutes=10), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        busiest = max(busiest, i - j + 1)
    assert busiest <= hour_speed / 6 * 1.01
    # During the stall at most the backlog (two seconds' worth, at least 5 rows) was made,
    # and after it no burst: the first minute after the stall makes at most a minute's worth.
    during = [t for t in times if T0 + timedelta(seconds=300) <= t < T0 + timedelta(seconds=600)]
    assert len(during) <= 5
    after = [t for t in times if T0 + timedelta(seconds=600) <= t < T0 + timedelta(seconds=660)]
    assert len(after) <= 100 + 2


def test_current_rate_from_the_dispatchers_notes():
    marks = dispatch.rate_marks([], 1000.0, 0)
    assert dispatch.rate_marks(marks, 1030.0, 50) == marks  # once a minute
    marks = dispatch.rate_marks(marks, 1060.0, 100)
    marks = dispatch.rate_marks(dispatch.rate_marks(marks, 1120.0, 200), 1180.0, 300)
    assert [m[0] for m in marks] == [1060.0, 1120.0, 1180.0]  # the last three
    campaign = type("C", (), {"rate_marks": marks, "queued": 360})()
    assert dispatch.current_rate(campaign, 1240.0) == (360 - 100) / 180 * 3600
    assert dispatch.current_rate(type("C", (), {"rate_marks": [], "queued": 5})(), 1240.0) is None


def test_a_scaled_hour_scales_the_burst_and_the_backlog(settings):
    """A 10x-scaled run (HUB_CAMPAIGN_HOUR_SECONDS 360) keeps a tenth of the real bucket's
    second and backlog's two seconds (but never less backlog than the hub's own pipeline
    needs), so its 60-s window is bounded as a 600-s one is."""
    settings.HUB_CAMPAIGN_HOUR_SECONDS = 360
    rate = dispatch.per_second(6000)  # 16.7/s in scaled time
    # 0.2 s worth is 3 rows; the hub's own claim-to-top-up time is not scaled: 0.4 s, 6 rows.
    assert dispatch.backlog_of(rate) == int(rate * dispatch.PIPELINE_SECONDS) == 6
    n, _ = dispatch.bucket_take(T0, T0 + timedelta(hours=1), rate, 1000)
    assert n == int(0.1 * rate) + 1  # after an idle hour: a tenth of a second of tokens
    settings.HUB_CAMPAIGN_HOUR_SECONDS = 3600
    assert dispatch.backlog_of(dispatch.per_second(36000)) == 20  # 10/s: two seconds


def _fed_by_top_ups(rate: float, seconds: float) -> tuple[int, float]:
    """(rows made, seconds to the last call) for a campaign whose backlog is always on its
    way, so that only the top-ups (one per topup window, as topup.on_event allows) ask the
    bucket."""
    window = timedelta(seconds=topup.window_seconds())
    bucket, at, made, last = None, T0, 0, T0
    while at < T0 + timedelta(seconds=seconds):
        n, bucket = dispatch.bucket_take(bucket, at, rate, 10**6)
        made, last = made + n, at
        at += window
    return made, (last - T0).total_seconds()


def test_top_ups_alone_keep_the_set_speed(settings):
    """Found by the 10x-scaled 20k bench: the bucket kept 0.1 s of tokens but top-ups came
    0.25 s apart, so the campaign sent at ~66 % of its hour_speed. The top-up window scales
    with the hour, and the bucket keeps at least one window of tokens whatever it is set to:
    every token due by the last top-up is taken, none early."""
    for hour, topup_seconds in ((360, 0.25), (3600, 0.25), (3600, 3.0)):
        settings.HUB_CAMPAIGN_HOUR_SECONDS = hour
        settings.HUB_CAMPAIGN_TOPUP_SECONDS = topup_seconds
        rate = dispatch.per_second(30000)
        made, elapsed = _fed_by_top_ups(rate, 60)
        assert made == int(elapsed * rate + 1e-9) + 1, (hour, topup_seconds, made, elapsed)
        # The backlog holds at least two windows of rows: one waits while the other goes out.
        assert dispatch.backlog_of(rate) >= 2 * rate * topup.window_seconds() - 1
    settings.HUB_CAMPAIGN_HOUR_SECONDS = 360
    settings.HUB_CAMPAIGN_TOPUP_SECONDS = 0.25
    assert topup.window_seconds() == 0.025
