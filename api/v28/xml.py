"""A tiny XML *writer* for the V28 answers (reading XML is never done here).

ElementTree cannot write CDATA sections, and V28 clients expect them where the reference
shows them (addresses, names, messages), so the few element shapes are built here:

    render(el("result", el("status", "success"), cdata("data", "解析完成")))

Text is escaped with xml.sax.saxutils; a CDATA section holding "]]>" is split into two
sections so it cannot end early; characters XML 1.0 forbids (control characters, lone
surrogates, U+FFFE/U+FFFF) become U+FFFD so the answer always parses. Element names are
constants of this package, never user input (checked anyway)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Not allowed anywhere in an XML 1.0 document (https://www.w3.org/TR/xml/#charsets).
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def clean(text: str) -> str:
    return _INVALID.sub("\ufffd", text)


@dataclass
class Element:
    tag: str
    text: str = ""
    children: list[Element] = field(default_factory=list)
    as_cdata: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.tag):
            raise ValueError(f"not an XML element name: {self.tag!r}")


def el(tag: str, *content: object) -> Element:
    """An element: `el("id", 5)` has escaped text (None and "" give an empty element),
    `el("result", el("status", "success"), ...)` has children."""
    if content and not isinstance(content[0], Element):
        text, children = content[0], content[1:]
    else:
        text, children = "", content
    if not all(isinstance(child, Element) for child in children):
        raise TypeError("an element's text must come before its children")
    return Element(tag, "" if text is None else str(text), list(children))


def cdata(tag: str, text: object = "") -> Element:
    """An element whose text is written as a CDATA section."""
    return Element(tag, "" if text is None else str(text), as_cdata=True)


def _cdata_section(text: str) -> str:
    # "]]>" would close the section: end it after "]]" and open a new one before ">".
    return "<![CDATA[" + clean(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _parts(element: Element) -> Iterator[str]:
    yield f"<{element.tag}>"
    if element.text:
        yield _cdata_section(element.text) if element.as_cdata else escape(clean(element.text))
    elif element.as_cdata:
        yield "<![CDATA[]]>"
    for child in element.children:
        yield from _parts(child)
    yield f"</{element.tag}>"


def render(root: Element) -> bytes:
    """The whole document, with the XML declaration, as UTF-8 bytes."""
    return (DECLARATION + "".join(_parts(root))).encode("utf-8")


def render_stream(tag: str, head: Iterable[Element], items: Iterable[Element]) -> Iterator[bytes]:
    """The same document in pieces, for answers too long to build in memory: the
    declaration and the opening tag, the `head` elements, each of `items`, the closing tag."""
    if not _NAME.match(tag):
        raise ValueError(f"not an XML element name: {tag!r}")
    yield (DECLARATION + f"<{tag}>").encode("utf-8")
    for element in head:
        yield "".join(_parts(element)).encode("utf-8")
    for element in items:
        yield "".join(_parts(element)).encode("utf-8")
    yield f"</{tag}>".encode()
