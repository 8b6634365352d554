"""The hub's domain: where mail goes out (SmtpServer), who may send (App), and the audit
log of every accepted message (SendLog), which is also the delivery outbox."""

from __future__ import annotations

import ipaddress
import time

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto


def parse_networks(text: str) -> list[ipaddress._BaseNetwork]:
    """One IP or CIDR per line (commas and spaces also separate); raises ValueError."""
    items = text.replace(",", " ").split()
    return [ipaddress.ip_network(item, strict=False) for item in items]


def validate_networks(text: str) -> None:
    try:
        parse_networks(text)
    except ValueError as exc:
        raise ValidationError(_("Not a list of IP addresses or CIDR ranges: %(err)s"), params={"err": exc})


class Site(models.Model):
    """The hub's own settings; a singleton (always pk=1)."""

    class ClientIpMode(models.TextChoices):
        REMOTE_ADDR = "remote_addr", _("REMOTE_ADDR only (no proxy)")
        X_FORWARDED_FOR = "x_forwarded_for", _("X-Forwarded-For from trusted proxies")
        X_REAL_IP = "x_real_ip", _("X-Real-IP from trusted proxies")

    title = models.CharField(_("title"), max_length=200, default="SMTP Hub")
    keywords = models.CharField(_("keywords"), max_length=500, blank=True)
    description = models.TextField(_("description"), blank=True)
    ip_blocklist = models.TextField(
        _("IP blocklist"), blank=True, validators=[validate_networks],
        help_text=_("One IP address or CIDR range per line; these clients may not use the API."),
    )
    client_ip_mode = models.CharField(
        _("client IP source"), max_length=20, choices=ClientIpMode.choices, default=ClientIpMode.REMOTE_ADDR
    )
    trusted_proxies = models.TextField(
        _("trusted proxies"), blank=True, default="127.0.0.1\n::1", validators=[validate_networks],
        help_text=_("Proxy addresses whose forwarding headers are believed; one IP or CIDR per line."),
    )
    default_from_name = models.CharField(_("default sender name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
        Site._cached = None  # this process sees its own edit at once

    @classmethod
    def load(cls) -> "Site":
        site, _created = cls.objects.get_or_create(pk=1)
        return site

    # The API reads the settings on every request; they change rarely. Each process keeps
    # them this long, so an edit (e.g. to the IP blocklist) applies within seconds.
    CACHE_SECONDS = 5.0
    _cached: tuple[float, "Site"] | None = None

    @classmethod
    def cached(cls) -> "Site":
        now = time.monotonic()
        if cls._cached is None or now - cls._cached[0] > cls.CACHE_SECONDS:
            cls._cached = (now, cls.load())
        return cls._cached[1]


class SmtpServer(models.Model):
    class Security(models.TextChoices):
        NONE = "none", _("None (plain text)")
        STARTTLS = "starttls", _("STARTTLS")
        SSL = "ssl", _("SSL/TLS (implicit)")

    name = models.CharField(_("name"), max_length=100)
    host = models.CharField(_("host"), max_length=255)
    port = models.PositiveIntegerField(_("port"), validators=[MinValueValidator(1), MaxValueValidator(65535)])
    security = models.CharField(_("security"), max_length=10, choices=Security.choices, default=Security.STARTTLS)
    verify_tls = models.BooleanField(
        _("verify TLS certificate"), default=True,
        help_text=_("Turn off only for an internal relay with a self-signed certificate."),
    )
    username = models.CharField(_("username"), max_length=255, blank=True)
    password_encrypted = models.TextField(_("password (encrypted)"), blank=True, editable=False)
    from_email = models.EmailField(_("sender address"), max_length=254, blank=True,
                                   help_text=_("Defaults to the username."))
    enabled = models.BooleanField(_("enabled"), default=True)
    timeout = models.PositiveIntegerField(_("timeout (seconds)"), default=30,
                                          validators=[MinValueValidator(1), MaxValueValidator(300)])
    limit_per_minute = models.PositiveIntegerField(_("limit per minute"), default=0, help_text=_("0 = no limit"))
    limit_per_hour = models.PositiveIntegerField(_("limit per hour"), default=0, help_text=_("0 = no limit"))
    limit_per_day = models.PositiveIntegerField(_("limit per day"), default=0, help_text=_("0 = no limit"))
    # Health, written by delivery: a failing server is tried after the healthy ones.
    last_error = models.TextField(_("last error"), blank=True, editable=False)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("SMTP server")
        verbose_name_plural = _("SMTP servers")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    def set_password(self, plaintext: str) -> None:
        self.password_encrypted = crypto.encrypt(plaintext) if plaintext else ""

    def get_password(self) -> str:
        """The plaintext password; raises crypto.DecryptionError when no key fits."""
        return crypto.decrypt(self.password_encrypted) if self.password_encrypted else ""

    @property
    def sender(self) -> str:
        return self.from_email or self.username

    @property
    def limits(self) -> list[tuple[int, int]]:
        """(limit, window seconds) for each limit that is set."""
        from django.conf import settings

        windows = ((self.limit_per_minute, settings.HUB_THROTTLE_MINUTE_SECONDS),
                   (self.limit_per_hour, 3600), (self.limit_per_day, 86400))
        return [(limit, seconds) for limit, seconds in windows if limit]


class Account(models.Model):
    """A customer: the tenant. Every App belongs to one account, and so does every EDM object
    (lists, contacts, templates, campaigns, domains). A manager account may act for its
    sub-accounts (V28 `user_type=manager`, `customer_id`). The service period and quota live
    here because delivery consumes them for transactional and bulk mail alike."""

    class ServiceStatus(models.TextChoices):
        ENABLED = "enabled", _("Enabled")
        DISABLED = "disabled", _("Disabled")

    class QuotaType(models.TextChoices):
        UNLIMITED = "unlimited", _("Unlimited")
        TOTAL = "all", _("Total quota")
        DAILY = "day", _("Daily quota")

    class SendType(models.TextChoices):
        REMOTE = "remote", _("Relay through SMTP servers")
        LOCAL = "local", _("Direct delivery")

    name = models.CharField(_("name"), max_length=100, unique=True,
                            help_text=_("The customer's user name, shown as `username` in the V28 API."))
    company = models.CharField(_("company"), max_length=200, blank=True)
    contact = models.CharField(_("contact person"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    mobile = models.CharField(_("mobile"), max_length=50, blank=True)
    email = models.EmailField(_("email"), max_length=254, blank=True)
    im = models.CharField(_("instant messenger"), max_length=100, blank=True)
    address = models.CharField(_("postal address"), max_length=300, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
                               verbose_name=_("manager account"),
                               help_text=_("Set on a sub-account: its manager may act for it."))
    is_manager = models.BooleanField(_("manager account"), default=False,
                                     help_text=_("A manager may act for its sub-accounts."))
    # Service and quota (V28 1.2).
    service_status = models.CharField(_("service status"), max_length=10, choices=ServiceStatus.choices,
                                      default=ServiceStatus.ENABLED)
    service_start = models.DateField(_("service start"), null=True, blank=True)
    service_end = models.DateField(_("service end"), null=True, blank=True)
    quota_type = models.CharField(_("quota type"), max_length=10, choices=QuotaType.choices,
                                  default=QuotaType.UNLIMITED)
    send_type = models.CharField(_("send type"), max_length=10, choices=SendType.choices, default=SendType.REMOTE)
    quota_total = models.BigIntegerField(_("quota bought"), default=0)
    # What is left: of the total (`all`), or of today's allowance (`day`, reset each day).
    quota_available = models.BigIntegerField(_("quota available"), default=0)
    quota_day = models.DateField(_("quota day"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    DEFAULT_NAME = "default"

    @classmethod
    def default(cls) -> "Account":
        """The account of apps that were given none (migration 0006 made it for the apps
        that existed then): unlimited quota, no service period, so nothing changes for them."""
        account, _created = cls.objects.get_or_create(name=cls.DEFAULT_NAME, defaults={"company": "Default"})
        return account


class App(models.Model):
    """An integrating site, app or server. Its primary key is the public AppID; the
    first migration starts the sequence at 1000, as the original system did."""

    class Type(models.TextChoices):
        SITE = "site", _("Site")
        APP = "app", _("App")
        SERVER = "server", _("Server")

    # Null only until the first save, which gives an app without one the default account
    # (Account.default()): apps made before accounts existed, by scripts or by old clients
    # of `hub_app add`, keep working unchanged.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, null=True, blank=True, related_name="apps",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=100)
    type = models.CharField(_("type"), max_length=10, choices=Type.choices, default=Type.SITE)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    secret_digest = models.CharField(_("secret digest"), max_length=64, editable=False)
    # After a rotation with a grace period the old secret keeps working until this time.
    previous_secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(_("old secret valid until"), null=True, blank=True,
                                                      editable=False)
    servers = models.ManyToManyField(SmtpServer, through="AppServer", related_name="apps",
                                     verbose_name=_("SMTP servers"))
    enabled = models.BooleanField(_("enabled"), default=True)
    allowed_ips = models.TextField(
        _("allowed IPs"), blank=True, validators=[validate_networks],
        help_text=_("Optional. One IP or CIDR per line; when set, only these clients may use this app."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(_("API rate limit per minute"), default=0,
                                                        help_text=_("0 = no limit"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("app")
        verbose_name_plural = _("apps")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def appid(self) -> int:
        return self.id

    def save(self, *args, **kwargs):
        if self.account_id is None:
            self.account = Account.default()
        super().save(*args, **kwargs)

    def rotate_secret(self, grace_seconds: int = 0) -> str:
        """Give the app a new secret; returns the plaintext, which is never stored. With a
        grace period the old secret keeps working that long, so clients can switch over."""
        secret = crypto.new_app_secret()
        if grace_seconds > 0 and self.secret_digest:
            self.previous_secret_digest = self.secret_digest
            self.previous_secret_expires_at = timezone.now() + timezone.timedelta(seconds=grace_seconds)
        else:
            self.previous_secret_digest, self.previous_secret_expires_at = "", None
        self.secret_digest = crypto.secret_digest(secret)
        return secret

    def check_secret(self, secret: str) -> bool:
        # Both comparisons always run, so timing does not tell which secret matched.
        current = crypto.secret_matches(secret, self.secret_digest)
        previous = crypto.secret_matches(secret, self.previous_secret_digest or "0" * 64)
        in_grace = bool(self.previous_secret_expires_at and timezone.now() < self.previous_secret_expires_at)
        return current or (previous and in_grace)

    def ordered_servers(self) -> list[SmtpServer]:
        """Bound servers, primary first (enabled or not)."""
        return [link.server for link in self.server_links.select_related("server").order_by("priority", "id")]


class AppServer(models.Model):
    """An app's SMTP server with its priority: the lowest number is the primary."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="server_links")
    server = models.ForeignKey(SmtpServer, on_delete=models.PROTECT, related_name="app_links",
                               verbose_name=_("SMTP server"))
    priority = models.PositiveSmallIntegerField(_("priority"), default=0)

    class Meta:
        verbose_name = _("SMTP server of the app")
        verbose_name_plural = _("SMTP servers of the app (first is primary)")
        ordering = ["priority", "id"]
        constraints = [models.UniqueConstraint(fields=["app", "server"], name="uniq_app_server")]

    def __str__(self) -> str:
        return f"{self.app_id} → {self.server}"


class FailureType(models.IntegerChoices):
    """Why a message failed, in the EDM platform's numbering (see hub.delivery.bounces)."""

    NOT_EXIST = 1, _("Address does not exist")
    OVER_QUOTA = 2, _("Mailbox full")
    USER_REJECT = 3, _("Rejected by the recipient")
    SPAM_CONTENT = 4, _("Content judged as spam")
    REFUSED = 5, _("Refused by the server")
    BLACKLIST = 6, _("Sender blacklisted")
    COMPLAINT = 7, _("Complaint")
    INVALID = 8, _("Invalid address")
    FORMAT_ERROR = 9, _("Format error")
    CONNECT_ERROR = 10, _("Connection error")


class SendLog(models.Model):
    """One accepted message: the audit record and the outbox row the worker delivers."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        RETRYING = "retrying", _("Retrying")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    CLAIMABLE = (Status.QUEUED, Status.RETRYING)
    FINAL = (Status.SENT, Status.FAILED)

    class Source(models.TextChoices):
        API = "api", _("HTTP API")
        SMTP = "smtp", _("SMTP submission")
        ADMIN = "admin", _("Admin")

    # No index of its own for app, smtp_server and claim_token: each index costs every insert
    # and every outcome write; (app, id) and (smtp_server, sent_at) below serve these
    # columns' lookups (and MySQL's foreign keys), and claims look rows up by id.
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="send_logs", verbose_name=_("app"),
                            db_index=False)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.API)
    resent_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="resends",
                                    verbose_name=_("resent from"))
    smtp_server = models.ForeignKey(SmtpServer, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="send_logs", verbose_name=_("SMTP server"), db_index=False)
    from_email = models.CharField(_("from"), max_length=254, blank=True)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    # Address lists are stored as header text ("Name <a@b>, c@d"), unencoded.
    to = models.TextField(_("to"))
    to_name = models.CharField(_("recipient name"), max_length=200, blank=True)
    cc = models.TextField(_("cc"), blank=True)
    bcc = models.TextField(_("bcc"), blank=True)
    reply_to = models.TextField(_("reply-to"), blank=True)
    # Envelope recipients when they differ from to+cc+bcc (SMTP submissions); else empty.
    rcpt_to = models.TextField(_("envelope recipients"), blank=True)
    subject = models.CharField(_("subject"), max_length=998)
    html_body = models.TextField(_("HTML body"), blank=True)
    text_body = models.TextField(_("text body"), blank=True)
    attachment_count = models.PositiveSmallIntegerField(_("attachments"), default=0)
    # A calendar invitation (see hub.calendar): uid, method, sequence, start, end, ...
    event = models.JSONField(_("calendar event"), null=True, blank=True)
    # The client's own MIME message (SMTP submissions): relayed as it is, see hub.delivery.
    raw_message = models.BinaryField(_("raw message"), null=True, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    smtp_code = models.IntegerField(_("SMTP code"), null=True, blank=True)
    smtp_reply = models.TextField(_("SMTP reply"), blank=True)
    error = models.TextField(_("error"), blank=True)
    failure_type = models.PositiveSmallIntegerField(_("failure type"), null=True, blank=True,
                                                    choices=FailureType.choices)
    # {"addr@example.com": [550, "5.1.1 User unknown"]}: recipients the server refused.
    refused_recipients = models.JSONField(_("refused recipients"), default=dict, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True, db_index=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    # Set by the worker that claims the row, so a batch can find exactly the rows it won.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("send log")
        verbose_name_plural = _("send logs")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "id"], name="sendlog_status"),
            models.Index(fields=["app", "id"], name="sendlog_app"),
            models.Index(fields=["status", "next_attempt_at"], name="sendlog_due"),
            # Covering indexes for the admin's aggregates (hub/admin/dashboard.py, the SMTP servers'
            # usage): each query reads the index alone, never the rows with their bodies.
            models.Index(fields=["created_at", "app", "status"], name="sendlog_created_app"),
            models.Index(fields=["created_at", "smtp_server", "status"], name="sendlog_created_server"),
            models.Index(fields=["smtp_server", "sent_at"], name="sendlog_server_sent"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.to} {self.subject[:40]}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL


class DeliveryAttempt(models.Model):
    """One try of one message on one server: what the hub did and what the server said."""

    class Result(models.TextChoices):
        SENT = "sent", _("Sent")
        REFUSED = "refused", _("Refused (permanent)")
        DEFERRED = "deferred", _("Deferred (temporary)")
        CONNECT_FAILED = "connect_failed", _("Server unreachable or login refused")

    log = models.ForeignKey(SendLog, on_delete=models.CASCADE, related_name="delivery_attempts")
    server = models.ForeignKey(SmtpServer, on_delete=models.SET_NULL, null=True, related_name="+",
                               verbose_name=_("SMTP server"))
    result = models.CharField(_("result"), max_length=20, choices=Result.choices)
    smtp_code = models.IntegerField(_("SMTP code"), null=True, blank=True)
    smtp_reply = models.TextField(_("SMTP reply"), blank=True)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["id"]


class Suppression(models.Model):
    """A recipient an app may no longer send to: its address hard-bounced."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="suppressions", verbose_name=_("app"))
    email = models.CharField(_("email"), max_length=254)  # stored lower-case
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    smtp_code = models.IntegerField(_("SMTP code"), null=True, blank=True)
    smtp_reply = models.TextField(_("SMTP reply"), blank=True)
    log = models.ForeignKey(SendLog, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                            verbose_name=_("send log"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("suppressed recipient")
        verbose_name_plural = _("suppression list")
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["app", "email"], name="uniq_suppression")]

    def __str__(self) -> str:
        return self.email


class IdempotencyKey(models.Model):
    """An `Idempotency-Key` seen from an app, kept 24 hours, with the request it named."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    log = models.ForeignKey(SendLog, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="uniq_idempotency_key")]


class ThrottleSlot(models.Model):
    """One message handed to a rate-limited server; counted over sliding windows so the
    limit holds across every worker and machine sharing the database."""

    server = models.ForeignKey(SmtpServer, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["server", "at"], name="throttle_server_at")]


class ApiRateCounter(models.Model):
    """Requests of one app in one minute, for the per-app API rate limit."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "window_start"], name="uniq_rate_window")]


class Attachment(models.Model):
    """A file sent with a message, kept for audit and resend."""

    log = models.ForeignKey(SendLog, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=255, default="application/octet-stream")
    content = models.BinaryField(_("content"))
    size = models.PositiveIntegerField(_("size (bytes)"))

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename


class DeliveryWakeup(models.Model):
    """One row (pk 1): when a drain task was last asked for and has not started yet.

    Messages wait in SendLog (the outbox); a django-q2 task does not carry one message but
    drains the outbox. Whoever commits waiting rows makes sure a drain is on its way, and
    asks for a new one only when none is pending: under load one task then delivers
    hundreds of messages, instead of each message paying for a task of its own. A drain
    clears `requested_at` before it looks for rows, so a row committed while the flag was
    set is always seen (see hub.delivery.outbox.wake_workers)."""

    requested_at = models.DateTimeField(null=True, blank=True)
