"""Turning what customers send (API fields, V28 batch strings, file rows) into contact
values: address normalization, field checks, and the V28 batch formats (d)1/(d)3/(d)4.

Hot path: the importer calls `row_values` once per file row (millions), so the common
case (an ASCII address and a few short fields) is a handful of string operations and one
pre-compiled regex; anything unusual falls back to Django's EmailValidator."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .models import MAX_AREA, MAX_NAME, MAX_PHONE, MAX_VAR, VAR_FIELDS

# The order of V28 (d)1 records (and of the tab-separated "文件格式说明" table).
FIELD_ORDER: tuple[str, ...] = ("email", "fullname", "sex", "birthday", "phone", "area", *VAR_FIELDS)
_LIMITS = {"fullname": MAX_NAME, "phone": MAX_PHONE, "area": MAX_AREA, **{v: MAX_VAR for v in VAR_FIELDS}}
# Other names API callers use for the same fields (V28 uses `name` and `mobile` in (d)1,
# `address` in 4.8.1).
ALIASES = {"name": "fullname", "mobile": "phone", "address": "email", "mail": "email"}

# A subset of what Django's EmailValidator accepts (dot-atom local part, LDH labels, an
# alphabetic TLD), applied to the lower-cased address: a match is valid for certain. Anything
# else (IDN, quoted local parts, IP literals, garbage) takes the slow path.
_FAST_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
MAX_EMAIL = 254


class Invalid(ValueError):
    """One value (or row) that cannot be stored; the message says why, for humans."""


def normalize_email(value: object) -> str:
    """' A@Bücher.Example ' -> 'a@xn--bcher-kva.example'. Stripped, lower-cased (V28
    customers treat A@X.com and a@x.com as one contact), IDN domain in punycode (the form
    delivery sends), validated with Django's rules. Raises Invalid."""
    text = value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())
    if not text:
        raise Invalid("the address is empty")
    if len(text) > MAX_EMAIL:
        raise Invalid(f"the address is longer than {MAX_EMAIL} characters")
    low = text.lower()
    if _FAST_EMAIL.fullmatch(low):
        return low
    local, at, domain = low.rpartition("@")
    shown = text[:80]
    if not at or not local or not domain:
        raise Invalid(f"{shown!r} is not a valid email address")
    try:
        # Python's IDNA codec, as the core's delivery (hub.delivery.ascii_address) uses it.
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise Invalid(f"{shown!r} has an invalid domain") from exc
    address = f"{local}@{domain.lower()}"
    try:
        validate_email(address)
    except ValidationError as exc:
        raise Invalid(f"{shown!r} is not a valid email address") from exc
    if len(address) > MAX_EMAIL:
        raise Invalid(f"the address is longer than {MAX_EMAIL} characters")
    return address


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))  # spreadsheet numbers: 13528775968.0 is a phone number
    else:
        text = str(value).strip()
    if not text:
        return ""
    if _CONTROL.search(text):
        if "\x00" in text:
            raise Invalid(f"{field} contains a NUL character")
        text = _CONTROL.sub(" ", text).strip()  # line breaks from quoted CSV cells
    limit = _LIMITS[field]
    if len(text) > limit:
        raise Invalid(f"{field} is longer than {limit} characters")
    return text


_SEX = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


def clean_sex(value: object) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if not text:
        return ""
    if text not in _SEX:
        raise Invalid("sex must be M or F")
    return _SEX[text]


def clean_birthday(value: object) -> datetime.date | None:
    """YYYY-MM-DD (also / or . and no zero padding); 0000-00-00 (the reference's "no date")
    and empty mean none. Spreadsheet cells arrive as datetime objects."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    if not text or text.startswith("0000-00-00"):
        return None
    match = _DATE.match(text)
    if match and text[match.end():].strip(" 0:") == "":  # allow a trailing 00:00:00
        try:
            return datetime.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    raise Invalid(f"birthday {text[:20]!r} is not a date (YYYY-MM-DD)")


_PAD = (None,) * len(FIELD_ORDER)
_REST = tuple(enumerate(FIELD_ORDER[4:], 4))  # phone, area, var1..var10


def row_values(fields: Sequence[object]) -> tuple:
    """A row in FIELD_ORDER (shorter rows allowed) -> the stored values in that order:
    (email, fullname, sex, birthday, phone, area, var1..var10). Raises Invalid.
    The importer's hot path: one call per file row."""
    n = len(fields)
    if n < 16:
        fields = (*fields, *_PAD[n:])
    email = normalize_email(fields[0])
    value = fields[1]
    fullname = "" if value is None or value == "" else _text(value, "fullname")
    value = fields[2]
    sex = "" if value is None or value == "" else clean_sex(value)
    value = fields[3]
    birthday = None if value is None or value == "" else clean_birthday(value)
    rest = ["" if (v := fields[i]) is None or v == "" else _text(v, name) for i, name in _REST]
    return (email, fullname, sex, birthday, *rest)


def record_values(record: dict) -> tuple:
    """A record dict (API fields, parse_batch output) -> row_values. Keys are matched
    case-insensitively (the reference writes `Var10`), with ALIASES; unknown keys refused."""
    positional: list[object] = [None] * len(FIELD_ORDER)
    for key, value in record.items():
        if key in ("line", "extra"):
            continue
        name = str(key).lower()
        name = ALIASES.get(name, name)
        if name not in FIELD_ORDER:
            raise Invalid(f"unknown field {str(key)[:40]!r}")
        positional[FIELD_ORDER.index(name)] = value
    if record.get("extra"):
        raise Invalid(f"more than {len(FIELD_ORDER)} fields")
    return row_values(positional)


# --- V28 batch strings ---------------------------------------------------------------------

def split_record(record: str) -> list[str]:
    """One (d)1 record -> its fields: `;`-separated, or TAB-separated when it has no `;`
    ((e) #21); spaces around fields trimmed; a trailing `;` (empty last field) dropped."""
    if ";" in record:
        parts = record.split(";")
    elif "\t" in record:
        parts = record.split("\t")
    else:
        parts = [record]
    fields = [p.strip() for p in parts]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def parse_batch(text: str, separator: str = "\n") -> list[dict]:
    """V28 (d)1 `ml_addr` -> record dicts (FIELD_ORDER keys, plus `line`: the record's
    1-based position, for error messages). Records are split on `separator` (default a
    newline; CRLF is fine); blank records are skipped."""
    if separator in ("\n", "\r\n", ""):
        records = text.splitlines()
    else:
        records = text.split(separator)
    result = []
    for line, record in enumerate(records, 1):
        fields = split_record(record)
        if not fields:
            continue
        item: dict = dict(zip(FIELD_ORDER, fields))
        item["line"] = line
        if len(fields) > len(FIELD_ORDER):
            item["extra"] = fields[len(FIELD_ORDER):]
        result.append(item)
    return result


def _pair(item: str) -> tuple[str, str]:
    item = item.strip()
    for sep in ("\t", ","):
        if sep in item:
            email, _sep, name = item.partition(sep)
            return email.strip(), name.strip()
    return item, ""


def parse_subscribe(text: str) -> list[tuple[str, str]]:
    """V28 (d)3 `maillist` -> (email, name) pairs. Format 1 `e1,n1;e2,n2;` (pairs split on
    `;`) when the text has a `;`; otherwise format 2, one pair per line, email and name split
    on TAB or `,`. The name may be missing: "" here, the local part once subscribed."""
    items = text.split(";") if ";" in text else text.splitlines()
    return [_pair(item) for item in items if item.strip()]


_UNSUB_SPLIT = re.compile(r"[,;\s]+")


def parse_unsubscribe(text: str) -> list[str]:
    """V28 (d)4 `address` -> addresses: format 1 comma-separated (`e1,e2,`), format 2 one
    per line. Spaces and `;` separate too: an address contains none of them."""
    return [part for part in _UNSUB_SPLIT.split(text) if part]


def default_name(email: str) -> str:
    """4.11: a subscriber without a name is called by the local part of the address."""
    return email.rpartition("@")[0] or email
