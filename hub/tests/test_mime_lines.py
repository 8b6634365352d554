"""The MIME builder never writes a line over RFC 5322's 998 octets (and keeps to 78 where it
can), whatever the subject, names and attachment names, and what it writes parses back to
the same text. Issue 17 item 9 (an unbreakable 998-character subject went out as one
1,001-octet line) and the attachment `name=` parameter."""

from __future__ import annotations

import email
import re
from email import policy
from email.header import decode_header, make_header
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.delivery.message import SMTP_POLICY, _attachment_part, build_message
from hub.headertext import display_name, one_line
from hub.models import SendLog

SENDER = "noreply@hub.example.com"


def built(subject: str = "hello", from_name: str = "Shop", to: str = "a@example.com") -> bytes:
    row = SendLog(id=7, app_id=3, subject=subject, from_name=from_name, to=to, html_body="<p>x</p>",
                  message_id="<m@hub.example.com>", attachment_count=0)
    return build_message(row, SENDER).as_bytes(policy=SMTP_POLICY)


def header_section(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def longest_line(raw: bytes) -> int:
    return max(len(line) for line in raw.split(b"\r\n"))


def decoded(value: str) -> str:
    """RFC 2047 decoding as RFC 2047 says (white space between encoded words dropped)."""
    return str(make_header(decode_header(value)))


def parsed_header(raw: bytes, name: str) -> str:
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    return re.sub(r"\r?\n(?=[ \t])", "", msg[name])  # unfolded, as RFC 5322 2.2.3


@pytest.mark.parametrize("subject", ["x" * 998, "a" * 400 + " " + "b" * 597, "长" * 998, "=?utf-8?q?x?= " * 60])
def test_long_unbreakable_subject_is_folded_within_78_octets(subject):
    raw = built(subject=subject)
    assert longest_line(header_section(raw)) <= 78
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == subject


def test_encoded_word_lookalike_in_a_subject_is_not_decoded_by_the_reader():
    raw = built(subject="=?utf-8?q?injected?=")
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == "=?utf-8?q?injected?="


# Any text the API or the admin could store, but for what it refuses (controls, line breaks).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=1000)
names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=text, from_name=names, to_name=names)
def test_every_line_within_998_and_headers_round_trip(subject, from_name, to_name):
    to = f'"{to_name.replace(chr(92), "").replace(chr(34), "")}" <to@example.com>'
    raw = built(subject=subject, from_name=from_name, to=to)
    assert longest_line(raw) <= 998
    # The header section keeps to 78 octets: nothing here is longer than an address.
    assert longest_line(header_section(raw)) <= 78
    assert decoded(parsed_header(raw, "Subject")) == one_line(subject)
    [(name, addr)] = getaddresses([parsed_header(raw, "From")])
    assert (decoded(name) if name.startswith("=?") else name, addr) == (display_name(from_name), SENDER)
    [(name, addr)] = getaddresses([parsed_header(raw, "To")])
    to_expected = display_name(getaddresses([one_line(to)])[0][0])
    assert (decoded(name) if name.startswith("=?") else name, addr) == (to_expected, "to@example.com")


@settings(max_examples=100, deadline=None)
@given(filename=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"'),
                        min_size=1, max_size=255).map(str.strip).filter(bool))
def test_attachment_names_fit_and_read_back_both_ways(filename):
    # (hub.sending refuses controls and '"' and strips the name: the rest can be anything)
    raw = _attachment_part(filename, "application/pdf", b"%PDF").as_bytes(policy=SMTP_POLICY)
    assert longest_line(raw) <= 78
    part = email.message_from_bytes(raw, policy=policy.default)
    assert part.get_filename() == filename  # Content-Disposition filename (RFC 2231)
    assert decoded(part.get_param("name")) == filename  # Content-Type name (RFC 2047 when not ASCII)


def test_attachment_gets_the_name_parameter_older_clients_read():
    raw = _attachment_part("報告.pdf", "application/pdf", b"%PDF").as_bytes(policy=SMTP_POLICY)
    assert b'Content-Type: application/pdf; name="=?utf-8?b?5aCx5ZGKLnBkZg==?="' in raw
    assert b"Content-Disposition: attachment; filename*=utf-8''%E5%A0%B1%E5%91%8A.pdf" in raw
    raw = _attachment_part("report.pdf", "application/pdf", b"%PDF").as_bytes(policy=SMTP_POLICY)
    assert b'Content-Type: application/pdf; name="report.pdf"' in raw
    assert b'Content-Disposition: attachment; filename="report.pdf"' in raw
