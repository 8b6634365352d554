"""Campaign rules (V28 chapter 6 / 2.1 and the native API): create, edit, delete, pause,
resume, cancel, review, and the progress of a campaign. Both APIs and the admin call these
typed functions with the acting account; another account's campaign is `not_exist`.
Every refusal is raised before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from hub import quota
from hub.contacts.models import MailList
from hub.models import Account, SendLog

from . import states
from .models import AddTaskCounter, Campaign, State, Verify
from .rules import (
    CONTENT,
    MAX_LISTS,
    MAX_TEMPLATES,
    CampaignError,
    Fields,
    check_fields,
    not_found,
    settings_of,
)

# The names the APIs and the admin use from here (the field rules live in .rules).
__all__ = ["MAX_LISTS", "MAX_TEMPLATES", "CampaignError", "Fields", "Outcomes", "campaigns", "cancel", "check_fields",
           "create_campaign", "delete_campaign", "edit_campaign", "get_campaign", "hold_rows", "pause", "progress",
           "register_outcome_counter", "release_rows", "resume", "review", "set_state", "start_if_due", "unsent_count"]

DISPATCH_TASK = "hub.campaigns.tasks.dispatch"
ADD_TASK_PER_HOUR = 100
UNSENT = (SendLog.Status.QUEUED, SendLog.Status.RETRYING, SendLog.Status.HELD)


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
    changes = check_fields(account, f, None)
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
    changes = check_fields(account, f, campaign)
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
    sent: int  # accepted by the receiving server at delivery
    failed: int  # refused (or given up) at delivery
    waiting: int  # queued, sending, retrying or held
    skipped: dict
    cancelled: int
    failure_types: dict  # FailureType value -> n
    bounced: int = 0  # of the sent: bounced afterwards (DSN), when outcomes are counted

    @property
    def accounted(self) -> int:
        return self.sent + self.failed + self.waiting + self.cancelled + sum(self.skipped.values())


@dataclass
class Outcomes:
    """A campaign's recipients with a final outcome, as counted when each outcome arrived."""

    sent: int
    failed: int
    bounced: int
    failure_types: dict  # FailureType value -> n (delivery failures and later bounces)


# Where a campaign's outcomes are counted as they arrive: hub.stats registers its counters
# (from its AppConfig.ready(); this app may not import it). Without one, progress counts the
# campaign's SendLog rows by status: ~0.2-0.5 s per million rows on every view.
_outcome_counter: Callable[[int], Outcomes] | None = None


def register_outcome_counter(counter: Callable[[int], Outcomes] | None) -> None:
    global _outcome_counter
    _outcome_counter = counter


def progress(campaign: Campaign) -> Progress:
    """Every contact read is sent, failed, waiting, cancelled or skipped. With the outcome
    counters (hub.stats), sent and failed are the counters' (a few indexed rows) and waiting
    is the rest of the rows made (queued - cancelled: a cancel deletes its rows); a bounce
    after delivery stays in `sent` and is shown as `bounced` (docs/statistics.md)."""
    skipped = {k: int(v) for k, v in campaign.skipped.items()}
    if _outcome_counter is not None:
        o = _outcome_counter(campaign.pk)
        waiting = max(0, campaign.queued - campaign.cancelled - o.sent - o.failed)
        return Progress(total=campaign.total, queued=campaign.queued, sent=o.sent, failed=o.failed, waiting=waiting,
                        skipped=skipped, cancelled=campaign.cancelled, failure_types=o.failure_types,
                        bounced=o.bounced)
    by_status = dict(SendLog.objects.filter(campaign_id=campaign.pk).values_list("status")
                     .annotate(n=Count("id")).values_list("status", "n"))
    failures = dict(SendLog.objects.filter(campaign_id=campaign.pk, status=SendLog.Status.FAILED)
                    .values_list("failure_type").annotate(n=Count("id")).values_list("failure_type", "n"))
    sent, failed = by_status.pop(SendLog.Status.SENT, 0), by_status.pop(SendLog.Status.FAILED, 0)
    return Progress(total=campaign.total, queued=campaign.queued, sent=sent, failed=failed,
                    waiting=sum(by_status.values()), skipped=skipped, cancelled=campaign.cancelled,
                    failure_types=failures)


# Every status but the final ones, named: SQLite read `NOT status IN (sent, failed)` as the
# campaign's whole (campaign_id, status) index range (a million entries at 1M, on every
# top-up once the last contacts are read); named, it is four short ranges. (MariaDB turns
# the NOT IN into ranges by itself.)
UNFINISHED = tuple(s for s in SendLog.Status if s not in SendLog.FINAL)


def unsent_count(campaign_id: int) -> int:
    return SendLog.objects.filter(campaign_id=campaign_id, status__in=UNFINISHED).count()
