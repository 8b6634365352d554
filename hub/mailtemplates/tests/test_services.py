"""Templates service: validation and limits (refusals write nothing), edits, attachments,
tenancy (another account's ids are not found) and the sharing rule."""

from __future__ import annotations

import pytest

from hub.mailtemplates import services
from hub.mailtemplates.models import Template, TemplateAttachment
from hub.models import Account

from .conftest import GOOD_HTML


def nothing_written() -> None:
    assert Template.objects.count() == 0 and TemplateAttachment.objects.count() == 0


def test_create_splits_subjects_and_keeps_defaults_with_bars(account):
    t = services.create_template(account, name=" 月刊 ", subjects=" 主题一 | {{fullname|朋友}}你好 ||", html=GOOD_HTML)
    assert t.name == "月刊" and t.subjects == ["主题一", "{{fullname|朋友}}你好"] and t.encoding == "base64"


@pytest.mark.parametrize("kwargs,code", [
    ({"name": ""}, "invalid_name"),
    ({"name": "a\nb"}, "invalid_name"),
    ({"name": "x" * 201}, "invalid_name"),
    ({"subjects": " | "}, "invalid_subject"),
    ({"subjects": "a\r\nBcc: x@y"}, "invalid_subject"),
    ({"subjects": "|".join(["s"] * 21)}, "invalid_subject"),
    ({"html": "  "}, "invalid_content"),
    ({"html": "a\x00b"}, "invalid_content"),
    ({"encoding": "7bit"}, "invalid_encoding"),
    ({"files": [services.FileIn("../../etc/\r\n", "", b"x")]}, "invalid_attachment"),
    ({"files": [services.FileIn("a.txt", "", b"x")] * 11}, "too_many_attachments"),
])
def test_refusals_write_nothing(account, kwargs, code, django_capture_on_commit_callbacks):
    fields = {"name": "n", "subjects": "s", "html": GOOD_HTML, **kwargs}
    with django_capture_on_commit_callbacks() as queued, pytest.raises(services.TemplateError) as exc:
        services.create_template(account, **fields)
    assert exc.value.code == code and not queued
    nothing_written()


def test_size_limits(account, settings):
    settings.HUB_TEMPLATE_MAX_BODY_BYTES = 1000
    with pytest.raises(services.TooLarge):
        services.create_template(account, name="n", subjects="s", html="好" * 400)  # 1200 bytes
    settings.HUB_MAX_ATTACHMENT_BYTES = 10
    with pytest.raises(services.TooLarge):
        services.create_template(account, name="n", subjects="s", html=GOOD_HTML,
                                 files=[services.FileIn("a.bin", "", b"x" * 11)])
    nothing_written()


def test_file_names_lose_client_paths_and_types_are_guessed(account):
    t = services.create_template(account, name="n", subjects="s", html=GOOD_HTML, files=[
        services.FileIn("C:\\Users\\me\\报价.pdf", "application/octet-stream", b"%PDF"),
        services.FileIn("a.png", "image/png; charset=x", b"png"), services.FileIn("x", "bad type!", b"?")])
    got = list(t.attachments.values_list("filename", "content_type", "size"))
    assert got == [("报价.pdf", "application/pdf", 4), ("a.png", "image/png", 3), ("x", "application/octet-stream", 1)]


def test_update_only_given_fields_and_bumps_revision(account, template):
    old = template.revision
    t = services.update_template(account, template.pk, name="新名", text="纯文本")
    assert (t.name, t.text, t.subjects[1], t.revision) == ("新名", "纯文本", "十一月新品", old + 1)
    t = services.update_template(account, template.pk, text="")
    assert t.text == "" and t.check_status == -1
    with pytest.raises(services.TemplateError) as exc:
        services.update_template(account, template.pk)
    assert exc.value.code == "nothing_to_change"


def test_refused_edit_changes_nothing(account, template):
    before = Template.objects.values().get(pk=template.pk)
    with pytest.raises(services.TemplateError):
        services.update_template(account, template.pk, name="ok", encoding="8bit")
    assert Template.objects.values().get(pk=template.pk) == before


def test_attachments_add_delete_one_delete_all(account, template, settings):
    a, _b = services.add_attachments(account, template.pk, [services.FileIn("a.txt", "", b"a"),
                                                           services.FileIn("b.txt", "", b"b")])
    rev = Template.objects.get(pk=template.pk).revision
    assert services.delete_attachments(account, template.pk, str(a.pk)) == 1
    assert Template.objects.get(pk=template.pk).revision == rev + 1
    with pytest.raises(services.NotFound):
        services.delete_attachments(account, template.pk, str(a.pk))
    with pytest.raises(services.NotFound):
        services.delete_attachments(account, template.pk, "abc")
    services.add_attachments(account, template.pk, [services.FileIn("c.txt", "", b"c")])
    assert services.delete_attachments(account, template.pk, "") == 2  # V28 default: all
    assert not template.attachments.exists()
    settings.HUB_MAX_ATTACHMENTS = 1
    services.add_attachments(account, template.pk, [services.FileIn("d.txt", "", b"d")])
    with pytest.raises(services.TemplateError):
        services.add_attachments(account, template.pk, [services.FileIn("e.txt", "", b"e")])
    assert list(template.attachments.values_list("filename", flat=True)) == ["d.txt"]


def test_another_accounts_template_is_not_found(account, other, template):
    for call in (lambda: services.owned_template(other, template.pk),
                 lambda: services.update_template(other, template.pk, name="x"),
                 lambda: services.delete_template(other, template.pk),
                 lambda: services.add_attachments(other, template.pk, [services.FileIn("a", "", b"a")]),
                 lambda: services.delete_attachments(other, template.pk, "all"),
                 lambda: services.usable_template(other, template.pk),
                 lambda: services.owned_template(account, "x1"), lambda: services.owned_template(account, -1)):
        with pytest.raises(services.NotFound):
            call()
    template.refresh_from_db()
    assert template.name == "月刊" and not template.attachments.exists()
    assert list(services.templates(other)) == []


def test_sharing_rule_manager_to_direct_subaccounts_only(db):
    manager = Account.objects.create(name="m", is_manager=True)
    sub = Account.objects.create(name="s", parent=manager)
    grandchild = Account.objects.create(name="g", parent=sub)
    stranger = Account.objects.create(name="x")
    shared = services.create_template(manager, name="共享", subjects="s", html=GOOD_HTML, shared=True)
    private = services.create_template(manager, name="私有", subjects="s", html=GOOD_HTML)
    assert services.usable_template(sub, shared.pk) == shared
    assert list(services.usable_templates(sub)) == [shared]
    for account, pk in ((sub, private.pk), (grandchild, shared.pk), (stranger, shared.pk)):
        with pytest.raises(services.NotFound):
            services.usable_template(account, pk)
    with pytest.raises(services.NotFound):  # usable, not editable
        services.update_template(sub, shared.pk, name="x")
    assert list(services.templates(sub)) == []
    # A non-manager parent shares nothing.
    plain = Account.objects.create(name="p")
    child = Account.objects.create(name="c", parent=plain)
    t = services.create_template(plain, name="t", subjects="s", html=GOOD_HTML, shared=True)
    with pytest.raises(services.NotFound):
        services.usable_template(child, t.pk)
