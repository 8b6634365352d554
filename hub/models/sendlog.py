"""What was sent: the audit log of every accepted message (SendLog), which is also the
delivery outbox, with its attempts, attachments and failure types; the suppression list;
idempotency keys; the API rate counters; and the drain wake-up flag."""

from __future__ import annotations

from django.db import models
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from .accounts import Account, App
from .servers import SmtpServer


class FailureType(models.IntegerChoices):
    """Why a message failed, in the EDM platform's numbering (see hub.delivery.bounces)."""

    NOT_EXIST = 1, _("Address does not exist")
    OVER_QUOTA = 2, _("Mailbox full")
    USER_REJECT = 3, _("Rejected by the recipient")
    SPAM_CONTENT = 4, _("Content judged as spam")
    REFUSED = 5, _("Refused by the server")
    BLACKLIST = 6, _("Recipient on the suppression list")
    COMPLAINT = 7, _("Complaint")
    INVALID = 8, _("Invalid address")
    FORMAT_ERROR = 9, _("Format error")
    CONNECT_ERROR = 10, _("Connection error")


# An address is at most 254 characters (RFC 5321 path limit); a longer `to` is a list.
ADDRESS_CHARS = 254


class AddressIndex(models.Index):
    """An index led by a text column of addresses (SendLog.to), for "this one address"
    lookups. MariaDB/MySQL cannot index a TEXT column whole: its first ADDRESS_CHARS
    characters are indexed (utf8mb4: 1,016 bytes, within InnoDB's 3,072-byte key limit of
    DYNAMIC rows; a prefix index still serves equality, MariaDB re-checks the whole value);
    its usual collations (utf8mb4_unicode_ci, ..._general_ci) compare case-insensitively.
    SQLite compares case-sensitively unless told: the column is indexed COLLATE NOCASE, which
    a `COLLATE NOCASE` equality uses (hub.stats.services.mail_log)."""

    SUFFIXES = {"mysql": f"({ADDRESS_CHARS})", "sqlite": "COLLATE NOCASE"}

    def create_sql(self, model, schema_editor, using="", **kwargs):
        fields = [model._meta.get_field(name) for name, _order in self.fields_orders]
        first = self.SUFFIXES.get(schema_editor.connection.vendor, "")
        return schema_editor._create_index_sql(model, fields=fields, name=self.name, using=using,
                                               db_tablespace=self.db_tablespace,
                                               col_suffixes=[first] + [""] * (len(fields) - 1), **kwargs)


class SendLog(models.Model):
    """One accepted message: the audit record and the outbox row the worker delivers."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        RETRYING = "retrying", _("Retrying")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        # A campaign row whose campaign is paused: never claimed; resume makes it waiting again.
        HELD = "held", _("Held (campaign paused)")

    CLAIMABLE = (Status.QUEUED, Status.RETRYING)
    FINAL = (Status.SENT, Status.FAILED)

    class Source(models.TextChoices):
        API = "api", _("HTTP API")
        SMTP = "smtp", _("SMTP submission")
        ADMIN = "admin", _("Admin")
        CAMPAIGN = "campaign", _("Campaign")

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
    # Quota units this message took from its account at acceptance (hub.quota): 0 for an
    # unlimited account. A permanent failure gives exactly this back, once.
    quota_charged = models.PositiveIntegerField(_("quota charged"), default=0, editable=False)
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
    # Campaign rows (EDM): the campaign and contact this row is for. Plain integers, not
    # foreign keys: the core never depends on the campaigns app (import-linter). Such a row
    # stores no body: hub.delivery.render builds it at delivery from template and contact.
    campaign_id = models.BigIntegerField(_("campaign"), null=True, blank=True, editable=False)
    contact_id = models.BigIntegerField(_("contact"), null=True, blank=True, editable=False)
    # Claims take priority 0 (transactional mail) before 1 (campaigns): a message accepted
    # while a campaign drains does not wait behind it (hub.queries.claim_waiting).
    priority = models.PositiveSmallIntegerField(_("priority"), default=0, editable=False)

    class Meta:
        verbose_name = _("send log")
        verbose_name_plural = _("send logs")
        ordering = ["-id"]
        indexes = [
            # Claims read queued rows in (priority, id) order straight off this index.
            models.Index(fields=["status", "priority", "id"], name="sendlog_status_priority"),
            models.Index(fields=["app", "id"], name="sendlog_app"),
            models.Index(fields=["status", "next_attempt_at"], name="sendlog_due"),
            # Covering indexes for the admin's aggregates (hub/admin/dashboard.py, the SMTP servers'
            # usage): each query reads the index alone, never the rows with their bodies.
            # `id` second: the send log's pages (V28 2.6, hub.stats.services.mail_log) are in
            # (created_at, id) order, which this index gives as it is (with app_id after
            # created_at, SQLite sorted each run of equal times by id: a deep page cost 4x).
            models.Index(fields=["created_at", "id", "app", "status"], name="sendlog_created_id_app"),
            models.Index(fields=["created_at", "smtp_server", "status"], name="sendlog_created_server"),
            models.Index(fields=["smtp_server", "sent_at"], name="sendlog_server_sent"),
            # A campaign's waiting rows (pause/resume/cancel, its end); its progress counted by status
            # when hub.stats' counters are not installed (hub.campaigns.services.progress).
            models.Index(fields=["campaign_id", "status"], name="sendlog_campaign_status"),
            # The send log of one recipient (V28 2.6 `mail_to`): To equal to that one address.
            AddressIndex(fields=["to", "created_at"], name="sendlog_to"),
        ]
        constraints = [
            # One row per (campaign, contact), whatever dispatchers race: the last guard of
            # "no recipient twice" (NULLs are distinct: transactional rows never collide).
            models.UniqueConstraint(fields=["campaign_id", "contact_id"], name="sendlog_campaign_contact"),
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

    def __str__(self) -> str:
        # What the admin (inlines, history, delete pages) calls an attempt, in the user's language.
        return _("%(result)s on %(server)s at %(time)s") % {
            "result": self.get_result_display(), "server": self.server.name if self.server_id else "-",
            "time": formats.date_format(timezone.localtime(self.started_at), "DATETIME_FORMAT")
            if self.started_at else "-"}


class Suppression(models.Model):
    """An address an ACCOUNT may no longer send to, and why: a hard bounce, repeated soft
    bounces, a complaint, an unsubscribe, or an administrator. Per account (all its apps and
    campaigns); removing the entry (admin, `hub_suppression remove`) allows the address again.
    The policy deciding when an entry is made is per account (hub.delivery.suppression)."""

    class Cause(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", _("Hard bounce")
        SOFT_BOUNCE = "soft_bounce", _("Repeated soft bounces")
        COMPLAINT = "complaint", _("Complaint")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribed")
        MANUAL = "manual", _("Added by an administrator")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="suppressions",
                                verbose_name=_("account"))
    # The app whose message bounced or was complained about (none for unsubscribes, manual entries).
    app = models.ForeignKey(App, on_delete=models.SET_NULL, null=True, blank=True, related_name="suppressions",
                            verbose_name=_("app"))
    email = models.CharField(_("email"), max_length=254)  # stored lower-case
    cause = models.CharField(_("cause"), max_length=20, choices=Cause.choices, default=Cause.MANUAL)
    # Unsubscribes stop bulk (campaign) mail only: a password reset still reaches the address.
    bulk_only = models.BooleanField(_("campaign mail only"), default=False,
                                    help_text=_("Only campaign mail is stopped; transactional mail still goes out."))
    failure_type = models.PositiveSmallIntegerField(_("failure type"), null=True, blank=True,
                                                    choices=FailureType.choices)
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
        # The unique index serves every lookup: (account, email IN (...)) per message.
        constraints = [models.UniqueConstraint(fields=["account", "email"], name="uniq_suppression_account")]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        # Callers that only know the app (older code, scripts): the app's account.
        if self.account_id is None and self.app_id is not None:
            self.account_id = App.objects.filter(pk=self.app_id).values_list("account_id", flat=True).first()
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)


class IdempotencyKey(models.Model):
    """An `Idempotency-Key` seen from an app, kept 24 hours, with the request it named."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    log = models.ForeignKey(SendLog, on_delete=models.CASCADE, related_name="+")
    # A batch (POST /api/v1/send/batch): every message's id, in the request's order (`log` is
    # the first). None for a single send.
    batch_ids = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="uniq_idempotency_key")]


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


class WorkerCluster(models.Model):
    """One running delivery worker (a `manage.py qcluster` process and its workers), so rows
    it holds are recognized the moment it is known dead (hub.delivery.lease).

    Every claim a cluster's workers make carries the cluster's `id` as the prefix of the
    rows' claim token. The cluster's main process refreshes `beat_at` every few seconds. A
    cluster is dead when its process is gone on this machine (same `host`: host name and
    PID namespace) or when it has not beaten for HUB_WORKER_LEASE_SECONDS; its `sending`
    rows then go back to the retry path at once, instead of waiting HUB_STUCK_SENDING_SECONDS."""

    id = models.CharField(primary_key=True, max_length=12)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.id} ({self.host} pid {self.pid})"
