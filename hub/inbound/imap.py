"""Polling IMAP bounce mailboxes (hub.inbound.models.BounceMailbox): for senders whose provider
returns bounces to the From address rather than to a VERP envelope sender. Each run reads the
messages whose UID is above the last one read (at most HUB_IMAP_BATCH), processes each
(hub.inbound.process, restricted to the mailbox's account), flags it \\Seen, and remembers
the UID, so a message is read once even when the mailbox is also read by people. Messages over
HUB_INBOUND_MAX_BYTES are skipped (and logged), never downloaded."""

from __future__ import annotations

import imaplib
import logging
import re

from django.conf import settings
from django.utils import timezone

from hub.delivery.transport import tls_context

from . import process
from .models import BounceMailbox

log = logging.getLogger(__name__)

_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")


class PollError(Exception):
    """The mailbox could not be read (connection, TLS, login, folder)."""


def _connect(mailbox: BounceMailbox) -> imaplib.IMAP4:
    timeout = settings.HUB_IMAP_TIMEOUT
    if mailbox.security == BounceMailbox.Security.SSL:
        return imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=tls_context(mailbox.verify_tls), timeout=timeout)
    conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
    if mailbox.security == BounceMailbox.Security.STARTTLS:
        conn.starttls(ssl_context=tls_context(mailbox.verify_tls))
    return conn


def _check(typ: str, data, what: str) -> None:
    if typ != "OK":
        raise PollError(f"{what}: {typ} {data!r}"[:500])


def _sizes(conn: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
    typ, data = conn.uid("FETCH", ",".join(map(str, uids)), "(RFC822.SIZE)")
    _check(typ, data, "FETCH RFC822.SIZE")
    sizes = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        match = _SIZE.search(line or b"")
        if match:
            uid, size = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
            sizes[int(uid)] = int(size)
    return sizes


def poll(mailbox: BounceMailbox) -> int:
    """Read one mailbox's new messages; returns how many were processed. Raises PollError."""
    try:
        conn = _connect(mailbox)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise PollError(f"cannot connect to {mailbox.host}:{mailbox.port}: {exc}") from exc
    done = 0
    try:
        try:
            conn.login(mailbox.username, mailbox.get_password())
        except imaplib.IMAP4.error as exc:
            raise PollError(f"login refused: {exc}") from exc
        typ, data = conn.select(f'"{mailbox.folder}"')
        _check(typ, data, f"SELECT {mailbox.folder}")
        validity = int((conn.response("UIDVALIDITY")[1] or [b"0"])[0] or 0)
        if validity != mailbox.uid_validity:  # a new mailbox (or recreated): read it from the start
            mailbox.uid_validity, mailbox.last_uid = validity, 0
        typ, data = conn.uid("SEARCH", None, f"UID {mailbox.last_uid + 1}:*")
        _check(typ, data, "UID SEARCH")
        uids = sorted(uid for uid in (int(x) for x in (data[0] or b"").split()) if uid > mailbox.last_uid)
        uids = uids[:settings.HUB_IMAP_BATCH]
        sizes = _sizes(conn, uids) if uids else {}
        for uid in uids:
            if sizes.get(uid, 0) > settings.HUB_INBOUND_MAX_BYTES:
                log.warning("inbound imap %s: UID %s is %s bytes, over HUB_INBOUND_MAX_BYTES: skipped",
                            mailbox.pk, uid, sizes[uid])
            else:
                typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
                _check(typ, data, f"FETCH {uid}")
                raw = next((item[1] for item in data if isinstance(item, tuple)), b"")
                process.process(raw, mailbox=mailbox)
                conn.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")
                done += 1
            mailbox.last_uid = uid
            BounceMailbox.objects.filter(pk=mailbox.pk).update(uid_validity=mailbox.uid_validity, last_uid=uid)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise PollError(f"IMAP error: {exc}") from exc
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            log.info("inbound imap %s: logout failed (connection already gone)", mailbox.pk)
    return done


def poll_all() -> dict[int, int | str]:
    """Every enabled mailbox once: {mailbox id: messages processed, or the error}. A failing
    mailbox is recorded (last_error) and does not stop the others."""
    results: dict[int, int | str] = {}
    for mailbox in BounceMailbox.objects.filter(enabled=True).order_by("id"):
        try:
            results[mailbox.pk] = poll(mailbox)
            error = ""
        except PollError as exc:
            log.warning("inbound imap %s (%s): %s", mailbox.pk, mailbox.host, exc)
            results[mailbox.pk] = error = str(exc)
        BounceMailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=timezone.now(), last_error=error[:2000])
    return results
