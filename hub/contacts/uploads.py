"""Checking and storing an import upload (see hub.contacts.imports for the job).

Refused with ContactError, leaving no file behind: over HUB_IMPORT_MAX_BYTES, empty, a
`.xlsx` name on something that is not a ZIP, a ZIP that is not a workbook, old `.xls`,
binary data, text that is neither UTF-8 nor GBK/GB18030 (checked over the WHOLE file while
it is copied, so a job never meets an encoding error halfway). UTF-16 text (Excel's
"Unicode text") is converted to UTF-8 on the way in."""

from __future__ import annotations

import codecs
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from .errors import ContactError

COPY_BLOCK = 1 << 20
SAMPLE_BYTES = 64 * 1024


def _error(code: str, message: str) -> ContactError:
    return ContactError(code, message)


def clean_filename(filename: str) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or "upload"


def _blocks(fileobj) -> Iterator[bytes]:
    if hasattr(fileobj, "chunks"):  # Django's UploadedFile
        yield from fileobj.chunks(COPY_BLOCK)
        return
    while block := fileobj.read(COPY_BLOCK):
        yield block


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    with open(path, "rb") as f:
        try:
            while block := f.read(COPY_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def store_upload(fileobj, filename: str, directory: Path) -> tuple[Path, int, str, str]:
    """Copy the upload to `directory` (streaming, size-limited) and decide how to read it:
    (path, size, format "text"|"xlsx", encoding). ContactError, and no file left, when refused."""
    limit = settings.HUB_IMPORT_MAX_BYTES
    declared = getattr(fileobj, "size", None)
    if isinstance(declared, int) and declared > limit:
        raise _error("too_large", f"the file is larger than {limit} bytes")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.upload"
    try:
        return _store(fileobj, filename, path, limit)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _store(fileobj, filename: str, path: Path, limit: int) -> tuple[Path, int, str, str]:
    size, head, utf8_ok = 0, b"", True
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    utf16 = None  # a decoder when the text is UTF-16 (converted to UTF-8 on the way)
    with open(path, "wb") as out:
        for block in _blocks(fileobj):
            size += len(block)
            if size > limit:
                raise _error("too_large", f"the file is larger than {limit} bytes")
            if len(head) < SAMPLE_BYTES:
                head += block[: SAMPLE_BYTES - len(head)]
                if utf16 is None and head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                    utf16 = codecs.getincrementaldecoder("utf-16")("strict")
            if utf16 is not None:
                try:
                    out.write(utf16.decode(block).encode("utf-8"))
                except UnicodeDecodeError:
                    raise _error("bad_encoding", "the file starts like UTF-16 text but is not") from None
                continue
            out.write(block)
            if utf8_ok:
                try:
                    utf8.decode(block)
                except UnicodeDecodeError:
                    utf8_ok = False
        if utf16 is not None:
            out.write(utf16.decode(b"", final=True).encode("utf-8"))
    if size == 0:
        raise _error("empty_file", "the file is empty")
    name = filename.lower()
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise _error("bad_file", "the file looks like a ZIP/XLSX archive but is damaged") from None
        if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
            raise _error("bad_file", "the file is a ZIP archive, not an XLSX workbook")
        return path, size, "xlsx", ""
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _error("bad_file", "old Excel (.xls) files are not supported: save it as .xlsx or CSV")
    if name.endswith((".xlsx", ".xlsm")):
        raise _error("bad_file", "the file is named .xlsx but is not an XLSX workbook")
    if utf16 is not None:
        return path, size, "text", "utf-8-sig"
    if b"\x00" in head:
        raise _error("bad_file", "the file is binary, not text, CSV or XLSX")
    if utf8_ok:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_ok = False
    encoding = "utf-8-sig" if utf8_ok else ("gb18030" if _decodes(path, "gb18030") else "")
    if not encoding:
        raise _error("bad_encoding", "the text is neither UTF-8 nor GBK/GB18030")
    sample = head.decode(encoding, "ignore")
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    if controls > len(sample) // 1000:
        raise _error("bad_file", "the file is binary, not text, CSV or XLSX")
    return path, size, "text", encoding
