"""SMTP servers in the back office: a write-only password, usage against the send limits,
health, and two actions that talk to the server right away: "test connection" and "send
test email".

The server's own test email goes straight through hub.delivery.transport.SmtpSession and is not a
SendLog row (a SendLog belongs to an app); it checks the transport. To test the whole
pipeline (accept -> queue -> deliver -> log) use the app's "send test email" action.
(Over 400 lines: relay and direct servers share this page, its form rules and both live
actions; the destinations of direct delivery have their own module.)"""

from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.views import ChangeList

from ..delivery import slots
from ..delivery.message import ascii_address, build_message, envelope_recipients
from ..delivery.transport import ConnectionFailed, SmtpSession
from ..models import SendLog, Site, SmtpServer
from .common import HubModelAdmin, has_field, per_object, present_fields
from .forms import SmtpServerAdminForm, TestEmailForm

# Server health fields written by delivery (reliability work); shown when present.
HEALTH_FIELDS = ("failing_since", "last_error", "last_error_at", "last_success_at")


# --- talking to the server ------------------------------------------------------------------

def for_admin_request(server: SmtpServer) -> SmtpServer:
    """The server with its timeout capped for a test run inside a web request: the page has
    to answer before the web server gives up on its worker (gunicorn --timeout 60)."""
    cap = getattr(settings, "HUB_ADMIN_TEST_TIMEOUT", 20)
    server.timeout = max(1, min(server.timeout, cap))  # in memory only, never saved
    return server


def timeout_note(configured: int) -> str:
    """What a test page says about its timeout: the server's own setting (what delivery
    uses), and the admin's cap when it is lower, so the page never shows a number the
    server is not set to without saying why."""
    cap = max(1, getattr(settings, "HUB_ADMIN_TEST_TIMEOUT", 20))
    if configured <= cap:
        return _("Timeout: %(timeout)s s per step.") % {"timeout": configured}
    return _("Timeout: %(timeout)s s per step (the server's setting, used for delivery); this test waits at most "
             "%(cap)s s per step so that the page answers in time (HUB_ADMIN_TEST_TIMEOUT).") % {
        "timeout": configured, "cap": cap}


@dataclass
class ProbeResult:
    """What "test connection" learned; `steps` are (what, detail) lines for the page."""

    ok: bool
    steps: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    smtp_code: int | None = None
    smtp_reply: str = ""
    seconds: float = 0.0


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def probe(server: SmtpServer) -> ProbeResult:
    """Connect, (START)TLS, log in and NOOP, exactly as delivery does (same SmtpSession,
    the server's own timeout), then hang up. Never raises for a server problem."""
    started = time.monotonic()
    session = SmtpSession(server)
    try:
        session.open()
    except ConnectionFailed as exc:
        return ProbeResult(False, error=exc.error, smtp_code=exc.smtp_code, smtp_reply=exc.smtp_reply,
                           seconds=time.monotonic() - started)
    try:
        conn = session.conn
        steps = [(_("Connected"), f"{server.host}:{server.port}")]
        sock = getattr(conn, "sock", None)
        if isinstance(sock, ssl.SSLSocket):
            cipher = sock.cipher()
            steps.append((_("TLS"), f"{sock.version()} {cipher[0] if cipher else ''}".strip()))
        else:
            steps.append((_("TLS"), _("not used (plain text connection)")))
        steps.append((_("EHLO reply"), _decode(getattr(conn, "ehlo_resp", b""))))
        if server.username:
            steps.append((_("Login"), _("accepted for %(user)s") % {"user": server.username}))
        else:
            steps.append((_("Login"), _("none configured")))
        code, reply = conn.noop()
        steps.append((_("NOOP reply"), f"{code} {_decode(reply)}"))
        return ProbeResult(True, steps, smtp_code=code, smtp_reply=_decode(reply),
                           seconds=time.monotonic() - started)
    except (smtplib.SMTPException, OSError) as exc:  # the server hung up between steps
        return ProbeResult(False, error=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)
    finally:
        session.close()


def send_direct_test(server: SmtpServer, to: str, subject: str, html: str):
    """One message straight to the server over a fresh SmtpSession (not the worker's pool).
    Returns the delivery Outcome, or the ConnectionFailed that stopped it."""
    site = Site.load()
    # An unsaved row only carries the fields build_message reads; it is never stored.
    row = SendLog(to=to, subject=subject, html_body=html, from_name=site.default_from_name or "SMTP Hub",
                  message_id=make_msgid(domain=settings.HUB_DOMAIN))
    msg = build_message(row, server.sender)
    for header in ("X-SMTPHub-Log-ID", "X-SMTPHub-App-ID"):
        del msg[header]
    msg["X-SMTPHub-Test"] = f"server {server.pk}"
    session = SmtpSession(server)
    try:
        session.open()
    except ConnectionFailed as exc:
        return exc
    try:
        return session.send(ascii_address(server.sender), envelope_recipients(row), msg.as_string())
    finally:
        session.close()


# --- usage against the limits ----------------------------------------------------------------

def sent_counts_query(server_ids: list[int], now: datetime) -> QuerySet:
    day, hour, minute = now - timedelta(days=1), now - timedelta(hours=1), now - timedelta(minutes=1)
    # sent_at is set only when a message is sent, so it alone says "sent in the window";
    # the (smtp_server, sent_at) index then answers the whole query without reading rows.
    return (
        SendLog.objects.filter(smtp_server_id__in=server_ids, sent_at__gte=day)
        .values("smtp_server_id")
        .annotate(day=Count("id"), hour=Count("id", filter=Q(sent_at__gte=hour)),
                  minute=Count("id", filter=Q(sent_at__gte=minute)))
        .order_by()
    )


def sent_counts(server_ids: list[int]) -> dict[int, dict[str, int]]:
    """Messages each server sent in the last minute / hour / day, in one query, read from
    the sendlog_server_sent index alone (a covering range scan per server)."""
    if not server_ids:
        return {}
    now = timezone.now()
    rows = sent_counts_query(server_ids, now)
    return {r["smtp_server_id"]: {"minute": r["minute"], "hour": r["hour"], "day": r["day"]} for r in rows}


def render_usage(server: SmtpServer, counts: dict[str, int] | None) -> str:
    counts = counts or {"minute": 0, "hour": 0, "day": 0}
    parts = []
    for key, limit, label in (("minute", server.limit_per_minute, _("min")),
                              ("hour", server.limit_per_hour, _("hour")),
                              ("day", server.limit_per_day, _("day"))):
        used = counts[key]
        if limit:
            ratio = used / limit
            css = "text-red-600" if ratio >= 1 else ("hub-warn" if ratio >= 0.8 else "")
            parts.append((css, f"{used}/{limit}", label))
        elif key == "day":
            parts.append(("", str(used), label))
    return format_html_join(" · ", '<span class="{}">{}</span> <span class="text-subtle">/{}</span>', parts)


def render_live(server: SmtpServer, open_now: int, counts: dict[str, int] | None) -> str:
    """Connections open now (across every worker) against max_connections, and the rate over
    the last minute."""
    sent_last_minute = (counts or {}).get("minute", 0)
    if server.is_direct:  # its connections are counted per destination (see Destinations)
        return format_html_join("", "<span>{}</span>", [
            (_("%(rate)s msgs/s (last minute)") % {"rate": f"{sent_last_minute / 60:.1f}"},)])
    css = "hub-warn" if open_now >= server.max_connections else ""
    return format_html_join(" · ", '<span class="{}">{}</span>', [
        (css, _("%(open)d/%(max)d connections") % {"open": open_now, "max": server.max_connections}),
        ("", _("%(rate)s msgs/s (last minute)") % {"rate": f"{sent_last_minute / 60:.1f}"}),
    ])


class UsageChangeList(ChangeList):
    """Computes the page's usage counts and open connections in one query each after the
    page is read, so the list costs the same number of queries for 10 servers as for 100."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        ids = [s.pk for s in self.result_list]
        counts = sent_counts(ids)
        connections = slots.open_connections(ids)
        for server in self.result_list:
            server.usage_counts = counts.get(server.pk)
            server.open_connections = connections.get(server.pk, 0)


# --- the admin ---------------------------------------------------------------------------------

@admin.register(SmtpServer)
class SmtpServerAdmin(HubModelAdmin):
    form = SmtpServerAdminForm
    list_display = ("name", "kind", "address", "security", "enabled", "usage", "live")
    list_display_links = ("name",)
    list_filter = ("enabled", "kind", "security")
    search_fields = ("name", "host", "username", "from_email")
    ordering = ("id",)
    actions = ("enable_selected", "disable_selected")
    actions_detail = ("test_connection", "send_test_email")

    def get_changelist(self, request: HttpRequest, **kwargs):
        return UsageChangeList

    def get_list_display(self, request: HttpRequest):
        columns = list(super().get_list_display(request))
        if has_field(SmtpServer, "failing_since"):  # EXTENSION POINT (reliability): server health
            columns.insert(columns.index("enabled") + 1, "health")
        return columns

    def get_fieldsets(self, request: HttpRequest, obj: SmtpServer | None = None):
        login = ["username", "password", "clear_password", "from_email", "verp_return_path"]
        if obj is None or not obj.password_encrypted:
            login.remove("clear_password")  # nothing stored to remove
        health = present_fields(SmtpServer, "failing_since", "last_error_at", "last_success_at")
        status = ["enabled", *([health] if health else []), *present_fields(SmtpServer, "last_error")]
        direct = obj is not None and obj.is_direct
        # A direct server has no host or login (hub.delivery.direct): its page shows its EHLO
        # name, source address and sender instead; the add page shows both kinds' fields.
        fieldsets = [(None, {"fields": ["name", "kind", "timeout"]})]
        if not direct:
            fieldsets += [
                (gettext_lazy("Upstream server (relay)"), {"fields": [("host", "port"), ("security", "verify_tls")]}),
                (gettext_lazy("Login and sender"), {"fields": login}),
            ]
        if obj is None or direct:
            fieldsets.append((gettext_lazy("Direct delivery"), {
                "fields": (["from_email"] if direct else []) + ["helo_name", "source_address"],
                "description": gettext_lazy(
                    "Kind “direct” only: mail goes to each recipient domain's MX hosts, with the connection "
                    "and rate limits of its destination (see Destinations)."),
            }))
        fieldsets += [
            (gettext_lazy("Send limits"), {"fields": [("limit_per_minute", "limit_per_hour", "limit_per_day")]
                                           + (["usage_detail"] if obj else [])}),
        ]
        if not direct:
            fieldsets.append((gettext_lazy("Connections"), {"fields": ["max_connections"]
                                                            + (["live_detail"] if obj else [])}))
        fieldsets.append((gettext_lazy("Status"), {"fields": status}))
        if obj is not None:
            fieldsets.append((gettext_lazy("Audit"), {"fields": [("created_at", "updated_at"), "audit_trail"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: SmtpServer | None = None):
        return ("usage_detail", "live_detail", "created_at", "updated_at", "audit_trail", *present_fields(SmtpServer, *HEALTH_FIELDS))

    # -- columns

    @display(description=gettext_lazy("address"), ordering="host")
    def address(self, obj: SmtpServer) -> str:
        if obj.is_direct:
            return _("each recipient domain's MX hosts")
        return f"{obj.host}:{obj.port}"

    @display(description=gettext_lazy("health"), label={"ok": "success", "failing": "danger", "unknown": "info"})
    def health(self, obj: SmtpServer):
        if obj.failing_since:
            since = formats.date_format(timezone.localtime(obj.failing_since), "SHORT_DATETIME_FORMAT")
            return "failing", _("failing since %(t)s") % {"t": since}
        if obj.last_success_at:
            return "ok", _("OK")
        return "unknown", _("no deliveries yet")

    @display(description=gettext_lazy("sent (last min / hour / day) vs limit"))
    def usage(self, obj: SmtpServer) -> str:
        return render_usage(obj, getattr(obj, "usage_counts", None))

    @display(description=gettext_lazy("usage now"))
    @per_object
    def usage_detail(self, obj: SmtpServer | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return render_usage(obj, self._sent_counts(obj))

    @per_object
    def _sent_counts(self, obj: SmtpServer) -> dict[str, int] | None:
        return sent_counts([obj.pk]).get(obj.pk)  # read once per page, for both fields

    @display(description=gettext_lazy("live: connections open now / max, rate"))
    def live(self, obj: SmtpServer) -> str:
        return render_live(obj, getattr(obj, "open_connections", 0), getattr(obj, "usage_counts", None))

    @display(description=gettext_lazy("live now"))
    @per_object
    def live_detail(self, obj: SmtpServer | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return render_live(obj, slots.open_connections([obj.pk]).get(obj.pk, 0), self._sent_counts(obj))

    # -- bulk actions (logged per server)

    def _set_enabled(self, request: HttpRequest, queryset, enabled: bool) -> None:
        changed = 0
        for server in queryset:
            if server.enabled != enabled:
                server.enabled = enabled
                server.save(update_fields=["enabled", "updated_at"])
                self.audit(request, server, _("Enabled") if enabled else _("Disabled"))
                changed += 1
        messages.success(request, _("%(n)d SMTP server(s) updated.") % {"n": changed})

    @action(description=gettext_lazy("Enable selected SMTP servers"), permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @action(description=gettext_lazy("Disable selected SMTP servers"), permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, False)

    # -- detail actions: each is a page; only a POST talks to the server

    def _server(self, request: HttpRequest, object_id: str) -> SmtpServer:
        server = self.get_object(request, unquote(object_id))
        if server is None:
            raise Http404(_("No such SMTP server."))
        return server

    def _not_for_direct(self, request: HttpRequest, server: SmtpServer) -> HttpResponse | None:
        """The connection tests talk to one host; a direct server has none."""
        if not server.is_direct:
            return None
        messages.info(request, _("A direct server delivers to each recipient domain's MX hosts: there is no single "
                                 "host to test. Send a message through an app that uses it, and see Destinations."))
        return redirect(reverse("admin:hub_smtpserver_change", args=[server.pk]))

    @action(description=gettext_lazy("Test connection"), url_path="test-connection", permissions=["change"],
            icon="lan", variant=ActionVariant.PRIMARY)
    def test_connection(self, request: HttpRequest, object_id: str) -> HttpResponse:
        server = self._server(request, object_id)
        if (elsewhere := self._not_for_direct(request, server)) is not None:
            return elsewhere
        timeout = timeout_note(server.timeout)  # the server's own setting, before the admin's cap
        for_admin_request(server)
        result = None
        if request.method == "POST":
            result = probe(server)
            if result.ok:
                note = _("Connection test passed: %(code)s %(reply)s") % {
                    "code": result.smtp_code, "reply": result.smtp_reply}
                messages.success(request, note)
            else:
                note = _("Connection test failed: %(error)s") % {"error": result.error}
                messages.error(request, note)
            self.audit(request, server, note[:1000])
        return self.action_page(
            request, server, title=_("Test connection: %(server)s") % {"server": server},
            intro=_("Connects to %(host)s:%(port)s with security “%(security)s”, logs in if a username is set, "
                    "and hangs up. %(timeout)s") % {
                "host": server.host, "port": server.port, "security": server.get_security_display(),
                "timeout": timeout},
            submit_label=_("Run the test"), probe=result,
        )

    @action(description=gettext_lazy("Send test email"), url_path="send-test", permissions=["change"], icon="send")
    def send_test_email(self, request: HttpRequest, object_id: str) -> HttpResponse:
        server = self._server(request, object_id)
        if (elsewhere := self._not_for_direct(request, server)) is not None:
            return elsewhere
        timeout = timeout_note(server.timeout)  # the server's own setting, before the admin's cap
        for_admin_request(server)
        form = TestEmailForm(request.POST or None)
        outcome = failure = None
        if request.method == "POST" and form.is_valid():
            to = form.cleaned_data["to"]
            result = send_direct_test(server, to, form.cleaned_data["subject"], form.cleaned_data["message"])
            if isinstance(result, ConnectionFailed):
                failure = result
                note = _("Test email to %(to)s not sent: %(error)s") % {"to": to, "error": result.error}
                messages.error(request, note)
            else:
                outcome = result
                if result.status == SendLog.Status.SENT:
                    note = _("Test email to %(to)s accepted by the server: %(code)s %(reply)s") % {
                        "to": to, "code": result.smtp_code, "reply": result.smtp_reply}
                    messages.success(request, note)
                else:
                    note = _("Test email to %(to)s refused: %(error)s") % {"to": to, "error": result.error}
                    messages.error(request, note)
            self.audit(request, server, note[:1000])
        return self.action_page(
            request, server, title=_("Send test email: %(server)s") % {"server": server},
            intro=_("Sends one message directly through this server and shows its reply. %(timeout)s "
                    "It is not queued and not logged as a send log; to test an app end to end, use the "
                    "app's “Send test email”.") % {"timeout": timeout},
            form=form, submit_label=_("Send"), outcome=outcome, failure=failure,
        )
