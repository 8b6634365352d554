"""Personalization: the one syntax, escaping per part, defaults, unknown names, subjects,
the compiled cache, and property tests (any input renders, escaping holds)."""

from __future__ import annotations

import html

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.mailtemplates import personalize as p
from hub.mailtemplates.check import content_findings
from hub.mailtemplates.models import Template
from hub.mailtemplates.personalize import SAMPLE_CONTACT, render

LINKS = {"unsubscribe_url": "https://h.example/u/a&b/", "webview_url": "https://h.example/v/x/"}


def _tpl(html_body: str, subjects=("S",), text: str = "", pk=None) -> Template:
    return Template(pk=pk, name="t", subjects=list(subjects), html=html_body, text=text)


def test_script_name_stays_text_in_html_and_raw_in_text():
    t = _tpl("<p>Hi {{fullname}}</p>", subjects=["Hi {{fullname}}"], text="Hi {{fullname}}")
    r = render(t, {"fullname": "<script>alert(1)</script>"}, LINKS)
    assert r.html == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert r.text == "Hi <script>alert(1)</script>"
    assert r.subject == "Hi <script>alert(1)</script>"


def test_quotes_escaped_for_attributes_and_links_escaped_in_html():
    t = _tpl('<a title="{{var1}}" href="{{unsubscribe_url}}">x</a>', text="{{unsubscribe_url}}")
    r = render(t, {"var1": '" onmouseover="x'}, LINKS)
    assert 'title="&quot; onmouseover=&quot;x"' in r.html
    assert 'href="https://h.example/u/a&amp;b/"' in r.html
    assert r.text == "https://h.example/u/a&b/"


def test_defaults_apply_to_empty_or_missing_values_only():
    t = _tpl("{{fullname|朋友}}/{{ area | 中国 }}/{{var3}}/{{phone|}}")
    assert render(t, {"fullname": "", "area": "北京"}, LINKS).html == "朋友/北京//"
    assert render(t, {"fullname": "张三"}, LINKS).html == "张三/ 中国 //"


def test_unknown_and_unclosed_placeholders_stay_as_written_and_are_reported():
    t = _tpl("{{nosuch|x}} {{fullname.__class__}} {{var1")
    r = render(t, {"fullname": "A"}, LINKS)
    assert r.html == "{{nosuch|x}} {{fullname.__class__}} {{var1"
    broken = p.broken_placeholders(t.html)
    assert "{{nosuch|x}}" in broken and any(b.startswith("{{fullname.__") for b in broken)
    assert any(b.startswith("{{var1") for b in broken)
    assert p.broken_placeholders("{{fullname|朋友}} {{unsubscribe_url}} a{b}c }}") == []


def test_subject_value_line_breaks_become_spaces_and_subjects_rotate():
    t = _tpl("x", subjects=["A {{var1}}", "B {{var1|d}}"])
    assert render(t, {"var1": "1\r\nBcc: x@y"}, LINKS).subject == "A 1  Bcc: x@y"
    assert render(t, {}, LINKS, subject_index=1).subject == "B d"
    assert render(t, {}, LINKS, subject_index=3).subject == "B d"


def test_text_generated_from_html_keeps_the_link_placeholders():
    t = _tpl('<p>Hello {{fullname|friend}}</p><a href="{{unsubscribe_url}}">退订</a>')
    r = render(t, {}, LINKS)
    assert "Hello friend" in r.text and r.text.rstrip().endswith("https://h.example/u/a&b/")


def test_contact_values_from_an_object():
    import datetime

    class C:
        email, fullname, sex, birthday = "a@x.com", "A", "F", datetime.date(1990, 1, 2)
        phone = area = ""
        var1 = None

    values = p.contact_values(C())
    assert values["birthday"] == "1990-01-02" and values["var1"] == "" and values["var10"] == ""


def test_compiled_once_per_revision(monkeypatch):
    p._CACHE.clear()
    calls = []
    real = p.compile_source
    monkeypatch.setattr(p, "compile_source", lambda s: calls.append(s) or real(s))
    t = _tpl("<p>{{fullname}}</p>", pk=10**9)
    t.revision = 1
    for _ in range(3):
        render(t, SAMPLE_CONTACT, LINKS)
    first = len(calls)
    assert first == 3  # one subject, the HTML, the text: once
    t.revision = 2
    t.html = "<p>new {{fullname}}</p>"
    assert render(t, {"fullname": "z"}, LINKS).html == "<p>new z</p>"
    assert len(calls) == 2 * first
    p._CACHE.clear()


value = st.text(max_size=40)
sources = st.lists(st.one_of(
    st.text(max_size=30),
    st.sampled_from(["{{", "}}", "|", "{{fullname}}", "{{var1|默认}}", "{{unsubscribe_url}}", "{{ x }}",
                     "{{fullname|a|b}}", "<b>", "&amp;"]),
), max_size=12).map("".join)


@settings(max_examples=200, deadline=None)
@given(source=sources, fullname=value, var1=value)
def test_any_input_renders(source, fullname, var1):
    t = _tpl(source, subjects=[source or "s"], text=source)
    r = render(t, {"fullname": fullname, "var1": var1}, LINKS)
    assert isinstance(r.html, str) and isinstance(r.text, str) and isinstance(r.subject, str)
    # Placeholder values never add a line break to a subject (literal text is checked on save).
    if "\n" not in source and "\r" not in source:
        assert "\n" not in r.subject and "\r" not in r.subject
    p.broken_placeholders(source)


@settings(max_examples=200, deadline=None)
@given(fullname=st.text(min_size=1, max_size=60))
def test_escaping_holds(fullname):
    t = _tpl("<p>[{{fullname}}]</p>", subjects=["[{{fullname}}]"], text="[{{fullname}}]")
    r = render(t, {"fullname": fullname}, LINKS)
    assert r.html == "<p>[" + html.escape(fullname, quote=True) + "]</p>"
    inner = r.html[4:-5]
    assert "<" not in inner and ">" not in inner and '"' not in inner
    assert r.text == "[" + fullname + "]"
    assert "\n" not in r.subject and "\r" not in r.subject


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(name=names, default=st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_characters="{}"),
                                                        max_size=20)))
def test_unknown_names_are_reported_known_ones_are_not(name, default):
    source = "{{" + name + ("" if default is None else "|" + default) + "}}"
    broken = p.broken_placeholders(source)
    assert bool(broken) == (name not in p.NAMES)
    # ... and the check reports it (red), with the unsubscribe link present.
    found = content_findings(["s"], source + '<a href="{{unsubscribe_url}}">u</a>', "", [])
    assert ("broken_placeholder" in {f["code"] for f in found}) == (name not in p.NAMES)
