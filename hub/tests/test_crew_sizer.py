"""The crew's sizer (hub.delivery.crew.Sizer): grows while a step raises the rate by 10%,
steps back and stays when one does not, never past the crew's size."""

from __future__ import annotations

import pytest

from hub.delivery.crew import Sizer


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(Sizer, "last_active", Sizer.START)


def test_it_climbs_while_the_rate_follows_and_stops_at_the_size():
    sizer = Sizer(16)
    steps = [sizer.active]
    for rate in (60, 90, 135, 200, 260, 300):  # a distant server: every step pays
        steps.append(sizer.observe(rate))
    assert steps == [4, 6, 9, 13, 16, 16, 16]
    assert sizer.growing is False


def test_it_steps_back_when_a_step_does_not_pay_and_stays():
    sizer = Sizer(16)
    assert sizer.observe(600) == 6  # measured at 4, try 6
    assert sizer.observe(610) == 4  # 6 gave under 10% more: back to 4
    assert [sizer.observe(rate) for rate in (900, 100)] == [4, 4]  # and stays for this crew


def test_the_next_crew_starts_where_the_last_one_ended():
    first = Sizer(16)
    for rate in (60, 90, 135):
        first.observe(rate)
    assert Sizer(16).active == 13
    assert Sizer(5).active == 5  # never past the size
