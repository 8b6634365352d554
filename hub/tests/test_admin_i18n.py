"""The admin speaks Chinese and English: the browser's language by default, a switch in
the user menu, and catalogs (locale/) that translate every string and are compiled."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from hub.admin.i18n_theme import THEME_STRINGS

from .test_admin_support import body

LOCALE = Path(settings.BASE_DIR) / "locale"


@pytest.fixture
def logged_in(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def test_chinese_browser_gets_chinese(logged_in):
    text = body(logged_in.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5"))
    assert '<html lang="zh-hans"' in text
    for phrase in ("今日已发送", "发送日志", "SMTP 服务器", "按状态统计邮件", "搜索应用和模型"):
        assert phrase in text, phrase


def test_english_browser_gets_english(logged_in):
    text = body(logged_in.get("/admin/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9"))
    assert '<html lang="en"' in text
    assert "Sent today" in text and "今日已发送" not in text


def test_default_language_is_chinese(logged_in):
    assert '<html lang="zh-hans"' in body(logged_in.get("/admin/"))


def test_language_switch_in_the_user_menu(logged_in):
    text = body(logged_in.get("/admin/hub/sendlog/", HTTP_ACCEPT_LANGUAGE="zh-CN"))
    assert 'action="/i18n/setlang/"' in text
    assert 'name="language" type="hidden" value="en"' in text
    assert 'name="language" type="hidden" value="zh-hans"' in text
    assert 'name="next" type="hidden" value="/admin/hub/sendlog/"' in text  # back to the same page
    r = logged_in.post("/i18n/setlang/", {"language": "en", "next": "/admin/hub/sendlog/"},
                       HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert r.status_code == 302 and r["Location"] == "/admin/hub/sendlog/"
    # From now on English, whatever the browser says.
    text = body(logged_in.get("/admin/hub/sendlog/", HTTP_ACCEPT_LANGUAGE="zh-CN"))
    assert '<html lang="en"' in text and "Export these results as CSV" in text


def test_translated_action_pages_and_messages(logged_in, make_server):
    server = make_server(name="relay")
    text = body(logged_in.get(f"/admin/hub/smtpserver/{server.pk}/test-connection/", HTTP_ACCEPT_LANGUAGE="zh-CN"))
    assert "开始测试" in text and "测试连接" in text
    r = logged_in.post(f"/admin/hub/smtpserver/{server.pk}/test-connection/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "连接测试失败" in body(r)


# --- the catalogs -------------------------------------------------------------------------

def po_entries(path: Path) -> list[dict]:
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if block.lstrip().startswith("#~"):
            continue  # obsolete
        fields: dict[str, list[str]] = {}
        key = None
        flags = ""
        for line in block.splitlines():
            if line.startswith("#,"):
                flags += line
            m = re.match(r"^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d\])?) (\".*\")$", line)
            if m:
                key = m.group(1)
                fields[key] = [m.group(2)]
            elif line.startswith('"') and key:
                fields[key].append(line)
        if "msgid" in fields:
            entry = {k: "".join(ast.literal_eval(part) for part in v) for k, v in fields.items()}
            entry["fuzzy"] = "fuzzy" in flags
            entries.append(entry)
    return entries


@pytest.mark.parametrize("lang", ["zh_Hans", "en"])
def test_every_string_is_translated_and_compiled(lang):
    po = LOCALE / lang / "LC_MESSAGES" / "django.po"
    mo = LOCALE / lang / "LC_MESSAGES" / "django.mo"
    entries = [e for e in po_entries(po) if e["msgid"]]
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not (e.get("msgstr") or e.get("msgstr[0]"))]
    assert untranslated == []
    assert [e["msgid"] for e in entries if e["fuzzy"]] == []
    # The .mo is compiled from this .po (compilemessages was run after the last edit).
    with mo.open("rb") as f:
        catalog = gettext.GNUTranslations(f)
    stale = [e["msgid"] for e in entries if "msgstr" in e and "msgctxt" not in e
             and catalog.gettext(e["msgid"]) != e["msgstr"]]
    assert stale == []


def test_chinese_catalog_really_is_chinese():
    entries = {e["msgid"]: e.get("msgstr", "") for e in po_entries(LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po")}
    han = re.compile(r"[\u4e00-\u9fff]")
    # Names and protocol words may stay as they are; everything else is translated.
    same_ok = {"SMTP Hub", "AppID", "AppSecret", "TLS", "STARTTLS", "Message-ID", "HTTP API"}
    assert [m for m, s in entries.items() if m and not han.search(s) and m not in same_ok] == []


def test_theme_strings_are_in_the_catalog():
    entries = {e["msgid"] for e in po_entries(LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po")}
    assert set(THEME_STRINGS) <= entries


def test_queue_pages_label_their_fields_in_chinese(logged_in):
    """django-q2's own zh_Hans catalogue leaves its field labels in English; ours fills them."""
    from django_q.models import Schedule

    schedule = Schedule.objects.create(func="hub.tasks.sweep", name="x")
    text = body(logged_in.get(f"/admin/django_q/schedule/{schedule.pk}/change/", HTTP_ACCEPT_LANGUAGE="zh-CN"))
    for phrase in ("函数", "名称", "例如 module.tasks.function"):
        assert phrase in text, phrase
    assert "e.g. module.tasks.function" not in text
