"""The message as a mail server receives it: headers (UTF-8, RFC 2047 display names,
Message-ID, Date), the HTML + text alternative, the envelope (sender, To/Cc/Bcc), and what
happens when the server refuses some or all recipients. Parsed back with the stdlib's
modern email API, the way a mail client would read it."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from hub.delivery.outbox import deliver_batch
from hub.models import SendLog
from hub.sending import SendRequest, accept
from hub.textify import html_to_text

HTML = """<html><head><style>p { color: red }</style></head><body>
<h1>订单已发货</h1>
<p>您好，您的订单 <b>#1024</b> 已发货。</p>
<p><a href="https://shop.example.com/orders/1024">查看订单</a></p>
</body></html>"""


@pytest.fixture
def sink(smtp_sink_factory):
    return smtp_sink_factory(refuse={
        "nobody@example.com": "550 5.1.1 User unknown",
        "ghost@example.com": "550 5.1.1 No such mailbox",
    })


@pytest.fixture
def app(sink, make_server, make_app):
    server = make_server(sink, from_email="noreply@hub.example.com")
    return make_app(server, from_name="张三的商店").app


def send(app, **fields) -> SendLog:
    values = {"to": "customer@example.com", "subject": "您的订单已发货 – order shipped", "message": HTML}
    values.update(fields)
    row = accept(app, SendRequest(**values))
    deliver_batch([row.id])
    row.refresh_from_db()
    return row


# --- headers ----------------------------------------------------------------------------

def test_chinese_subject_and_display_names_round_trip(app, sink):
    row = send(app, to_name="李四")

    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    # Without SMTPUTF8, non-ASCII header text must travel RFC 2047-encoded.
    header_block = re.split(rb"\r?\n\r?\n", received.content, maxsplit=1)[0]
    assert header_block.isascii()
    msg = received.message
    assert msg["Subject"] == "您的订单已发货 – order shipped"
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("张三的商店", "noreply@hub.example.com")
    [rcpt] = msg["To"].addresses
    assert (rcpt.display_name, rcpt.addr_spec) == ("李四", "customer@example.com")


def test_from_name_in_the_request_wins_over_the_app(app, sink):
    send(app, from_name="客服中心")

    [sender] = sink.messages[0].message["From"].addresses
    assert sender.display_name == "客服中心"


def test_message_id_date_and_log_id(app, sink):
    row = send(app)

    msg = sink.messages[0].message
    assert row.message_id
    assert msg["Message-ID"] == row.message_id
    assert re.fullmatch(r"<[^@<>\s]+@" + re.escape(settings.HUB_DOMAIN) + ">", msg["Message-ID"])
    assert msg["Date"] is not None and msg["Date"].datetime is not None
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["X-SMTPHub-Log-ID"] == str(row.id)
    assert msg["X-SMTPHub-App-ID"] == str(app.id)


def test_message_ids_are_unique(app, sink):
    first, second = send(app), send(app)

    assert first.message_id != second.message_id
    assert [m.message["Message-ID"] for m in sink.messages] == [first.message_id, second.message_id]


# --- body ---------------------------------------------------------------------------------

def test_html_with_generated_text_alternative(app, sink):
    send(app)

    msg = sink.messages[0].message
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert html.strip() == HTML.strip()
    # Readable: the words, the link target, and no markup or CSS.
    assert "订单已发货" in text
    assert "您好，您的订单 #1024 已发货。" in text
    assert "查看订单 (https://shop.example.com/orders/1024)" in text
    assert "<" not in text and ">" not in text
    assert "color" not in text


def test_given_text_is_used_verbatim(app, sink):
    send(app, text="纯文本版本\nplain version")

    text = sink.messages[0].message.get_body(preferencelist=("plain",)).get_content()
    assert text.rstrip("\n") == "纯文本版本\nplain version"


# --- envelope -------------------------------------------------------------------------------

def test_envelope_sender_is_the_servers_from_email(smtp_sink_factory, make_server, make_app):
    # The login name and the sender differ (common with relays): MAIL FROM, the From header
    # and the row all carry from_email, never the username.
    sink = smtp_sink_factory("starttls", username="login-name", password="pw")
    server = make_server(sink, security="starttls", verify_tls=False, from_email="bounces@hub.example.com")
    app = make_app(server).app

    row = send(app)

    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    assert received.mail_from == "bounces@hub.example.com"
    assert received.message["From"].addresses[0].addr_spec == "bounces@hub.example.com"
    assert row.from_email == "bounces@hub.example.com"


def test_cc_is_in_header_and_envelope(app, sink):
    row = send(app, cc="Boss <boss@example.com>")

    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    assert received.rcpt_tos == ["customer@example.com", "boss@example.com"]
    [cc] = received.message["Cc"].addresses
    assert (cc.display_name, cc.addr_spec) == ("Boss", "boss@example.com")


def test_bcc_is_in_the_envelope_only(app, sink):
    row = send(app, cc="boss@example.com", bcc="audit@example.com")

    assert row.status == SendLog.Status.SENT, row.error
    [received] = sink.messages
    assert received.rcpt_tos == ["customer@example.com", "boss@example.com", "audit@example.com"]
    assert received.message["Bcc"] is None
    assert b"audit@example.com" not in received.content


# --- refused recipients ---------------------------------------------------------------------

def test_one_recipient_refused_the_other_delivered(app, sink):
    row = send(app, to="customer@example.com, nobody@example.com")

    assert row.status == SendLog.Status.SENT, row.error
    assert row.refused_recipients == {"nobody@example.com": [550, "5.1.1 User unknown"]}
    [received] = sink.messages
    assert received.rcpt_tos == ["customer@example.com"]
    # The header still names both: it is what the sender wrote.
    assert [a.addr_spec for a in received.message["To"].addresses] == ["customer@example.com", "nobody@example.com"]


def test_all_recipients_refused_fails_permanently(app, sink):
    row = send(app, to="nobody@example.com, ghost@example.com")

    # 5xx is permanent: failed at once, with the server's reply kept for the admin.
    assert row.status == SendLog.Status.FAILED
    assert row.sent_at is None
    assert row.next_attempt_at is None
    assert row.smtp_code == 550
    assert row.smtp_reply in ("5.1.1 User unknown", "5.1.1 No such mailbox")
    assert row.refused_recipients == {
        "nobody@example.com": [550, "5.1.1 User unknown"],
        "ghost@example.com": [550, "5.1.1 No such mailbox"],
    }
    assert sink.messages == []


# --- html_to_text ------------------------------------------------------------------------------

@pytest.mark.parametrize("html, text", [
    ("<p>Hello</p><p>World</p>", "Hello\n\nWorld"),
    ("line1<br>line2<br/>line3", "line1\nline2\nline3"),
    ("<style>p{color:red}</style><script>alert(1)</script><p>正文</p>", "正文"),
    ("<head><title>Page title</title></head><body>Body</body>", "Body"),
    ("a &amp; b &lt;tag&gt;", "a & b <tag>"),
    ("<div>  lots \n\n of   space  </div>", "lots of space"),
    ('<a href="https://example.com/x">click</a>', "click (https://example.com/x)"),
    # A link whose text is the address is not repeated.
    ('<a href="https://example.com/x">https://example.com/x</a>', "https://example.com/x"),
    # Only real link targets are shown, never script URLs.
    ('<a href="javascript:steal()">x</a>', "x"),
    ("plain text, no tags", "plain text, no tags"),
    ("", ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text


def test_html_to_text_lists_become_bullets():
    lines = [line for line in html_to_text("<ul><li>one</li><li>two</li></ul>").splitlines() if line]
    assert lines == ["- one", "- two"]
