"""Campaign rules (V28 chapter 6 / 2.1 and the native API): create, edit, delete, pause,
resume, cancel, review, and the progress of a campaign. Both APIs and the admin call these
typed functions with the acting account; another account's campaign is `not_exist`.
Every refusal is raised before anything is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, validate_domain_name
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from hub import quota
from hub.contacts.models import MailList
from hub.mailtemplates.models import Template
from hub.mailtemplates.services import usable_filter
from hub.models import Account, AppServer, SendLog

from . import states
from .models import MAX_HOUR_SPEED, MIN_HOUR_SPEED, AddTaskCounter, Campaign, CampaignSettings, State, Verify

DISPATCH_TASK = "hub.campaigns.tasks.dispatch"
ADD_TASK_PER_HOUR = 100
MAX_TEMPLATES = 20
MAX_LISTS = 50
UNSENT = (SendLog.Status.QUEUED, SendLog.Status.RETRYING, SendLog.Status.HELD)


class CampaignError(Exception):
    """Refused, nothing written. `code` is the identifier both APIs show."""

    def __init__(self, code: str, message: str = "", http_status: int = 400):
        self.code, self.message, self.http_status = code, message or code, http_status
        super().__init__(self.message)


def not_found() -> CampaignError:
    return CampaignError("not_exist", _("no such task"), 404)


def settings_of(account: Account) -> CampaignSettings:
    found = CampaignSettings.objects.filter(account=account).first()
    return found or CampaignSettings(account=account)


# --- lookups ----------------------------------------------------------------------------------

def campaigns(account: Account):
    return Campaign.objects.filter(account=account)


def get_campaign(account: Account, campaign_id) -> Campaign:
    try:
        pk = int(str(campaign_id).strip())
    except (TypeError, ValueError):
        raise not_found() from None
    if pk <= 0 or pk >= 2**63:
        raise not_found()
    found = campaigns(account).filter(pk=pk).first()
    if found is None:
        raise not_found()
    return found


# --- checking what a campaign names ------------------------------------------------------------

def clean_templates(account: Account, ids: list[int]) -> list[int]:
    """Own or shared-by-the-manager templates (hub.mailtemplates sharing rule), in the given
    order without repeats; a template the check refused (red, not passed) cannot be chosen.
    One still being checked can: the dispatcher waits for its check before it sends."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise CampaignError("invalid_template", _("tpl_id is required"))
    if len(ids) > MAX_TEMPLATES:
        raise CampaignError("invalid_template", _("at most %(n)s templates") % {"n": MAX_TEMPLATES})
    found = {t.pk: t for t in Template.objects.filter(usable_filter(account), pk__in=ids)}
    for pk in ids:
        if pk not in found:
            raise CampaignError("invalid_template", _("template %(id)s does not exist") % {"id": pk})
        if found[pk].check_status == Template.CheckStatus.REFUSED:
            raise CampaignError("template_refused", _("template %(id)s failed its check (red)") % {"id": pk})
    return ids


def clean_lists(account: Account, ids: list[int]) -> list[int]:
    ids = sorted(set(ids))
    if not ids:
        raise CampaignError("invalid_list", _("maillist_id is required"))
    if len(ids) > MAX_LISTS:
        raise CampaignError("invalid_list", _("at most %(n)s lists") % {"n": MAX_LISTS})
    found = set(MailList.objects.filter(account=account, pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise CampaignError("invalid_list", _("list %(id)s does not exist") % {"id": missing[0]})
    return ids


def senders(account: Account) -> list[tuple[int, str]]:
    """(app id, sender address) of the account's enabled apps' enabled SMTP servers: the
    addresses a campaign may send from until verified sender domains exist."""
    links = (AppServer.objects.filter(app__account=account, app__enabled=True, server__enabled=True)
             .select_related("server").order_by("app_id", "priority", "id"))
    return [(link.app_id, link.server.sender.lower()) for link in links if link.server.sender]


def resolve_sender(account: Account, send_domain: str, send_account: str) -> list[int]:
    """The apps whose senders match V28's rules: one address (send_account=addr), every
    sender of a domain (send_domain=D, send_account=all) or every sender (all, all)."""
    send_domain, send_account = (send_domain or "all").strip().lower(), (send_account or "all").strip().lower()
    pairs = senders(account)
    if send_account != "all":
        try:
            EmailValidator()(send_account)
        except ValidationError:
            raise CampaignError("invalid_sender", _("send_account is not an address")) from None
        apps = [app for app, sender in pairs if sender == send_account]
        what = send_account
    elif send_domain != "all":
        apps = [app for app, sender in pairs if sender.rpartition("@")[2] == send_domain]
        what = send_domain
    else:
        apps, what = [app for app, _sender in pairs], _("any sender")
    if not apps:
        raise CampaignError("invalid_sender", _("no enabled SMTP server of this account sends as %(what)s") % {"what": what})
    return list(dict.fromkeys(apps))


@dataclass
class Fields:
    """A campaign's settable fields as typed values (None = not given)."""

    name: str | None = None
    template_ids: list[int] | None = None
    list_ids: list[int] | None = None
    send_domain: str | None = None
    send_account: str | None = None
    send_fullname: str | None = None
    send_replyto: str | None = None
    send_qty_start: int | None = None
    send_qty: int | None = None
    send_time: datetime | None = None
    subs_link: bool | None = None
    track_status: int | None = None
    track_domain: str | None = None
    hour_speed: int | None = None
    is_need_receipt: bool | None = None
    is_delay: bool | None = None


# Fields that decide who gets what: fixed once the campaign has started.
CONTENT = ("template_ids", "list_ids", "send_domain", "send_account", "send_qty_start", "send_qty", "send_time")


def _check(account: Account, f: Fields, current: Campaign | None) -> dict:
    """The changes `f` makes, checked; raises CampaignError before anything is written."""
    changes: dict = {}
    if f.name is not None:
        changes["name"] = f.name.strip()[:200]
    if f.template_ids is not None:
        changes["template_ids"] = clean_templates(account, f.template_ids)
    if f.list_ids is not None:
        changes["list_ids"] = clean_lists(account, f.list_ids)
    if f.send_domain is not None or f.send_account is not None or current is None:
        domain = f.send_domain if f.send_domain is not None else (current.send_domain if current else "all")
        addr = f.send_account if f.send_account is not None else (current.send_account if current else "all")
        domain, addr = (domain or "all").strip().lower(), (addr or "all").strip().lower()
        if domain != "all":
            try:
                validate_domain_name(domain)
            except ValidationError:
                raise CampaignError("invalid_sender", _("send_domain is not a domain name")) from None
        changes.update(send_domain=domain, send_account=addr, app_ids=resolve_sender(account, domain, addr))
    if f.send_fullname is not None:
        name = " ".join(f.send_fullname.split())
        if len(name) > 200:
            raise CampaignError("invalid_sender", _("send_fullname is over 200 characters"))
        changes["send_fullname"] = name
    if f.send_replyto is not None:
        reply = f.send_replyto.strip()
        if reply:
            try:
                EmailValidator()(reply)
            except ValidationError:
                raise CampaignError("invalid_replyto", _("send_replyto is not an address")) from None
        changes["send_replyto"] = reply
    start = f.send_qty_start if f.send_qty_start is not None else (current.send_qty_start if current else 1)
    end = f.send_qty if f.send_qty is not None else (current.send_qty if current else 0)
    if start < 1:
        raise CampaignError("invalid_range", _("send_qty_start must be 1 or more"))
    if end and end < start:
        raise CampaignError("invalid_range", _("send_qty must be 0 (to the end) or at least send_qty_start"))
    if f.send_qty_start is not None:
        changes["send_qty_start"] = start
    if f.send_qty is not None:
        changes["send_qty"] = end
    if f.send_time is not None:
        changes["send_time"] = f.send_time
    if f.subs_link is not None:
        changes["subs_link"] = f.subs_link
    if f.track_status is not None:
        if f.track_status not in (0, 1, 2):
            raise CampaignError("invalid_track", _("track_status must be 0, 1 or 2"))
        changes["track_status"] = f.track_status
    if f.track_domain is not None:
        domain = f.track_domain.strip().lower()
        if domain:
            try:
                validate_domain_name(domain)
            except ValidationError:
                raise CampaignError("invalid_track", _("track_domain is not a domain name")) from None
        changes["track_domain"] = domain
    if f.hour_speed is not None:
        if f.hour_speed and not MIN_HOUR_SPEED <= f.hour_speed <= MAX_HOUR_SPEED:
            raise CampaignError("invalid_speed", _("hour_speed must be %(min)s..%(max)s (or 0: no limit)") % {"min": MIN_HOUR_SPEED, "max": MAX_HOUR_SPEED})
        changes["hour_speed"] = f.hour_speed
    if f.is_need_receipt is not None:
        if f.is_need_receipt and not settings_of(account).read_receipts:
            raise CampaignError("receipt_unavailable", _("this account has no read-receipt service"))
        changes["is_need_receipt"] = f.is_need_receipt
    if f.is_delay is not None:
        changes["is_delay"] = f.is_delay
    return changes


def _list_total(list_ids: list[int]) -> int:
    return MailList.objects.filter(pk__in=list_ids).aggregate(n=Sum("contact_count"))["n"] or 0


# --- create, edit, delete ------------------------------------------------------------------------

def _count_add_task(account: Account) -> None:
    """At most ADD_TASK_PER_HOUR campaigns an hour per account (V28 6.2). Counted in the
    creating transaction, so a refused add-task counts nothing."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    counter, _created = AddTaskCounter.objects.select_for_update().get_or_create(account=account, hour=hour)
    if counter.count >= ADD_TASK_PER_HOUR:
        raise CampaignError("too_many_requests", _("at most %(n)s tasks may be added per hour") % {"n": ADD_TASK_PER_HOUR}, 429)
    AddTaskCounter.objects.filter(pk=counter.pk).update(count=F("count") + 1)


def create_campaign(account: Account, f: Fields, state: int = State.SCHEDULED, *, count: bool = True) -> Campaign:
    """A new campaign (V28 6.2). `count`: an API call, limited to ADD_TASK_PER_HOUR an hour
    (an operator's creation in the admin is not)."""
    if state not in states.CREATE_STATES:
        raise CampaignError("invalid_status", _("status must be one of 0, 1, 2, -1, -2, -3"))
    if f.template_ids is None:
        raise CampaignError("invalid_template", _("tpl_id is required"))
    if f.list_ids is None:
        raise CampaignError("invalid_list", _("maillist_id is required"))
    changes = _check(account, f, None)
    needs_review = settings_of(account).needs_review
    with transaction.atomic():
        if count:
            _count_add_task(account)
        campaign = Campaign(account=account, verify_status=Verify.PENDING if needs_review else Verify.APPROVED,
                            send_qty_remark=_list_total(changes["list_ids"]), **changes)
        campaign.state = State.SCHEDULED if state in (State.WAITING, State.SENDING) else state
        if state == State.SENDING:  # "send immediately": a later send time is brought forward
            campaign.send_time = min(campaign.send_time, timezone.now())
        if state == State.CANCELLED:
            campaign.time_end = timezone.now()
        campaign.save()
        campaign.sn = f"{timezone.localtime(campaign.created_at):%Y%m%d%H%M%S}-{account.pk}-{campaign.pk}"
        Campaign.objects.filter(pk=campaign.pk).update(sn=campaign.sn)
        if campaign.state == State.SCHEDULED:
            start_if_due(campaign)
    return campaign


def edit_campaign(account: Account, campaign_id, f: Fields, state: int | None = None) -> Campaign:
    campaign = get_campaign(account, campaign_id)
    if state is not None and not states.allowed(campaign.state, state):
        raise CampaignError("illegal_state", _("a task in state %(from)s cannot go to %(to)s") % {"from": campaign.state, "to": state})
    given = {name for name in CONTENT if getattr(f, name) is not None}
    if given and (campaign.time_start is not None or campaign.state in states.FINAL):
        raise CampaignError("task_started", _("%(fields)s cannot change once the task has started") % {"fields": ", ".join(sorted(given))})
    changes = _check(account, f, campaign)
    if not changes and state is None:
        raise CampaignError("param_error", _("nothing to change"))
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if state is not None and not states.allowed(campaign.state, state):  # changed meanwhile
            raise CampaignError("illegal_state", _("a task in state %(from)s cannot go to %(to)s") % {"from": campaign.state, "to": state})
        if "list_ids" in changes:
            changes["send_qty_remark"] = _list_total(changes["list_ids"])
        if given and campaign.verify_status == Verify.REJECTED:
            changes["verify_status"] = Verify.PENDING  # changed content goes back to review
        for name, value in changes.items():
            setattr(campaign, name, value)
        campaign.save()
        if state is not None and state != campaign.state:
            _change_state(campaign, state)
        elif campaign.state in (State.WAITING, State.SCHEDULED):
            start_if_due(campaign)
    return campaign


def delete_campaign(account: Account, campaign_id) -> None:
    """A sending campaign must be paused or cancelled first; a paused one is cancelled (its
    unsent rows removed, quota given back) and deleted. The outbox rows that went out stay
    (the send log is the audit record; their campaign_id then names no campaign)."""
    campaign = get_campaign(account, campaign_id)
    if campaign.state == State.SENDING:
        raise CampaignError("task_running", _("pause or cancel the task before deleting it"))
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.state == State.SENDING:
            raise CampaignError("task_running", _("pause or cancel the task before deleting it"))
        _remove_unsent(campaign)
        campaign.delete()


# --- state changes --------------------------------------------------------------------------------

def set_state(account: Account, campaign_id, wanted: int) -> Campaign:
    """A customer's pause (-2), resume/start (2), cancel (-3), hold (-1), schedule (0/1)."""
    with transaction.atomic():
        campaign = get_campaign(account, campaign_id)
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not states.allowed(campaign.state, wanted):
            raise CampaignError("illegal_state", _("a task in state %(from)s cannot go to %(to)s") % {"from": campaign.state, "to": wanted})
        if wanted != campaign.state:
            _change_state(campaign, wanted)
    return campaign


def pause(account: Account, campaign_id) -> Campaign:
    return set_state(account, campaign_id, State.PAUSED)


def resume(account: Account, campaign_id) -> Campaign:
    return set_state(account, campaign_id, State.SENDING)


def cancel(account: Account, campaign_id) -> Campaign:
    return set_state(account, campaign_id, State.CANCELLED)


def _change_state(campaign: Campaign, wanted: int) -> None:
    """Inside the caller's transaction, with the campaign row locked."""
    now = timezone.now()
    if wanted == State.PAUSED:
        campaign.state, campaign.run_token = State.PAUSED, ""  # the dispatcher's next commit fails
        if campaign.time_start is not None:
            hold_rows(campaign.pk)
        campaign.save(update_fields=["state", "run_token", "updated_at"])
    elif wanted == State.CANCELLED:
        campaign.state, campaign.run_token, campaign.time_end = State.CANCELLED, "", now
        campaign.save(update_fields=["state", "run_token", "time_end", "updated_at"])
        _remove_unsent(campaign)
    elif wanted == State.SENDING:
        if campaign.time_start is None:  # "send now": start, ignoring the send time
            campaign.send_time = min(campaign.send_time, now)
            campaign.state = State.SCHEDULED
            campaign.save(update_fields=["send_time", "state", "updated_at"])
            start_if_due(campaign)
        else:
            release_rows(campaign.pk)
            _run(campaign, reason="")
    else:  # 0, 1, -1: not started, wait for the send time (or hold)
        campaign.state = State.SCHEDULED if wanted in (State.WAITING, State.SCHEDULED) else wanted
        campaign.save(update_fields=["state", "updated_at"])
        if campaign.state == State.SCHEDULED:
            start_if_due(campaign)


def start_if_due(campaign: Campaign) -> bool:
    """Start a scheduled campaign whose send time has come, if approved. Else it waits:
    state 1 before the send time, 0 after it (waiting for review)."""
    now = timezone.now()
    if campaign.state not in (State.WAITING, State.SCHEDULED) or campaign.send_time > now:
        return False
    if campaign.verify_status != Verify.APPROVED:
        if campaign.state != State.WAITING:
            campaign.state = State.WAITING
            campaign.save(update_fields=["state", "updated_at"])
        return False
    campaign.time_start = campaign.time_start or now
    _run(campaign, reason="")
    return True


def _run(campaign: Campaign, reason: str) -> None:
    """State 2 with a fresh fencing token, the token bucket restarted (no catch-up burst
    after a pause), and a dispatcher queued once this commits."""
    campaign.state, campaign.reason = State.SENDING, reason
    campaign.run_token, campaign.bucket_at, campaign.beat_at = uuid.uuid4().hex, None, timezone.now()
    campaign.save(update_fields=["state", "reason", "run_token", "bucket_at", "beat_at", "time_start", "updated_at"])
    queue_dispatch(campaign.pk, campaign.run_token)


def queue_dispatch(campaign_id: int, token: str) -> None:
    """With the ORM broker the task row commits with the campaign (as the outbox's drains);
    with Redis only after the commit, or the task could find the old token."""
    def queue() -> None:
        async_task(DISPATCH_TASK, campaign_id, token, task_name=f"campaign-{campaign_id}")

    if settings.REDIS_URL:
        transaction.on_commit(queue, robust=True)
    else:
        queue()


def hold_rows(campaign_id: int) -> int:
    """Pause: the campaign's waiting rows are held (claims never take `held`). Rows already
    claimed by a worker (at most one batch per worker) still go out."""
    return SendLog.objects.filter(campaign_id=campaign_id, status__in=(
        SendLog.Status.QUEUED, SendLog.Status.RETRYING)).update(status=SendLog.Status.HELD)


def release_rows(campaign_id: int) -> int:
    """Resume: held rows wait again (those with a retry time as retries, others queued)."""
    rows = SendLog.objects.filter(campaign_id=campaign_id, status=SendLog.Status.HELD)
    n = rows.filter(next_attempt_at__isnull=False).update(status=SendLog.Status.RETRYING)
    n += rows.update(status=SendLog.Status.QUEUED)
    return n


def _remove_unsent(campaign: Campaign) -> int:
    """Cancel: the rows not yet sent are deleted (they never went out) and counted as
    cancelled; the quota they took goes back (a `day` account only for today's)."""
    today, removed = quota.today(), 0
    refund_today = refund_older = 0
    while True:
        chunk = list(SendLog.objects.filter(campaign_id=campaign.pk, status__in=UNSENT)
                     .values_list("id", "quota_charged", "created_at")[:2000])
        if not chunk:
            break
        n = SendLog.objects.filter(pk__in=[c[0] for c in chunk], status__in=UNSENT).delete()[0]
        removed += n
        for _pk, charged, created in chunk:
            if quota.day_of(created) == today:
                refund_today += charged
            else:
                refund_older += charged
    if removed:
        Campaign.objects.filter(pk=campaign.pk).update(cancelled=F("cancelled") + removed)
        campaign.cancelled += removed
    quota.refund(campaign.account_id, refund_today, today)
    quota.refund(campaign.account_id, refund_older, today - timedelta(days=1))
    return removed


# --- review (operators) -------------------------------------------------------------------------

def review(campaign_id: int, approve: bool, operator: str) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        campaign.verify_status = Verify.APPROVED if approve else Verify.REJECTED
        campaign.reviewed_by, campaign.reviewed_at = operator[:150], timezone.now()
        campaign.save(update_fields=["verify_status", "reviewed_by", "reviewed_at", "updated_at"])
        if approve:
            start_if_due(campaign)
    return campaign


# --- progress ----------------------------------------------------------------------------------------

@dataclass
class Progress:
    total: int  # contacts read so far
    queued: int  # outbox rows made
    sent: int
    failed: int
    waiting: int  # queued, sending, retrying or held
    skipped: dict
    cancelled: int
    failure_types: dict  # FailureType value -> n

    @property
    def accounted(self) -> int:
        return self.sent + self.failed + self.waiting + self.cancelled + sum(self.skipped.values())


def progress(campaign: Campaign) -> Progress:
    by_status = dict(SendLog.objects.filter(campaign_id=campaign.pk).values_list("status")
                     .annotate(n=Count("id")).values_list("status", "n"))
    failures = dict(SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.FAILED)
                    .values_list("failure_type").annotate(n=Count("id")).values_list("failure_type", "n"))
    sent, failed = by_status.pop(SendLog.Status.SENT, 0), by_status.pop(SendLog.Status.FAILED, 0)
    return Progress(total=campaign.total, queued=campaign.queued, sent=sent, failed=failed,
                    waiting=sum(by_status.values()), skipped={k: int(v) for k, v in campaign.skipped.items()},
                    cancelled=campaign.cancelled, failure_types=failures)


def unsent_count(campaign_id: int) -> int:
    return SendLog.objects.filter(Q(campaign_id=campaign_id), ~Q(status__in=SendLog.FINAL)).count()
