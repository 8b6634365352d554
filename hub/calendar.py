"""Calendar invitations: event fields from a send request, checked, and the iCalendar
(RFC 5545 / iTIP RFC 5546) object built with the `icalendar` package. Re-sending the same
uid with a higher sequence updates the event in the recipient's calendar; method CANCEL
cancels it."""

from __future__ import annotations

import uuid
from datetime import datetime
from email.utils import getaddresses
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from django.conf import settings
from django.utils import timezone

from .headertext import CONTROLS, CONTROLS_BUT_LINE_BREAKS, one_line
from .refusals import Refusal

FIELDS = ("uid", "method", "sequence", "start", "end", "timezone", "summary", "location", "description",
          "organizer", "attendees")
METHODS = ("REQUEST", "CANCEL")


def _bad(detail: str) -> Refusal:
    return Refusal("invalid_event", detail)


def parse_event(raw: dict[str, str], subject: str) -> dict:
    """Check event fields (strings) and return the event as stored on the SendLog."""
    for name, value in raw.items():
        # Like mail headers (hub.headertext): no line break of any kind (VT, FF, NEL, U+2028...)
        # nor control character in a one-line property; the description may hold CR/LF.
        forbidden = CONTROLS_BUT_LINE_BREAKS if name == "description" else CONTROLS
        if forbidden.search(value):
            raise Refusal("header_injection", f"event_{name} contains a line break or control character")
        if len(value) > 5000:
            raise Refusal("too_large", f"event_{name} is too long")
    method = (raw.get("method") or "REQUEST").strip().upper()
    if method not in METHODS:
        raise _bad("event_method must be REQUEST or CANCEL")
    uid = raw.get("uid", "").strip()
    if not uid:
        if method == "CANCEL":
            raise _bad("event_uid is required to cancel an event")
        uid = f"{uuid.uuid4()}@{settings.HUB_DOMAIN}"
    sequence_text = (raw.get("sequence") or "0").strip()
    if not sequence_text.isdigit() or int(sequence_text) > 1_000_000:
        raise _bad("event_sequence must be a whole number")
    tzname = (raw.get("timezone") or settings.TIME_ZONE).strip()
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _bad(f"unknown event_timezone {tzname!r}") from exc
    start = _parse_time(raw.get("start", ""), "event_start", tz)
    end = _parse_time(raw.get("end", ""), "event_end", tz)
    if end <= start:
        raise _bad("event_end must be after event_start")
    organizer = raw.get("organizer", "").strip()
    attendees = raw.get("attendees", "").strip()
    for field, text in (("event_organizer", organizer), ("event_attendees", attendees)):
        for _name, addr in getaddresses([text]) if text else []:
            if "@" not in addr:
                raise _bad(f"{field}: {addr!r} is not an email address")
    return {
        "uid": uid, "method": method, "sequence": int(sequence_text), "timezone": tzname,
        "start": start.isoformat(), "end": end.isoformat(),
        "summary": raw.get("summary", "").strip() or subject, "location": raw.get("location", "").strip(),
        "description": raw.get("description", ""), "organizer": organizer, "attendees": attendees,
    }


def _parse_time(text: str, field: str, tz: ZoneInfo) -> datetime:
    text = text.strip()
    if not text:
        raise _bad(f"{field} is required (ISO 8601, e.g. 2026-12-01T10:00)")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: FURB162 (older clients' "Z" anywhere)
    except ValueError as exc:
        raise _bad(f"{field} is not an ISO 8601 date-time: {text[:40]!r}") from exc
    # A local time is in the event's timezone; an explicit offset is converted to it.
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)


def _address(name: str, addr: str, role: str | None = None) -> icalendar.vCalAddress:
    cal = icalendar.vCalAddress(f"mailto:{addr}")
    if name:
        cal.params["CN"] = icalendar.vText(name)
    if role:
        cal.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE", "CUTYPE": "INDIVIDUAL"})
    return cal


def build_ics(event: dict, organizer: tuple[str, str], attendees: list[tuple[str, str]]) -> bytes:
    """The VCALENDAR for `event`; organizer/attendees ((name, address) pairs) are used when
    the event names none."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//SMTP Hub//smtphub//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", event["method"])
    tz = ZoneInfo(event["timezone"])
    start = datetime.fromisoformat(event["start"]).astimezone(tz)
    end = datetime.fromisoformat(event["end"]).astimezone(tz)
    vevent = icalendar.Event()
    # Events stored before the checks above were complete: one-line properties on one line.
    event = {**event, **{k: one_line(event[k]) for k in ("uid", "summary", "location", "organizer", "attendees")},
             "description": CONTROLS_BUT_LINE_BREAKS.sub(" ", event["description"])}
    vevent.add("uid", event["uid"])
    vevent.add("sequence", event["sequence"])
    vevent.add("dtstamp", timezone.now())
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    vevent.add("summary", event["summary"])
    if event["location"]:
        vevent.add("location", event["location"])
    if event["description"]:
        vevent.add("description", event["description"])
    vevent.add("status", "CANCELLED" if event["method"] == "CANCEL" else "CONFIRMED")
    vevent.add("organizer", _address(*(getaddresses([event["organizer"]])[0] if event["organizer"] else organizer)))
    for name, addr in getaddresses([event["attendees"]]) if event["attendees"] else attendees:
        vevent.add("attendee", _address(name, addr, role="attendee"))
    cal.add_component(vevent)
    cal.add_missing_timezones()  # the VTIMEZONE for the event's TZID
    return cal.to_ical()
