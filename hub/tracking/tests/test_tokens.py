"""Signed tracking URLs: what verifies and what does not."""

from __future__ import annotations

import pytest

from hub.tracking import tokens


def test_open_token_round_trip_and_length():
    token = tokens.open_token(12, 345678)
    assert tokens.read_open(token) == tokens.Signed(12, 345678)
    assert len(token) <= 2 * 18 + 2 + 16  # short: ids and 16 signature characters


def test_click_token_round_trip_static_and_personal():
    assert tokens.read_click(tokens.click_token(1, 2, 3)) == tokens.Signed(1, 2, 3, "")
    target = "https://shop.example.com/u?e=a@x.example"
    assert tokens.read_click(tokens.click_token(1, 2, 3, target), target) == tokens.Signed(1, 2, 3, target)


@pytest.mark.parametrize("change", [
    lambda t: t.replace("12.", "13.", 1),  # another campaign
    lambda t: t.replace(".345678.", ".345679."),  # another recipient
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature altered
    lambda t: t + "x",
    lambda t: "",
    lambda t: "0.345678." + t.split(".")[-1],
])
def test_altered_open_tokens_do_not_verify(change):
    assert tokens.read_open(change(tokens.open_token(12, 345678))) is None


def test_altered_click_tokens_and_targets_do_not_verify():
    token = tokens.click_token(1, 2, 3)
    assert tokens.read_click(token.replace(".3.", ".4.")) is None  # another link
    assert tokens.read_click(token, "https://evil.example/") is None  # a target added
    personal = tokens.click_token(1, 2, 3, "https://shop.example.com/u?e=a")
    assert tokens.read_click(personal, "https://evil.example/") is None  # the target changed
    assert tokens.read_click(personal) is None
    assert tokens.read_open(token) is None  # a click token is no pixel token


def test_other_secret_fails_and_fallback_keys_verify(settings):
    token = tokens.open_token(1, 2)
    settings.SECRET_KEY = "another secret key of at least fifty characters......"
    assert tokens.read_open(token) is None
    settings.SECRET_KEY_FALLBACKS = ["y" * 50]
    assert tokens.read_open(token) is None


def test_rotated_key_in_fallbacks_still_verifies(settings):
    old = settings.SECRET_KEY
    token = tokens.open_token(1, 2)
    settings.SECRET_KEY = "a brand new secret key, at least fifty characters long!!"
    settings.SECRET_KEY_FALLBACKS = [old]
    assert tokens.read_open(token) == tokens.Signed(1, 2)
