"""Control characters in calendar fields (issue 17 item 8): VT, FF, NEL (U+0085), U+2028 and
U+2029 in summary, location and uid, and NUL in the description, went raw into the .ics.
They are refused like mail headers (one definition: hub.headertext), over the API with
nothing written; and the builder never writes one even for an event stored before."""

from __future__ import annotations

import pytest

from api.tests.test_calendar import GOOD, event_fields, hub  # noqa: F401  (hub: the fixture)
from api.tests.test_send_api import assert_nothing_written, good_fields, post
from hub.calendar import build_ics, parse_event
from hub.headertext import CONTROLS
from hub.refusals import Refusal

BREAKERS = ["\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00", "\x1c", "\x7f", "\x01"]


@pytest.mark.parametrize("field", ["summary", "location", "uid", "organizer", "attendees", "method", "timezone"])
@pytest.mark.parametrize("char", BREAKERS, ids=[f"U+{ord(c):04X}" for c in BREAKERS])
def test_one_line_fields_refuse_every_line_break_and_control(field, char):
    value = f"a{char}b@example.com" if field in ("organizer", "attendees") else f"a{char}b"
    with pytest.raises(Refusal) as refused:
        parse_event({**GOOD, field: value}, "s")
    assert refused.value.error == "header_injection"


@pytest.mark.parametrize("char", ["\x00", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x1b"])
def test_description_refuses_nul_and_controls_but_keeps_cr_lf_tab(char):
    with pytest.raises(Refusal) as refused:
        parse_event({**GOOD, "description": f"a{char}b"}, "s")
    assert refused.value.error == "header_injection"
    assert parse_event({**GOOD, "description": "a\r\nb\tc\nd"}, "s")["description"] == "a\r\nb\tc\nd"


@pytest.mark.parametrize("fmt", ["form", "json"])
def test_api_refuses_and_writes_nothing(client, hub, fmt):  # noqa: F811
    sink, p = hub
    r = post(client, "/api.php", good_fields(p.creds, **event_fields(fmt, **GOOD, summary="评审\u2028METHOD:CANCEL")),
             fmt)
    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["error"]) == (-1, "header_injection")
    assert_nothing_written(sink)


def test_builder_writes_no_control_even_for_an_event_stored_before_the_checks():
    event = parse_event(GOOD, "s")
    event.update(summary="a\x0bb\u2028c", location="x\x85y", uid="u\x0cid@example.com", description="d\x00e\r\nf")
    ics = build_ics(event, ("Org", "org@example.com"), [("", "to@example.com")]).decode("utf-8")
    for line in ics.split("\r\n"):
        assert not CONTROLS.search(line), repr(line)
    assert "SUMMARY:a b c" in ics
