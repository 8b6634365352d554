"""V28 chapter 3: `track.php` (3.1 overview, 3.2 open-detail, 3.3 click-detail, 3.5
link-stat), `trackexport.php` (3.4) and `trackdomain.php` (3.6-3.8). Parsing and rendering
only: the reports and rules are hub.tracking's, every one given the acting account, so
another account's task, track, link or domain is `not_exist`.

Opens and clicks in the documented elements are people's; proxies and scanners are counted
apart, in elements added after the documented ones (`machine_*`, docs/v28.md)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.tracking import reports, trackdomains
from hub.tracking.reports import TrackingError

from .core import CONTENT_TYPE, Call, V28Error, action, param_error, result, xml_response
from .xml import DECLARATION, Element, cdata, el, render, render_stream


def _v28(exc: TrackingError) -> V28Error:
    return V28Error(exc.code, exc.message, exc.http_status)


def _time(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _campaign(call: Call):
    """`ident` wins over `id` (3.2/3.3/3.5, and 3.1 by (e) #14)."""
    ident = call.params.get("ident")
    send_id = None if ident else call.params.number("id", required=False)
    if not ident and send_id is None:
        raise param_error(_("id or ident is required"))
    try:
        return reports.find_campaign(call.account, send_id, ident)
    except TrackingError as exc:
        raise _v28(exc) from exc


def _link_id(call: Call) -> int | None:
    return call.params.number("link_id", required=False)


def _link_el(tag: str, link) -> Element:
    return el(tag, el("link_id", link.pk), cdata("link", link.url), el("click_unique", link.click_unique),
              el("click_total", link.click_total), el("click_first", _time(link.click_first)),
              el("click_last", _time(link.click_last)), el("machine_click_total", link.machine_click_total))


@action("track", "overview")
def overview(call: Call) -> HttpResponse:
    campaign = _campaign(call)
    track = reports.track_of(campaign)
    sent = reports.send_figures(campaign)
    attempted = sent.sent + sent.failed
    return xml_response(el(
        "track",
        el("track_id", track.pk), el("task_id", campaign.pk), el("task_sn", campaign.sn), el("send_id", campaign.pk),
        el("send_count", sent.queued + sent.rejected), el("error_send_count", sent.failed + sent.rejected),
        el("real_send_num", attempted), el("real_send_count", sent.sent), el("real_send_err", sent.failed),
        el("open_unique", track.open_unique), el("open_total", track.open_total),
        el("open_first", _time(track.open_first)), el("open_last", _time(track.open_last)),
        el("click_unique", track.click_unique), el("click_total", track.click_total),
        el("click_first", _time(track.click_first)), el("click_last", _time(track.click_last)),
        el("send_ratio", reports.ratio(sent.sent, attempted)),
        el("open_ratio", reports.ratio(track.open_unique, sent.sent)),
        el("click_ratio", reports.ratio(track.click_unique, sent.sent)),
        el("link_statistic", *[_link_el("link", link) for link in reports.links(campaign)]),
        el("machine_open_unique", track.machine_open_unique), el("machine_open_total", track.machine_open_total),
        el("machine_click_unique", track.machine_click_unique), el("machine_click_total", track.machine_click_total),
    ))


USER_FIELDS = ("email_id", "email", "browser", "os", "device", "addr_first", "ip_first", "ip_last", "addr_last",
               "open_total", "click_total", "open_first", "open_last", "click_first", "click_last",
               "machine_open_total", "machine_click_total", "machine_reason")


def _user_values(r) -> list:
    return [r.pk, r.email, r.browser, r.os, r.device, r.addr_first, r.ip_first or "", r.ip_last or "", r.addr_last,
            r.open_total, r.click_total, _time(r.open_first), _time(r.open_last), _time(r.click_first),
            _time(r.click_last), r.machine_open_total, r.machine_click_total, r.machine_reason]


@action("track", "open-detail")
def open_detail(call: Call) -> HttpResponse:
    campaign = _campaign(call)
    users = (el("user", *[el(tag, value) for tag, value in zip(USER_FIELDS, _user_values(r), strict=True)])
             for r in reports.recipients(campaign))
    return StreamingHttpResponse(render_stream("data", [], users), content_type=CONTENT_TYPE)


@action("track", "click-detail")
def click_detail(call: Call) -> HttpResponse:
    campaign = _campaign(call)
    link_id = _link_id(call)
    if link_id is not None:
        _links(campaign, link_id)  # another campaign's link: not_exist
    items = (el("click", el("click_id", c.pk), el("email", c.recipient.email), cdata("link", c.link.url),
                el("click_unique", 1 if c.click_total else 0), el("click_total", c.click_total),
                el("click_first", _time(c.click_first)), el("click_last", _time(c.click_last)),
                el("machine_click_total", c.machine_click_total))
             for c in reports.link_clicks(campaign, link_id))
    return StreamingHttpResponse(render_stream("data", [], items), content_type=CONTENT_TYPE)


def _links(campaign, link_id: int | None) -> list:
    try:
        return reports.links(campaign, link_id)
    except TrackingError as exc:
        raise _v28(exc) from exc


@action("track", "link-stat")
def link_stat(call: Call) -> HttpResponse:
    campaign = _campaign(call)
    return xml_response(el("data", *[_link_el("link", link) for link in _links(campaign, _link_id(call))]))


def _ids(text: str, name: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or len(parts) > 100 or not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
        raise param_error(_("%(name)s must be ids separated by commas") % {"name": name})
    return [int(p) for p in parts]


@action("trackexport", "")
def track_export(call: Call) -> HttpResponse:
    """3.4 ((e) #19, implementation-defined): CSV, one row per mailbox, the 3.2 fields."""
    track_ids = _ids(call.params.required("track_id"), "track_id")
    is_click = call.params.get("is_click")
    if is_click not in ("", "0", "1"):
        raise param_error(_("is_click must be 0 or 1"))
    link_id = _link_id(call)
    email_id = call.params.number("email_id", required=False)
    try:
        tracks = reports.tracks_by_ids(call.account, track_ids)
        if link_id is not None:
            reports.link_in(tracks, link_id)
    except TrackingError as exc:
        raise _v28(exc) from exc

    def lines() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["track_id", *USER_FIELDS])
        for track in tracks:
            for r in reports.recipients(track.campaign, clicked_only=is_click == "1", link_id=link_id,
                                        recipient_id=email_id):
                writer.writerow([track.pk, *_user_values(r)])
                if buffer.tell() > 65536:
                    yield buffer.getvalue().encode("utf-8")
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode("utf-8")

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="trackexport.csv"'
    return response


# --- tracking domains (3.6-3.8) --------------------------------------------------------------

def _domain_el(d) -> Element:
    return el("track_domain", el("id", d.pk), el("customer_id", d.account_id), el("domain", d.domain),
              el("isdefault", int(d.is_default)), el("is_cname", int(d.is_cname)))


@action("trackdomain", "overview")
def domain_overview(call: Call) -> HttpResponse:
    """(e) #13: the documented shapes, i.e. the declaration alone when there is no domain,
    one `<track_domain>` root for one, several top-level `<track_domain>` for more (not
    well-formed XML, as the reference shows); `wrap=1` puts them in `<track_domain_list>`."""
    try:
        names = trackdomains.parse_names(call.params.get("domains", max_chars=10_000))
    except TrackingError as exc:
        raise _v28(exc) from exc
    found = trackdomains.list_domains(call.account, names or None)
    if call.params.get("wrap") == "1":
        return xml_response(el("track_domain_list", *[_domain_el(d) for d in found]))
    body = DECLARATION.encode() + b"".join(render(_domain_el(d))[len(DECLARATION.encode()):] for d in found)
    return HttpResponse(body, content_type=CONTENT_TYPE)


@action("trackdomain", "edit")
def domain_edit(call: Call) -> HttpResponse:
    flag = call.params.get("isdefault")
    if flag not in ("", "0", "1"):
        raise param_error(_("isdefault must be 0 or 1"))
    try:
        found = trackdomains.edit_domain(call.account, call.params.required("domain"), flag == "1")
    except TrackingError as exc:
        raise _v28(exc) from exc
    return result("success", found.domain)


@action("trackdomain", "del")
def domain_delete(call: Call) -> HttpResponse:
    try:
        deleted = trackdomains.delete_domains(call.account, call.params.get("domains", max_chars=10_000))
    except TrackingError as exc:
        raise _v28(exc) from exc
    # 3.8's sample, (e) #51: a JSON-like array of single-quoted names.
    return result("success", "[" + ", ".join(f"\"'{name}'\"" for name in deleted) + "]")
