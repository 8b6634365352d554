"""The XML writer: escaping, CDATA (with "]]>" inside), invalid characters, streaming."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from api.v28.xml import cdata, el, render, render_stream


def test_text_is_escaped_and_parses_back():
    doc = render(el("a", "<x> & \"y\" 'z'", el("c", "1 < 2 && 3 > 2")))
    root = ET.fromstring(doc)
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<a>')
    assert root.text == "<x> & \"y\" 'z'"
    assert root.findtext("c") == "1 < 2 && 3 > 2"


@pytest.mark.parametrize("text", ["plain", "", "a]]>b", "]]>", "]]]]>>", "<![CDATA[x]]>", "中文 & <b>"])
def test_cdata_round_trips(text):
    doc = render(el("r", cdata("d", text)))
    assert b"<![CDATA[" in doc
    assert (ET.fromstring(doc).findtext("d") or "") == text


def test_forbidden_characters_are_replaced():
    doc = render(el("r", el("t", "a\x00b\x1bc\ufffe"), cdata("d", "x\x08y")))
    root = ET.fromstring(doc)
    assert root.findtext("t") == "a\ufffdb\ufffdc\ufffd"
    assert root.findtext("d") == "x\ufffdy"


def test_element_names_are_checked():
    with pytest.raises(ValueError):
        el("a b")
    with pytest.raises(ValueError):
        list(render_stream("<x>", [], []))


def test_stream_is_one_document():
    doc = b"".join(render_stream("data", [el("total_num", 2)], (el("addr", el("id", i)) for i in range(2))))
    root = ET.fromstring(doc)
    assert [c.tag for c in root] == ["total_num", "addr", "addr"]
    assert [a.findtext("id") for a in root.findall("addr")] == ["0", "1"]
