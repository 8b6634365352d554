"""Recording outcomes for the report tests without a mail server: a SendLog row as the
delivery engine leaves it, told to hub.events exactly as the engine tells it
(hub.delivery.attempt._emit_outcome, inside a transaction), at a chosen time."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from hub.delivery.attempt import _emit_outcome
from hub.models import SendLog

_contacts = itertools.count(1)


def at(text: str) -> datetime:
    """'2012-03-02 10:00' in the hub's time zone."""
    return timezone.make_aware(datetime.fromisoformat(text))


def record(app, to: str, status: str, when: datetime, *, failure_type: int | None = None,
           campaign_id: int | None = None, template_id: int = 0, subject_no: int = 1,
           refused: dict | None = None, charged: bool = True, subject: str = "通知") -> SendLog:
    recipients = [a.strip() for a in to.split(",") if a.strip()]
    row = SendLog.objects.create(
        app=app, to=to, status=status, created_at=when, sent_at=when if status == SendLog.Status.SENT else None,
        subject=f"[campaign {campaign_id}] template {template_id} subject {subject_no}" if campaign_id else subject,
        campaign_id=campaign_id, contact_id=next(_contacts) if campaign_id else None,
        priority=1 if campaign_id else 0, source=SendLog.Source.CAMPAIGN if campaign_id else SendLog.Source.API,
        failure_type=failure_type if status == SendLog.Status.FAILED else None,
        refused_recipients=refused or {}, quota_charged=len(recipients) if charged else 0,
        smtp_code=250 if status == SendLog.Status.SENT else 550,
        smtp_reply="250 ok" if status == SendLog.Status.SENT else "550 refused", from_email="news@example.com")
    SendLog.objects.filter(pk=row.pk).update(updated_at=when)
    row.refresh_from_db()
    with transaction.atomic():
        _emit_outcome(row, row.status, when)
    return row
