"""The parser (hub.inbound.dsn) on every sample shape: bounces of Postfix, Exim, Sendmail,
Exchange, Gmail (RFC 3464 and the older plain text), QQ (GB18030 text part), a NetEase
delay; complaints of Yahoo, Outlook.com JMRP and AOL; a DMARC failure report that is none.
Each classified as the delivery engine classifies SMTP replies (hub.delivery.bounces)."""

from __future__ import annotations

import pytest

from hub.delivery import bounces
from hub.inbound import dsn
from hub.models import FailureType as T

from .conftest import sample

RCPT = "ghost@example.com"
IDS = {"MESSAGE_ID": "<42.test@example.org>", "LOG_ID": "42", "APP_ID": "7",
       "RETURN_PATH": "b-2a-0123456789abcdef0123@bounce.example"}


@pytest.mark.parametrize("name,action,status,code,failure,hard", [
    ("postfix-user-unknown.eml", "failed", "5.1.1", 550, T.NOT_EXIST, True),
    ("exim-plain.eml", "failed", "5.1.1", 550, T.NOT_EXIST, True),
    ("sendmail-dsn.eml", "failed", "5.1.1", 550, T.NOT_EXIST, True),
    ("exchange-dsn.eml", "failed", "5.1.10", 550, T.NOT_EXIST, True),
    ("gmail-dsn.eml", "failed", "5.1.1", 550, T.NOT_EXIST, True),
    ("gmail-plain-legacy.eml", "failed", "", 550, T.NOT_EXIST, True),
    ("qq-mailbox-full.eml", "failed", "5.2.2", 552, T.OVER_QUOTA, False),
    ("netease-delayed.eml", "delayed", "4.2.2", 451, T.REFUSED, False),
])
def test_bounce_samples(name, action, status, code, failure, hard):
    parsed = dsn.parse(sample(name, rcpt=RCPT, **IDS))
    assert parsed.kind == "bounce"
    assert [r.email for r in parsed.recipients] == [RCPT]
    r = parsed.recipients[0]
    assert (r.action, r.status, r.code) == (action, status, code)
    text = f"{r.status} {r.diagnostic}"
    assert bounces.failure_type(r.code, text) == failure
    assert bounces.is_hard_bounce(r.code, text) is hard
    # The returned message's identifiers (from its headers, or the copy in a plain body).
    assert (parsed.log_id, parsed.app_id, parsed.message_id) == (42, 7, "<42.test@example.org>")
    assert IDS["RETURN_PATH"] in parsed.return_paths


def test_gmail_multiline_diagnostic_is_unfolded():
    r = dsn.parse(sample("gmail-dsn.eml", rcpt=RCPT, **IDS)).recipients[0]
    assert "\n" not in r.diagnostic and "does not exist" in r.diagnostic


@pytest.mark.parametrize("name,rcpts,user_agent_type", [
    ("arf-yahoo.eml", [RCPT], "abuse"),
    ("arf-aol.eml", [RCPT], "abuse"),
    ("arf-outlook-jmrp.eml", [""], "abuse"),  # JMRP redacts the recipient: the matched message decides
])
def test_complaint_samples(name, rcpts, user_agent_type):
    parsed = dsn.parse(sample(name, rcpt=RCPT, **IDS))
    assert (parsed.kind, parsed.feedback_type) == ("complaint", user_agent_type)
    assert [r.email for r in parsed.recipients] == rcpts
    assert (parsed.log_id, parsed.message_id) == (42, "<42.test@example.org>")
    assert IDS["RETURN_PATH"] in parsed.return_paths


def test_dmarc_failure_report_is_not_a_complaint():
    parsed = dsn.parse(sample("arf-dmarc-failure.eml", rcpt=RCPT, **IDS))
    assert (parsed.kind, parsed.feedback_type) == ("other", "auth-failure")


@pytest.mark.parametrize("raw", [
    b"From: alice@example.com\r\nSubject: Out of office\r\n\r\nI am away.\r\n",
    b"",
    b"\xff\xfe garbage \x00\x01",
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n--x--\r\n"),
])
def test_anything_else_is_other_or_empty(raw):
    parsed = dsn.parse(raw)
    assert parsed.kind in ("other", "bounce")
    assert parsed.recipients == [] or parsed.kind == "other"


def test_many_recipients_are_capped():
    blocks = "".join(f"Final-Recipient: rfc822; u{i}@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
                     for i in range(dsn.MAX_RECIPIENTS + 20))
    raw = ("Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
           "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n" + blocks + "--x--\r\n")
    assert len(dsn.parse(raw.encode()).recipients) == dsn.MAX_RECIPIENTS
