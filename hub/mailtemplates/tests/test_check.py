"""The check (V28 5.3): each rule's colour, the real message size, the queue task, a
stale revision, the operator's red pass."""

from __future__ import annotations

import pytest

from hub.mailtemplates import services
from hub.mailtemplates.check import GMAIL_CLIP_BYTES, colour_of, content_findings
from hub.mailtemplates.models import RiskyPhrase, Template

from .conftest import GOOD_HTML, checked

UNSUB = '<a href="{{unsubscribe_url}}">退订</a>'
TEXT = "<p>" + "这是一封正常的邮件，内容充实。" * 30 + "</p>"


def codes(html: str, subjects=("主题",), phrases=()) -> dict[str, str]:
    return {f["code"]: f["level"] for f in content_findings(list(subjects), html, "", list(phrases))}


def test_green_template_has_no_findings():
    assert codes(GOOD_HTML) == {}
    assert colour_of([]) == "green"


@pytest.mark.parametrize("html,code", [
    (TEXT + UNSUB + "<script>alert(1)</script>", "script"),
    (TEXT + UNSUB + '<img src="x.png" alt="x" onerror="alert(1)">', "script"),
    (TEXT + UNSUB + '<a href=" JavaScript:alert(1)">x</a>', "script"),
    (TEXT + UNSUB + '<form action="https://x"><input name="p"></form>', "form"),
    (TEXT + UNSUB + '<iframe src="https://x"></iframe>', "frame"),
    (TEXT + UNSUB + '<object data="x"></object>', "frame"),
    (TEXT + UNSUB + "{{nosuch}}", "broken_placeholder"),
    (TEXT + UNSUB + "{{fullname", "broken_placeholder"),
    (TEXT, "no_unsubscribe"),
])
def test_red_rules(html, code):
    found = codes(html)
    assert found[code] == "red"
    assert colour_of(content_findings(["s"], html, "", [])) == "red"


def test_broken_placeholder_in_a_subject_or_the_text_is_red():
    assert codes(TEXT + UNSUB, subjects=["Hi {{name}}"])["broken_placeholder"] == "red"
    found = content_findings(["s"], TEXT + UNSUB, "Hi {{nme}}", [])
    assert [f["code"] for f in found] == ["broken_placeholder"]


@pytest.mark.parametrize("html,code", [
    (TEXT + UNSUB + "<p>" + "x" * GMAIL_CLIP_BYTES + "</p>", "gmail_clip"),
    (TEXT + UNSUB + '<img src="https://x/a.png">', "img_no_alt"),
    (UNSUB + '<img src="https://x/a.png" alt="big banner">', "image_heavy"),
    (TEXT + UNSUB + "".join(f'<img src="https://x/{i}.png" alt="p">' for i in range(20)), "image_heavy"),
    (TEXT + UNSUB + "".join(f'<a href="https://x/{i}">l</a>' for i in range(51)), "many_links"),
])
def test_yellow_rules(html, code):
    found = codes(html)
    assert found == {code: "yellow"}


def test_risky_phrases_in_subject_or_visible_text_case_insensitive():
    assert codes(TEXT + UNSUB, subjects=["恭喜您中奖了"], phrases=["中奖"]) == {"risky_phrase": "yellow"}
    assert codes(TEXT + UNSUB + "<p>Click HERE now</p>", phrases=["click here"]) == {"risky_phrase": "yellow"}
    # In an attribute or a comment, not in the visible text: no finding.
    assert codes(TEXT + UNSUB + '<img alt="p" title="免费" src="https://x/a.png"><!-- 免费 -->', phrases=["免费"]) == {}


def test_seeded_phrases_are_used_and_editable(account, db):
    assert RiskyPhrase.objects.filter(phrase="免费").exists()  # the initial migration's list
    t = services.create_template(account, name="n", subjects="限时免费", html=GOOD_HTML)
    assert checked(t).colour == "yellow"
    RiskyPhrase.objects.filter(phrase="免费").update(enabled=False)
    services.update_template(account, t.pk, name="n2")
    assert checked(t).colour == "green"


def test_check_stores_status_colour_size(template):
    assert (template.check_status, template.colour, template.size_status) == (-1, "", -1)
    t = checked(template)
    assert (t.check_status, t.colour, t.size_status) == (1, "green", 1), t.findings
    assert 1 <= t.size_kb <= 20 and t.checked_at is not None and t.findings == []


def test_red_status_zero_and_size_counts_attachments(account):
    t = services.create_template(account, name="r", subjects="s", html="<p>no unsubscribe</p>")
    t = checked(t)
    assert (t.check_status, t.colour) == (0, "red") and t.findings[0]["code"] == "no_unsubscribe"
    small = t.size_kb
    services.add_attachments(account, t.pk, [services.FileIn("a.bin", "", b"\x00" * 300_000)])
    t = checked(t)
    assert t.size_kb >= small + 400  # base64: 4/3 of 300 KB


def test_queued_task_runs_the_check(account, run_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        t = services.create_template(account, name="q", subjects="s", html=GOOD_HTML)
    assert run_queue() == 1
    t.refresh_from_db()
    assert t.colour == "green" and t.size_status == 1


def test_stale_revision_writes_nothing(template):
    from hub.mailtemplates.check import run_check

    old = template.revision
    services.update_template(template.account, template.pk, html="<p>changed</p>")
    assert run_check(template.pk, old) == "stale"
    template.refresh_from_db()
    assert template.check_status == -1 and template.colour == ""


def test_red_pass_only_for_a_checked_red_and_cleared_by_a_change(account, template):
    assert not services.red_pass(checked(template), "op")  # green: nothing to pass
    t = services.create_template(account, name="r", subjects="s", html="<p>x</p>")
    assert not services.red_pass(t, "op")  # still checking
    t = checked(t)
    assert services.red_pass(t, "op")
    t.refresh_from_db()
    assert (t.colour, t.check_status, t.red_pass_by) == (Template.Colour.RED_PASS, 1, "op")
    services.update_template(account, t.pk, name="r2")
    t = checked(t)
    assert (t.colour, t.red_pass_by) == ("red", "")
