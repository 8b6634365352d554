"""Text that goes into a header line (mail headers, iCalendar properties): the one definition
of the characters that may not appear there, shared by every front door (API, SMTP, calendar)
and by the builders as their last line of defence.

Python's email package (str.splitlines) breaks lines not only at CR and LF but at VT, FF,
FS, GS, RS, NEL (U+0085), LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029); NUL and
the other C0 controls and DEL are refused by mail servers and calendar clients. Tab is
allowed (it is folding white space)."""

from __future__ import annotations

import re

# Every C0 control but TAB, DEL, and the Unicode line breaks.
CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# The same, but CR, LF and TAB allowed: multi-line text (an event's description).
CONTROLS_BUT_LINE_BREAKS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")
_WHITESPACE_RUN = re.compile(r"\s+")


def has_controls(value: str) -> bool:
    return CONTROLS.search(value) is not None


def one_line(value: str) -> str:
    """Header text on one line: every control character or line break becomes a space.
    For names typed in the admin, stored by older versions, or decoded from a client's
    message, which must never split a header."""
    return CONTROLS.sub(" ", value)


def display_name(value: str, limit: int = 0) -> str:
    """A display name as the hub writes it: one line, runs of white space as one space,
    trimmed, at most `limit` characters (0: no limit)."""
    name = _WHITESPACE_RUN.sub(" ", one_line(value)).strip()
    return name[:limit].rstrip() if limit else name
