"""Personalization: one syntax, `{{name}}` or `{{name|default}}`, compiled once per template
revision and rendered per recipient by joining strings.

    尊敬的 {{fullname|朋友}}，…  <a href="{{unsubscribe_url}}">退订</a>

- Names: the contact fields (FIELDS) and the links (LINKS); spaces inside the braces are
  allowed (`{{ fullname | 朋友 }}`). Anything else between `{{` and `}}` is not a placeholder:
  it stays as written and the check reports it (red, "broken placeholder").
- The default (after `|`, up to 200 characters, no braces) is used when the value is empty.
  It is template text: written as the author wrote it (HTML in the HTML body).
- Values are HTML-escaped in the HTML body (quotes too: they may sit in an attribute), and
  inserted as they are in the text body and the subject; in a subject every line break or
  control character becomes a space (no header injection).
- No expressions, no attribute access, no code: a placeholder is a lookup in a dict.

This is not a parser: one regex splits the source once into literal and placeholder parts
(`re.split` with the regex's two groups), and rendering joins them."""

from __future__ import annotations

import html as html_lib
import re
from collections import OrderedDict
from dataclasses import dataclass

from hub.headertext import one_line
from hub.textify import html_to_text

FIELDS = ("email", "fullname", "sex", "birthday", "phone", "area", *(f"var{i}" for i in range(1, 11)))
LINKS = ("unsubscribe_url", "webview_url")
NAMES = frozenset(FIELDS + LINKS)

# Two groups: the name, the default (None without `|`). A default holds no brace, so a
# placeholder can never swallow the next one.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,40})\s*(?:\|([^{}]{0,200}))?\}\}")

# Compiled form: a tuple (literal, name, default, literal, name, default, ..., literal).
Compiled = tuple


def compile_source(source: str) -> Compiled:
    return tuple(PLACEHOLDER.split(source))


def placeholders(source: str) -> list[tuple[str, str | None]]:
    """(name, default) of every placeholder, in order."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(source)]


def broken_placeholders(source: str) -> list[str]:
    """What looks like a placeholder but is not one: unknown names, and `{{` left in the
    literal text (unclosed, or with something that is not a name inside)."""
    problems = [m.group(0) for m in PLACEHOLDER.finditer(source) if m.group(1) not in NAMES]
    for literal in PLACEHOLDER.split(source)[::3]:
        start = literal.find("{{")
        while start != -1:
            problems.append(literal[start:start + 40])
            start = literal.find("{{", start + 2)
    return problems


def _render(compiled: Compiled, values: dict[str, str], mode: str) -> str:
    out = [compiled[0]]
    for i in range(1, len(compiled), 3):
        name, default = compiled[i], compiled[i + 1]
        if name in NAMES:
            value = values.get(name) or ""
            if value:
                if mode == "html":
                    value = html_lib.escape(value, quote=True)
                elif mode == "subject":
                    value = one_line(value)
            else:
                value = default or ""
                if mode == "subject":
                    value = one_line(value)
        else:  # not one of ours: left as written, the check reports it
            value = "{{" + name + ("|" + default if default is not None else "") + "}}"
        out.append(value)
        out.append(compiled[i + 2])
    return "".join(out)


def generated_text(html: str) -> str:
    """The text body made from the HTML. Links whose href is a placeholder lose their target
    in the conversion (html_to_text shows only http(s) targets), so the unsubscribe and
    web-view links are added at the end when the text would lack them."""
    text = html_to_text(html)
    used = {name for name, _default in placeholders(html)}
    missing = [name for name in LINKS if name in used and name not in {n for n, _d in placeholders(text)}]
    if missing:
        text += "\n\n" + "\n".join("{{" + name + "}}" for name in missing)
    return text


@dataclass(frozen=True)
class CompiledTemplate:
    subjects: tuple[Compiled, ...]
    html: Compiled
    text: Compiled


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


# Templates compiled in this process, newest last: (id, revision, updated time) ->
# CompiledTemplate (the time too: an id may be reused after a delete on some databases). A
# campaign uses a handful of templates; the bound keeps an admin session with many from
# growing the cache.
_CACHE: OrderedDict[tuple, CompiledTemplate] = OrderedDict()
CACHE_SIZE = 64


def compiled(template) -> CompiledTemplate:
    """The template's compiled form, built once per revision in this process."""
    key = (template.pk, template.revision, template.updated_at)
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    text = template.text or generated_text(template.html)
    result = CompiledTemplate(
        subjects=tuple(compile_source(s) for s in (template.subjects or [""])),
        html=compile_source(template.html),
        text=compile_source(text),
    )
    if template.pk is not None:
        _CACHE[key] = result
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def render(template, contact_fields: dict[str, str], links: dict[str, str], subject_index: int = 0) -> Rendered:
    """The subject (number `subject_index` of the template's subjects, modulo their count),
    HTML and text of `template` for one recipient. `contact_fields` maps FIELDS to strings
    (contact_values() makes it from a Contact), `links` maps LINKS to absolute URLs."""
    parts = compiled(template)
    values = {**contact_fields, **links}
    subject = parts.subjects[subject_index % len(parts.subjects)]
    return Rendered(_render(subject, values, "subject"), _render(parts.html, values, "html"),
                    _render(parts.text, values, "text"))


def contact_values(contact) -> dict[str, str]:
    """FIELDS of a hub.contacts Contact (or any object with those attributes) as strings."""
    values = {}
    for name in FIELDS:
        value = getattr(contact, name, "")
        values[name] = value.isoformat() if hasattr(value, "isoformat") else ("" if value is None else str(value))
    return values


SAMPLE_CONTACT = {"email": "sample@example.com", "fullname": "", "sex": "", "birthday": "", "phone": "", "area": "",
                  **{f"var{i}": "" for i in range(1, 11)}}
