"""Calendar invitations on the send API: event fields (form `event_*` or a JSON `event`
object) become a message with a `text/calendar; method=...` alternative and an .ics
attachment, which a real SMTP server (aiosmtpd sink) receives and `icalendar` parses back:
METHOD, UID, SEQUENCE, DTSTART/DTEND with TZID and its VTIMEZONE, ORGANIZER, ATTENDEEs,
SUMMARY, LOCATION, DESCRIPTION. Updates (same UID, higher SEQUENCE), CANCEL, time zone
conversion, the refusals (nothing written), and unit tests of hub.calendar.parse_event."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.test_send_api import FORMATS, assert_nothing_written, good_fields, post
from hub.calendar import parse_event
from hub.models import SendLog
from hub.refusals import Refusal

URL = "/api/v1/send"
SENDER = "hub@example.com"


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink, from_email=SENDER)
    return smtp_sink, make_app(server, name="日历应用", from_name="会议助手")


def event_fields(fmt: str, **event: object) -> dict:
    """Event fields the way each format carries them: `event_*` fields in forms, an
    `event` object in JSON."""
    if fmt == "json":
        return {"event": event}
    return {f"event_{name}": value for name, value in event.items()}


def send_invite(client, creds: dict, fmt: str = "form", fields: dict | None = None, **event: object):
    data = good_fields(creds, **(fields or {}), **event_fields(fmt, **event))
    r = post(client, URL, data, fmt)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["code"] == 0, body
    return body


def invite_of(received) -> tuple[icalendar.Calendar, icalendar.Calendar, object, object]:
    """(calendar from the text/calendar part, calendar from the .ics attachment, the two
    MIME parts), each parsed the way a mail client would."""
    msg = received.message
    [calendar_part] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    [ics_part] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/ics"]
    return (icalendar.Calendar.from_ical(calendar_part.get_payload(decode=True)),
            icalendar.Calendar.from_ical(ics_part.get_payload(decode=True)), calendar_part, ics_part)


def only_event(cal: icalendar.Calendar) -> icalendar.Event:
    [event] = cal.walk("VEVENT")
    return event


def attendees(event: icalendar.Event) -> list[tuple[str, str | None]]:
    values = event.get("ATTENDEE", [])
    values = values if isinstance(values, list) else [values]
    return [(str(a), a.params.get("CN")) for a in values]


def deliver(run_queue, sink, count: int = 1):
    assert run_queue() == count
    for row in SendLog.objects.all():
        assert row.status == SendLog.Status.SENT, row.error
    assert len(sink.messages) == count
    return sink.messages[-1]


# --- a full invitation ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_invite_defaults_from_the_message(client, hub, run_queue, fmt):
    """No uid, organizer, attendees or summary given: a uid is generated and returned; the
    organizer is the sender, the attendees are To + Cc (never Bcc), the summary is the subject."""
    sink, p = hub
    body = send_invite(
        client, p.creds, fmt,
        fields={"to": '"张三" <zhang@example.com>', "cc": '"李四" <li@example.com>, wang@example.com',
                "bcc": "hidden@example.com", "subject": "季度评审会"},
        start="2026-12-01T10:00", end="2026-12-01T11:30", timezone="Europe/Berlin",
        location="3F 大会议室", description="议程：\n1. 回顾\n2. 计划")

    uid = body["event_uid"]
    assert uid and uid.endswith("@" + django_settings.HUB_DOMAIN)
    row = SendLog.objects.get(pk=body["id"])
    assert row.event["uid"] == uid and row.event["method"] == "REQUEST"

    received = deliver(run_queue, sink)
    assert sorted(received.rcpt_tos) == ["hidden@example.com", "li@example.com", "wang@example.com",
                                         "zhang@example.com"]
    calendar, ics, calendar_part, ics_part = invite_of(received)
    # The alternative carries the iTIP method as a parameter; calendar clients key on it.
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    assert ics_part.get_filename() == "invite.ics"
    # The alternative sits beside the HTML and text bodies.
    alternative = next(p for p in received.message.walk() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html", "text/calendar"]
    assert received.message.get_body(("html",)).get_content().strip() == "<p>你好，<b>世界</b></p>"
    # Both copies are the same event.
    assert calendar_part.get_payload(decode=True) == ics_part.get_payload(decode=True)

    for cal in (calendar, ics):
        assert cal["METHOD"] == "REQUEST"
        assert cal["VERSION"] == "2.0"
        event = only_event(cal)
        assert event["UID"] == uid
        assert event.decoded("SEQUENCE") == 0
        berlin = ZoneInfo("Europe/Berlin")
        assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
        assert event["DTEND"].params["TZID"] == "Europe/Berlin"
        assert event.decoded("DTSTART") == datetime(2026, 12, 1, 10, 0, tzinfo=berlin)
        assert event.decoded("DTEND") == datetime(2026, 12, 1, 11, 30, tzinfo=berlin)
        assert event.decoded("DTSTART").utcoffset().total_seconds() == 3600
        # The VTIMEZONE the TZID refers to is in the calendar.
        assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
        assert str(event["ORGANIZER"]) == f"mailto:{SENDER}"
        assert event["ORGANIZER"].params["CN"] == "会议助手"
        assert attendees(event) == [("mailto:zhang@example.com", "张三"), ("mailto:li@example.com", "李四"),
                                    ("mailto:wang@example.com", None)]
        assert str(event["SUMMARY"]) == "季度评审会"
        assert str(event["LOCATION"]) == "3F 大会议室"
        assert str(event["DESCRIPTION"]) == "议程：\n1. 回顾\n2. 计划"
        assert str(event["STATUS"]) == "CONFIRMED"
        assert event.get("DTSTAMP") is not None
    # A Bcc recipient must not be revealed through the attendee list.
    assert b"hidden@example.com" not in received.content


def test_json_event_with_explicit_fields(client, hub, run_queue):
    sink, p = hub
    body = send_invite(
        client, p.creds, "json", fields={"to": "zhang@example.com", "cc": "li@example.com"},
        uid="meeting-42@client.example", sequence=0, method="request",
        start="2026-06-15T09:00", end="2026-06-15T10:00", timezone="America/New_York",
        summary="Explicit summary", organizer='"The Boss" <boss@client.example>',
        attendees=["a@example.com", '"Bee" <b@example.com>'])

    assert body["event_uid"] == "meeting-42@client.example"
    received = deliver(run_queue, sink)
    calendar, _ics, calendar_part, _ = invite_of(received)
    assert calendar_part.get_param("method") == "REQUEST"
    event = only_event(calendar)
    assert event["UID"] == "meeting-42@client.example"
    assert str(event["SUMMARY"]) == "Explicit summary"  # not the subject
    assert (str(event["ORGANIZER"]), event["ORGANIZER"].params["CN"]) == ("mailto:boss@client.example", "The Boss")
    # Explicit attendees replace To + Cc.
    assert attendees(event) == [("mailto:a@example.com", None), ("mailto:b@example.com", "Bee")]
    new_york = ZoneInfo("America/New_York")
    assert event.decoded("DTSTART") == datetime(2026, 6, 15, 9, 0, tzinfo=new_york)
    assert event.decoded("DTSTART").utcoffset().total_seconds() == -4 * 3600  # summer time
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    # The envelope is still To + Cc: attendees named only in the event get no mail.
    assert sorted(received.rcpt_tos) == ["li@example.com", "zhang@example.com"]


def test_default_timezone_is_the_sites(client, hub, run_queue):
    sink, p = hub
    send_invite(client, p.creds, start="2026-12-01T10:00", end="2026-12-01T11:00")
    event = only_event(invite_of(deliver(run_queue, sink))[0])
    assert event["DTSTART"].params["TZID"] == django_settings.TIME_ZONE
    assert event.decoded("DTSTART") == datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo(django_settings.TIME_ZONE))


@pytest.mark.parametrize("start,end", [("2026-12-01T10:00+00:00", "2026-12-01T11:00+00:00"),
                                       ("2026-12-01T10:00Z", "2026-12-01T11:00Z"),
                                       ("2026-12-01T05:00-05:00", "2026-12-01T20:00")])
def test_explicit_offset_is_converted_to_the_events_timezone(client, hub, run_queue, start, end):
    sink, p = hub
    send_invite(client, p.creds, start=start, end=end, timezone="Asia/Shanghai")
    event = only_event(invite_of(deliver(run_queue, sink))[0])
    assert event["DTSTART"].params["TZID"] == "Asia/Shanghai"
    assert event["DTSTART"].to_ical() == b"20261201T180000"  # 10:00 UTC is 18:00 in Shanghai
    assert event.decoded("DTSTART") == datetime(2026, 12, 1, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_update_same_uid_higher_sequence(client, hub, run_queue):
    sink, p = hub
    first = send_invite(client, p.creds, start="2026-12-01T10:00", end="2026-12-01T11:00", summary="评审")
    uid = first["event_uid"]
    second = send_invite(client, p.creds, uid=uid, sequence="1", start="2026-12-02T14:00",
                         end="2026-12-02T15:00", summary="评审（改期）")
    assert second["event_uid"] == uid
    assert run_queue() == 1  # one drain delivers both, in order
    before, after = (only_event(invite_of(m)[0]) for m in sink.messages)
    assert before["UID"] == after["UID"] == uid
    assert (before.decoded("SEQUENCE"), after.decoded("SEQUENCE")) == (0, 1)
    assert after.decoded("DTSTART").replace(tzinfo=None) == datetime(2026, 12, 2, 14, 0)
    assert str(after["SUMMARY"]) == "评审（改期）"


@pytest.mark.parametrize("fmt", ["form", "json"])
def test_cancel_keeps_the_uid(client, hub, run_queue, fmt):
    sink, p = hub
    uid = send_invite(client, p.creds, fmt, start="2026-12-01T10:00", end="2026-12-01T11:00")["event_uid"]
    cancel = send_invite(client, p.creds, fmt, uid=uid, method="CANCEL", sequence="2",
                         start="2026-12-01T10:00", end="2026-12-01T11:00")
    assert cancel["event_uid"] == uid
    assert SendLog.objects.get(pk=cancel["id"]).event["method"] == "CANCEL"

    assert run_queue() == 1  # one drain delivers both, in order
    assert len(sink.messages) == 2
    calendar, ics, calendar_part, _ = invite_of(sink.messages[1])
    assert calendar_part.get_param("method") == "CANCEL"
    for cal in (calendar, ics):
        assert cal["METHOD"] == "CANCEL"
        event = only_event(cal)
        assert event["UID"] == uid
        assert event.decoded("SEQUENCE") == 2
        assert str(event["STATUS"]) == "CANCELLED"


def test_invite_with_an_attachment(client, hub, run_queue):
    """A file sent with an invitation comes after the .ics; both survive."""
    sink, p = hub
    data = {**good_fields(p.creds), **event_fields("form", start="2026-12-01T10:00", end="2026-12-01T11:00"),
            "file": SimpleUploadedFile("agenda.pdf", b"%PDF agenda", content_type="application/pdf")}
    r = client.post(URL, data)
    assert r.json()["code"] == 0, r.json()
    received = deliver(run_queue, sink)
    parts = list(received.message.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [("invite.ics", "application/ics"),
                                                                        ("agenda.pdf", "application/pdf")]
    assert parts[1].get_payload(decode=True) == b"%PDF agenda"
    only_event(invite_of(received)[0])


def test_message_without_event_has_no_calendar(client, hub, run_queue):
    sink, p = hub
    r = post(client, URL, good_fields(p.creds))
    assert "event_uid" not in r.json()
    assert SendLog.objects.get().event is None
    received = deliver(run_queue, sink)
    assert all(part.get_content_type() not in ("text/calendar", "application/ics")
               for part in received.message.walk())


def test_all_event_fields_blank_means_no_event(client, hub, run_queue):
    """Form clients often post every field, empty when unused (PHP templates, HTML forms);
    like other blank fields here, blank event fields count as absent: a plain message,
    not an invalid_event refusal."""
    _sink, p = hub
    blank = {f"event_{name}": "" for name in ("uid", "method", "sequence", "start", "end", "timezone",
                                             "summary", "location", "description", "organizer", "attendees")}
    r = post(client, URL, good_fields(p.creds, **blank))
    assert r.status_code == 200 and r.json()["code"] == 0, r.json()
    assert SendLog.objects.get().event is None


# --- refusals: nothing written --------------------------------------------------------------

INVALID_EVENT = (400, "invalid_event", "日历事件参数无效")
HEADER_INJECTION = (400, "header_injection", "参数不能包含换行符")
GOOD = {"start": "2026-12-01T10:00", "end": "2026-12-01T11:00"}


@pytest.mark.parametrize("fmt", ["form", "json"])
@pytest.mark.parametrize("event,expected", [
    pytest.param({"method": "CANCEL"}, INVALID_EVENT, id="cancel_without_uid"),
    pytest.param({"method": "CANCEL", "uid": "   "}, INVALID_EVENT, id="cancel_blank_uid"),
    pytest.param({"method": "PUBLISH"}, INVALID_EVENT, id="bad_method"),
    pytest.param({"method": "REQUEST\u200b"}, INVALID_EVENT, id="method_with_zero_width"),
    pytest.param({"end": "2026-12-01T09:00"}, INVALID_EVENT, id="end_before_start"),
    pytest.param({"end": "2026-12-01T10:00"}, INVALID_EVENT, id="end_equals_start"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, INVALID_EVENT, id="unknown_timezone"),
    pytest.param({"timezone": "../../etc/passwd"}, INVALID_EVENT, id="timezone_path"),
    pytest.param({"start": "2026-13-01T10:00"}, INVALID_EVENT, id="bad_month"),
    pytest.param({"start": "tomorrow at ten"}, INVALID_EVENT, id="not_a_date"),
    pytest.param({"start": ""}, INVALID_EVENT, id="no_start"),
    pytest.param({"end": "   "}, INVALID_EVENT, id="no_end"),
    pytest.param({"sequence": "one"}, INVALID_EVENT, id="sequence_word"),
    pytest.param({"sequence": "1.5"}, INVALID_EVENT, id="sequence_fraction"),
    pytest.param({"sequence": "-1"}, INVALID_EVENT, id="sequence_negative"),
    pytest.param({"sequence": "99999999999999999999"}, INVALID_EVENT, id="sequence_huge"),
    pytest.param({"organizer": "not an address"}, INVALID_EVENT, id="bad_organizer"),
    pytest.param({"attendees": "a@example.com, nobody"}, INVALID_EVENT, id="bad_attendee"),
    pytest.param({"summary": "评审\r\nATTENDEE:mailto:evil@example.com"}, HEADER_INJECTION, id="crlf_summary"),
    pytest.param({"summary": "line\nbreak"}, HEADER_INJECTION, id="lf_summary"),
    pytest.param({"location": "a\rb"}, HEADER_INJECTION, id="cr_location"),
    pytest.param({"uid": "x\r\nMETHOD:CANCEL"}, HEADER_INJECTION, id="crlf_uid"),
])
def test_event_refusals(client, hub, fmt, event, expected):
    sink, p = hub
    data = good_fields(p.creds, **event_fields(fmt, **{**GOOD, **event}))
    r = post(client, URL, data, fmt)
    status, error, msg = expected
    assert r.status_code == status, r.content
    assert (r.json()["code"], r.json()["error"], r.json()["msg"]) == (-1, error, msg), r.json()
    assert_nothing_written(sink)


@pytest.mark.parametrize("event", ["2026-12-01T10:00", ["a"], 42, True],
                         ids=["string", "list", "number", "boolean"])
def test_json_event_must_be_an_object(client, hub, event):
    sink, p = hub
    r = client.post(URL, json.dumps(good_fields(p.creds, event=event)), content_type="application/json")
    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["error"]) == (-1, "invalid_event")
    assert_nothing_written(sink)


@pytest.mark.parametrize("value", [{"a": 1}, True, None, 1.5], ids=["object", "boolean", "null", "float"])
def test_json_event_field_of_the_wrong_type(client, hub, value):
    sink, p = hub
    r = client.post(URL, json.dumps(good_fields(p.creds, event={**GOOD, "summary": value})),
                    content_type="application/json")
    if value is None:
        # null means "not given": the summary defaults to the subject.
        assert r.json()["code"] == 0, r.json()
        assert SendLog.objects.get().event["summary"] == "测试主题 Test"
        return
    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["error"]) == (-1, "invalid_event")
    assert_nothing_written(sink)


# --- hub.calendar.parse_event -----------------------------------------------------------------

def refused(raw: dict, subject: str = "subject") -> Refusal:
    with pytest.raises(Refusal) as caught:
        parse_event(raw, subject)
    return caught.value


def test_parse_event_defaults():
    event = parse_event(dict(GOOD), "主题")
    local = ZoneInfo(django_settings.TIME_ZONE)
    assert event == {
        "uid": event["uid"], "method": "REQUEST", "sequence": 0, "timezone": django_settings.TIME_ZONE,
        "start": datetime(2026, 12, 1, 10, 0, tzinfo=local).isoformat(),
        "end": datetime(2026, 12, 1, 11, 0, tzinfo=local).isoformat(),
        "summary": "主题", "location": "", "description": "", "organizer": "", "attendees": "",
    }
    assert event["uid"].endswith("@" + django_settings.HUB_DOMAIN)
    assert parse_event(dict(GOOD), "主题")["uid"] != event["uid"]  # a new uid every time
    assert json.loads(json.dumps(event)) == event  # stored in a JSONField as it is


def test_parse_event_normalises():
    event = parse_event({**GOOD, "method": " cancel ", "uid": "  u-1@example.com ", "sequence": " 7 ",
                         "timezone": " Europe/Berlin ", "summary": "   ", "location": " Room 1 "}, "Subject")
    assert (event["method"], event["uid"], event["sequence"]) == ("CANCEL", "u-1@example.com", 7)
    assert event["timezone"] == "Europe/Berlin"
    assert event["summary"] == "Subject"  # blank summary: the subject
    assert event["location"] == "Room 1"


@pytest.mark.parametrize("start,tz,expected", [
    ("2026-12-01T10:00", "Europe/Berlin", "2026-12-01T10:00:00+01:00"),
    ("2026-07-01T10:00", "Europe/Berlin", "2026-07-01T10:00:00+02:00"),  # summer time
    ("2026-12-01T10:00Z", "Asia/Shanghai", "2026-12-01T18:00:00+08:00"),
    ("2026-12-01T10:00+00:00", "Asia/Shanghai", "2026-12-01T18:00:00+08:00"),
    ("2026-12-01T10:00:30+05:30", "UTC", "2026-12-01T04:30:30+00:00"),
])
def test_parse_event_times(start, tz, expected):
    event = parse_event({"start": start, "end": "2027-01-01T00:00Z", "timezone": tz}, "s")
    assert event["start"] == expected


def test_parse_event_description_may_have_line_breaks():
    assert parse_event({**GOOD, "description": "a\r\nb\nc"}, "s")["description"] == "a\r\nb\nc"


def test_parse_event_sequence_bounds():
    assert parse_event({**GOOD, "sequence": "1000000"}, "s")["sequence"] == 1_000_000
    assert refused({**GOOD, "sequence": "1000001"}).error == "invalid_event"


@pytest.mark.parametrize("raw,error", [
    ({**GOOD, "method": "CANCEL"}, "invalid_event"),
    ({**GOOD, "method": "PUBLISH"}, "invalid_event"),
    ({**GOOD, "end": "2026-12-01T09:59"}, "invalid_event"),
    ({**GOOD, "timezone": "Nowhere/City"}, "invalid_event"),
    ({**GOOD, "start": "2026-02-30T10:00"}, "invalid_event"),
    ({"end": "2026-12-01T11:00"}, "invalid_event"),
    ({"start": "2026-12-01T10:00"}, "invalid_event"),
    ({**GOOD, "sequence": "x"}, "invalid_event"),
    ({**GOOD, "organizer": "boss"}, "invalid_event"),
    ({**GOOD, "attendees": '"Name only"'}, "invalid_event"),
    ({**GOOD, "summary": "a\nb"}, "header_injection"),
    ({**GOOD, "organizer": "a@example.com\r\nBCC: x@example.com"}, "header_injection"),
    ({**GOOD, "attendees": "a@example.com\x00"}, "header_injection"),
    ({**GOOD, "location": "x" * 5001}, "too_large"),
    ({**GOOD, "description": "x" * 5001}, "too_large"),
])
def test_parse_event_refusals(raw, error):
    assert refused(raw).error == error
