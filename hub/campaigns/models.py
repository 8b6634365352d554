"""Campaigns (V28 "tasks", chapter 6 and 2.1): what to send to whom, from whom, when and how
fast, the review, the dispatcher's exact checkpoint and the counters.

The recipients are not stored here: the dispatcher (dispatch.py) streams the lists' contacts
and writes one small outbox row (hub.models.SendLog with campaign_id/contact_id) per
recipient, in the same transaction as its cursor and counters (so a crash repeats nothing
and skips nothing). Sent and failed are counted from those rows (index (campaign_id,
status)); everything decided before a row exists (skips, rotation) is counted here."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Account

MIN_HOUR_SPEED = 100
MAX_HOUR_SPEED = 75_000
SKIP_REASONS = ("unsubscribed", "duplicate", "suppressed", "range", "invalid")


class State(models.IntegerChoices):
    """V28 (a)1, the task's send status."""

    WAITING = 0, _("waiting to send")
    SCHEDULED = 1, _("waiting to start")
    SENDING = 2, _("sending")
    DONE = 3, _("completed")
    STOPPED = 4, _("stopped")
    ON_HOLD = -1, _("on hold")
    PAUSED = -2, _("paused")
    CANCELLED = -3, _("cancelled")
    ERROR = -4, _("send error")
    INGESTING = -5, _("waiting for ingestion")


class Verify(models.IntegerChoices):
    """V28 (a)2, the review."""

    PENDING = 0, _("waiting for review")
    APPROVED = 1, _("approved")
    REJECTED = 2, _("rejected")


class CampaignSettings(models.Model):
    """Per-account campaign terms set by an operator (kept out of the core's Account)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="campaign_settings",
                                   verbose_name=_("account"))
    needs_review = models.BooleanField(
        _("campaigns need review"), default=False,
        help_text=_("An operator must approve each campaign of this account before it sends."))
    read_receipts = models.BooleanField(
        _("read-receipt service"), default=False,
        help_text=_("Campaigns may ask for read receipts (Disposition-Notification-To)."))

    class Meta:
        verbose_name = _("campaign settings")
        verbose_name_plural = _("campaign settings")

    def __str__(self) -> str:
        return str(self.account)


class Campaign(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="campaigns",
                                verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=200, blank=True)
    # V28 `sn` / `ident`: the batch number, an opaque string (YYYYMMDDHHMMSS-account-id).
    sn = models.CharField(_("batch number"), max_length=40, blank=True, db_index=True, editable=False)
    # Ordered: recipient n gets template n mod len (round-robin). Ids of hub.mailtemplates
    # templates the account may use (own or shared by its manager).
    template_ids = models.JSONField(_("templates"), default=list)
    # Sorted ascending: the documented recipient order is (list id, contact id).
    list_ids = models.JSONField(_("contact lists"), default=list)
    send_domain = models.CharField(_("sender domain"), max_length=255, default="all")
    send_account = models.CharField(_("sender"), max_length=254, default="all")
    send_fullname = models.CharField(_("sender name"), max_length=200, blank=True)
    send_replyto = models.CharField(_("reply-to"), max_length=254, blank=True)
    # The apps (and so SMTP servers) whose senders match send_domain/send_account; rows are
    # spread over them round-robin.
    app_ids = models.JSONField(default=list, editable=False)
    # [[app id, From address], ...]: the senders rows go out as, round-robin (From "" = the
    # delivering server's sender; else a mailbox or an address of a verified domain).
    senders = models.JSONField(default=list, editable=False)
    send_qty_start = models.PositiveBigIntegerField(_("range start"), default=1)
    send_qty = models.PositiveBigIntegerField(_("range end"), default=0, help_text=_("0 = to the end"))
    # V28 send_qty_remark: the lists' address count when the task was added.
    send_qty_remark = models.PositiveBigIntegerField(default=0, editable=False)
    send_time = models.DateTimeField(_("send time"), default=timezone.now)
    state = models.SmallIntegerField(_("state"), choices=State.choices, default=State.SCHEDULED)
    verify_status = models.SmallIntegerField(_("review"), choices=Verify.choices, default=Verify.APPROVED)
    reviewed_by = models.CharField(_("reviewed by"), max_length=150, blank=True, editable=False)
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True, editable=False)
    subs_link = models.BooleanField(_("unsubscribe link"), default=True)
    track_status = models.SmallIntegerField(_("tracking"), default=0, choices=[
        (0, _("off")), (1, _("opens")), (2, _("opens and clicks"))])
    track_domain = models.CharField(_("tracking domain"), max_length=255, blank=True)
    hour_speed = models.PositiveIntegerField(_("messages per hour"), default=0, help_text=_("0 = no limit"))
    is_need_receipt = models.BooleanField(_("read receipt"), default=False)
    is_delay = models.BooleanField(_("delay on push-back"), default=False)
    # Why the campaign is paused or in error (quota exhausted, template refused, ...).
    reason = models.CharField(_("reason"), max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    time_start = models.DateTimeField(_("started"), null=True, blank=True, editable=False)
    time_end = models.DateTimeField(_("ended"), null=True, blank=True, editable=False)

    # --- the dispatcher's checkpoint: changed only together with the rows it inserted ---
    run_token = models.CharField(max_length=32, blank=True, editable=False)
    beat_at = models.DateTimeField(null=True, blank=True, editable=False)
    cursor_list = models.PositiveSmallIntegerField(default=0, editable=False)  # index into list_ids
    cursor_contact = models.BigIntegerField(default=0, editable=False)  # last contact id read
    position = models.PositiveBigIntegerField(default=0, editable=False)  # eligible addresses numbered
    dispatched = models.BooleanField(default=False, editable=False)  # every contact read
    # Token bucket: the time the next row may be due (never earlier than now - 1 s of tokens).
    bucket_at = models.DateTimeField(null=True, blank=True, editable=False)
    delayed_domains = models.JSONField(default=dict, editable=False)  # is_delay: domain -> state
    # [[unix time, queued], ...]: the dispatcher notes its progress about once a minute (the
    # last three notes), for the current rate: with the backlog bounded, rows are made as
    # fast as they are sent.
    rate_marks = models.JSONField(default=list, editable=False)
    # When the pacer (pacer.py) should run the next slice: a speed-limited campaign's next
    # token, a template check or the last rows' outcomes to wait for. NULL: nothing timed
    # (a full-speed campaign is topped up by its own rows' outcomes, topup.py).
    wake_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)

    # --- counters ---
    total = models.PositiveBigIntegerField(_("contacts read"), default=0, editable=False)
    queued = models.PositiveBigIntegerField(_("recipients queued"), default=0, editable=False)
    skipped = models.JSONField(_("skipped"), default=dict, editable=False)  # reason -> n
    per_template = models.JSONField(default=dict, editable=False)  # "tpl_id" -> n queued
    per_subject = models.JSONField(default=dict, editable=False)  # "tpl_id:subject_index" -> n queued
    cancelled = models.PositiveBigIntegerField(_("cancelled before sending"), default=0, editable=False)
    # Written when the campaign ends; while it runs they are counted from the outbox.
    sent_count = models.PositiveBigIntegerField(_("sent"), default=0, editable=False)
    failed_count = models.PositiveBigIntegerField(_("failed"), default=0, editable=False)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "send_time"], name="campaign_account_time"),
                   models.Index(fields=["state", "send_time"], name="campaign_state_time")]

    def __str__(self) -> str:
        return self.name or f"#{self.pk} {self.sn}"

    @property
    def skipped_total(self) -> int:
        return sum(int(v) for v in (self.skipped or {}).values())


class AddTaskCounter(models.Model):
    """Campaigns created by one account in one hour (V28: add-task at most 100 calls an hour)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "hour"], name="campaigns_addtask_hour")]


class Pacer(models.Model):
    """The one pacer task's lease (a single row, pk 1): `beat_at` set while a pacer runs
    (pacer.py); NULL or stale means none does, and whoever needs one queues it."""

    beat_at = models.DateTimeField(null=True, blank=True)
