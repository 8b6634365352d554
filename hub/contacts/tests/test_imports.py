"""File imports through the real job (queued with django-q, run by the `run_queue` fixture):
formats, encodings, header detection, counts."""

from __future__ import annotations

import datetime

from hub.contacts.models import Contact, ImportJob, MailList

from .conftest import count_ok, emails
from .importing import queued_tasks, upload, xlsx_bytes

DONE = ImportJob.Status.DONE


def check_done(job: ImportJob, rows: int, imported: int, invalid: int, duplicate: int) -> None:
    assert (job.status, job.error) == (DONE, "")
    assert (job.count_all, job.count_imported, job.count_invalid, job.count_duplicate) == (
        rows, imported, invalid, duplicate)
    assert job.count_all == job.count_imported + job.count_invalid + job.count_duplicate
    assert job.progress == 100 and job.finished_at is not None
    assert not MailList.objects.get(pk=job.mail_list_id).importing


def test_upload_queues_a_job_and_flags_the_list(account, mail_list, import_dir):
    job = upload(account, mail_list, b"a@x.com\n", "a.txt")
    assert queued_tasks() == ["hub.contacts.tasks.run_import"]
    assert (job.status, job.filename, job.file_format, job.encoding) == (ImportJob.Status.QUEUED, "a.txt", "text",
                                                                           "utf-8-sig")
    assert (import_dir / job.stored_name).is_file()
    mail_list.refresh_from_db()
    assert mail_list.importing


def test_semicolon_text_d1_format(account, mail_list, run_queue, import_dir):
    text = ("Coming1@bestdem.org;coming1;M;1986-08-10;13528775968;北京;var1;var2;.... var10;\n"
            "test@bestdem.org; test;F;1986-08-10;13528775968;area;var1;var2;.... var10;\n"
            "\n"
            "COMING1@bestdem.org;dup;\n"
            "broken;;\n")
    job = upload(account, mail_list, text.encode(), "address.txt", run_queue)
    check_done(job, rows=4, imported=2, invalid=1, duplicate=1)
    assert "row 4: 'broken' is not a valid email address" in job.invalid_sample
    first = Contact.objects.get(email="coming1@bestdem.org")
    assert (first.fullname, first.sex, first.birthday, first.area, first.var3) == (
        "coming1", "M", datetime.date(1986, 8, 10), "北京", ".... var10")
    assert not (import_dir / job.stored_name).exists()  # removed when the job ended
    assert count_ok(mail_list) == 2


def test_csv_with_chinese_header_in_any_column_order(account, mail_list, run_queue):
    text = "姓名,邮箱,手机,变量2\n张三,zhang@x.cn,13800000000,v2\n李四,LI@X.CN,,\n王五,,,\n"
    job = upload(account, mail_list, text.encode(), "list.csv", run_queue)
    check_done(job, rows=3, imported=2, invalid=1, duplicate=0)
    zhang = Contact.objects.get(email="zhang@x.cn")
    assert (zhang.fullname, zhang.phone, zhang.var2) == ("张三", "13800000000", "v2")


def test_csv_without_header_and_quoted_cells(account, mail_list, run_queue):
    text = 'a@x.com,"Smith, John"\r\nb@x.com,"multi\nline"\r\n'
    job = upload(account, mail_list, text.encode(), "list.csv", run_queue)
    check_done(job, rows=2, imported=2, invalid=0, duplicate=0)
    assert list(Contact.objects.order_by("id").values_list("fullname", flat=True)) == ["Smith, John", "multi line"]


def test_tab_separated_csv_with_english_header(account, mail_list, run_queue):
    text = "Email\tName\tSex\tBirthday\na@x.com\tAnn\tF\t1990-1-2\nb@x.com\tBob\tM\t\n"
    job = upload(account, mail_list, text.encode(), "list.csv", run_queue)
    check_done(job, rows=2, imported=2, invalid=0, duplicate=0)
    assert Contact.objects.get(email="a@x.com").birthday == datetime.date(1990, 1, 2)


def test_gbk_csv_with_chinese_names(account, mail_list, run_queue):
    text = "邮箱,姓名,地区\r\nwang@x.cn,王小明,广州\r\nzhao@x.cn,赵丽颖,深圳\r\n"
    job = upload(account, mail_list, text.encode("gbk"), "导出.csv", run_queue)
    assert job.encoding == "gb18030"
    check_done(job, rows=2, imported=2, invalid=0, duplicate=0)
    assert dict(Contact.objects.values_list("email", "fullname")) == {"wang@x.cn": "王小明", "zhao@x.cn": "赵丽颖"}


def test_utf8_bom(account, mail_list, run_queue):
    text = "\ufeff邮箱,姓名\na@x.com,甲\n"
    job = upload(account, mail_list, text.encode("utf-8"), "bom.csv", run_queue)
    check_done(job, rows=1, imported=1, invalid=0, duplicate=0)
    assert Contact.objects.get().fullname == "甲"


def test_utf16_text_from_excel(account, mail_list, run_queue):
    text = "邮箱\t姓名\r\na@x.com\t甲\r\n"
    job = upload(account, mail_list, text.encode("utf-16"), "unicode.txt", run_queue)
    check_done(job, rows=1, imported=1, invalid=0, duplicate=0)


def test_xlsx(account, mail_list, run_queue):
    content = xlsx_bytes([
        ["邮箱", "姓名", "性别", "生日", "手机"],
        ["A@X.com", "张三", "男", datetime.datetime(1990, 5, 6), 13800000000],
        [None, None, None, None, None],
        ["b@x.com", "李四", "F", "1991-01-01", "13900000000"],
        ["a@x.com", "dup", None, None, None],
        ["nope", "bad", None, None, None],
    ])
    job = upload(account, mail_list, content, "通讯录.xlsx", run_queue)
    assert job.file_format == "xlsx"
    check_done(job, rows=4, imported=2, invalid=1, duplicate=1)
    a = Contact.objects.get(email="a@x.com")
    assert (a.fullname, a.sex, a.birthday, a.phone) == ("张三", "M", datetime.date(1990, 5, 6), "13800000000")


def test_duplicates_against_the_list_and_across_chunks(account, mail_list, run_queue, settings):
    settings.HUB_IMPORT_CHUNK_ROWS = 3
    from hub.contacts import services

    services.add_contact(account, mail_list.pk, "u1@x.com")
    lines = [f"u{i}@x.com" for i in range(10)] + ["u0@x.com", "u9@x.com", "bad", "u5@X.com"]
    job = upload(account, mail_list, "\n".join(lines).encode(), "l.txt", run_queue)
    check_done(job, rows=14, imported=9, invalid=1, duplicate=4)
    assert sorted(emails(mail_list)) == sorted(f"u{i}@x.com" for i in range(10))
    assert count_ok(mail_list) == 10


def test_header_without_email_column_fails_clearly(account, mail_list, run_queue):
    job = upload(account, mail_list, "姓名,手机\n张三,1\n".encode(), "l.csv", run_queue)
    assert job.status == ImportJob.Status.FAILED_FILE
    assert "no email column" in job.error
    assert Contact.objects.count() == 0
    assert not MailList.objects.get(pk=mail_list.pk).importing


def test_time_budget_hands_over_to_a_continuation(account, mail_list, run_queue, settings):
    settings.HUB_IMPORT_CHUNK_ROWS = 2
    settings.HUB_IMPORT_TIME_BUDGET_SECONDS = 0.000001  # every chunk ends the run
    lines = "\n".join(f"c{i}@x.com" for i in range(7)) + "\n"
    job = upload(account, mail_list, lines.encode(), "l.txt")
    assert run_queue() == 4  # 2 + 2 + 2 + 1 rows, each run queueing the next
    job.refresh_from_db()
    check_done(job, rows=7, imported=7, invalid=0, duplicate=0)
