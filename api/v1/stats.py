"""Native API: statistics (V28 2.2-2.6) and a campaign's report, over hub.stats.services.
Query parameters are validated by serializers (code `invalid` with per-field details);
another account's campaign or batch number is `not_found`."""

from __future__ import annotations

from datetime import date

from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.response import Response

from hub.stats import report as reports
from hub.stats import services
from hub.stats.services import Counts, StatsError

from .base import NativeView, error_body, exception_handler
from .errors import ERRORS

MAX_ID = 2**63 - 1
FAILURES_MAX = 10_000


def _exception_handler(exc, context):
    if isinstance(exc, StatsError):
        code = "not_found" if exc.code == "not_exist" else ("invalid" if exc.code == "param_error" else exc.code)
        return Response(error_body(code, exc.message), status=exc.http_status)
    return exception_handler(exc, context)


class StatsBase(NativeView):
    tag = "statistics"

    def get_exception_handler(self):
        return _exception_handler

    def query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def campaign(self, data: dict) -> int | None:
        pk, ident = data.get("campaign_id"), data.get("ident", "")
        if pk is None and not ident:
            return None
        return services.campaign_by(self.account, pk=pk, ident=ident)


class CountsOut(drf.Serializer):
    sent = drf.IntegerField(help_text="recipients the receiving server accepted")
    failed = drf.IntegerField(help_text="recipients whose delivery failed for good")
    failure_types = drf.DictField(child=drf.IntegerField(), help_text="V28 (a)6 type (1..10) -> recipients; "
                                                                      "delivery failures and later bounces")
    bounced = drf.IntegerField(help_text="bounces (DSN) after the server accepted the message")
    complained = drf.IntegerField()
    quota_charged = drf.IntegerField()
    quota_rebated = drf.IntegerField(help_text="given back for failed messages")
    quota_net = drf.IntegerField()


def counts(c: Counts) -> dict:
    return {"sent": c.sent, "failed": c.failed, "failure_types": {str(k): v for k, v in sorted(c.types.items())},
            "bounced": c.bounced, "complained": c.complained, "quota_charged": c.charged, "quota_rebated": c.rebated,
            "quota_net": c.net}


def _day(value: date) -> date:
    try:
        return services.check_day(value)
    except StatsError as exc:
        raise drf.ValidationError(exc.message) from exc


class DateIn(drf.Serializer):
    date = drf.DateField(input_formats=["%Y-%m-%d"])

    def validate_date(self, value: date) -> date:
        return _day(value)


class DayOut(drf.Serializer):
    date = drf.DateField()
    all = CountsOut()
    campaigns = CountsOut(help_text="campaign mail only (V28 ws_*)")


class DailyView(StatsBase):
    @extend_schema(summary="A day's outcomes (V28 2.2)", parameters=[DateIn], responses={200: DayOut, **ERRORS})
    def get(self, request):
        s = services.day_stats(self.account, self.query(DateIn)["date"])
        return Response({"date": s.day, "all": counts(s.all), "campaigns": counts(s.campaigns)})


class RangeIn(drf.Serializer):
    date = drf.DateField(required=False, input_formats=["%Y-%m-%d"])
    date_end = drf.DateField(required=False, input_formats=["%Y-%m-%d"])
    campaign_id = drf.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    ident = drf.CharField(required=False, max_length=40, help_text="batch number (sn)")

    def validate(self, data):
        if not any(data.get(k) for k in ("date", "date_end", "campaign_id", "ident")):
            raise drf.ValidationError("one of date, date_end, campaign_id, ident is required")
        for name in ("date", "date_end"):
            if data.get(name):
                data[name] = _day(data[name])
        return data


class TaskOut(drf.Serializer):
    campaign_id = drf.IntegerField(help_text="0: the account's mail that is not a campaign's")
    ident = drf.CharField()
    date = drf.DateField(allow_null=True)
    skipped_invalid = drf.IntegerField(help_text="suppressed or invalid addresses the campaign skipped")
    counts = CountsOut()


class TasksView(StatsBase):
    @extend_schema(summary="Per campaign and day: sent, failures, quota charged and given back (V28 2.4)",
                   parameters=[RangeIn], responses={200: TaskOut(many=True), **ERRORS})
    def get(self, request):
        data = self.query(RangeIn)
        campaign_id = self.campaign(data)
        first, last = data.get("date"), data.get("date_end")
        if first or last:
            first, last = services.date_range(first, last, missing_is_today=False, max_days=services.MAX_DAYS)
        entries = services.task_stats(self.account, first=first, last=last, campaign_id=campaign_id)
        return Response([{"campaign_id": t.campaign_id, "ident": t.ident, "date": t.day, "skipped_invalid": t.invalid,
                          "counts": counts(t.counts)} for t in entries])


class FailuresIn(RangeIn):
    type = drf.CharField(max_length=20, help_text="1..10, -1/all, or not_exist, over_quota, user_reject, "
                                                  "invalid_addr, format_error")
    after_id = drf.IntegerField(required=False, min_value=0, max_value=MAX_ID, help_text="cursor: the last id seen")
    limit = drf.IntegerField(required=False, min_value=1, max_value=FAILURES_MAX, default=1000)

    def validate_type(self, value: str) -> int:
        try:
            return services.failure_type(value)
        except StatsError as exc:
            raise drf.ValidationError(exc.message) from exc


class FailureOut(drf.Serializer):
    id = drf.IntegerField()
    email = drf.CharField()
    failure_type = drf.IntegerField(allow_null=True)
    kind = drf.ChoiceField(choices=["failed", "bounced"])
    campaign_id = drf.IntegerField()
    at = drf.DateTimeField()


class FailuresView(StatsBase):
    @extend_schema(summary="Failed recipients, every failure, oldest first, by cursor (V28 2.3)",
                   parameters=[FailuresIn], responses={200: FailureOut(many=True), **ERRORS})
    def get(self, request):
        data = self.query(FailuresIn)
        campaign_id = self.campaign(data)
        first, last = data.get("date"), data.get("date_end")
        if first or last:
            first, last = services.date_range(first, last, missing_is_today=True)
        rows = services.failures(self.account, kind=data["type"], first=first, last=last, campaign_id=campaign_id)
        page = rows.filter(pk__gt=data.get("after_id") or 0).order_by("pk")[:data["limit"]]
        return Response(list(page.values("id", "email", "failure_type", "kind", "campaign_id", "at")))


class DeductionOut(drf.Serializer):
    account_id = drf.IntegerField()
    company = drf.CharField()
    quota_type = drf.CharField()
    recipients = drf.IntegerField()
    quota_net = drf.IntegerField()


class DeductionView(StatsBase):
    @extend_schema(summary="A day's quota taken, per account (a manager's sub-accounts too) (V28 2.5)",
                   parameters=[DateIn], responses={200: DeductionOut(many=True), **ERRORS})
    def get(self, request):
        day: date = self.query(DateIn)["date"]
        own = not request.query_params.get("customer_id")
        return Response([{"account_id": d.account.pk, "company": d.account.company or d.account.name,
                          "quota_type": d.account.quota_type, "recipients": d.counts.attempted,
                          "quota_net": d.counts.net}
                         for d in services.deductions(self.account, day, with_children=own)])


class MailLogIn(DateIn):
    mail_to = drf.EmailField(required=False, max_length=254,
                             help_text="only messages whose To is this one address (case-insensitive); a To with "
                                       "several addresses or a display name, and Cc/Bcc, are not searched")
    page = drf.IntegerField(required=False, min_value=1, max_value=100_000, default=1)
    limit = drf.IntegerField(required=False, min_value=1, max_value=services.MAILLOG_LIMIT_MAX,
                             default=services.MAILLOG_LIMIT_DEFAULT)


class MailLogOut(drf.Serializer):
    lists = drf.ListField(child=drf.DictField(), help_text="the messages: id, time, send_time, from, to, cc, subject, "
                          "status, smtp_code, result, error_type, task_id, attempts, message_id, source")
    page = drf.IntegerField()
    limit = drf.IntegerField()
    more = drf.BooleanField(help_text="a next page exists")


class MailLogView(StatsBase):
    @extend_schema(summary="The messages accepted on a day, oldest first (V28 2.6)", parameters=[MailLogIn],
                   responses={200: MailLogOut, **ERRORS})
    def get(self, request):
        data = self.query(MailLogIn)
        items, more = services.mail_log(self.account, data["date"], mail_to=(data.get("mail_to") or "").lower(),
                                        page=data["page"], limit=data["limit"])
        return Response({"lists": items, "page": data["page"], "limit": data["limit"], "more": more})


class PartOut(drf.Serializer):
    template_id = drf.IntegerField()
    subject_no = drf.IntegerField(help_text="1-based; 0 for a template's row")
    label = drf.CharField()
    counts = CountsOut()


class HourOut(drf.Serializer):
    hour = drf.DateTimeField()
    counts = CountsOut()


class ReportOut(drf.Serializer):
    campaign_id = drf.IntegerField()
    totals = CountsOut()
    hours = HourOut(many=True)
    templates = PartOut(many=True)
    subjects = PartOut(many=True)


def report(r: reports.CampaignReport) -> dict:
    def part(p: reports.Part) -> dict:
        return {"template_id": p.template_id, "subject_no": p.subject_no, "label": p.label, "counts": counts(p.counts)}

    return {"campaign_id": r.campaign_id, "totals": counts(r.totals),
            "hours": [{"hour": h, "counts": counts(c)} for h, c in r.hours],
            "templates": [part(p) for p in r.templates], "subjects": [part(p) for p in r.subjects]}


class CampaignReportView(StatsBase):
    @extend_schema(summary="A campaign's outcomes: totals, per hour, per template and per subject",
                   responses={200: ReportOut, **ERRORS})
    def get(self, request, campaign_id: int):
        pk = services.campaign_by(self.account, pk=campaign_id)
        return Response(report(reports.campaign_report(pk, self.account)))
