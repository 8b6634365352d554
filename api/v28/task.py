"""V28 chapter 6 and 2.1, `task.php`: add-task (5.1 = 6.2), task-list (6.1), edit-task
(6.3), del-task (6.4), list-task (2.1). Every action calls hub.campaigns.services with the
acting account; another account's task is `not_exist`. Parameters are parsed here (comma
lists, lenient times); the rules live in the service."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.campaigns import services
from hub.campaigns.models import Campaign, State
from hub.contacts.models import MailList
from hub.mailtemplates.models import Template

from .core import Call, V28Error, action, param_error, xml_response
from .xml import cdata, el

# (e) #8: without `page`, at most this many tasks (and `limit` is ignored).
NO_PAGE_ROWS = 100
PAGE_DEFAULT, PAGE_MAX = 10, 20
_TIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")


def _error(exc: services.CampaignError) -> V28Error:
    return V28Error(exc.code, exc.message, exc.http_status)


def _ids(call: Call, name: str) -> list[int] | None:
    """`1,3,4` (spaces allowed) -> [1, 3, 4]; absent -> None."""
    value = call.params.get(name)
    if not value:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
        raise param_error(_("%(name)s must be ids separated by commas") % {"name": name})
    return [int(p) for p in parts]


def _int(call: Call, name: str, allowed: range | tuple | None = None) -> int | None:
    value = call.params.get(name)
    if not value:
        return None
    if not re.fullmatch(r"-?\d{1,12}", value):
        raise param_error(_("%(name)s must be a whole number") % {"name": name})
    number = int(value)
    if allowed is not None and number not in allowed:
        raise param_error(_("%(name)s has an invalid value") % {"name": name})
    return number


def _flag(call: Call, name: str) -> bool | None:
    """0/1 (is_delay also -1 = no, (e) #33)."""
    number = _int(call, name, (-1, 0, 1))
    return None if number is None else number == 1


def parse_time(value: str) -> datetime:
    """(e) #34: `2012-07-04 16:08`, `2017-7-4 16:08:56`, `2017-7-4` (a space sent as %20 or
    `+`), in the hub's time zone."""
    match = _TIME.match(value.strip())
    if not match:
        raise param_error(_("the time must look like 2012-07-04 16:08"))
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
    try:
        return timezone.make_aware(datetime(y, mo, d, h, mi, s))
    except ValueError:
        raise param_error(_("the time is not a valid date and time")) from None


def _time(call: Call, *names: str) -> datetime | None:
    for name in names:  # the section's documented name first ((e) #31)
        value = call.params.get(name)
        if value:
            return parse_time(value)
    return None


def _fields(call: Call) -> services.Fields:
    p = call.params
    speed = _int(call, "hour_speed")
    return services.Fields(
        template_ids=_ids(call, "tpl_id"), list_ids=_ids(call, "maillist_id"),
        send_domain=p.get("send_domain") or None, send_account=p.get("send_account") or None,
        send_fullname=p.get("send_fullname") if _given(call, "send_fullname") else None,
        send_replyto=p.get("send_replyto") if _given(call, "send_replyto") else None,
        send_qty_start=_int(call, "send_qty_start"), send_qty=_int(call, "send_qty"),
        subs_link=_flag(call, "subs_link"), track_status=_int(call, "track_status"),
        track_domain=p.get("track_domain") if _given(call, "track_domain") else None,
        hour_speed=speed, is_need_receipt=_flag(call, "is_need_receipt"), is_delay=_flag(call, "is_delay"))


def _given(call: Call, name: str) -> bool:
    p = call.params
    return p._lookup(p.body, name) is not None or p._lookup(p.query, name) is not None


@action("task", "add-task")
def add_task(call: Call) -> HttpResponse:
    f = _fields(call)
    if f.template_ids is None:
        raise param_error(_("%(name)s is required") % {"name": "tpl_id"})
    if f.list_ids is None:
        raise param_error(_("%(name)s is required") % {"name": "maillist_id"})
    if f.send_qty_start == 0:
        raise V28Error("invalid_range", _("send_qty_start must be 1 or more"))
    # (e) #29: a missing time means now; (e) #31: `send_time` accepted too.
    f.send_time = _time(call, "time", "send_time") or timezone.now()
    state = _int(call, "status")
    if state is None:
        state = _int(call, "send_status")
    try:
        campaign = services.create_campaign(call.account, f, State.SCHEDULED if state is None else state)
    except services.CampaignError as exc:
        raise _error(exc) from exc
    return xml_response(el("result", el("status", "success"), el("id", campaign.pk),
                           cdata("data", _("Task added!"))))


@action("task", "edit-task")
def edit_task(call: Call) -> HttpResponse:
    campaign_id = call.params.number("id")
    f = _fields(call)
    if f.send_qty_start == 0:
        raise V28Error("invalid_range", _("send_qty_start must be 1 or more"))
    f.send_time = _time(call, "send_time", "time")
    state = _int(call, "send_status")
    if state is None:
        state = _int(call, "status")
    try:
        services.edit_campaign(call.account, campaign_id, f, state=state)
    except services.CampaignError as exc:
        raise _error(exc) from exc
    return xml_response(el("result", el("status", "success"), cdata("data", _("Task changed!"))))


@action("task", "del-task")
def del_task(call: Call) -> HttpResponse:
    try:
        services.delete_campaign(call.account, call.params.number("id"))
    except services.CampaignError as exc:
        raise _error(exc) from exc
    return xml_response(el("result", el("status", "success"), cdata("data", _("Task deleted!"))))


# --- listing ------------------------------------------------------------------------------------

def _local(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise param_error(_("%(name)s must be a date like 2012-03-02") % {"name": name}) from None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _on_days(rows: QuerySet, first: date | None, last: date | None, *, open_start: bool = False) -> QuerySet:
    """Tasks whose send time falls on `first`..`last` (whole days in the hub's time zone, both
    included; `last` None = `first` only; `open_start` = everything up to `last`). A range of
    instants rather than `__date`: MariaDB's CONVERT_TZ needs time-zone tables."""
    last = last or first
    rows = rows.filter(send_time__lt=_day_start(last) + timedelta(days=1))
    return rows if open_start else rows.filter(send_time__gte=_day_start(first))


def _page(call: Call, rows: QuerySet) -> list[Campaign]:
    page = call.params.number("page", required=False)
    if page is None:
        return list(rows[:NO_PAGE_ROWS])
    limit = min(call.params.number("limit", required=False) or PAGE_DEFAULT, PAGE_MAX)
    return list(rows[(page - 1) * limit: page * limit])


class Names:
    """Template and list names of a page of tasks, read in two queries."""

    def __init__(self, tasks: list[Campaign]) -> None:
        tpl_ids = {pk for t in tasks for pk in t.template_ids}
        list_ids = {pk for t in tasks for pk in t.list_ids}
        self.templates = dict(Template.objects.filter(pk__in=tpl_ids).values_list("pk", "name"))
        self.lists = dict(MailList.objects.filter(pk__in=list_ids).values_list("pk", "name"))


def _counts(campaign: Campaign) -> tuple[int, int]:
    """(send_count, error_count). error_count per (e) #17: recipients refused before sending
    (suppressed, invalid). Delivery failures are in the statistics endpoints."""
    sent = campaign.sent_count if campaign.state == State.DONE else services.progress(campaign).sent \
        if campaign.time_start else 0
    skipped = campaign.skipped or {}
    return sent, int(skipped.get("suppressed", 0)) + int(skipped.get("invalid", 0))


def _sender(c: Campaign) -> tuple[str, str]:
    if c.send_account != "all":
        return "address", c.send_account
    return ("domain", c.send_domain) if c.send_domain != "all" else ("all", "all")


def _state_filter(call: Call, *names: str) -> int | None:
    for name in names:
        value = call.params.get(name)
        if value and value != "all":
            return _int(call, name, range(-5, 5))
    return None


@action("task", "task-list")
def task_list(call: Call) -> HttpResponse:
    rows = services.campaigns(call.account).order_by("-id")
    if call.params.get("id"):
        rows = rows.filter(pk=call.params.number("id"))
    if call.params.get("date"):
        rows = _on_days(rows, _date(call.params.get("date"), "date"), None)
    state = _state_filter(call, "send_status")
    if state is not None:
        rows = rows.filter(state=state)
    verify = _int(call, "verify_status")
    if verify is not None:
        rows = rows.filter(verify_status=verify)
    tasks = _page(call, rows)
    names = Names(tasks)
    items = []
    for c in tasks:
        acct_type, acct = _sender(c)
        sent, errors = _counts(c)
        items.append(el(
            "task", el("id", c.pk), el("sn", c.sn), el("acct_type", acct_type),
            *([el("acct_domain", acct)] if acct_type == "domain" else []),
            *([el("acct_address", acct)] if acct_type == "address" else []),
            el("sender", c.send_account), el("replyto", c.send_replyto), cdata("sender_name", c.send_fullname),
            el("templates", *(el("template", el("tpl_id", pk), cdata("tpl_name", names.templates.get(pk, "")))
                              for pk in c.template_ids)),
            el("addr_type", 0),
            el("listes", *(el("item", el("list_id", pk), cdata("list_name", names.lists.get(pk, "")))
                           for pk in c.list_ids)),
            el("send_qty", c.send_qty), el("send_qty_remak", c.send_qty_remark), el("send_time", _local(c.send_time)),
            el("time_start", _local(c.time_start)), el("time_end", _local(c.time_end)), el("send_count", sent),
            el("error_count", errors), el("send_status", c.state), el("verify_status", c.verify_status),
            el("track_status", c.track_status)))
    return xml_response(el("task_list", *items))


@action("task", "list-task")
def list_task(call: Call) -> HttpResponse:
    p = call.params
    if not any(p.get(name) for name in ("date", "date_end", "ident", "id")):
        raise param_error(_("one of date, date_end, ident, id is required"))
    rows = services.campaigns(call.account).order_by("-id")
    if p.get("id"):
        rows = rows.filter(pk=p.number("id"))
    if p.get("ident"):
        rows = rows.filter(sn=p.get("ident"))
    start = _date(p.get("date"), "date") if p.get("date") else None
    end = _date(p.get("date_end"), "date_end") if p.get("date_end") else None
    if start or end:
        rows = _on_days(rows, start, end, open_start=not start)
    state = _state_filter(call, "state", "send_status")
    if state is not None:
        rows = rows.filter(state=state)
    tasks = _page(call, rows)
    names = Names(tasks)
    items = []
    for c in tasks:
        sent, errors = _counts(c)
        items.append(el(
            "task", el("id", c.pk), el("sn", c.sn), el("sender", c.send_account),
            cdata("sender_name", c.send_fullname), el("replyto", c.send_replyto),
            # One element each in 2.1: several templates or lists are joined by commas.
            el("tpl_id", ",".join(map(str, c.template_ids))),
            cdata("tpl_name", ",".join(names.templates.get(pk, "") for pk in c.template_ids)),
            el("addr_type", 0), el("list_id", ",".join(map(str, c.list_ids))),
            cdata("list_name", ",".join(names.lists.get(pk, "") for pk in c.list_ids)),
            el("send_qty", c.send_qty), el("send_qty_remak", c.send_qty_remark), el("send_time", _local(c.send_time)),
            el("send_satus", c.state), el("time_start", _local(c.time_start)), el("time_end", _local(c.time_end)),
            el("send_count", sent), el("error_count", errors), el("track_status", c.track_status)))
    return xml_response(el("task_list", *items))

