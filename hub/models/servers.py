"""Where mail goes out: the upstream SMTP servers (or a "direct" server that delivers to the
recipients' own MX hosts), the slots that count their send limits, and the leases on their
connections (max_connections). The destinations of direct delivery are in destinations.py."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .. import crypto


class SmtpServer(models.Model):
    class Kind(models.TextChoices):
        RELAY = "relay", _("Relay (an upstream SMTP server)")
        DIRECT = "direct", _("Direct (to each recipient domain's MX hosts)")

    class Security(models.TextChoices):
        NONE = "none", _("None (plain text)")
        STARTTLS = "starttls", _("STARTTLS")
        SSL = "ssl", _("SSL/TLS (implicit)")

    name = models.CharField(_("name"), max_length=100)
    # relay: host/port/security/login below; direct: no host or login, the MX hosts of each
    # recipient domain (hub.delivery.direct), with a HELO name and an optional source address.
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.RELAY)
    host = models.CharField(_("host"), max_length=255, blank=True)
    port = models.PositiveIntegerField(_("port"), default=25,
                                       validators=[MinValueValidator(1), MaxValueValidator(65535)])
    helo_name = models.CharField(
        _("HELO name"), max_length=255, blank=True,
        help_text=_("Direct delivery: the name this server gives in EHLO (it should have matching forward and "
                    "reverse DNS). Empty = HUB_DIRECT_HELO_NAME."))
    source_address = models.GenericIPAddressField(
        _("source address"), null=True, blank=True,
        help_text=_("Direct delivery: the local IP address connections leave from. Empty = "
                    "HUB_DIRECT_SOURCE_ADDRESS (or the system's choice)."))
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
    # VERP (hub.delivery.verp): MAIL FROM is a signed per-message bounce address on
    # HUB_BOUNCE_DOMAIN instead of the sender address. Off by default: most relays refuse a
    # MAIL FROM that is not the account's own address.
    verp_return_path = models.BooleanField(
        _("VERP return path"), default=False,
        help_text=_("Use a signed bounce address on the hub's bounce domain as the envelope sender (MAIL FROM), "
                    "so bounces come back to the hub. Only for servers that accept any envelope sender."))
    timeout = models.PositiveIntegerField(_("timeout (seconds)"), default=30,
                                          validators=[MinValueValidator(1), MaxValueValidator(300)])
    limit_per_minute = models.PositiveIntegerField(_("limit per minute"), default=0, help_text=_("0 = no limit"))
    limit_per_hour = models.PositiveIntegerField(_("limit per hour"), default=0, help_text=_("0 = no limit"))
    limit_per_day = models.PositiveIntegerField(_("limit per day"), default=0, help_text=_("0 = no limit"))
    # Held across every worker process and machine by ConnectionSlot leases (hub.delivery.slots).
    max_connections = models.PositiveIntegerField(
        _("max connections"), default=5, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text=_("Open connections to this server at most, counted across all workers and machines. "
                    "Each connection sends one message at a time."))
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
        if self.is_direct:
            return f"{self.name} (direct)"
        return f"{self.name} ({self.host}:{self.port})"

    @property
    def is_direct(self) -> bool:
        return self.kind == self.Kind.DIRECT

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if not self.is_direct and not self.host:
            raise ValidationError({"host": _("A relay server needs a host.")})
        if self.is_direct and not self.from_email:
            raise ValidationError({"from_email": _("A direct server needs a sender address.")})

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


class ThrottleSlot(models.Model):
    """One message handed to a rate-limited server; counted over sliding windows so the
    limit holds across every worker and machine sharing the database."""

    server = models.ForeignKey(SmtpServer, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["server", "at"], name="throttle_server_at")]


class ConnectionSlot(models.Model):
    """One of a server's `max_connections` connection slots. A worker holds a slot (its
    `holder` token, starting with its cluster's id like a claim token) for as long as its
    connection is open, and renews the lease while it is; a slot whose lease expired is free
    again, so a killed worker's connections stop counting after HUB_SMTP_SLOT_LEASE_SECONDS
    (at once when its cluster is found dead). See hub.delivery.slots."""

    server = models.ForeignKey(SmtpServer, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server", "number"], name="uniq_connection_slot")]
