"""The one message every contender sends: a UTF-8 subject, display names on both sides,
a ~2 KB HTML body and its plain-text part. Shared by the baseline, the post_office peer and
the wrk script (which gets it form-encoded), so everyone moves the same bytes."""

from __future__ import annotations

SENDER = "bench@example.com"
SENDER_NAME = "性能测试 Sender"
RECIPIENT = "rcpt@example.net"
RECIPIENT_NAME = "收件人 Recipient"
SUBJECT = "性能测试 — benchmark message ✓"

_ROW = ("<tr><td style=\"padding:4px 8px\">项目 {i}</td><td style=\"padding:4px 8px\">"
        "Order #{i:05d} shipped — 您的订单已发货, thank you for shopping with us.</td></tr>\n")
HTML = (
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Benchmark</title></head>"
    "<body style=\"font-family:sans-serif\">\n<h1>你好, Recipient</h1>\n"
    "<p>This is the SMTP Hub benchmark message. 这是一封性能测试邮件。</p>\n"
    "<table border=\"1\" cellspacing=\"0\">\n" + "".join(_ROW.format(i=i) for i in range(11)) +
    "</table>\n<p><a href=\"https://example.com/unsubscribe\">Unsubscribe</a></p>\n</body></html>\n"
)
TEXT = (
    "你好, Recipient\n\nThis is the SMTP Hub benchmark message. 这是一封性能测试邮件。\n\n"
    + "".join(f"项目 {i}  Order #{i:05d} shipped — 您的订单已发货, thank you for shopping with us.\n"
              for i in range(11))
    + "\nUnsubscribe: https://example.com/unsubscribe\n"
)


if __name__ == "__main__":
    print(len(HTML.encode()), "bytes HTML,", len(TEXT.encode()), "bytes text")
