"""Tracking (V28 chapter 3): raw hits, per-recipient and per-link aggregates, per-campaign
counters, the campaigns' link tables and the accounts' tracking domains.

The public endpoints only append a `Hit` (one INSERT, no read); the processor
(process.py, a django-q2 task) turns hits into the aggregates below and deletes them, so the
reports read counters, never the raw rows. Human and machine (proxy, scanner) opens and
clicks are counted apart everywhere (docs/tracking.md has the rules)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Account

# By label: hub.campaigns imports this app (its renderer calls instrument()), so this app
# never imports hub.campaigns (import-linter: no cycles between hub's packages).
CAMPAIGN = "campaigns.Campaign"


class TrackDomain(models.Model):
    """A customer's own host name for its links and pixel (V28 3.6-3.8). It must be a CNAME
    of settings.HUB_TRACK_CNAME_TARGET; only verified ones (is_cname) are used in mails."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="track_domains",
                                verbose_name=_("account"))
    domain = models.CharField(_("domain"), max_length=253)
    is_default = models.BooleanField(_("default"), default=False)
    is_cname = models.BooleanField(_("CNAME verified"), default=False)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("tracking domain")
        verbose_name_plural = _("tracking domains")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["account", "domain"], name="tracking_domain_account")]

    def __str__(self) -> str:
        return self.domain


class CampaignTrack(models.Model):
    """One per tracked campaign; its id is V28's `track_id`. The campaign's counters, kept
    by the processor: `open_*`/`click_*` are human, `machine_*` proxies and scanners.
    `open_unique` = recipients with a human open (or a human click: a click is an open);
    `machine_open_unique` = recipients opened only by machines."""

    campaign = models.OneToOneField(CAMPAIGN, on_delete=models.CASCADE, related_name="track",
                                    verbose_name=_("campaign"))
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", verbose_name=_("account"))
    open_unique = models.PositiveBigIntegerField(default=0)
    open_total = models.PositiveBigIntegerField(default=0)
    open_first = models.DateTimeField(null=True, blank=True)
    open_last = models.DateTimeField(null=True, blank=True)
    click_unique = models.PositiveBigIntegerField(default=0)
    click_total = models.PositiveBigIntegerField(default=0)
    click_first = models.DateTimeField(null=True, blank=True)
    click_last = models.DateTimeField(null=True, blank=True)
    machine_open_unique = models.PositiveBigIntegerField(default=0)
    machine_open_total = models.PositiveBigIntegerField(default=0)
    machine_click_unique = models.PositiveBigIntegerField(default=0)
    machine_click_total = models.PositiveBigIntegerField(default=0)
    # {"device": {"pc": n}, "browser": {...}, "os": {...}, "addr": {...}, "hour": {"2026-11-30 11": n},
    #  "machine": {"apple_mpp": n, ...}}: human opens/clicks by kind, for the admin's charts.
    breakdown = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("campaign tracking")
        verbose_name_plural = _("campaign tracking")

    def __str__(self) -> str:
        return f"#{self.pk} {self.campaign}"


class Link(models.Model):
    """One tracked link of a campaign (its id is V28's `link_id`): the href as written in a
    template (placeholders included). The click URL carries this id, never a target."""

    campaign = models.ForeignKey(CAMPAIGN, on_delete=models.CASCADE, related_name="links")
    url = models.TextField(_("link"))
    url_hash = models.CharField(max_length=64)
    # The href holds a placeholder: the target differs per recipient and is signed into the
    # click URL (only the recipient's own target verifies).
    personal = models.BooleanField(default=False)
    click_unique = models.PositiveBigIntegerField(default=0)
    click_total = models.PositiveBigIntegerField(default=0)
    click_first = models.DateTimeField(null=True, blank=True)
    click_last = models.DateTimeField(null=True, blank=True)
    machine_click_total = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = _("tracked link")
        verbose_name_plural = _("tracked links")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "url_hash"], name="tracking_link_campaign_url")]

    def __str__(self) -> str:
        return self.url[:80]


class Recipient(models.Model):
    """One recipient (SendLog row) of a tracked campaign who opened or clicked (V28 3.2's
    `<user>`, `email_id` = this id). Human counts and machine counts apart; the browser,
    OS, device, IPs and locations are those of human opens (of machine ones when a machine
    is all there was)."""

    campaign = models.ForeignKey(CAMPAIGN, on_delete=models.CASCADE, related_name="+")
    log_id = models.BigIntegerField(unique=True)
    contact_id = models.BigIntegerField(null=True, blank=True)
    email = models.CharField(max_length=254)
    browser = models.CharField(max_length=60, blank=True)
    os = models.CharField(max_length=60, blank=True)
    device = models.CharField(max_length=10, blank=True)
    ip_first = models.GenericIPAddressField(null=True, blank=True)
    ip_last = models.GenericIPAddressField(null=True, blank=True)
    addr_first = models.CharField(max_length=120, blank=True)
    addr_last = models.CharField(max_length=120, blank=True)
    open_total = models.PositiveIntegerField(default=0)
    open_first = models.DateTimeField(null=True, blank=True)
    open_last = models.DateTimeField(null=True, blank=True)
    click_total = models.PositiveIntegerField(default=0)
    click_first = models.DateTimeField(null=True, blank=True)
    click_last = models.DateTimeField(null=True, blank=True)
    machine_open_total = models.PositiveIntegerField(default=0)
    machine_click_total = models.PositiveIntegerField(default=0)
    machine_reason = models.CharField(max_length=30, blank=True)  # the last machine hit's rule

    class Meta:
        indexes = [models.Index(fields=["campaign", "id"], name="tracking_recipient_campaign")]


class LinkClick(models.Model):
    """One recipient's clicks on one link (V28 3.3's `<click>`, `click_id` = this id)."""

    campaign = models.ForeignKey(CAMPAIGN, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(Link, on_delete=models.CASCADE, related_name="clicks")
    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="clicks")
    click_total = models.PositiveIntegerField(default=0)
    click_first = models.DateTimeField(null=True, blank=True)
    click_last = models.DateTimeField(null=True, blank=True)
    machine_click_total = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["recipient", "link"], name="tracking_click_recipient_link")]
        indexes = [models.Index(fields=["campaign", "link", "id"], name="tracking_click_campaign_link")]


class Hit(models.Model):
    """A raw open or click as the public endpoint saw it, waiting for the processor. The
    endpoint verified the signature; nothing here is trusted further than that."""

    OPEN, CLICK = "o", "c"

    kind = models.CharField(max_length=1)
    campaign_id = models.BigIntegerField()
    log_id = models.BigIntegerField()
    link_id = models.BigIntegerField(null=True)
    url = models.TextField(blank=True)  # a personal link's signed target
    at = models.DateTimeField()
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    head = models.BooleanField(default=False)  # a HEAD request: link checkers, never people


class ProcessorLock(models.Model):
    """One row: the processor writes it first in its transaction, so two processors never
    take the same hits (a row lock on MariaDB, the write lock on SQLite)."""

    ran_at = models.DateTimeField(null=True)
