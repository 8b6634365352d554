"""Helpers of the import tests (no tests here)."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.signing import SignedPackage

from hub.contacts import services
from hub.contacts.models import ImportJob


def queued_tasks() -> list[str]:
    from django_q.models import OrmQ

    return [SignedPackage.loads(q.payload)["func"] for q in OrmQ.objects.order_by("id")]


def xlsx_bytes(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(account, mail_list, content: bytes, name: str = "list.csv", run_queue=None) -> ImportJob:
    job = services.start_import(account, mail_list.pk, SimpleUploadedFile(name, content), name)
    if run_queue is not None:
        run_queue()
    job.refresh_from_db()
    return job


def drop_queue() -> None:
    """Lose every queued task (also those a dead worker had taken and not acknowledged)."""
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
