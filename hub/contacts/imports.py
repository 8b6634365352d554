"""File imports (V28 4.8.3 / 4.8.4 / 4.13): the upload is checked and stored, then a
django-q2 job reads it as a stream and inserts it in chunks.

Checked at upload (refused with ContactError, nothing written): size (HUB_IMPORT_MAX_BYTES),
type by content (XLSX = a ZIP with the workbook parts; a `.xlsx` name on anything else, old
`.xls`, other ZIPs and binary data are refused), and for text the encoding of the WHOLE
file (UTF-8 with or without BOM, else GBK/GB18030; UTF-16 text is converted to UTF-8 while
it is stored). So a job never meets an encoding error halfway.

The job (run) never holds the file in memory: text is read line by line from the stored
file (csv module on top, so quoted cells work), XLSX through openpyxl's read-only mode.
Each chunk of HUB_IMPORT_CHUNK_ROWS rows is one transaction: the rows, the list's counter,
and the job's counters with its checkpoint (byte offset after the chunk, or XLSX row
number). A run that dies loses at most its open chunk; the next run (the task's own
continuation after its time budget, or the sweeper's requeue of a stale job) seeks to the
checkpoint and goes on, so count_all == imported + invalid + duplicate holds at the end.
A fencing token (run_token) keeps two runs of one job from both writing.
(Just over 400 lines: the upload's checks and the job's reader share the format detection.)"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from hub.models import Account

from . import store
from .errors import NotFound, owned_list, parse_id
from .models import ImportJob, MailList
from .normalize import FIELD_ORDER, Invalid, row_values
from .uploads import clean_filename, store_upload

log = logging.getLogger(__name__)

TASK = "hub.contacts.tasks.run_import"
MAX_INVALID_SAMPLES = 20
IMPORT_CACHE_KIB = 64 * 1024

# Header cells we recognise (lower-cased, without spaces, "_" or "-"), by field.
HEADER_NAMES: dict[str, str] = {}
for _field, _names in {
    "email": ("email", "e-mail", "mail", "emailaddress", "address", "邮箱", "邮件", "邮件地址", "电子邮件",
              "电子邮箱", "邮箱地址", "电子邮件地址", "email地址"),
    "fullname": ("name", "fullname", "姓名", "名字", "名称", "称呼", "联系人"),
    "sex": ("sex", "gender", "性别"),
    "birthday": ("birthday", "birth", "birthdate", "dateofbirth", "生日", "出生日期"),
    "phone": ("phone", "mobile", "tel", "telephone", "cellphone", "手机", "手机号", "手机号码", "电话", "电话号码",
              "联系电话"),
    "area": ("area", "region", "city", "地区", "区域", "城市", "所在地", "地址区域"),
    **{f"var{i}": (f"var{i}", f"变量{i}") for i in range(1, 11)},
}.items():
    for _name in _names:
        HEADER_NAMES[_name.replace("-", "")] = _field


class ImportFailed(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


class Superseded(Exception):
    """Another run of the job took over (the sweeper requeued it): stop without writing."""


def start_import(account: Account, list_id: int | str, fileobj, filename: str, *, queue: bool = True) -> ImportJob:
    """Store the upload and queue its job (queue=False: the caller runs it, see the
    contacts_import command). The list shows `importing` until the job ends."""
    mail_list = owned_list(account, list_id)
    path, size, kind, encoding = store_upload(fileobj, filename, Path(settings.HUB_IMPORT_DIR) / str(account.pk))
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                account=account, mail_list=mail_list, filename=clean_filename(filename),
                stored_name=f"{account.pk}/{path.name}", size=size, file_format=kind, encoding=encoding,
                run_token=uuid.uuid4().hex, heartbeat_at=timezone.now())
            MailList.objects.filter(pk=mail_list.pk).update(importing=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if queue:
        # Queued at once, not on commit: with the ORM broker the task row shares our
        # transaction anyway; with Redis, a task that runs before our commit finds no job
        # and the sweeper queues it again (a queued job without progress is requeued).
        async_task(TASK, job.pk, job.run_token)
    return job


def get_import(account: Account, job_id: int | str) -> ImportJob:
    job = ImportJob.objects.filter(account=account, pk=parse_id(job_id, "import")).select_related("mail_list").first()
    if job is None:
        raise NotFound("no such import")
    return job


def imports(account: Account) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(account=account).select_related("mail_list").order_by("-id")


# --- reading files ------------------------------------------------------------------------------

def _key(cell: object) -> str:
    return "" if cell is None else str(cell).strip().lower().replace(" ", "").replace("_", "").replace("-", "")


def detect_columns(first: list) -> tuple[list[int | None] | None, bool]:
    """From the file's first row: (for each of FIELD_ORDER, the column it is in, or None
    meaning the (d)1 positional order; whether the row is a header). A header is a first row
    without any "@" whose cells name known columns (邮箱, 姓名, email, name, ...)."""
    if any("@" in str(cell) for cell in first if cell is not None):
        return None, False
    fields = [HEADER_NAMES.get(_key(cell)) for cell in first]
    if not any(fields):
        return None, False  # not a header we can read: the row is data (an invalid one)
    if "email" not in fields:
        raise ImportFailed(ImportJob.Status.FAILED_FILE, "the header row names no email column (email / 邮箱)")
    return [fields.index(name) if name in fields else None for name in FIELD_ORDER], True


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (";", "\t", ",")}
    best = max(counts.values())
    return next(d for d in (";", "\t", ",") if counts[d] == best) if best else ";"


class _Lines:
    """Decoded lines of a binary file, counting the bytes handed out: once csv.reader has
    returned a record, `offset` is the byte position right after it (the reader asks for
    lines only as it needs them)."""

    def __init__(self, f, encoding: str, offset: int):
        self.f, self.encoding, self.offset = f, encoding, offset

    def __iter__(self) -> Iterator[str]:
        encoding = self.encoding
        for raw in self.f:  # splits on b"\n", which no UTF-8 or GB18030 multi-byte sequence contains
            self.offset += len(raw)
            yield raw.decode(encoding)


def text_rows(path: Path, encoding: str, start: int) -> tuple[Iterator[tuple[list, int]], list[int | None] | None]:
    """((fields, byte offset after the row) from `start` on, column map)."""
    with open(path, "rb") as f:
        first_line = ""
        for raw in f:
            first_line = raw.decode(encoding).strip()
            if first_line:
                break
    delimiter = _delimiter(first_line)
    first = next(csv.reader([first_line], delimiter=delimiter), [])
    columns, header = detect_columns(first)

    def rows() -> Iterator[tuple[list, int]]:
        with open(path, "rb") as f:
            f.seek(start)
            lines = _Lines(f, encoding, start)
            reader = csv.reader(lines, delimiter=delimiter)
            skip_header = header and start == 0
            try:
                for fields in reader:
                    if skip_header and any(fields):
                        skip_header = False
                        continue
                    yield fields, lines.offset
            except csv.Error as exc:
                raise ImportFailed(ImportJob.Status.FAILED_FILE, f"line {reader.line_num}: {exc}") from None

    return rows(), columns


def xlsx_rows(path: Path, start: int) -> tuple[Iterator[tuple[list, int]], list[int | None] | None, int]:
    """((cell values, sheet row number) after row `start`, column map, the sheet's rows)."""
    import openpyxl

    @contextlib.contextmanager
    def open_book():
        # A file object, not the path: openpyxl refuses a path without an .xlsx suffix. It
        # stays open while read_only mode reads rows.
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no default style" and the like
            try:
                book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
            except Exception as exc:  # noqa: BLE001  (openpyxl raises many kinds for a damaged file; reported)
                raise ImportFailed(ImportJob.Status.FAILED_FILE, f"the XLSX workbook cannot be read: {exc}") from None
            try:
                yield book
            finally:
                book.close()

    with open_book() as book:
        sheet = book.worksheets[0]
        total = sheet.max_row or 0
        first: list = []
        for values in sheet.iter_rows(values_only=True):
            if any(v not in (None, "") for v in values):
                first = list(values)
                break
    columns, header = detect_columns(first)

    def rows() -> Iterator[tuple[list, int]]:
        with open_book() as book:
            skip_header = header and start == 0
            for number, values in enumerate(book.worksheets[0].iter_rows(min_row=start + 1, values_only=True),
                                            start + 1):
                if skip_header and any(v not in (None, "") for v in values):
                    skip_header = False
                    continue
                yield list(values), number

    return rows(), columns, total


# --- the job ------------------------------------------------------------------------------------

def run(job_id: int, token: str, time_budget: float | None = None) -> str:
    """One run of an import job: "done", "failed", "continued" (time budget used up: a
    continuation is queued), "skipped" (finished, or another run owns it)."""
    budget = settings.HUB_IMPORT_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.finished or job.run_token != token:
        return "skipped"
    now = timezone.now()
    if not ImportJob.objects.filter(pk=job.pk, run_token=token, status__in=ImportJob.ACTIVE).update(
            status=ImportJob.Status.RUNNING, started_at=Coalesce(F("started_at"), now), heartbeat_at=now):
        return "skipped"
    deadline = time.monotonic() + budget if budget else None
    try:
        with _big_page_cache():
            finished = _process(job, token, deadline)
    except Superseded:
        return "skipped"
    except ImportFailed as exc:
        _finish(job, token, exc.status, exc.message)
        return "failed"
    except Exception as exc:
        log.exception("import %s failed", job.pk)
        _finish(job, token, ImportJob.Status.FAILED_INTERRUPTED, f"internal error: {exc}")
        raise
    if finished:
        _finish(job, token, ImportJob.Status.DONE, "")
        return "done"
    ImportJob.objects.filter(pk=job.pk, run_token=token).update(status=ImportJob.Status.QUEUED,
                                                                heartbeat_at=timezone.now())
    async_task(TASK, job.pk, token)
    return "continued"


@contextlib.contextmanager
def _big_page_cache() -> Iterator[None]:
    """SQLite: a 64 MB page cache while the job runs (default 2 MB). The unique (list,
    email) index of a million-row list is ~50 MB, and each insert lands at a random place
    in it; with the small cache most inserts re-read pages. Restored afterwards: the worker
    process goes on to other tasks."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        previous = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(previous)}")


def _process(job: ImportJob, token: str, deadline: float | None) -> bool:
    """Read from the checkpoint on; True when the file is done, False when the deadline
    passed (after a committed chunk)."""
    path = Path(settings.HUB_IMPORT_DIR) / job.stored_name
    if not path.is_file():
        raise ImportFailed(ImportJob.Status.FAILED_INTERRUPTED, "the uploaded file is gone")
    mail_list = MailList.objects.filter(pk=job.mail_list_id).first()
    if mail_list is None:
        raise ImportFailed(ImportJob.Status.FAILED_LIST, "the list was deleted")
    if job.file_format == "xlsx":
        rows, columns, total = xlsx_rows(path, job.checkpoint)
    else:
        rows, columns = text_rows(path, job.encoding, job.checkpoint)
        total = job.size
    chunk_rows = max(1, settings.HUB_IMPORT_CHUNK_ROWS)
    samples = job.invalid_sample.count("\n") + bool(job.invalid_sample)
    batch: list[tuple] = []
    consumed = invalid = 0
    notes: list[str] = []
    position = job.checkpoint
    try:
        for fields, position in rows:
            if not any(fields):
                continue  # blank line or empty sheet row: not a row
            consumed += 1
            if columns is not None:
                n = len(fields)
                fields = [fields[i] if i is not None and i < n else None for i in columns]
            try:
                batch.append(row_values(fields))
            except Invalid as exc:
                invalid += 1
                if samples < MAX_INVALID_SAMPLES:
                    samples += 1
                    notes.append(f"row {job.count_all + consumed}: {exc}")
            if consumed >= chunk_rows:
                _commit(job, token, mail_list, batch, consumed, invalid, notes, position, total)
                batch, consumed, invalid, notes = [], 0, 0, []
                if deadline is not None and time.monotonic() > deadline:
                    return False
        _commit(job, token, mail_list, batch, consumed, invalid, notes, position, total)
    except IntegrityError:
        if not MailList.objects.filter(pk=job.mail_list_id).exists():
            raise ImportFailed(ImportJob.Status.FAILED_LIST, "the list was deleted") from None
        raise
    return True


def _commit(job: ImportJob, token: str, mail_list: MailList, batch: list[tuple], consumed: int, invalid: int,
            notes: list[str], position: int, total: int) -> None:
    """One chunk: rows, list counter, job counters and checkpoint, in one transaction."""
    progress = min(99, int(position * 100 / total)) if total else 0
    with transaction.atomic():
        added = store.insert(mail_list, batch, now=timezone.now())
        store.bump(mail_list.pk, added)
        changes = {"count_all": F("count_all") + consumed, "count_invalid": F("count_invalid") + invalid,
                   "count_imported": F("count_imported") + added,
                   "count_duplicate": F("count_duplicate") + (len(batch) - added),
                   "checkpoint": position, "progress": progress, "heartbeat_at": timezone.now()}
        if notes:
            prefix = job.invalid_sample + "\n" if job.invalid_sample else ""
            job.invalid_sample = prefix + "\n".join(notes)
            changes["invalid_sample"] = job.invalid_sample
        if not ImportJob.objects.filter(pk=job.pk, run_token=token, status=ImportJob.Status.RUNNING).update(**changes):
            raise Superseded  # rolls the chunk back: the run that took over will write it
    job.count_all += consumed  # for the row numbers of the next invalid-row notes


def _finish(job: ImportJob, token: str, status: int, error: str) -> None:
    with transaction.atomic():
        changes = {"status": status, "error": error[:2000], "finished_at": timezone.now(),
                   "heartbeat_at": timezone.now()}
        if status == ImportJob.Status.DONE:
            changes["progress"] = 100
        if not ImportJob.objects.filter(pk=job.pk, run_token=token).update(**changes):
            return
        _clear_importing(job.mail_list_id)
    (Path(settings.HUB_IMPORT_DIR) / job.stored_name).unlink(missing_ok=True)


def _clear_importing(mail_list_id: int) -> None:
    if not ImportJob.objects.filter(mail_list_id=mail_list_id, status__in=ImportJob.ACTIVE).exists():
        MailList.objects.filter(pk=mail_list_id).update(importing=False)


# --- the sweeper ---------------------------------------------------------------------------------

def sweep() -> dict[str, int]:
    """Every minute (django-q schedule "contacts-import-sweep", or `manage.py
    contacts_sweep_imports`): jobs without progress for HUB_IMPORT_STALE_SECONDS lost their
    task (queued) or their worker (running). They are queued again with a new run token and
    resume from their checkpoint; a running job lost more than HUB_IMPORT_MAX_RESUMES times
    fails with status -3. Lists flagged `importing` without an active job are cleared."""
    stale = timezone.now() - timedelta(seconds=settings.HUB_IMPORT_STALE_SECONDS)
    requeued = failed = 0
    for job in ImportJob.objects.filter(status__in=ImportJob.ACTIVE).filter(
            Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)).order_by("id")[:100]:
        crashed = job.status == ImportJob.Status.RUNNING
        if crashed and job.resumes >= settings.HUB_IMPORT_MAX_RESUMES:
            _finish(job, job.run_token, ImportJob.Status.FAILED_INTERRUPTED,
                    f"the worker running this import was lost {job.resumes + 1} times; "
                    f"{job.count_imported} rows had been imported")
            failed += 1
            continue
        if requeue(job, count_resume=crashed):
            requeued += 1
    cleared = 0
    for mail_list_id in MailList.objects.filter(importing=True).values_list("pk", flat=True)[:1000]:
        if not ImportJob.objects.filter(mail_list_id=mail_list_id, status__in=ImportJob.ACTIVE).exists():
            cleared += MailList.objects.filter(pk=mail_list_id).update(importing=False)
    return {"requeued": requeued, "failed": failed, "cleared": cleared}


def requeue(job: ImportJob, count_resume: bool = True) -> bool:
    """Give the job a new run token (a run still holding the old one stops at its next
    chunk) and queue a run that resumes from the checkpoint."""
    token = uuid.uuid4().hex
    changes: dict = {"run_token": token, "status": ImportJob.Status.QUEUED, "heartbeat_at": timezone.now()}
    if count_resume:
        changes["resumes"] = F("resumes") + 1
    if not ImportJob.objects.filter(pk=job.pk, run_token=job.run_token, status__in=ImportJob.ACTIVE).update(
            **changes):
        return False
    async_task(TASK, job.pk, token)
    return True

