"""Pieces shared by the hub's admin pages: the base ModelAdmin, the count-free paginator,
the audit trail shown on each object, and the page that custom actions render."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.contenttypes.models import ContentType
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold import paginator as unfold_paginator
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import display
from unfold.views import ChangeList


def has_field(model: type[models.Model], name: str) -> bool:
    """Feature detection for model fields that other work adds (server health, secret
    grace period, failure type): the admin shows them when they exist."""
    try:
        model._meta.get_field(name)
    except Exception:  # FieldDoesNotExist
        return False
    return True


def present_fields(model: type[models.Model], *names: str) -> tuple[str, ...]:
    return tuple(name for name in names if has_field(model, name))


def per_object(method: Callable) -> Callable:
    """Cache a read-only display method's result on the object it renders. unfold's
    field_readonly_value.html reads `field.contents` several times per field, and each read
    calls the method again: a query, or an HTML-to-text conversion of a huge body, would
    run ~5 times per page. The cache lives on the instance, so it lasts one request."""

    @functools.wraps(method)
    def wrapper(self, obj):
        if obj is None:
            return method(self, obj)
        cache = obj.__dict__.setdefault("_hub_display_cache", {})
        if method.__name__ not in cache:
            cache[method.__name__] = method(self, obj)
        return cache[method.__name__]

    return wrapper


# --- pagination without COUNT(*) ----------------------------------------------------------

class _WindowPage(Page):
    def has_next(self) -> bool:
        return self.paginator.has_next_page and self.number == self.paginator.page_number


# Named like unfold's paginator on purpose: unfold's templates check the class *name* to
# stop showing "N results (show all)", which would be the size of one window here.
class InfinitePaginator(unfold_paginator.InfinitePaginator):
    """Pages a huge table without counting it: for page N it reads the rows of that page
    plus one (to know whether there is a next page) and nothing else. `count` is then the
    number of rows known to exist up to here, which is all the admin's ChangeList needs:
    more than one page means "show the pager", and the page's rows are served from the
    window already read, so the list costs one query however large the table grows."""

    template_name = "admin/hub/pagination_window.html"

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, page_number: Any = 1):
        super().__init__(object_list, per_page, 0, allow_empty_first_page)
        try:
            self.page_number = max(1, int(page_number))
        except (TypeError, ValueError):
            self.page_number = 1

    @cached_property
    def _window(self) -> list:
        offset = (self.page_number - 1) * self.per_page
        return list(self.object_list[offset : offset + self.per_page + 1])

    @property
    def has_next_page(self) -> bool:
        return len(self._window) > self.per_page

    @cached_property
    def count(self) -> int:
        return (self.page_number - 1) * self.per_page + len(self._window)

    def page(self, number) -> Page:
        number = self.validate_number(number)
        if number == self.page_number:
            return _WindowPage(self._window[: self.per_page], number, self)
        # Another page than the one the window was read for (not used by the admin).
        bottom = (number - 1) * self.per_page
        return _WindowPage(self.object_list[bottom : bottom + self.per_page], number, self)

    def validate_number(self, number) -> int:
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger(_("That page number is not an integer")) from exc
        if number < 1:
            raise EmptyPage(_("That page number is less than 1"))
        if number > self.num_pages and not (number == 1 and self.allow_empty_first_page):
            raise EmptyPage(_("That page contains no results"))
        return number


class WindowChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # A list that fits on one page is re-read by the admin as a fresh queryset; the
        # paginator's window already holds exactly those rows, so serve them from there.
        if isinstance(self.paginator, InfinitePaginator) and isinstance(self.result_list, models.QuerySet):
            if not self.show_all and "_window" in self.paginator.__dict__:
                self.result_list = self.paginator._window[: self.paginator.per_page]


class WindowPaginationMixin:
    """For admins of tables that grow without bound: no COUNT(*) anywhere on the list."""

    paginator = InfinitePaginator
    show_full_result_count = False  # the "N total" link is another full count
    list_max_show_all = 0  # "show all" would load the whole table
    list_disable_select_all = True  # "select all N" needs the count we don't take
    show_facets = ShowFacets.NEVER  # facets count every filter choice

    def get_changelist(self, request: HttpRequest, **kwargs):
        return WindowChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True) -> Paginator:
        return self.paginator(queryset, per_page, orphans, allow_empty_first_page,
                              page_number=request.GET.get(PAGE_VAR, 1))


# --- the date range filter ------------------------------------------------------------------

def parse_local_date(value: str) -> datetime.date | None:
    """A date typed in the admin, in any input format of the active language (the filter's
    calendar widget writes the locale's format, e.g. 2026/11/21 in Chinese) or ISO."""
    formats_to_try = [*formats.get_format("DATE_INPUT_FORMATS"), "%Y-%m-%d"]
    for fmt in formats_to_try:
        try:
            return datetime.datetime.strptime(value.strip(), fmt).date()
        except (ValueError, TypeError):
            continue
    return None


class LocalDateRangeFilter(RangeDateFilter):
    """unfold's date range filter, made right for a DateTimeField: both ends are whole days
    in the hub's time zone (the "to" day included), compared as aware datetimes, so the
    query can use the index on the column."""

    def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
        tz = timezone.get_current_timezone()
        filters = {}
        start = parse_local_date(self.used_parameters.get(f"{self.parameter_name}_from") or "")
        end = parse_local_date(self.used_parameters.get(f"{self.parameter_name}_to") or "")
        if start:
            filters[f"{self.parameter_name}__gte"] = datetime.datetime.combine(start, datetime.time(), tz)
        if end:
            filters[f"{self.parameter_name}__lt"] = datetime.datetime.combine(
                end + datetime.timedelta(days=1), datetime.time(), tz)
        return queryset.filter(**filters)


# --- the audit trail ------------------------------------------------------------------------

def audit_entries(obj: models.Model, limit: int = 10) -> list[LogEntry]:
    ct = ContentType.objects.get_for_model(obj, for_concrete_model=False)
    return list(
        LogEntry.objects.filter(content_type=ct, object_id=str(obj.pk)).select_related("user")
        .order_by("-action_time", "-id")[:limit]
    )


def render_audit(obj: models.Model | None) -> str:
    if obj is None or obj.pk is None:
        return "-"
    entries = audit_entries(obj)
    if not entries:
        return _("No admin changes recorded yet.")
    rows = format_html_join(
        "",
        '<tr><td class="pr-4 py-1 whitespace-nowrap">{}</td><td class="pr-4 py-1">{}</td><td class="py-1">{}</td></tr>',
        (
            (formats.date_format(timezone.localtime(e.action_time), "DATETIME_FORMAT"),
             e.user.get_username() if e.user_id else "-", e.get_change_message() or e.get_action_flag_display())
            for e in entries
        ),
    )
    return format_html('<table class="text-sm">{}</table>', rows)


class HubModelAdmin(ModelAdmin):
    """Base for the hub's admin pages."""

    warn_unsaved_form = True

    @display(description=gettext_lazy("Audit trail (latest 10; see History for all)"))
    @per_object
    def audit_trail(self, obj: models.Model | None) -> str:
        return render_audit(obj)

    def audit(self, request: HttpRequest, obj: models.Model, message: str) -> None:
        """Record an admin action that is not a form save (test, rotate, resend, ...) in
        Django's LogEntry, so it shows in the object's History with who and when."""
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=[obj], action_flag=CHANGE, change_message=message, single_object=True
        )

    def action_page(self, request: HttpRequest, obj: models.Model | None, *, title: str,
                    template: str = "admin/hub/action_page.html", **context: Any) -> HttpResponse:
        """A page of the admin for a custom action (confirm, form, outcome)."""
        opts = self.model._meta
        ctx = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "app_label": opts.app_label,
            "original": obj,
            "title": title,
            "has_view_permission": self.has_view_permission(request, obj),
            "has_change_permission": self.has_change_permission(request, obj),
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, template, ctx)


def humanize_age(delta: datetime.timedelta | None) -> str:
    """3 d 4 h / 5 h 2 min / 42 s: the age of the oldest queued message."""
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return _("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    return _("%(s)d s") % {"s": secs}
