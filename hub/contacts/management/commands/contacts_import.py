"""Import a file into a list from the shell, without the web upload or the queue: the same
checks and job as the admin/API, run in this process with no time budget (big files)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hub.contacts import imports
from hub.contacts.models import ImportJob, MailList
from hub.contacts.services import ContactError


class Command(BaseCommand):
    help = "Import a ;-text, CSV or XLSX file into a contact list (runs the import job here)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("list_id", type=int)
        parser.add_argument("file", type=Path)

    def handle(self, *args, list_id: int, file: Path, **options) -> None:
        mail_list = MailList.objects.filter(pk=list_id).select_related("account").first()
        if mail_list is None:
            raise CommandError(f"no list {list_id}")
        if not file.is_file():
            raise CommandError(f"no file {file}")
        try:
            with open(file, "rb") as f:
                job = imports.start_import(mail_list.account, mail_list.pk, f, file.name, queue=False)
        except ContactError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        outcome = imports.run(job.pk, job.run_token, time_budget=0)
        job = ImportJob.objects.get(pk=job.pk)
        self.stdout.write(json.dumps({
            "job": job.pk, "outcome": outcome, "status": job.status, "error": job.error, "count_all": job.count_all,
            "imported": job.count_imported, "invalid": job.count_invalid, "duplicate": job.count_duplicate}))
        if job.status != ImportJob.Status.DONE:
            raise CommandError(job.error or "the import failed")
