"""A worker killed in the middle of an import: the job keeps its checkpoint (the last
committed chunk), the sweeper requeues it, and the resumed run finishes with exact counts
and no duplicate rows. A job lost too often fails clearly (-3), never "success"."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from hub.contacts import imports, store
from hub.contacts.models import Contact, ImportJob, MailList

from .conftest import count_ok, emails
from .importing import drop_queue, queued_tasks, upload, xlsx_bytes


class Killed(BaseException):
    """Like SIGKILL for the job: no `except Exception` handler runs."""


def kill_after(monkeypatch, chunks: int) -> None:
    real = store.insert
    calls = {"n": 0}

    def insert(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "insert", insert)


def make_stale(job: ImportJob) -> None:
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - datetime.timedelta(hours=1))


def content(kind: str) -> tuple[bytes, str]:
    # 23 rows: 19 new, 2 duplicates (u3, u7 again), 2 invalid; header row first.
    rows = [f"u{i}@x.com" for i in range(19)] + ["u3@x.com", "bad1", "U7@X.COM", "bad2"]
    if kind == "xlsx":
        return xlsx_bytes([["邮箱", "姓名"], *[[r, f"n{i}"] for i, r in enumerate(rows)]]), "l.xlsx"
    return ("email,name\n" + "".join(f"{r},n{i}\n" for i, r in enumerate(rows))).encode(), "l.csv"


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_killed_import_resumes_from_its_checkpoint(kind, account, mail_list, run_queue, settings, monkeypatch):
    settings.HUB_IMPORT_CHUNK_ROWS = 5
    real_insert = store.insert
    data, name = content(kind)
    job = upload(account, mail_list, data, name)
    kill_after(monkeypatch, chunks=2)
    with pytest.raises(Killed):
        run_queue()
    drop_queue()  # the dead worker's task is gone (max_attempts=1)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING and job.count_all == 10 and job.checkpoint > 0
    assert len(emails(mail_list)) == 10 == count_ok(mail_list)
    assert MailList.objects.get(pk=mail_list.pk).importing
    monkeypatch.setattr(store, "insert", real_insert)

    assert imports.sweep() == {"requeued": 0, "failed": 0, "cleared": 0}  # not stale yet
    make_stale(job)
    assert imports.sweep() == {"requeued": 1, "failed": 0, "cleared": 0}
    assert queued_tasks() == ["hub.contacts.tasks.run_import"]
    run_queue()
    job.refresh_from_db()
    assert (job.status, job.resumes) == (ImportJob.Status.DONE, 1)
    assert (job.count_all, job.count_imported, job.count_duplicate, job.count_invalid) == (23, 19, 2, 2)
    assert sorted(emails(mail_list)) == sorted(f"u{i}@x.com" for i in range(19))
    assert count_ok(mail_list) == 19
    assert not MailList.objects.get(pk=mail_list.pk).importing


def test_a_presumed_dead_run_cannot_write_after_the_requeue(account, mail_list, settings):
    settings.HUB_IMPORT_CHUNK_ROWS = 2
    job = upload(account, mail_list, b"a@x.com\nb@x.com\nc@x.com\n", "l.txt")
    old_token = job.run_token
    drop_queue()
    imports.requeue(job)
    assert imports.run(job.pk, old_token) == "skipped"
    assert Contact.objects.count() == 0
    job.refresh_from_db()
    assert imports.run(job.pk, job.run_token) == "done"
    assert Contact.objects.count() == 3


def test_superseded_mid_run_rolls_back_its_chunk(account, mail_list, settings, monkeypatch):
    settings.HUB_IMPORT_CHUNK_ROWS = 2
    job = upload(account, mail_list, b"a@x.com\nb@x.com\nc@x.com\nd@x.com\n", "l.txt")
    drop_queue()
    real = store.insert
    calls = {"n": 0}

    def insert(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the sweeper takes the job over while this run works on chunk 2
            ImportJob.objects.filter(pk=job.pk).update(run_token="someone-else")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "insert", insert)
    assert imports.run(job.pk, job.run_token) == "skipped"
    assert emails(mail_list) == ["a@x.com", "b@x.com"]  # chunk 2 rolled back
    job.refresh_from_db()
    assert (job.count_all, job.count_imported) == (2, 2)
    assert count_ok(mail_list) == 2


def test_a_job_lost_too_often_fails_clearly(account, mail_list, settings, import_dir):
    settings.HUB_IMPORT_MAX_RESUMES = 1
    job = upload(account, mail_list, b"a@x.com\n", "l.txt")
    drop_queue()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, resumes=1)
    make_stale(job)
    assert imports.sweep()["failed"] == 1
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED_INTERRUPTED
    assert "lost 2 times" in job.error
    assert not MailList.objects.get(pk=mail_list.pk).importing
    assert not (import_dir / job.stored_name).exists()
    assert queued_tasks() == []


def test_a_lost_queued_task_is_queued_again_without_counting_a_resume(account, mail_list, run_queue):
    job = upload(account, mail_list, b"a@x.com\n", "l.txt")
    drop_queue()  # e.g. a Redis broker lost it
    make_stale(job)
    assert imports.sweep()["requeued"] == 1
    run_queue()
    job.refresh_from_db()
    assert (job.status, job.resumes, job.count_imported) == (ImportJob.Status.DONE, 0, 1)


def test_sweeper_clears_a_stuck_importing_flag(account, mail_list):
    MailList.objects.filter(pk=mail_list.pk).update(importing=True)
    assert imports.sweep()["cleared"] == 1
    assert not MailList.objects.get(pk=mail_list.pk).importing


def test_unexpected_errors_fail_the_job_and_are_raised(account, mail_list, monkeypatch):
    job = upload(account, mail_list, b"a@x.com\n", "l.txt")
    drop_queue()
    monkeypatch.setattr(store, "insert", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        imports.run(job.pk, job.run_token)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED_INTERRUPTED and "internal error" in job.error
    assert not MailList.objects.get(pk=mail_list.pk).importing
