"""The dispatcher: turns a running campaign into outbox rows (hub.models.SendLog), at the
campaign's speed, exactly once.

`run()` is one bounded slice (at most HUB_CAMPAIGN_SLICE_SECONDS, never sleeping): run by the
task hub.campaigns.tasks.dispatch (start, resume, rescue), by the campaign's own rows'
outcomes (topup.py: full speed) and by the one pacer task (pacer.py: speed-limited campaigns
waiting for their next token). No worker is kept per campaign. Each step:

1. reads the campaign (state and fencing token: a pause, cancel or a newer dispatcher stops
   this one at its next step, i.e. within a second);
2. asks the token bucket how many rows may be made now (`room`): none ahead of the
   campaign's hour_speed, and never more than a couple of seconds' worth waiting unclaimed
   (so the delivery side cannot burst after a stall, and a pause has little to hold);
3. reads the next contacts by keyset cursor in the documented order (list id ascending as
   chosen, then contact id: new contacts of a list come after the older ones, so a range
   send_qty_start..send_qty names the same people tomorrow), classifies each one (skipped:
   unsubscribed, duplicate = subscribed in an earlier list of the campaign, range,
   suppressed; else a recipient), and
4. commits in ONE transaction: the campaign's cursor, counters and bucket (a conditional
   UPDATE on the old cursor and the token: a second dispatcher's slice fails and rolls back),
   the quota for the slice (hub.quota.reserve), and the rows (bulk INSERT). The checkpoint is
   exact: a SIGKILL between or inside slices repeats nothing and skips nothing. The unique
   (campaign_id, contact_id) constraint of the outbox is the last guard.

listmonk, for comparison, advances its cursor when it fetches a batch and counts sent
messages in memory, writing them back now and then: a crash or a pause loses or repeats
whatever was between. Here the cursor and the rows are one commit.

The clock is `now()` of this module (tests replace it to check the bucket arithmetic).
(Over 400 lines: the bucket, the slice, the run and the sweep share the checkpoint's
invariants and read best together.)"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from django_q.tasks import async_task

from hub import quota
from hub.contacts import store
from hub.contacts.models import Contact
from hub.delivery.outbox import wake_workers
from hub.mailtemplates.models import Template
from hub.models import Account, App, SendLog, Suppression
from hub.refusals import Refusal

from . import delay, pacer
from .models import SKIP_REASONS, Campaign, State
from .services import DISPATCH_TASK, _run, hold_rows, start_if_due, unsent_count

log = logging.getLogger(__name__)

PAGE = 1000  # contacts per read
MAX_READ = 20_000  # contacts read per slice at most (long runs of skipped contacts)
# "... sender 2": the row's From is the campaign's second sender (hub.domains mailbox or
# verified-domain address); without it From is the delivering server's sender.
MARKER = re.compile(r"^\[campaign (\d+)\] template (\d+) subject (\d+)(?: sender (\d+))?$")


def now() -> datetime:
    return timezone.now()


class Fenced(Exception):
    """Another dispatcher (or a pause/cancel) changed the campaign: this one stops."""


def marker(campaign_id: int, template_id: int, subject_index: int, sender_index: int | None = None) -> str:
    """What a campaign row stores as its subject: which template and subject it gets (the
    body is rendered at delivery) and, when its From is not the server's sender, which of the
    campaign's senders. Subject and sender numbers are 1-based, as V28 5.4 shows subjects."""
    text = f"[campaign {campaign_id}] template {template_id} subject {subject_index + 1}"
    return text if sender_index is None else f"{text} sender {sender_index + 1}"


def row_senders(campaign: Campaign) -> list[tuple[int, str]]:
    """(app id, From or "") per sender, round-robin; campaigns made before `senders` existed
    have only app_ids (From = the server's sender)."""
    return [(int(a), f) for a, f in campaign.senders] if campaign.senders else [(a, "") for a in campaign.app_ids]


# --- the token bucket ----------------------------------------------------------------------------

# What a waiting row takes to be claimed, sent and topped up again, in real (unscaled) time:
# a drain's claim rounds and the top-up window. The backlog is never shorter, or the
# campaign waits for its own rows and sends below its speed: a 10x-scaled run whose backlog
# was 0.2 s (2 s scaled) kept 12-16 rows waiting and sent at 66 % of its hour_speed
# (bench/campaign.py --hour-seconds 360). At real scale the two seconds are longer anyway.
PIPELINE_SECONDS = 0.4


def per_second(hour_speed: int) -> float:
    return hour_speed / settings.HUB_CAMPAIGN_HOUR_SECONDS


def scaled(seconds: float) -> float:
    """A pacing duration (the bucket's one second, the backlog's two) in the campaign's time:
    HUB_CAMPAIGN_HOUR_SECONDS scales the hour for tests and benches, and these with it, so a
    10x-scaled run's 60-s window bounds them as a real 600-s window does (else they weigh 10x)."""
    return seconds * settings.HUB_CAMPAIGN_HOUR_SECONDS / 3600


def backlog_of(rate: float) -> int:
    """Rows a speed-limited campaign may have waiting: two seconds' worth (two top-up
    windows if those are longer), never less than PIPELINE_SECONDS' worth, at least 5."""
    seconds = scaled(max(2.0, 2 * settings.HUB_CAMPAIGN_TOPUP_SECONDS))
    return max(5, int(rate * max(seconds, PIPELINE_SECONDS)))


def bucket_take(bucket_at: datetime | None, at: datetime, rate: float, limit: int) -> tuple[int, datetime]:
    """How many rows may be due by `at` (at most `limit`), and the bucket's next due time.
    Row i of a slice is due at bucket_at + i/rate. A new bucket (start, resume) starts empty;
    it never holds more than one second of unused tokens (so a dispatcher that looked a bit
    late catches up, but an idle or stalled campaign does not save up a burst). Never less
    than one top-up window (topup.py): a campaign fed by top-ups alone would drop the tokens
    of the time between two of them."""
    burst = timedelta(seconds=scaled(max(1.0, settings.HUB_CAMPAIGN_TOPUP_SECONDS)))
    start = at if bucket_at is None else max(bucket_at, at - burst)
    if start > at or limit <= 0:
        return 0, start
    n = min(limit, int((at - start).total_seconds() * rate) + 1)
    return n, start + timedelta(seconds=n / rate)


def room(campaign: Campaign, waiting: int, at: datetime) -> tuple[int, datetime | None]:
    """(rows to make now, new bucket time). `waiting`: the campaign's rows not yet taken by
    a worker (queued) or on their way (sending)."""
    if not campaign.hour_speed:
        n = max(0, min(settings.HUB_CAMPAIGN_SLICE, settings.HUB_CAMPAIGN_BACKLOG - waiting))
        # Hysteresis: a top-up for a few rows is not worth a transaction while plenty wait.
        if waiting * 2 >= settings.HUB_CAMPAIGN_BACKLOG and n * 4 < min(settings.HUB_CAMPAIGN_SLICE,
                                                                       settings.HUB_CAMPAIGN_BACKLOG):
            n = 0
        return n, None
    rate = per_second(campaign.hour_speed)
    backlog = backlog_of(rate)
    return bucket_take(campaign.bucket_at, at, rate, min(settings.HUB_CAMPAIGN_SLICE, backlog - waiting))


# --- one slice ------------------------------------------------------------------------------------

@dataclass
class Slice:
    rows: list[SendLog] = field(default_factory=list)
    cursor_list: int = 0
    cursor_contact: int = 0
    position: int = 0
    total: int = 0
    skipped: dict = field(default_factory=dict)
    per_template: dict = field(default_factory=dict)
    per_subject: dict = field(default_factory=dict)
    done: bool = False


@dataclass
class Context:
    """What a run reads once: the account's apps (suppression), the templates' subject counts."""

    account_app_ids: list[int]
    subject_counts: dict[int, int]
    senders: list[tuple[int, str]] = field(default_factory=list)


def context_for(campaign: Campaign) -> Context:
    apps = list(App.objects.filter(account_id=campaign.account_id).values_list("pk", flat=True))
    counts = {pk: max(1, len(subjects or [])) for pk, subjects in
              Template.objects.filter(pk__in=campaign.template_ids).values_list("pk", "subjects")}
    return Context(apps, counts, row_senders(campaign))


def read_slice(campaign: Campaign, want: int, ctx: Context, at: datetime) -> Slice:
    """Read contacts from the campaign's cursor until `want` recipients (or the end, or
    MAX_READ contacts), classifying each. Writes nothing."""
    s = Slice(cursor_list=campaign.cursor_list, cursor_contact=campaign.cursor_contact,
              position=campaign.position, skipped={k: 0 for k in SKIP_REASONS})
    seq = campaign.queued
    lists, tpls = campaign.list_ids, campaign.template_ids
    start, end = campaign.send_qty_start, campaign.send_qty
    read = 0
    while len(s.rows) < want and read < MAX_READ:
        if s.cursor_list >= len(lists):
            s.done = True
            break
        list_id = lists[s.cursor_list]
        page, last_id = store.page_after(list_id, s.cursor_contact, PAGE, "id", "email", "subscribed")
        if last_id is None:
            s.cursor_list, s.cursor_contact = s.cursor_list + 1, 0
            continue
        if not page:
            s.cursor_contact = last_id  # those contacts were deleted meanwhile
            continue
        emails = {email for _pk, email, subscribed in page if subscribed}
        earlier = set()
        if s.cursor_list and emails:
            earlier = set(Contact.objects.filter(mail_list_id__in=lists[:s.cursor_list], email__in=emails,
                                                 subscribed=True).values_list("email", flat=True))
        # The account's suppression list (every cause, campaign-only unsubscribes included).
        suppressed = set(Suppression.objects.filter(account_id=campaign.account_id, email__in=emails - earlier)
                         .values_list("email", flat=True)) if emails else set()
        for pk, email, subscribed in page:
            s.cursor_contact, s.total, read = pk, s.total + 1, read + 1
            if not subscribed:
                s.skipped["unsubscribed"] += 1
                continue
            if email in earlier:
                s.skipped["duplicate"] += 1
                continue
            s.position += 1
            if s.position < start or (end and s.position > end):
                s.skipped["range"] += 1
                continue
            if email in suppressed:
                s.skipped["suppressed"] += 1
                continue
            if not email.isascii():
                s.skipped["invalid"] += 1
                continue
            tpl = tpls[seq % len(tpls)]
            subject = (seq // len(tpls)) % ctx.subject_counts.get(tpl, 1)
            s.per_template[str(tpl)] = s.per_template.get(str(tpl), 0) + 1
            key = f"{tpl}:{subject + 1}"
            s.per_subject[key] = s.per_subject.get(key, 0) + 1
            k = seq % len(ctx.senders)
            app_id, from_email = ctx.senders[k]
            s.rows.append(SendLog(
                app_id=app_id, source=SendLog.Source.CAMPAIGN, to=email,
                subject=marker(campaign.pk, tpl, subject, k if from_email else None), campaign_id=campaign.pk,
                contact_id=pk,
                priority=1, message_id=f"<c{campaign.pk}.{pk}@{settings.HUB_DOMAIN}>", created_at=at))
            seq += 1
            if len(s.rows) >= want:
                break
    return s


def _merged(old: dict, new: dict) -> dict:
    out = {k: int(v) for k, v in (old or {}).items()}
    for k, v in new.items():
        if v:
            out[k] = out.get(k, 0) + v
    return out


@functools.cache
def _insert_statement() -> tuple[list, str]:
    fields = [f for f in SendLog._meta.local_concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(SendLog._meta.db_table)
    return fields, f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"


def _prepared_insert(rows: list[SendLog]) -> tuple[str, list[list], int]:
    """(INSERT statement, one parameter list per row, index of quota_charged), each field's
    database value computed once per distinct value (the rows share most of theirs)."""
    fields, sql = _insert_statement()
    caches: list[dict] = [{} for _ in fields]
    params = []
    for row in rows:
        values = []
        for f, seen in zip(fields, caches, strict=True):
            value = f.pre_save(row, True)
            try:
                prepared = seen[value]
            except KeyError:
                prepared = seen[value] = f.get_db_prep_save(value, connection)
            except TypeError:  # unhashable (JSON): not cached
                prepared = f.get_db_prep_save(value, connection)
            values.append(prepared)
        params.append(values)
    return sql, params, [f.name for f in fields].index("quota_charged")


def insert_rows(sql: str, params: list[list]) -> None:
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def commit_slice(campaign: Campaign, token: str, s: Slice, bucket_at: datetime | None, at: datetime) -> int:
    """The slice's rows, quota, cursor and counters in one transaction. Raises Fenced when
    the campaign moved on (another dispatcher, a pause), Refusal when the quota or the
    account refuses (nothing written either way)."""
    n = len(s.rows)
    delayed = delay.schedule_new_rows(campaign, s.rows, at)
    values = {"cursor_list": s.cursor_list, "cursor_contact": s.cursor_contact, "position": s.position,
                  "total": campaign.total + s.total, "queued": campaign.queued + n,
                  "skipped": _merged(campaign.skipped, s.skipped), "per_template": _merged(campaign.per_template,
                                                                                      s.per_template),
                  "per_subject": _merged(campaign.per_subject, s.per_subject), "dispatched": s.done, "beat_at": at,
                  "delayed_domains": delayed}
    if bucket_at is not None:
        values["bucket_at"] = bucket_at
    # The INSERT's parameters are computed before the transaction: inside it only the
    # statements run, so SQLite's write lock is held briefly even when this runs in a busy
    # delivery process (a top-up) whose threads compete for the GIL.
    sql, params, charged_at = _prepared_insert(s.rows)
    with transaction.atomic():
        # First: the fence, which also locks the campaign row (a pause waits for this commit).
        moved = Campaign.objects.filter(pk=campaign.pk, run_token=token, state=State.SENDING,
                                        cursor_list=campaign.cursor_list, cursor_contact=campaign.cursor_contact,
                                        queued=campaign.queued).update(**values)
        if not moved:
            raise Fenced()
        charged = quota.reserve(campaign.account_id, n) if n else 0
        if charged:
            for row, p in zip(s.rows, params, strict=True):
                row.quota_charged = p[charged_at] = 1
        insert_rows(sql, params)
    for name, value in values.items():
        setattr(campaign, name, value)
    return n


# --- the run ---------------------------------------------------------------------------------------

def _fresh(campaign_id: int, token: str) -> Campaign | None:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.run_token != token or campaign.state != State.SENDING:
        return None
    return campaign


def _stop(campaign: Campaign, token: str, state: int, reason: str) -> None:
    """Pause (out of quota) or error, if this dispatcher still holds the campaign."""
    with transaction.atomic():
        if Campaign.objects.filter(pk=campaign.pk, run_token=token, state=State.SENDING).update(
                state=state, reason=reason[:500], run_token="") and state == State.PAUSED:
            hold_rows(campaign.pk)
    log.warning("campaign %s: %s (%s)", campaign.pk, State(state).label, reason)


def _templates_ready(campaign: Campaign, token: str) -> bool | None:
    """True when every template passed its check; None (after stopping the campaign) when
    one is gone or refused; False while one is still being checked."""
    found = dict(Template.objects.filter(pk__in=campaign.template_ids).values_list("pk", "check_status"))
    for pk in campaign.template_ids:
        status = found.get(pk)
        if status is None or status == Template.CheckStatus.REFUSED:
            _stop(campaign, token, State.ERROR, f"template {pk} is gone or failed its check")
            return None
    return all(found[pk] == Template.CheckStatus.PASSED for pk in campaign.template_ids)


def finish_if_done(campaign: Campaign, token: str) -> bool:
    """Every recipient read and every row final: the campaign is complete (3)."""
    if unsent_count(campaign.pk):
        return False
    counts = dict(SendLog.objects.filter(campaign_id=campaign.pk, status__in=SendLog.FINAL)
                  .values_list("status").annotate(n=Count("id"))
                  .values_list("status", "n"))
    return bool(Campaign.objects.filter(pk=campaign.pk, run_token=token, state=State.SENDING, dispatched=True).update(
        state=State.DONE, time_end=now(), run_token="", sent_count=counts.get(SendLog.Status.SENT, 0),
        failed_count=counts.get(SendLog.Status.FAILED, 0)))


def _bucket_after(campaign: Campaign, rows: int, at: datetime) -> datetime | None:
    """The bucket's next due time once `rows` rows are made now (None: no speed, or none)."""
    if not campaign.hour_speed or not rows:
        return None
    return bucket_take(campaign.bucket_at, at, per_second(campaign.hour_speed), rows)[1]


def step(campaign: Campaign, token: str, ctx: Context) -> int:
    """One slice if there is room; returns the rows made (0: nothing to do now; contacts may
    still have been read, which moves campaign.total)."""
    at = now()
    want, _bucket = room(campaign, waiting_count(campaign.pk), at)
    if want <= 0:
        return 0
    s = read_slice(campaign, want, ctx, at)
    if not s.rows and not s.total and not s.done:
        return 0
    try:
        # The tokens of the rows actually made (fewer than `want` at a list's end).
        n = commit_slice(campaign, token, s, _bucket_after(campaign, len(s.rows), at), at)
    except Refusal as refusal:
        left = 0
        if refusal.error == "quota_exhausted":
            account = Account.objects.get(pk=campaign.account_id)
            left = quota.available_on(account, quota.today())
        if 0 < left < len(s.rows):
            smaller = read_slice(campaign, left, ctx, at)
            n = commit_slice(campaign, token, smaller, _bucket_after(campaign, len(smaller.rows), at), at)
        else:
            _stop(campaign, token, State.PAUSED, str(refusal))
            raise Fenced() from refusal
    if n:
        wake_workers()
    return n


def waiting_count(campaign_id: int) -> int:
    """Rows not yet taken by a worker (queued) or on their way (sending)."""
    return SendLog.objects.filter(campaign_id=campaign_id, status__in=(
        SendLog.Status.QUEUED, SendLog.Status.SENDING)).count()


def next_due(campaign: Campaign, at: datetime) -> datetime | None:
    """When a slice could make rows again, when that is a matter of time (the token bucket
    of a speed-limited campaign); None when it waits for room (its rows on their way: their
    outcomes top it up, topup.py)."""
    if not campaign.hour_speed:
        return None
    if waiting_count(campaign.pk) >= backlog_of(per_second(campaign.hour_speed)):
        return None
    return max(at, campaign.bucket_at or at)


def _beat(campaign: Campaign, token: str) -> None:
    """Beat (the sweep's liveness check) and note the rate, at most every 5 s; is_delay's
    look at pushed-back domains goes with it."""
    at = now()
    if campaign.beat_at is not None and (at - campaign.beat_at).total_seconds() < 5:
        return
    if campaign.is_delay:
        delay.push_back(campaign, token)
    Campaign.objects.filter(pk=campaign.pk, run_token=token).update(
        beat_at=at, rate_marks=rate_marks(campaign.rate_marks, time.time(), campaign.queued))
    campaign.beat_at = at


def run(campaign_id: int, token: str, budget: float | None = None) -> str:
    """One bounded slice of a campaign (the dispatcher task's body; the pacer and the top-up
    call it too): makes rows while there is room, for at most `budget` seconds
    (HUB_CAMPAIGN_SLICE_SECONDS), never sleeping, then returns why it stopped:

    - "stopped": paused, cancelled, another token, an error (nothing more to do here);
    - "done": complete; "idle": only retries are left (the sweep looks again);
    - "waiting": no room: its rows on their way wake it when they finish (topup.py);
    - "paced": it has to wait for time (speed-limited: the next token; a template being
      checked; the last rows' outcomes): `wake_at` is set and the pacer runs it then;
    - "continued": the budget ran out while it still had room: a new slice task is queued.
    No worker is kept: between slices a campaign costs nothing but its waiting rows."""
    budget = settings.HUB_CAMPAIGN_SLICE_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    ctx = None
    while True:
        campaign = _fresh(campaign_id, token)
        if campaign is None:
            return "stopped"
        ready = _templates_ready(campaign, token)
        if ready is None:
            return "stopped"
        ctx = ctx or context_for(campaign)
        read_before = campaign.total
        try:
            made = step(campaign, token, ctx) if ready and not campaign.dispatched else 0
            _beat(campaign, token)
        except Fenced:
            return "stopped"
        except IntegrityError:
            # A row for a contact already queued: another dispatcher got there first.
            log.exception("campaign %s: duplicate recipient refused by the outbox; stopping", campaign_id)
            return "stopped"
        if campaign.dispatched:
            if finish_if_done(campaign, token):
                return "done"
            if not SendLog.objects.filter(campaign_id=campaign_id, status__in=(
                    SendLog.Status.QUEUED, SendLog.Status.SENDING)).exists():
                # Only retries are left (maybe spread over a day by is_delay): nothing is
                # kept for them; the sweep's look every HUB_CAMPAIGN_STALE_SECONDS finishes it.
                return "idle"
            return pace(campaign, token, now() + timedelta(seconds=settings.HUB_CAMPAIGN_POLL_SECONDS * 5))
        if made or campaign.total != read_before:
            if time.monotonic() < deadline:
                continue
            continue_later(campaign_id, token)
            return "continued"
        if not ready:  # a template is still being checked
            return pace(campaign, token, now() + timedelta(seconds=1))
        due = next_due(campaign, now())
        if due is None:
            return "waiting"
        return pace(campaign, token, due)


def pace(campaign: Campaign, token: str, when: datetime) -> str:
    """Ask the pacer to run this campaign's next slice at `when`."""
    if Campaign.objects.filter(pk=campaign.pk, run_token=token, state=State.SENDING).update(wake_at=when):
        pacer.ensure()
    return "paced"


def rate_marks(marks: list, at: float, queued: int) -> list:
    """Note (time, rows made) once a minute; the last three notes are kept."""
    if marks and at - marks[-1][0] < 60:
        return marks
    return [*marks, [round(at, 1), queued]][-3:]


def current_rate(campaign: Campaign, at: float) -> float | None:
    """Rows made per hour since the oldest note (one to three minutes ago), or None."""
    marks = [m for m in campaign.rate_marks or [] if at - m[0] >= 30]
    if not marks:
        return None
    t, queued = marks[0]
    return (campaign.queued - queued) / max(1.0, at - t) * 3600


def continue_later(campaign_id: int, token: str) -> None:
    async_task(DISPATCH_TASK, campaign_id, token, task_name=f"campaign-{campaign_id}")


# --- the sweeper's part ---------------------------------------------------------------------------

def sweep() -> dict[str, int]:
    """Every minute: start scheduled campaigns whose time has come; give running campaigns
    whose dispatcher was lost (no beat for HUB_CAMPAIGN_STALE_SECONDS) a new one, with a new
    token so the lost one, should it wake, cannot commit."""
    started = rescued = 0
    for pk in Campaign.objects.filter(state__in=(State.WAITING, State.SCHEDULED), send_time__lte=now()
                                      ).values_list("pk", flat=True)[:100]:
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().get(pk=pk)
            started += start_if_due(campaign)
    # A row of a paused campaign that was on its way at the pause and came back as a retry:
    # held too (pausing held only the rows waiting at that moment).
    for pk in Campaign.objects.filter(state=State.PAUSED, time_start__isnull=False).values_list("pk", flat=True)[:100]:
        hold_rows(pk)
    # A pacer that died (SIGKILL) with slices to run: its lease goes stale, a new one starts.
    if Campaign.objects.filter(state=State.SENDING, wake_at__lte=now()).exists():
        pacer.ensure()
    stale = now() - timedelta(seconds=settings.HUB_CAMPAIGN_STALE_SECONDS)
    for pk in Campaign.objects.filter(state=State.SENDING, beat_at__lt=stale).values_list("pk", flat=True)[:100]:
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().get(pk=pk)
            if campaign.state == State.SENDING and campaign.beat_at < stale:
                _run(campaign, reason=campaign.reason)
                rescued += 1
    return {"started": started, "rescued": rescued}
