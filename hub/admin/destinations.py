"""Destinations of direct delivery in the back office: each provider's (or domain's)
connection and rate limits, editable; what the adaptive backoff made of them now (current
connections and rate, the pause); connections open now; the recent "too many" replies; and
the built-in presets (load the missing ones, reset one to its preset values)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.decorators import action, display

from ..delivery import destinations, slots
from ..delivery.presets import PRESETS
from ..models import Destination
from .common import HubModelAdmin, per_object


def _when(value) -> str:
    return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT") if value else "-"


def render_now(dest: Destination, open_now: int) -> str:
    """Connections open now / allowed now, the rate allowed now, and whether it is slowed
    down (adaptive) or paused, on one line."""
    slowed = dest.adaptive_connections is not None or dest.adaptive_rate is not None
    rate = dest.rate_limit
    parts = [
        ("hub-warn" if slowed else "",
         _("%(open)d/%(limit)d connections") % {"open": open_now, "limit": dest.connection_limit}),
        ("hub-warn" if dest.adaptive_rate is not None else "",
         _("%(rate)s/min") % {"rate": f"{rate:.0f}"} if rate else _("no rate limit")),
    ]
    if dest.paused_until and dest.paused_until > timezone.now():
        parts.append(("text-red-600", _("paused until %(t)s") % {"t": _when(dest.paused_until)}))
    elif slowed:
        parts.append(("hub-warn", _("slowed down (level %(n)d), recovering") % {"n": dest.backoff_level}))
    return format_html_join(" · ", '<span class="{}">{}</span>', parts)


@admin.register(Destination)
class DestinationAdmin(HubModelAdmin):
    list_display = ("name", "preset", "limits", "now", "deferrals_total", "last_deferral_at")
    list_display_links = ("name",)
    search_fields = ("name", "domains", "mx_patterns")
    ordering = ("name",)
    actions = ("reset_to_preset", "end_slowdown")
    actions_list = ("load_presets",)
    readonly_fields = ("preset", "now_detail", "paused_until", "backoff_level", "last_deferral_at", "last_deferral",
                       "deferrals_total", "recent_deferrals", "created_at", "updated_at", "audit_trail")
    fieldsets = [
        (None, {"fields": ["name", "preset"]}),
        (gettext_lazy("Which mail goes here"), {"fields": ["domains", "mx_patterns"]}),
        (gettext_lazy("Limits"), {"fields": [("max_connections", "rate_per_minute")]}),
        (gettext_lazy("Now (adaptive backoff)"), {"fields": [
            "now_detail", ("paused_until", "backoff_level"), ("last_deferral_at", "deferrals_total"), "last_deferral"]}),
        (gettext_lazy("Recent deferrals"), {"fields": ["recent_deferrals"]}),
        (gettext_lazy("Audit"), {"fields": [("created_at", "updated_at"), "audit_trail"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Destination | None = None):
        if obj is None:  # a new destination: what it is and its limits only
            return self.fieldsets[:3]
        return self.fieldsets

    def get_changelist_instance(self, request: HttpRequest):
        changelist = super().get_changelist_instance(request)
        # Connections open now for the page's rows, in one query.
        results = list(changelist.result_list)
        counts = slots.destination_connections([d.pk for d in results])
        for dest in results:
            dest.open_connections = counts.get(dest.pk, 0)
        changelist.result_list = results
        return changelist

    def save_model(self, request: HttpRequest, obj: Destination, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        destinations.clear_cache()  # this process matches by the new patterns at once

    # -- columns

    @display(description=gettext_lazy("limits"))
    def limits(self, obj: Destination) -> str:
        rate = _("%(rate)d/min") % {"rate": obj.rate_per_minute} if obj.rate_per_minute else _("no rate limit")
        return _("%(n)d connections, %(rate)s") % {"n": obj.max_connections, "rate": rate}

    @display(description=gettext_lazy("now"))
    def now(self, obj: Destination) -> str:
        return render_now(obj, getattr(obj, "open_connections", 0))

    @display(description=gettext_lazy("allowed now"))
    @per_object
    def now_detail(self, obj: Destination | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return render_now(obj, slots.destination_connections([obj.pk]).get(obj.pk, 0))

    @display(description=gettext_lazy("the latest deferrals"))
    @per_object
    def recent_deferrals(self, obj: Destination | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        rows = obj.deferrals.all()[:20]
        if not rows:
            return _("None.")
        body = format_html_join("", "<tr><td class='pr-4'>{}</td><td class='pr-4'>{}</td><td class='pr-4'>{}</td>"
                                    "<td>{}</td></tr>",
                                ((_when(d.at), d.host, d.smtp_code or "-", d.reply[:300]) for d in rows))
        return format_html('<table class="text-sm">{}</table>', body)

    # -- actions

    @action(description=gettext_lazy("Reset selected destinations to their preset values"), permissions=["change"])
    def reset_to_preset(self, request: HttpRequest, queryset) -> None:
        names = [d.name for d in queryset if d.preset in PRESETS and d.name == d.preset]
        for dest in destinations.load_presets(names, reset=True):
            self.audit(request, dest, _("Reset to its preset values"))
        messages.success(request, _("%(n)d destination(s) reset to their preset values.") % {"n": len(names)})

    @action(description=gettext_lazy("End the slow-down of selected destinations"), permissions=["change"])
    def end_slowdown(self, request: HttpRequest, queryset) -> None:
        count = 0
        for dest in queryset:
            Destination.objects.filter(pk=dest.pk).update(
                adaptive_connections=None, adaptive_rate=None, paused_until=None, backoff_level=0,
                recovery_successes=0, next_send_at=None)
            self.audit(request, dest, _("Slow-down ended by hand"))
            count += 1
        messages.success(request, _("%(n)d destination(s) back at their configured limits.") % {"n": count})

    @action(description=gettext_lazy("Load the built-in presets"), url_path="load-presets", permissions=["add"],
            icon="playlist_add")
    def load_presets(self, request: HttpRequest) -> HttpResponse:
        """A page: what it does, then (POST) the missing presets are created."""
        if request.method == "POST":
            before = set(Destination.objects.filter(name__in=list(PRESETS)).values_list("name", flat=True))
            added = [d for d in destinations.load_presets() if d.name not in before]
            for dest in added:
                self.audit(request, dest, _("Created from its preset"))
            messages.success(request, _("%(n)d preset destination(s) added.") % {"n": len(added)})
            return redirect(reverse("admin:hub_destination_changelist"))
        return self.action_page(
            request, None, title=_("Load the built-in presets"),
            intro=_("Adds the destinations of the big receivers that are missing: %(names)s. Existing "
                    "destinations are left as they are.") % {"names": ", ".join(PRESETS)},
            submit_label=_("Load the presets"))
