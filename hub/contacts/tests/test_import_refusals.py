"""Uploads refused before a job exists: a clear ContactError, no job, no file, no rows, the
list not flagged, nothing queued."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from django_q.models import OrmQ

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob, MailList
from hub.contacts.services import ContactError

from .importing import upload


def zip_bytes(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return out.getvalue()


CASES = {
    "oversize": (b"a@x.com\n" * 200, "big.csv", "too_large"),
    "xlsx name, text content": (b"a@x.com\n", "list.xlsx", "bad_file"),
    "zip that is not a workbook": (zip_bytes(["readme.txt"]), "list.zip", "bad_file"),
    "damaged zip": (b"PK\x03\x04" + os.urandom(200), "list.xlsx", "bad_file"),
    "old xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "list.xls", "bad_file"),
    "binary garbage": (bytes(range(256)) * 3, "list.csv", "bad_file"),
    "control characters": (("a@x.com\x01\x02\x03\x04\x05\x06\n" * 10).encode(), "list.csv", "bad_file"),
    "neither utf-8 nor gb18030": (b"a@x.com,\x80\x80\xff\n", "list.csv", "bad_encoding"),
    "empty": (b"", "list.csv", "empty_file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_uploads_write_nothing(case, account, mail_list, import_dir, settings):
    settings.HUB_IMPORT_MAX_BYTES = 1000
    content, name, code = CASES[case]
    with pytest.raises(ContactError) as info:
        upload(account, mail_list, content, name)
    assert info.value.code == code, info.value.message
    assert info.value.message
    assert not ImportJob.objects.exists()
    assert not Contact.objects.exists()
    assert not OrmQ.objects.exists()
    assert not MailList.objects.get(pk=mail_list.pk).importing
    assert not any(p.is_file() for p in import_dir.rglob("*"))


def test_oversize_without_a_declared_size_is_cut_while_copying(account, mail_list, import_dir, settings):
    settings.HUB_IMPORT_MAX_BYTES = 3 * 1024 * 1024
    stream = io.BytesIO(b"a@x.com\n" * (512 * 1024))  # 4 MB, read in 1 MB blocks
    with pytest.raises(ContactError) as info:
        services.start_import(account, mail_list.pk, stream, "big.txt")
    assert info.value.code == "too_large"
    assert not any(p.is_file() for p in import_dir.rglob("*"))
    assert not ImportJob.objects.exists()


def test_invalid_utf8_after_the_sample_is_read_as_gb18030(account, mail_list, run_queue):
    # The first 64 KB are ASCII; the Chinese names further down are GBK: the whole file is checked.
    head = b"".join(b"user%d@x.com,name\n" % i for i in range(5000))
    job = upload(account, mail_list, head + "tail@x.com,王五\n".encode("gbk"), "l.csv", run_queue)
    assert (job.encoding, job.status) == ("gb18030", ImportJob.Status.DONE)
    assert Contact.objects.get(email="tail@x.com").fullname == "王五"
