"""The send-log detail page laid out by a real browser (headless Chromium, as in
test_browser.py): a long Message-ID must stay inside its own cell instead of running over the
Client IP beside it, and the page has a favicon. Saves a screenshot under the temp dir
(never in the repository)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from hub.models import DeliveryAttempt, SendLog

from .test_browser import CHROMEDRIVER, CHROMIUM, click, fill, wait_for

SHOT = Path(tempfile.gettempdir()) / "smtphub-screenshots" / "sendlog-detail-long-values.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver"),
]

# One unbreakable token, as long Message-IDs of some senders are.
LONG_ID = "<" + "a1b2c3d4e5" * 16 + "@mail.a-rather-long-sending-domain.example.com>"


def box(driver, label: str) -> dict:
    """The bounding box of the read-only value of the field labelled `label`, and the width
    its content would need (unfold's field lines carry no field name, only the label)."""
    return driver.execute_script(
        "const label = [...document.querySelectorAll('.field-line label')]"
        "  .find(l => l.textContent.trim() === arguments[0]);"
        "const el = label.closest('.field-line').querySelector('.readonly');"
        "const r = el.getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, scroll: el.scrollWidth,"
        " client: el.clientWidth, text: el.textContent};", label)


def test_long_message_id_stays_in_its_cell(live_server, browser, make_server, make_app):
    server = make_server(name="relay")
    app = make_app(server, name="shop").app
    row = SendLog.objects.create(app=app, smtp_server=server, to="rcpt@example.com", subject="Hello",
                                 html_body="<p>Hello</p>", status="sent", from_email="noreply@example.com",
                                 message_id=LONG_ID, client_ip="203.0.113.250",
                                 idempotency_key="order-" + "9" * 60)
    DeliveryAttempt.objects.create(log=row, server=server, result="sent", smtp_code=250, smtp_reply="2.0.0 Ok",
                                   started_at=timezone.now())
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    d = browser
    d.get(f"{live_server.url}/admin/login/")
    fill(d, "username", "admin")
    fill(d, "password", "a-long-test-password")
    click(d, "button[type=submit]")
    wait_for(d, "#hub-dashboard")

    d.get(f"{live_server.url}/admin/hub/sendlog/{row.pk}/change/")
    wait_for(d, ".field-line .readonly")
    d.execute_script("window.scrollTo(0, document.body.scrollHeight);"
                     "document.querySelectorAll('.field-line').forEach(e => e.scrollTop = 0);")
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOT))
    mid, ip, key = box(d, "Message-ID"), box(d, "Client IP"), box(d, "Idempotency key")
    # Side by side or stacked, the boxes must not overlap, and the value must not spill out.
    for other in (ip, key):
        overlap_x = min(mid["right"], other["right"]) - max(mid["left"], other["left"])
        overlap_y = min(mid["bottom"], other["bottom"]) - max(mid["top"], other["top"])
        assert overlap_x <= 0 or overlap_y <= 0, (mid, other)
    for value in (mid, ip, key):
        assert value["scroll"] <= value["client"] + 1, value  # wrapped, not overflowing
    assert mid["text"].strip() == LONG_ID

    # A favicon is declared, and the browser's blind request for /favicon.ico finds one.
    href = d.execute_script("const l = document.querySelector('link[rel~=icon]'); return l && l.href;")
    assert href
    status = d.execute_script(
        "return Promise.all([fetch(arguments[0]), fetch('/favicon.ico')]).then(rs => rs.map(r => r.status));", href)
    assert status == [200, 200]
