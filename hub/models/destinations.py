"""Direct delivery's destinations: a receiving provider (or one recipient domain) with its
concurrency and rate limits, the adaptive state that slows it down when it says "too many"
and speeds it up again, its connection slots, and the deferrals it answered recently.
The rules are in hub.delivery.destinations; presets for the big receivers in
hub.delivery.presets (seeded by migration 0012)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Destination(models.Model):
    """Where direct delivery sends: a provider matched by recipient domain or by MX host
    (e.g. "gmail" for gmail.com and every domain whose MX is *.google.com), or one recipient
    domain of its own (created at its first delivery, with the default limits)."""

    name = models.CharField(_("name"), max_length=255, unique=True,
                            help_text=_("A provider's name, or the recipient domain for a destination of its own."))
    preset = models.CharField(_("preset"), max_length=32, blank=True,
                              help_text=_("The built-in preset this destination came from (empty: none)."))
    domains = models.TextField(
        _("recipient domains"), blank=True,
        help_text=_("Recipient domains of this destination, separated by spaces, commas or lines."))
    mx_patterns = models.TextField(
        _("MX host patterns"), blank=True,
        help_text=_("MX host names that belong to this destination: a name, or .suffix for every host under it "
                    "(e.g. .google.com). Separated by spaces, commas or lines."))
    max_connections = models.PositiveIntegerField(
        _("max connections"), default=5, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text=_("Open connections to this destination at most, across all workers and machines."))
    rate_per_minute = models.PositiveIntegerField(
        _("messages per minute"), default=0, validators=[MaxValueValidator(1_000_000)],
        help_text=_("Transactions per minute at most (one per recipient domain of a message). 0 = no limit."))
    # Adaptive state (hub.delivery.destinations): null = not slowed down.
    adaptive_connections = models.PositiveIntegerField(_("adaptive connections"), null=True, blank=True,
                                                       editable=False)
    adaptive_rate = models.FloatField(_("adaptive rate (per minute)"), null=True, blank=True, editable=False)
    paused_until = models.DateTimeField(_("paused until"), null=True, blank=True, editable=False)
    backoff_level = models.PositiveSmallIntegerField(_("backoff level"), default=0, editable=False)
    recovery_successes = models.PositiveIntegerField(default=0, editable=False)
    # Pacing (a generic cell rate algorithm): when the next transaction is due.
    next_send_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_deferral_at = models.DateTimeField(_("last deferral"), null=True, blank=True, editable=False)
    last_deferral = models.TextField(_("last deferral reply"), blank=True, editable=False)
    deferrals_total = models.PositiveIntegerField(_("deferrals"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def connection_limit(self) -> int:
        """Connections allowed now: the configured limit, lower while slowed down."""
        if self.adaptive_connections is not None:
            return max(1, min(self.max_connections, self.adaptive_connections))
        return max(1, self.max_connections)

    @property
    def rate_limit(self) -> float | None:
        """Transactions per minute allowed now (None = no limit)."""
        rates = [r for r in (self.rate_per_minute or None, self.adaptive_rate) if r]
        return min(rates) if rates else None


class DestinationSlot(models.Model):
    """One of a destination's connection slots (like ConnectionSlot for a relay server):
    held by an open connection to any of its MX hosts, renewed while it lives."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["destination", "number"], name="uniq_destination_slot")]


class DestinationDeferral(models.Model):
    """A "too many" / "try later" reply that slowed a destination down (the admin's recent
    deferrals; the newest HUB_DIRECT_DEFERRALS_KEPT per destination are kept)."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deferrals")
    at = models.DateTimeField(_("at"))
    host = models.CharField(_("MX host"), max_length=255, blank=True)
    smtp_code = models.IntegerField(_("SMTP code"), null=True, blank=True)
    reply = models.TextField(_("reply"), blank=True)

    class Meta:
        verbose_name = _("deferral")
        verbose_name_plural = _("deferrals")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["destination", "at"], name="deferral_destination_at")]
