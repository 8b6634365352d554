"""Parsing V28 answers in tests: a real XML parser, children checked by name and order."""

from __future__ import annotations

import xml.etree.ElementTree as ET

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def content(response) -> bytes:
    """The body of a django test client response, streamed or not, or of a requests one."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def parse(body) -> ET.Element:
    if not isinstance(body, bytes):
        body = content(body)
    assert body.startswith(XML_DECLARATION), body[:80]
    return ET.fromstring(body)


def fields(element: ET.Element) -> list[tuple[str, str]]:
    """(tag, text) of each child, in document order."""
    return [(child.tag, child.text or "") for child in element]


def envelope(response) -> tuple[str, str]:
    """(status, data) of a `<result>` answer (django test client or requests response)."""
    body = response.content
    root = parse(body)
    assert root.tag == "result", body
    assert [child.tag for child in root] == ["status", "data"], body
    return root.findtext("status"), root.findtext("data") or ""

