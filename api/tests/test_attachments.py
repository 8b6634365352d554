"""Attachments on the send API: multipart files under every field name clients use
(attachments, attachments[], file, file[]; a PHP curl body with CURLFile parts) and JSON
base64; the bytes a real SMTP server (aiosmtpd sink) receives are the bytes that were sent;
file names (UTF-8 via RFC 2231, client paths stripped); the rows kept for audit; the limits
and malformed uploads refused with nothing written; idempotent replays."""

from __future__ import annotations

import base64
import hashlib
import json
from email.header import decode_header, make_header

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.models import OrmQ

from api.tests.test_send_api import BOUNDARY, assert_nothing_written, good_fields, post
from hub.models import Attachment, SendLog

# Every byte value, a few hundred KB: what survives this survives any file.
BINARY = bytes(range(256)) * 1200
URL = "/api/v1/send"


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    server = make_server(smtp_sink, from_email="hub@example.com")
    return smtp_sink, make_app(server, name="附件测试")


def curl_multipart(fields: list[tuple[str, object]]) -> tuple[bytes, str]:
    """The body PHP curl sends for CURLOPT_POSTFIELDS with CURLFile values: plain parts
    without a filename, file parts with `filename=` and their Content-Type. A value
    (filename, content_type, bytes) is a file. File names are sent as raw UTF-8, as curl does."""
    body = b""
    for name, value in fields:
        body += f"--{BOUNDARY}\r\n".encode()
        if isinstance(value, tuple):
            filename, content_type, content = value
            body += (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n").encode() + content + b"\r\n"
        else:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + str(value).encode() + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def post_curl(client, fields: dict, files: list[tuple[str, tuple[str, str, bytes]]], url: str = URL, **extra):
    body, content_type = curl_multipart([*fields.items(), *files])
    return client.post(url, body, content_type=content_type, **extra)


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def accepted(r) -> SendLog:
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["code"] == 0, body
    return SendLog.objects.get(pk=body["id"])


def delivered_attachments(sink, run_queue) -> list:
    """Run the queue; the attachment parts of the one message the sink received."""
    assert run_queue() == 1
    assert SendLog.objects.get().status == SendLog.Status.SENT, SendLog.objects.get().error
    [received] = sink.messages
    return list(received.message.iter_attachments())


def part_bytes(part) -> bytes:
    # get_payload(decode=True): the transfer encoding undone, whatever the content type.
    return part.get_payload(decode=True)


def stored(row: SendLog) -> list[tuple[str, str, int, bytes]]:
    return [(a.filename, a.content_type, a.size, bytes(a.content))
            for a in Attachment.objects.filter(log=row).order_by("id")]


def assert_refused(r, sink, status: int, error: str, msg: str) -> None:
    assert r.status_code == status, r.content
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, error, msg), body
    assert_nothing_written(sink)
    assert Attachment.objects.count() == 0


# --- multipart uploads ----------------------------------------------------------------------

@pytest.mark.parametrize("field", ["attachments", "attachments[]", "file", "file[]"])
def test_several_files_under_each_field_name(client, hub, run_queue, field):
    sink, p = hub
    files = [SimpleUploadedFile("a.txt", b"first file\n", content_type="text/plain"),
             SimpleUploadedFile("b.pdf", b"%PDF-1.4 second", content_type="application/pdf"),
             SimpleUploadedFile("c.bin", BINARY[:1000], content_type="application/octet-stream")]
    # The test client sends a list as the same field repeated, one part per file.
    r = client.post(URL, {**good_fields(p.creds), field: files})

    row = accepted(r)
    assert row.attachment_count == 3
    assert stored(row) == [("a.txt", "text/plain", 11, b"first file\n"),
                           ("b.pdf", "application/pdf", 15, b"%PDF-1.4 second"),
                           ("c.bin", "application/octet-stream", 1000, BINARY[:1000])]
    parts = delivered_attachments(sink, run_queue)
    assert [(p.get_filename(), p.get_content_type(), part_bytes(p)) for p in parts] == [
        ("a.txt", "text/plain", b"first file\n"),
        ("b.pdf", "application/pdf", b"%PDF-1.4 second"),
        ("c.bin", "application/octet-stream", BINARY[:1000])]
    # The message itself is still there, as the HTML + text alternative.
    msg = sink.messages[0].message
    assert msg.get_content_type() == "multipart/mixed"
    assert "世界" in msg.get_body(("html",)).get_content()


def test_php_curl_body_round_trips_binary_byte_exact(client, hub, run_queue):
    """PHP: CURLOPT_POSTFIELDS => [..., 'file' => new CURLFile('/tmp/data.bin', 'application/octet-stream')]."""
    sink, p = hub
    r = post_curl(client, good_fields(p.creds), [("file", ("data.bin", "application/octet-stream", BINARY))])

    row = accepted(r)
    [(filename, ctype, size, content)] = stored(row)
    assert (filename, ctype, size) == ("data.bin", "application/octet-stream", len(BINARY))
    assert hashlib.sha256(content).digest() == hashlib.sha256(BINARY).digest()
    [part] = delivered_attachments(sink, run_queue)
    assert part.get_filename() == "data.bin"
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part_bytes(part) == BINARY


def test_php_curl_several_files_with_the_same_field_repeated(client, hub, run_queue):
    sink, p = hub
    files = [("attachments[]", ("one.bin", "application/octet-stream", BINARY[:300])),
             ("attachments[]", ("two.png", "image/png", b"\x89PNG\r\n\x1a\n" + BINARY[:200]))]
    row = accepted(post_curl(client, good_fields(p.creds), files))
    assert [(f, c, s) for f, c, s, _ in stored(row)] == [("one.bin", "application/octet-stream", 300),
                                                        ("two.png", "image/png", 208)]
    parts = delivered_attachments(sink, run_queue)
    assert [part_bytes(p) for p in parts] == [BINARY[:300], b"\x89PNG\r\n\x1a\n" + BINARY[:200]]
    assert [p.get_content_type() for p in parts] == ["application/octet-stream", "image/png"]


@pytest.mark.parametrize("field", ["attachments", "file"])
def test_php_curl_indexed_field_names(client, hub, run_queue, field):
    """PHP array keys are unique, so a PHP client sends several CURLFiles as
    'attachments[0]', 'attachments[1]' (`file[]` can hold only one). Those files must
    arrive, not be dropped while the API answers code 0."""
    sink, p = hub
    files = [(f"{field}[0]", ("first.txt", "text/plain", b"one")),
             (f"{field}[1]", ("second.txt", "text/plain", b"two"))]
    row = accepted(post_curl(client, good_fields(p.creds), files))
    assert row.attachment_count == 2
    parts = delivered_attachments(sink, run_queue)
    assert [(p.get_filename(), part_bytes(p)) for p in parts] == [("first.txt", b"one"), ("second.txt", b"two")]


# --- JSON base64 ----------------------------------------------------------------------------

def test_json_base64_round_trips_binary_byte_exact(client, hub, run_queue):
    sink, p = hub
    data = good_fields(p.creds, attachments=[
        {"filename": "data.bin", "content": b64(BINARY), "content_type": "application/octet-stream"},
        {"filename": "note.txt", "content": b64("中文内容\r\n".encode()), "content_type": "text/plain"},
        {"filename": "untyped", "content": b64(b"\x00\x01")},  # no content_type: octet-stream
    ])
    row = accepted(post(client, URL, data, "json"))

    assert stored(row) == [("data.bin", "application/octet-stream", len(BINARY), BINARY),
                           ("note.txt", "text/plain", len("中文内容\r\n".encode()), "中文内容\r\n".encode()),
                           ("untyped", "application/octet-stream", 2, b"\x00\x01")]
    parts = delivered_attachments(sink, run_queue)
    assert [(p.get_filename(), p.get_content_type(), part_bytes(p)) for p in parts] == [
        ("data.bin", "application/octet-stream", BINARY),
        ("note.txt", "text/plain", "中文内容\r\n".encode()),  # a text file keeps its line ends
        ("untyped", "application/octet-stream", b"\x00\x01")]


@pytest.mark.parametrize("given,expected", [("text/html; charset=utf-8", "text/html"),
                                            ("IMAGE/JPEG", "image/jpeg"),
                                            ("not a type", "application/octet-stream"),
                                            ('text/plain"\r\nX-Injected: 1', "application/octet-stream"),
                                            ("", "application/octet-stream")])
def test_content_type_is_normalised(client, hub, run_queue, given, expected):
    sink, p = hub
    data = good_fields(p.creds, attachments=[{"filename": "f", "content": b64(b"x"), "content_type": given}])
    row = accepted(post(client, URL, data, "json"))
    assert stored(row)[0][1] == expected
    [part] = delivered_attachments(sink, run_queue)
    assert part.get_content_type() == expected
    assert b"X-Injected" not in sink.messages[0].content


# --- file names -----------------------------------------------------------------------------

NON_ASCII_NAME = "季度报告 2026（终稿）.pdf"


@pytest.mark.parametrize("how", ["php_curl", "test_client", "json"])
def test_non_ascii_filename_decodes_to_the_original(client, hub, run_queue, how):
    sink, p = hub
    if how == "php_curl":
        r = post_curl(client, good_fields(p.creds), [("file", (NON_ASCII_NAME, "application/pdf", b"%PDF"))])
    elif how == "test_client":
        upload = SimpleUploadedFile(NON_ASCII_NAME, b"%PDF", content_type="application/pdf")
        r = client.post(URL, {**good_fields(p.creds), "attachments": upload})
    else:
        r = post(client, URL, good_fields(p.creds, attachments=[
            {"filename": NON_ASCII_NAME, "content": b64(b"%PDF"), "content_type": "application/pdf"}]), "json")
    row = accepted(r)
    assert stored(row)[0][0] == NON_ASCII_NAME

    [part] = delivered_attachments(sink, run_queue)
    # RFC 2231 (filename*=utf-8''..., or its continuations filename*0*=utf-8''... when
    # long): the header block stays ASCII on the wire.
    raw = sink.messages[0].content
    assert b"filename*=utf-8''" in raw.lower() or b"filename*0*=utf-8''" in raw.lower()
    # ... and the Content-Type `name` older clients read, as RFC 2047 encoded words.
    assert b'name="=?utf-8?' in raw.lower()
    assert str(make_header(decode_header(part.get_param("name")))) == NON_ASCII_NAME
    assert NON_ASCII_NAME.encode() not in raw
    assert part.get_filename() == NON_ASCII_NAME
    assert part_bytes(part) == b"%PDF"


@pytest.mark.parametrize("given,expected", [("../../etc/x", "x"), ("/etc/passwd", "passwd"),
                                            ("C:\\Users\\me\\report.pdf", "report.pdf"),
                                            ("dir/sub/名字.txt", "名字.txt"), ("  spaced.txt  ", "spaced.txt")])
def test_client_paths_are_stripped_from_json_filenames(client, hub, run_queue, given, expected):
    sink, p = hub
    data = good_fields(p.creds, attachments=[{"filename": given, "content": b64(b"data")}])
    row = accepted(post(client, URL, data, "json"))
    assert stored(row)[0][0] == expected
    [part] = delivered_attachments(sink, run_queue)
    assert part.get_filename() == expected


def test_client_path_is_stripped_from_multipart_filename(client, hub, run_queue):
    sink, p = hub
    row = accepted(post_curl(client, good_fields(p.creds), [("file", ("../../etc/x", "text/plain", b"data"))]))
    assert stored(row)[0][0] == "x"
    [part] = delivered_attachments(sink, run_queue)
    assert part.get_filename() == "x"


# --- refusals: nothing written --------------------------------------------------------------

TOO_MANY = (413, "too_many_attachments", "附件过多")
# Too big is its own refusal (issue 17: one oversized file was reported as too many).
TOO_LARGE = (413, "attachment_too_large", "附件过大")
INVALID = (400, "invalid_attachment", "附件无效")


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_too_many_files(client, hub, settings, how):
    sink, p = hub
    settings.HUB_MAX_ATTACHMENTS = 3
    if how == "multipart":
        files = [SimpleUploadedFile(f"f{i}.txt", b"x") for i in range(4)]
        r = client.post(URL, {**good_fields(p.creds), "file[]": files})
    else:
        listed = [{"filename": f"f{i}.txt", "content": b64(b"x")} for i in range(4)]
        r = post(client, URL, good_fields(p.creds, attachments=listed), "json")
    assert_refused(r, sink, *TOO_MANY)


def test_files_spread_over_several_field_names_count_together(client, hub, settings):
    sink, p = hub
    settings.HUB_MAX_ATTACHMENTS = 3
    r = client.post(URL, {**good_fields(p.creds),
                          "file": [SimpleUploadedFile("a", b"1"), SimpleUploadedFile("b", b"2")],
                          "attachments": [SimpleUploadedFile("c", b"3"), SimpleUploadedFile("d", b"4")]})
    assert_refused(r, sink, *TOO_MANY)


def test_exactly_the_limits_are_accepted(client, hub, settings, run_queue):
    sink, p = hub
    settings.HUB_MAX_ATTACHMENTS = 2
    settings.HUB_MAX_ATTACHMENT_BYTES = 1000
    settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES = 2000
    files = [SimpleUploadedFile("a.bin", BINARY[:1000]), SimpleUploadedFile("b.bin", BINARY[1000:2000])]
    row = accepted(client.post(URL, {**good_fields(p.creds), "file[]": files}))
    assert [s for _f, _c, s, _b in stored(row)] == [1000, 1000]
    assert [part_bytes(p) for p in delivered_attachments(sink, run_queue)] == [BINARY[:1000], BINARY[1000:2000]]


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_one_file_too_large(client, hub, settings, how):
    sink, p = hub
    settings.HUB_MAX_ATTACHMENT_BYTES = 1000
    if how == "multipart":
        r = client.post(URL, {**good_fields(p.creds), "file": SimpleUploadedFile("big.bin", BINARY[:1001])})
    else:
        listed = [{"filename": "big.bin", "content": b64(BINARY[:1001])}]
        r = post(client, URL, good_fields(p.creds, attachments=listed), "json")
    assert_refused(r, sink, *TOO_LARGE)


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_total_too_large(client, hub, settings, how):
    sink, p = hub
    settings.HUB_MAX_ATTACHMENT_BYTES = 1000
    settings.HUB_MAX_ATTACHMENTS_TOTAL_BYTES = 1500
    contents = [BINARY[:800], BINARY[800:1600]]  # each under the per-file limit, together over
    if how == "multipart":
        files = [SimpleUploadedFile(f"{i}.bin", c) for i, c in enumerate(contents)]
        r = client.post(URL, {**good_fields(p.creds), "attachments": files})
    else:
        listed = [{"filename": f"{i}.bin", "content": b64(c)} for i, c in enumerate(contents)]
        r = post(client, URL, good_fields(p.creds, attachments=listed), "json")
    assert_refused(r, sink, *TOO_LARGE)


@pytest.mark.parametrize("content", ["not base64!", "YW Jj\n", "Zm9v\x00", "%%%%"])
def test_bad_base64(client, hub, content):
    sink, p = hub
    r = post(client, URL, good_fields(p.creds, attachments=[{"filename": "a.txt", "content": content}]), "json")
    assert_refused(r, sink, *INVALID)


@pytest.mark.parametrize("attachments", [
    "aGVsbG8=",  # a string, not a list
    {"filename": "a.txt", "content": "aGVsbG8="},  # one object, not a list
    ["aGVsbG8="],  # list of strings
    [{"filename": "a.txt"}],  # no content
    [{"content": "aGVsbG8="}],  # no filename
    [{"filename": 7, "content": "aGVsbG8="}],
    [{"filename": "a.txt", "content": ["aGVsbG8="]}],
    [{"filename": "a.txt", "content": "aGVsbG8=", "content_type": 5}],
    [{"filename": "a.txt", "content": None}],
], ids=["string", "object", "list_of_strings", "no_content", "no_filename", "filename_number",
        "content_list", "content_type_number", "content_null"])
def test_bad_json_shape(client, hub, attachments):
    sink, p = hub
    r = post(client, URL, good_fields(p.creds, attachments=attachments), "json")
    assert_refused(r, sink, *INVALID)


@pytest.mark.parametrize("filename", ["evil\r\nX-Injected: 1.txt", "a\nb.txt", "a\rb.txt", "nul\x00.txt",
                                      'quote".txt', "", "   ", "../", "dir/", "x" * 256])
def test_bad_filename(client, hub, filename):
    sink, p = hub
    r = post(client, URL, good_fields(p.creds, attachments=[{"filename": filename, "content": "aGVsbG8="}]),
             "json")
    assert_refused(r, sink, *INVALID)


def test_one_bad_file_refuses_the_whole_request(client, hub):
    sink, p = hub
    listed = [{"filename": "good.txt", "content": b64(b"ok")}, {"filename": "bad\r\n.txt", "content": b64(b"x")}]
    r = post(client, URL, good_fields(p.creds, attachments=listed), "json")
    assert_refused(r, sink, *INVALID)


def test_refused_message_with_attachments_writes_no_attachment(client, hub):
    """A send refused for another reason (bad address) leaves no orphan Attachment rows."""
    sink, p = hub
    r = post_curl(client, good_fields(p.creds, to="not-an-address"), [("file", ("a.bin", "x/y", BINARY[:10]))])
    assert_refused(r, sink, 400, "invalid_address", "邮件地址无效")


# --- idempotency ----------------------------------------------------------------------------

def _send_with_key(client, p, content: bytes, filename: str = "invoice.pdf"):
    data = good_fields(p.creds, attachments=[{"filename": filename, "content": b64(content),
                                              "content_type": "application/pdf"}])
    return client.post(URL, json.dumps(data), content_type="application/json", HTTP_IDEMPOTENCY_KEY="inv-42")


def test_idempotent_replay_with_the_same_attachments(client, hub, run_queue):
    sink, p = hub
    first = _send_with_key(client, p, BINARY[:5000])
    row = accepted(first)
    replay = _send_with_key(client, p, BINARY[:5000])

    assert replay.status_code == 200, replay.content
    assert replay.json()["id"] == row.id
    assert replay.json()["idempotent_replay"] is True
    assert SendLog.objects.count() == 1 and OrmQ.objects.count() == 1
    assert Attachment.objects.count() == 1
    assert len(delivered_attachments(sink, run_queue)) == 1


@pytest.mark.parametrize("change", ["content", "filename"])
def test_idempotency_key_with_a_different_attachment_is_409(client, hub, change):
    sink, p = hub
    row = accepted(_send_with_key(client, p, BINARY[:5000]))
    if change == "content":
        other = _send_with_key(client, p, BINARY[:4999] + b"\xff")
    else:
        other = _send_with_key(client, p, BINARY[:5000], filename="invoice-v2.pdf")

    assert other.status_code == 409, other.content
    assert (other.json()["code"], other.json()["error"]) == (-1, "idempotency_conflict")
    assert other.json()["msg"] == "Idempotency-Key 已用于不同的请求"
    assert list(SendLog.objects.values_list("id", flat=True)) == [row.id]
    assert OrmQ.objects.count() == 1
    assert Attachment.objects.count() == 1
    assert sink.messages == []
