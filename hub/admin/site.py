"""The rest of the back office: the site settings singleton, the audit log, the task
queue (django-q2) and the user pages, all in the same theme."""

from __future__ import annotations

from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy
from django_q import admin as q_admin
from django_q import models as q_models
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from ..models import Site
from .common import HubModelAdmin, LocalDateRangeFilter, WindowPaginationMixin


@admin.register(Site)
class SiteAdmin(HubModelAdmin):
    """One row (pk=1): the list page goes straight to it; it can't be added or deleted."""

    fieldsets = (
        (None, {"fields": ("title", "keywords", "description", "default_from_name")}),
        (gettext_lazy("API clients"), {"fields": ("ip_blocklist", "client_ip_mode", "trusted_proxies")}),
        (gettext_lazy("Audit"), {"fields": ("audit_trail",)}),
    )
    readonly_fields = ("audit_trail",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        site = Site.load()
        return HttpResponseRedirect(reverse("admin:hub_site_change", args=[site.pk]))

    def response_change(self, request: HttpRequest, obj: Site) -> HttpResponse:
        super().response_change(request, obj)  # its success message
        return HttpResponseRedirect(reverse("admin:hub_site_change", args=[obj.pk]))


@admin.register(LogEntry)
class LogEntryAdmin(WindowPaginationMixin, ModelAdmin):
    """Who did what in the admin, across every object (each object also has its History)."""

    list_display = ("action_time", "user", "action_label", "content_type", "object_link", "change_text")
    list_filter = (("user", RelatedDropdownFilter), "action_flag", ("content_type", RelatedDropdownFilter),
                   ("action_time", LocalDateRangeFilter))
    list_filter_submit = True
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "change_message", "user__username")
    date_hierarchy = None
    ordering = ("-action_time", "-id")
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @display(description=gettext_lazy("action"), label={1: "success", 2: "info", 3: "danger"})
    def action_label(self, obj: LogEntry):
        return obj.action_flag, obj.get_action_flag_display()

    @display(description=gettext_lazy("object"))
    def object_link(self, obj: LogEntry) -> str:
        url = obj.get_admin_url() if obj.action_flag != 3 else None
        return format_html('<a href="{}">{}</a>', url, obj.object_repr) if url else obj.object_repr

    @display(description=gettext_lazy("change"))
    def change_text(self, obj: LogEntry) -> str:
        return obj.get_change_message()


# The user pages, with the theme's forms.
for _model in (User, Group):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


# The task queue (django-q2): its own admin classes, in the theme. The queued-task page
# exists with the ORM broker only (with Redis the queue is not in the database).
_Q_PAGES = [
    (q_models.Schedule, q_admin.ScheduleAdmin),
    (q_models.Success, q_admin.TaskAdmin),
    (q_models.Failure, q_admin.FailAdmin),
    (q_models.OrmQ, q_admin.QueueAdmin),
]
class _SuperuserWrites:
    """A schedule names any importable function and its arguments, which the worker runs:
    only superusers may add, change or delete schedules and queue entries (deleting the
    `hub-sweep` schedule would silently stop all retries)."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


# django-q2 names its app after Q_CLUSTER["label"], a plain string that no catalog translates
# ("Task queue 管理" in the Chinese admin): the admin names it in the user's language instead.
django_apps.get_app_config("django_q").verbose_name = gettext_lazy("Task queue")

for _model, _base in _Q_PAGES:
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
        bases = (_SuperuserWrites, _base, ModelAdmin) if _model in (q_models.Schedule, q_models.OrmQ) else (_base, ModelAdmin)
        admin.site.register(_model, type(_base.__name__, bases, {"__module__": __name__}))


def _optional_suppression_admin() -> None:
    """EXTENSION POINT (reliability): the suppression list (per account, with its cause) and
    each account's suppression policy. Deleting an entry lets the account send to that
    address again (its counted soft bounces are forgotten too)."""
    try:
        from ..models import SoftBounce, Suppression, SuppressionPolicy
    except ImportError:
        return

    @admin.register(Suppression)
    class SuppressionAdmin(HubModelAdmin):
        list_display = ("email", "account", "cause", "bulk_only", "failure_type", "smtp_code", "app", "created_at")
        list_filter = ("cause", "bulk_only", ("account", RelatedDropdownFilter), ("app", RelatedDropdownFilter),
                       ("created_at", LocalDateRangeFilter))
        list_filter_submit = True
        list_select_related = ("account", "app")
        search_fields = ("email",)
        readonly_fields = ("failure_type", "smtp_code", "smtp_reply", "log", "created_at")
        fields = ("account", "app", "email", "cause", "bulk_only", "reason", "failure_type", "smtp_code", "smtp_reply",
                  "log", "created_at")

        def save_model(self, request, obj, form, change) -> None:
            obj.email = obj.email.strip().lower()  # the list is matched lower-case
            super().save_model(request, obj, form, change)

        def delete_model(self, request, obj) -> None:
            SoftBounce.objects.filter(account_id=obj.account_id, email=obj.email).delete()
            super().delete_model(request, obj)

        def delete_queryset(self, request, queryset) -> None:
            for account_id, email in queryset.values_list("account_id", "email"):
                SoftBounce.objects.filter(account_id=account_id, email=email).delete()
            super().delete_queryset(request, queryset)

    @admin.register(SuppressionPolicy)
    class SuppressionPolicyAdmin(HubModelAdmin):
        list_display = ("account", "hard_bounces", "complaints", "unsubscribes", "soft_bounce_limit",
                        "soft_bounce_days")
        list_select_related = ("account",)
        search_fields = ("account__name",)


_optional_suppression_admin()
