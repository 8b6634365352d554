"""The signed parts of tracking URLs: short, and unforgeable without SECRET_KEY.

    open pixel:  /t/o/<campaign>.<row>.<sig>.gif
    click:       /t/c/<campaign>.<row>.<link>.<sig>          (a link of the campaign's table)
                 /t/c/<campaign>.<row>.<link>.<sig>?u=<target> (a personal link: the target
                                                                 is signed too)

`sig` = the first 16 characters (96 bits) of the URL-safe base64 of
HMAC-SHA256(key, "o|campaign|row" or "c|campaign|row|link|target"), where key =
SHA-256(SALT + SECRET_KEY): a key of its own, so no other signed value of the hub (sessions,
unsubscribe links) can be replayed as a tracking URL. Checked with hmac.compare_digest
against SECRET_KEY and each of SECRET_KEY_FALLBACKS (links in old mails survive a key
rotation done the Django way). A URL that does not verify names nothing: the view answers 404
and writes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from django.conf import settings

SALT = "hub.tracking.url.v1"
SIG_CHARS = 16
MAX_TARGET = 2000
_OPEN = re.compile(r"^([1-9][0-9]{0,17})\.([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16})$")
_CLICK = re.compile(r"^([1-9][0-9]{0,17})\.([1-9][0-9]{0,17})\.([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16})$")

# Per secret, an HMAC object with the key already absorbed: copying it is cheaper than
# keying a new one for every link of every message.
_macs: dict[str, hmac.HMAC] = {}


def _mac(secret: str) -> hmac.HMAC:
    mac = _macs.get(secret)
    if mac is None:
        if len(_macs) > 8:
            _macs.clear()
        key = hashlib.sha256((SALT + secret).encode()).digest()
        mac = _macs[secret] = hmac.new(key, digestmod=hashlib.sha256)
    return mac


def _sig(message: str, secret: str) -> str:
    mac = _mac(secret).copy()
    mac.update(message.encode())
    return base64.urlsafe_b64encode(mac.digest()).decode()[:SIG_CHARS]


def _verify(message: str, sig: str) -> bool:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    ok = False
    for secret in secrets:  # every key checked: the time does not tell which one matched
        ok |= hmac.compare_digest(_sig(message, secret), sig)
    return ok


def open_token(campaign_id: int, log_id: int) -> str:
    return f"{campaign_id}.{log_id}.{_sig(f'o|{campaign_id}|{log_id}', settings.SECRET_KEY)}"


def click_token(campaign_id: int, log_id: int, link_id: int, target: str = "") -> str:
    message = f"c|{campaign_id}|{log_id}|{link_id}|{target}"
    return f"{campaign_id}.{log_id}.{link_id}.{_sig(message, settings.SECRET_KEY)}"


@dataclass(frozen=True)
class Signed:
    campaign_id: int
    log_id: int
    link_id: int | None = None
    target: str = ""


def read_open(token: str) -> Signed | None:
    match = _OPEN.match(token or "")
    if match is None:
        return None
    campaign_id, log_id, sig = int(match.group(1)), int(match.group(2)), match.group(3)
    if not _verify(f"o|{campaign_id}|{log_id}", sig):
        return None
    return Signed(campaign_id, log_id)


def read_click(token: str, target: str = "") -> Signed | None:
    match = _CLICK.match(token or "")
    if match is None or len(target) > MAX_TARGET:
        return None
    campaign_id, log_id, link_id, sig = (int(match.group(1)), int(match.group(2)), int(match.group(3)),
                                         match.group(4))
    if not _verify(f"c|{campaign_id}|{log_id}|{link_id}|{target}", sig):
        return None
    return Signed(campaign_id, log_id, link_id, target)
