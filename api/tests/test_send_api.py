"""The send API's success paths: every content type a client sends (form, PHP-curl
multipart, JSON) on both URLs, the row that is written, the task that is queued, and what
finally reaches a real SMTP server (aiosmtpd sink) when the queue runs.

The request helpers here (`post`, `php_multipart`, `good_fields`, `assert_nothing_written`)
are shared by the other API test files."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.utils import getaddresses
from urllib.parse import urlencode

import pytest
from django_q.models import OrmQ

from hub.models import SendLog

# PHP's curl, given an array as CURLOPT_POSTFIELDS, sends multipart/form-data with a boundary
# of 24 dashes and 16 hex digits and parts without a filename; this one has the same shape.
BOUNDARY = "------------------------abc123"

FORMATS = ("form", "multipart", "json")


def php_multipart(fields: dict) -> bytes:
    """The body PHP curl sends for `curl_setopt($ch, CURLOPT_POSTFIELDS, $array)`."""
    body = b""
    for name, value in fields.items():
        body += (f"--{BOUNDARY}\r\n"
                 f'Content-Disposition: form-data; name="{name}"\r\n\r\n').encode() + str(value).encode() + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def encode(data: dict, fmt: str) -> tuple[bytes, str]:
    """(body, content type) for `data` in one of FORMATS."""
    if fmt == "form":
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    if fmt == "multipart":
        return php_multipart(data), f"multipart/form-data; boundary={BOUNDARY}"
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False).encode(), "application/json"
    raise ValueError(fmt)


def post(client, url: str, data: dict, fmt: str = "form", **extra):
    body, content_type = encode(data, fmt)
    return client.post(url, body, content_type=content_type, **extra)


def good_fields(creds: dict, **overrides) -> dict:
    """A complete, valid send request for /api.php; a None override removes the field."""
    fields = {"action": "send", **creds, "to": "alice@example.com", "subject": "测试主题 Test",
              "message": "<p>你好，<b>世界</b></p>"}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def assert_nothing_written(sink) -> None:
    """A refused request leaves no trace: no row, no task, nothing at the SMTP server."""
    assert SendLog.objects.count() == 0
    # No task on the broker, so a worker would have nothing to run. (Not calling
    # run_queue() here: the ORM broker sleeps a poll interval when empty, on every call.)
    assert OrmQ.objects.count() == 0
    assert sink.messages == []


@pytest.fixture
def hub(smtp_sink, make_server, make_app):
    """A sink, a server pointing at it, and an app bound to that server."""
    server = make_server(smtp_sink, from_email="hub@example.com")
    provisioned = make_app(server, name="测试应用", from_name="")
    return smtp_sink, server, provisioned


# --- content types x URLs ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("url,action", [("/api.php", "send"), ("/api/v1/send", None), ("/api/v1/send", "send")])
def test_send_is_queued_then_delivered(client, hub, run_queue, fmt, url, action):
    sink, server, p = hub
    fields = good_fields(p.creds, action=action, to_name="张三", from_name="客服中心")
    r = post(client, url, fields, fmt)

    assert r.status_code == 200, r.content
    body = r.json()
    row = SendLog.objects.get()
    assert set(body) == {"code", "msg", "id", "status"}
    assert (body["code"], body["id"], body["status"]) == (0, row.id, "queued")
    assert isinstance(body["msg"], str) and body["msg"]

    # The row is the request, as given.
    assert row.app_id == p.app.id
    assert getaddresses([row.to]) == [("张三", "alice@example.com")]
    assert row.to_name == "张三"
    assert row.subject == "测试主题 Test"
    assert row.html_body == "<p>你好，<b>世界</b></p>"
    assert row.from_name == "客服中心"
    assert row.from_email == "hub@example.com"
    assert row.status == SendLog.Status.QUEUED and row.attempts == 0
    assert row.message_id
    # Exactly one delivery task, and nothing delivered before a worker runs it.
    assert OrmQ.objects.count() == 1
    assert sink.messages == []

    assert run_queue() == 1
    row.refresh_from_db()
    assert row.status == SendLog.Status.SENT, row.error
    assert row.smtp_code == 250
    assert row.attempts == 1 and row.sent_at is not None
    assert row.smtp_server_id == server.id
    assert OrmQ.objects.count() == 0

    assert len(sink.messages) == 1
    received = sink.messages[0]
    assert received.mail_from == "hub@example.com"
    assert received.rcpt_tos == ["alice@example.com"]
    msg = received.message
    assert msg["Subject"] == "测试主题 Test"
    assert msg["To"].addresses[0].display_name == "张三"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"
    assert msg["From"].addresses[0].display_name == "客服中心"
    assert msg["From"].addresses[0].addr_spec == "hub@example.com"
    assert msg["Message-ID"] == row.message_id
    html = msg.get_body(preferencelist=("html",))
    assert html.get_content().strip() == "<p>你好，<b>世界</b></p>"
    # The text alternative is there too, made from the HTML.
    assert "世界" in msg.get_body(preferencelist=("plain",)).get_content()


def test_php_multipart_body_is_really_multipart():
    """Guard the helper itself: the shape must be what curl puts on the wire."""
    body = php_multipart({"appid": "1000", "subject": "主题"})
    assert body.startswith(b"--------------------------abc123\r\nContent-Disposition: form-data; name=\"appid\"\r\n\r\n1000\r\n")
    assert "主题".encode() in body and b"filename" not in body
    assert body.endswith(b"--------------------------abc123--\r\n")


# --- sender name and address --------------------------------------------------------------

@pytest.mark.parametrize("requested,app_from_name,expected", [
    ("请求里的名字", "应用发件人", "请求里的名字"),
    (None, "应用发件人", "应用发件人"),
    (None, "", "应用名称"),
    ("   ", "", "应用名称"),  # blank counts as absent
])
def test_from_name_defaults(client, smtp_sink, make_server, make_app, run_queue, requested, app_from_name, expected):
    p = make_app(make_server(smtp_sink), name="应用名称", from_name=app_from_name)
    r = post(client, "/api.php", good_fields(p.creds, from_name=requested))
    assert r.json()["code"] == 0, r.json()
    assert SendLog.objects.get().from_name == expected
    assert run_queue() == 1
    assert smtp_sink.messages[0].message["From"].addresses[0].display_name == expected


@pytest.mark.parametrize("from_email,expected", [("sender@example.com", "sender@example.com"),
                                                 ("", "relay-user@example.com")])
def test_from_email_is_the_servers_sender(client, smtp_sink_factory, make_server, make_app, run_queue,
                                          from_email, expected):
    # The server has an account, so the sink requires AUTH with it.
    sink = smtp_sink_factory(username="relay-user@example.com", password="s3cret")
    p = make_app(make_server(sink, from_email=from_email))
    r = post(client, "/api.php", good_fields(p.creds))
    assert r.json()["code"] == 0, r.json()
    assert SendLog.objects.get().from_email == expected
    assert run_queue() == 1
    assert SendLog.objects.get().status == SendLog.Status.SENT
    assert sink.messages[0].mail_from == expected
    assert sink.messages[0].message["From"].addresses[0].addr_spec == expected


# --- recipients -----------------------------------------------------------------------------

def test_comma_separated_to(client, hub, run_queue):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, to="a@example.com, \"王五\" <b@example.com>,c@example.com"))
    assert r.json()["code"] == 0, r.json()
    assert getaddresses([SendLog.objects.get().to]) == [
        ("", "a@example.com"), ("王五", "b@example.com"), ("", "c@example.com")]
    assert run_queue() == 1
    assert sink.messages[0].rcpt_tos == ["a@example.com", "b@example.com", "c@example.com"]
    assert [a.addr_spec for a in sink.messages[0].message["To"].addresses] == [
        "a@example.com", "b@example.com", "c@example.com"]


def test_same_address_twice_is_sent_once(client, hub, run_queue):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, to="a@example.com, A@Example.com"))
    assert r.json()["code"] == 0, r.json()
    assert run_queue() == 1
    assert len(sink.messages[0].rcpt_tos) == 1


@pytest.mark.parametrize("fmt", ["json", "form"])
def test_list_of_recipients(client, hub, run_queue, fmt):
    """JSON gives a list; a form gives the field repeated (to=a&to=b)."""
    sink, _server, p = hub
    r = post(client, "/api/v1/send", good_fields(p.creds, to=["a@example.com", '"李四" <b@example.com>']), fmt)
    assert r.json()["code"] == 0, r.json()
    assert getaddresses([SendLog.objects.get().to]) == [("", "a@example.com"), ("李四", "b@example.com")]
    assert run_queue() == 1
    assert sink.messages[0].rcpt_tos == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_display_name_form(client, hub, run_queue, fmt):
    sink, _server, p = hub
    # to_name names only the recipients that have no name of their own.
    r = post(client, "/api.php", good_fields(p.creds, to='"张三" <a@example.com>, b@example.com', to_name="李四"), fmt)
    assert r.json()["code"] == 0, r.json()
    assert getaddresses([SendLog.objects.get().to]) == [("张三", "a@example.com"), ("李四", "b@example.com")]
    assert run_queue() == 1
    received = sink.messages[0]
    assert received.rcpt_tos == ["a@example.com", "b@example.com"]
    assert [(a.display_name, a.addr_spec) for a in received.message["To"].addresses] == [
        ("张三", "a@example.com"), ("李四", "b@example.com")]


def test_idn_domain_goes_out_as_punycode(client, hub, run_queue):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, to="user@bücher.example"), "json")
    assert r.json()["code"] == 0, r.json()
    assert run_queue() == 1
    assert SendLog.objects.get().status == SendLog.Status.SENT
    received = sink.messages[0]
    assert received.rcpt_tos == ["user@xn--bcher-kva.example"]
    assert received.message["To"].addresses[0].addr_spec == "user@xn--bcher-kva.example"


def test_cc_and_reply_to(client, hub, run_queue):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, cc='"抄送" <cc@example.com>', reply_to="reply@example.com"))
    assert r.json()["code"] == 0, r.json()
    row = SendLog.objects.get()
    assert getaddresses([row.cc]) == [("抄送", "cc@example.com")]
    assert getaddresses([row.reply_to]) == [("", "reply@example.com")]
    assert run_queue() == 1
    received = sink.messages[0]
    # Cc is a recipient; Reply-To only tells the reader where answers go.
    assert received.rcpt_tos == ["alice@example.com", "cc@example.com"]
    assert [(a.display_name, a.addr_spec) for a in received.message["Cc"].addresses] == [("抄送", "cc@example.com")]
    assert received.message["Reply-To"].addresses[0].addr_spec == "reply@example.com"


@pytest.mark.parametrize("field", ["cc", "reply_to", "bcc"])
@pytest.mark.parametrize("value", ["not-an-address", "用户@example.com", "a@example.com, @nowhere", "x@"])
def test_cc_bcc_reply_to_are_validated_like_to(client, hub, field, value):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, **{field: value}))
    assert r.status_code == 400
    assert r.json()["code"] == -1 and r.json()["error"] == "invalid_address"
    assert r.json()["msg"] == "邮件地址无效"
    assert_nothing_written(sink)


def test_bcc_in_envelope_never_in_headers(client, hub, run_queue):
    sink, _server, p = hub
    r = post(client, "/api.php", good_fields(p.creds, bcc="hidden@example.com, \"秘密\" <secret@example.com>"))
    assert r.json()["code"] == 0, r.json()
    assert run_queue() == 1
    received = sink.messages[0]
    assert received.rcpt_tos == ["alice@example.com", "hidden@example.com", "secret@example.com"]
    assert received.message["Bcc"] is None
    assert b"hidden@example.com" not in received.content
    assert b"secret@example.com" not in received.content


# --- the real stack -----------------------------------------------------------------------

def test_real_http_through_live_server(live_server, smtp_sink, make_server, make_app, run_queue):
    """A real socket, real WSGI server, real PHP-curl-shaped body: proves the stack end to end
    (middleware, CSRF exemption, parsers, status codes)."""
    p = make_app(make_server(smtp_sink, from_email="hub@example.com"))
    body, content_type = encode(good_fields(p.creds), "multipart")
    request = urllib.request.Request(f"{live_server.url}/api.php", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        answer = json.loads(resp.read())
    row = SendLog.objects.get()
    assert answer == {"code": 0, "msg": answer["msg"], "id": row.id, "status": "queued"}
    assert row.client_ip == "127.0.0.1"
    assert run_queue() == 1
    assert smtp_sink.messages[0].message["Subject"] == "测试主题 Test"

    # A refusal over real HTTP: a meaningful status code and the JSON body.
    bad = encode(good_fields({"appid": p.creds["appid"], "appsecret": "wrong"}), "form")
    request = urllib.request.Request(f"{live_server.url}/api/v1/send", data=bad[0], method="POST",
                                     headers={"Content-Type": bad[1]})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert json.loads(caught.value.read()) == {"code": -1, "msg": "应用不存在", "error": "invalid_credentials"}
    caught.value.close()
    assert SendLog.objects.count() == 1
