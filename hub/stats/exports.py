"""A campaign's report as downloads: CSV (one file: the sections one after another) and XLSX
(openpyxl, write-only: a sheet per section, and the failed recipients). The failed
recipients sheet stops at XLSX_FAILURE_ROWS (Excel's limit is 1,048,576 rows); the CSV of
failures streams every one."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook

from hub.models import FailureType

from .models import TYPES, Failure
from .report import CampaignReport
from .services import Counts

XLSX_FAILURE_ROWS = 1_000_000


def _header() -> list[str]:
    return [_("sent"), _("failed"), _("bounced"), _("complaints"), _("quota charged"), _("quota given back"),
            *[str(FailureType(n).label) for n in TYPES]]


def _values(c: Counts) -> list[int]:
    return [c.sent, c.failed, c.bounced, c.complained, c.charged, c.rebated, *[c.t(n) for n in TYPES]]


def sections(report: CampaignReport) -> list[tuple[str, list[list]]]:
    """(title, rows with a header row) for each part of the report."""
    head = _header()
    return [
        (_("Totals"), [head, _values(report.totals)]),
        (_("Per hour"), [[_("hour"), *head]] + [[f"{h:%Y-%m-%d %H:00}", *_values(c)] for h, c in report.hours]),
        (_("Per template"), [[_("template"), *head]] + [[p.label, *_values(p.counts)] for p in report.templates]),
        (_("Per subject"), [[_("subject"), *head]] + [[p.label, *_values(p.counts)] for p in report.subjects]),
    ]


def _failures(campaign_id: int) -> Iterator[list]:
    rows = Failure.objects.filter(campaign_id=campaign_id).order_by("id").values_list(
        "email", "failure_type", "kind", "at")
    for email, kind, how, at in rows.iterator(chunk_size=2000):
        yield [email, kind or "", how, timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S")]


def failure_header() -> list[str]:
    return [_("email"), _("failure type"), _("kind"), _("time")]


def report_csv(report: CampaignReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for title, rows in sections(report):
        writer.writerow([title])
        writer.writerows(rows)
        writer.writerow([])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")  # the BOM: Excel then reads UTF-8


def failures_csv(campaign_id: int) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(failure_header())
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    for row in _failures(campaign_id):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue().encode("utf-8")


def report_xlsx(report: CampaignReport) -> bytes:
    book = Workbook(write_only=True)
    for title, rows in sections(report):
        sheet = book.create_sheet(title[:31])
        for row in rows:
            sheet.append(row)
    sheet = book.create_sheet(_("Failed recipients")[:31])
    sheet.append(failure_header())
    for i, row in enumerate(_failures(report.campaign_id)):
        if i >= XLSX_FAILURE_ROWS:
            break
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
