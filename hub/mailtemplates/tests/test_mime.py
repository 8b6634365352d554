"""The MIME message of a rendered template: the chosen transfer encoding, attachments,
headers; parsed back with the standard library."""

from __future__ import annotations

import email
from email import policy

import pytest

from hub.mailtemplates import services
from hub.mailtemplates.mime import build_message
from hub.mailtemplates.personalize import render

LINKS = {"unsubscribe_url": "https://h/u/", "webview_url": "https://h/v/"}


@pytest.mark.parametrize("encoding,cte", [("base64", "base64"), ("quoted-printable", "quoted-printable")])
def test_encoding_attachments_and_headers(account, encoding, cte):
    t = services.create_template(account, name="m", subjects="你好 {{fullname}}", encoding=encoding,
                                 html='<p>尊敬的 {{fullname}}</p><a href="{{unsubscribe_url}}">退订</a>',
                                 files=[services.FileIn("报价单.pdf", "application/pdf", b"%PDF-1.4 x")])
    r = render(t, {"fullname": "张三"}, LINKS)
    raw = build_message(t, r, sender="s@example.com", from_name="商店", to="a@example.com", to_name="张三",
                        headers={"List-Unsubscribe": "<https://h/u/>"})
    assert b"\r\n" in raw and all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "你好 张三" and msg["To"].addresses[0].addr_spec == "a@example.com"
    assert msg["List-Unsubscribe"] == "<https://h/u/>"
    text, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text["Content-Transfer-Encoding"] == cte and html_part["Content-Transfer-Encoding"] == cte
    assert "尊敬的 张三" in html_part.get_content() and "https://h/u/" in text.get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "报价单.pdf" and attachment.get_content() == b"%PDF-1.4 x"
