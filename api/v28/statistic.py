"""V28 chapter 2.2-2.6: `statistic.php` (2.2), `failexport.php` (2.3.1), `failexportall.php`
(2.3.2), `stask.php` (2.4), `deduction.php` (2.5), `maillog.php` (2.6). None has a `do`.
Parsing and rendering only; the counts come from hub.stats.services for the acting account.
Refusals (bad dates, types, out_type, another account's task) are the usual XML `<result>`
envelope, also for the exports and the JSON send log (docs/v28.md "Statistics")."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date
from json.encoder import encode_basestring
from xml.sax.saxutils import escape

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _

from hub.stats import services
from hub.stats.services import StatsError

from .core import Call, V28Error, action, param_error, xml_response
from .xml import DECLARATION, cdata, clean, el

OUT_TYPES = ("", "file", "json", "xml")


def _error(exc: StatsError) -> V28Error:
    return V28Error(exc.code, exc.message, exc.http_status)


def _date(call: Call, name: str, *, required: bool = False) -> date | None:
    value = call.params.get(name)
    if not value:
        if required:
            raise param_error(_("%(name)s is required") % {"name": name})
        return None
    try:
        return services.parse_date(value, name)
    except StatsError as exc:
        raise _error(exc) from exc


def _task(call: Call, id_name: str, ident_names: tuple[str, ...]) -> int | None:
    """The campaign id named by `id_name` and/or a batch number (`ident_names`, first given)."""
    pk = call.params.number(id_name, required=False) if call.params.get(id_name) else None
    ident = next((call.params.get(n) for n in ident_names if call.params.get(n)), "")
    if pk is None and not ident:
        return None
    try:
        return services.campaign_by(call.account, pk=pk, ident=ident)
    except StatsError as exc:
        raise _error(exc) from exc


def _flag(call: Call, name: str) -> bool:
    value = call.params.get(name)
    if value not in ("", "0", "1"):
        raise param_error(_("%(name)s must be 0 or 1") % {"name": name})
    return value == "1"


# --- 2.2 ------------------------------------------------------------------------------------------

@action("statistic", "")
def statistic(call: Call) -> HttpResponse:
    day = _date(call, "date", required=True)
    s = services.day_stats(call.account, day)
    a, w = s.all, s.campaigns
    return xml_response(el(
        "statistic", el("date", day.isoformat()), el("ws_qty", w.attempted), el("ws_error", w.failed),
        el("ws_count", w.sent), el("invalid_addr", a.t(8)), el("format_error", a.t(9)),
        el("send_count", a.attempted), el("deduc_count", a.charged), el("actual_send", a.sent),
        el("send_error", a.failed + a.bounced), el("actual_deduc", a.net), el("blacklist_count", a.t(6)),
        el("refuse_count", a.t(7) + a.complained), el("email_not_exist", a.t(1)), el("jujue_count", a.t(5))))


# --- 2.3 --------------------------------------------------------------------------------------------

def _failure_query(call: Call):
    """The selectors of 2.3.1/2.3.2: `type` required; one of date, date_end, task_id,
    task_ident (alias `ident`, (e) #2) required ((e) #3: for every type)."""
    p = call.params
    try:
        kind = services.failure_type(p.required("type"))
    except StatsError as exc:
        raise _error(exc) from exc
    out_type = p.get("out_type").lower()
    if out_type not in OUT_TYPES:
        raise param_error(_("out_type must be file, json or xml (or absent for text)"))
    repeat = _flag(call, "is_repeat")
    first, last = _date(call, "date"), _date(call, "date_end")
    campaign_id = _task(call, "task_id", ("task_ident", "ident"))
    if first is None and last is None and campaign_id is None:
        raise param_error(_("one of date, date_end, task_id, task_ident is required"))
    try:
        if first or last:
            first, last = services.date_range(first, last, missing_is_today=True)
        rows = services.failures(call.account, kind=kind, first=first, last=last, campaign_id=campaign_id)
    except StatsError as exc:
        raise _error(exc) from exc
    return rows, out_type, repeat


def _text(lines: Iterable[str]) -> Iterator[bytes]:
    for line in lines:
        yield (line + "\n").encode("utf-8")


def _csv(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue().encode("utf-8")
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue().encode("utf-8")


def _json_array(items: Iterable[object], raw: bool = False) -> Iterator[bytes]:
    """A JSON array, item by item (`raw`: the items are JSON text already)."""
    yield b"["
    for i, item in enumerate(items):
        # A string (an address): the encoder's own quoting, without building an encoder each time.
        text = item if raw else encode_basestring(item) if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        yield ((", " if i else "") + text).encode("utf-8")
    yield b"]"


def _text_of(value: str) -> str:
    """Element text, escaped as api/v28/xml.py escapes it (the only free text here is the address)."""
    return escape(clean(value))


def _xml_list(root: str, items: Iterable[str]) -> Iterator[bytes]:
    """`<root>` + items + `</root>` with the declaration; the items are built as text above
    (tens of thousands of addresses: one f-string each instead of a tree of elements)."""
    yield (DECLARATION + f"<{root}>").encode("utf-8")
    for item in items:
        yield item.encode("utf-8")
    yield f"</{root}>".encode()


def _buffered(chunks: Iterator[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Pieces of about `size` bytes: a response of one piece per address costs the server
    more per piece than the piece itself (thousands of tiny writes)."""
    buffer: list[bytes] = []
    held = 0
    for chunk in chunks:
        buffer.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


def _stream(chunks: Iterator[bytes], content_type: str, filename: str = "") -> StreamingHttpResponse:
    response = StreamingHttpResponse(_buffered(chunks), content_type=content_type)
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


XML = "text/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"
CSV = "text/csv; charset=utf-8"


@action("failexport", "")
def failexport(call: Call) -> HttpResponse:
    rows, out_type, repeat = _failure_query(call)
    if out_type != "xml":  # the addresses alone: one query
        emails = services.failed_emails(rows, repeat=repeat)
        if out_type == "json":
            return _stream(_json_array(emails), JSON)
        if out_type == "file":
            return _stream(_csv(["email"], ([e] for e in emails)), CSV, "failexport.csv")
        return _stream(_text(emails), TEXT)
    found = services.failed_addresses(rows, repeat=repeat)
    items = (f"<recipient><email>{_text_of(e)}</email><error_type>{t or ''}</error_type>"
             f"<error_type_dec>{services.TYPE_TEXT.get(t, '')}</error_type_dec></recipient>" for e, t in found)
    return _stream(_xml_list("fail_recipient_list", items), XML)


@action("failexportall", "")
def failexportall(call: Call) -> HttpResponse:
    rows, out_type, repeat = _failure_query(call)
    found = services.failed_with_task(rows, repeat=repeat)
    if out_type == "xml":
        items = (f"<recipient><email>{_text_of(e)}</email><type>{t or ''}</type><task_id>{c}</task_id></recipient>"
                 for e, t, c in found)
        return _stream(_xml_list("fail_recipient_list", items), XML)
    if out_type == "json":
        # The sample's objects, all values strings, built as text (tens of thousands of them).
        return _stream(_json_array((f'{{"email": {encode_basestring(e)}, "type": "{t or ""}", '
                                    f'"task_id": "{c}"}}' for e, t, c in found), raw=True), JSON)
    if out_type == "file":
        return _stream(_csv(["email", "type", "task_id"], ([e, t or "", c] for e, t, c in found)), CSV,
                       "failexportall.csv")
    return _stream(_text(e for e, _t, _c in found), TEXT)


# --- 2.4 ---------------------------------------------------------------------------------------------

@action("stask", "")
def stask(call: Call) -> HttpResponse:
    first, last = _date(call, "date"), _date(call, "date_end")
    campaign_id = _task(call, "id", ("ident",))
    if first is None and last is None and campaign_id is None:
        raise param_error(_("one of date, date_end, ident, id is required"))
    try:
        if first or last:
            first, last = services.date_range(first, last, missing_is_today=False, max_days=services.MAX_DAYS)
        entries = services.task_stats(call.account, first=first, last=last, campaign_id=campaign_id)
    except StatsError as exc:
        raise _error(exc) from exc
    items = []
    for t in entries:
        c = t.counts
        items.append(el(
            "task", el("task_id", t.campaign_id), el("task_date", t.day.isoformat() if t.day else ""),
            el("task_ident", t.ident), el("totalsum", c.attempted + t.invalid), el("total", c.attempted),
            el("invalid", t.invalid), el("failed", c.failed + c.bounced), el("send_failed", c.failed),
            el("success", c.sent), el("email_not_exist", c.t(1)), el("spam_content", c.t(4)),
            el("connect_error", c.t(10)), el("actual", c.charged), el("over_quota", c.t(2)),
            el("user_reject", c.t(3)), el("rubbish", c.t(4)), el("point", c.net), el("rebate", c.rebated)))
    return xml_response(el("data", *items))


# --- 2.5 -----------------------------------------------------------------------------------------------

@action("deduction", "")
def deduction(call: Call) -> HttpResponse:
    day = _date(call, "date", required=True)
    # A manager asking for itself (no customer_id) sees each sub-account's line too.
    with_children = not call.params.get("customer_id") or call.params.get("customer_id") == str(call.app.account_id)
    items = [el("list", el("date", day.isoformat()), cdata("company", d.account.company or d.account.name),
                el("deduction", d.account.quota_type), el("send_num", d.counts.attempted), el("total", d.counts.net))
             for d in services.deductions(call.account, day, with_children=with_children)]
    return xml_response(el("data", *items))


# --- 2.6 -----------------------------------------------------------------------------------------------

@action("maillog", "")
def maillog(call: Call) -> HttpResponse:
    day = _date(call, "date", required=True)
    p = call.params
    mail_to = p.get("mail_to")
    if mail_to and ("@" not in mail_to or len(mail_to) > 254 or any(ch in mail_to for ch in "\r\n\t ,;<>")):
        raise param_error(_("mail_to must be one email address"))
    page = p.number("page", required=False) or 1
    limit = p.number("limit", required=False) or services.MAILLOG_LIMIT_DEFAULT
    if limit > services.MAILLOG_LIMIT_MAX or page > 100_000:
        raise param_error(_("limit may be at most %(n)s") % {"n": services.MAILLOG_LIMIT_MAX}
                          if limit > services.MAILLOG_LIMIT_MAX else _("page is too large"))
    items, more = services.mail_log(call.account, day, mail_to=mail_to.lower(), page=page, limit=limit)
    return JsonResponse({"lists": items, "page": page, "limit": limit, "more": more},
                        json_dumps_params={"ensure_ascii": False})
