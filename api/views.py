"""The send API: `POST /api.php` (the original PHP system's endpoint) and `POST /api/v1/send`.
Thin on purpose: parsing and answering here, the rules in hub.sending."""

from __future__ import annotations

import base64
import binascii
import re
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.delivery.outbox import deliver_batch
from hub.calendar import FIELDS as EVENT_FIELDS
from hub.models import SendLog
from hub.access import admit
from hub.sending import FileIn, Refusal, SendRequest, accept

# Fields that may be given as a JSON list (or repeated form fields) of addresses.
_LIST_FIELDS = ("to", "cc", "bcc", "reply_to")


def refusal_response(refusal: Refusal) -> Response:
    body = {"code": -1, "msg": refusal.msg, "error": refusal.error}
    if refusal.error == "unknown_action":
        body["code"] = 403  # what the original system answers
    if refusal.detail:
        body["detail"] = refusal.detail
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    return Response(body, status=refusal.http_status, headers=headers)


def _field(data, name: str) -> str:
    """One field as a string. Forms give strings; JSON may give numbers or lists."""
    if hasattr(data, "getlist") and name in _LIST_FIELDS:
        values = data.getlist(name)
        value = values if len(values) > 1 else (values[0] if values else None)
    else:
        value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        raise Refusal("invalid_field", f"{name} must be a string")
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list) and name in _LIST_FIELDS and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    raise Refusal("invalid_field", f"{name} must be a string")


# PHP names several files `attachments[0]`, `attachments[1]` (or `file[]`, `attachments[]`).
_FILE_FIELD = re.compile(r"^(attachments|file)(\[\d*\])?$")


def _attachments(request, data) -> list[FileIn]:
    """Multipart files (the field names PHP and other clients use), or in JSON a list of
    {"filename", "content" (base64), "content_type"}. A file under any other name is
    refused rather than dropped: a mail must not silently go out without it."""
    result = []
    for name in request.FILES or ():
        if not _FILE_FIELD.match(name):
            raise Refusal("invalid_attachment", f"unexpected file field {name[:50]!r} (use attachments or file)")
        result += [FileIn(f.name or "attachment", f.content_type or "", f.read()) for f in request.FILES.getlist(name)]
    listed = data.get("attachments") if not hasattr(data, "getlist") else None
    if listed is None:
        return result
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise Refusal("invalid_attachment", "attachments must be a list of objects")
    for item in listed:
        name, content, ctype = item.get("filename"), item.get("content"), item.get("content_type", "")
        if not isinstance(name, str) or not isinstance(content, str) or not isinstance(ctype, str):
            raise Refusal("invalid_attachment", "each attachment needs filename and base64 content strings")
        try:
            result.append(FileIn(name, ctype, base64.b64decode(content, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise Refusal("invalid_attachment", f"attachment {name[:80]!r}: content is not base64") from exc
    return result


def _event(data) -> dict[str, str] | None:
    """Calendar fields: `event_uid`, `event_start`, ... (forms) or an `event` object (JSON)."""
    nested = data.get("event") if not hasattr(data, "getlist") else None
    if nested is not None:
        if not isinstance(nested, dict):
            raise Refusal("invalid_event", "event must be an object")
        source, prefix = nested, ""
    else:
        source, prefix = data, "event_"
    event = {}
    for name in EVENT_FIELDS:
        value = source.get(prefix + name)
        if value is None:
            continue
        if isinstance(value, list) and name == "attendees" and all(isinstance(v, str) for v in value):
            value = ", ".join(value)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise Refusal("invalid_event", f"event {name} must be a string")
        if str(value).strip():  # blank fields (a form's empty inputs) count as absent
            event[name] = str(value)
    return event or None


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # as Django itself reads a malformed Content-Length


def _is_utf8(value, depth: int = 0) -> bool:
    """No lone surrogates ("\\ud800" is valid JSON but no text): they cannot be stored or
    hashed and would fail deep inside the hub instead of here."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return True
        except UnicodeEncodeError:
            return False
    if depth > 20:
        return False
    if isinstance(value, dict):
        return all(_is_utf8(k, depth + 1) and _is_utf8(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_utf8(v, depth + 1) for v in value)
    return True


def log_status(row: SendLog) -> dict:
    def ts(value):
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "status": row.status,
        "attempts": row.attempts,
        "smtp_code": row.smtp_code,
        "smtp_reply": row.smtp_reply,
        "error": row.error,
        "refused_recipients": row.refused_recipients,
        "message_id": row.message_id,
        "created_at": ts(row.created_at),
        "sent_at": ts(row.sent_at),
        "next_attempt_at": ts(row.next_attempt_at),
    }


class SendView(APIView):
    # "send" is the default on /api/v1/send; the compat endpoint requires an action.
    default_action = "send"

    def http_method_not_allowed(self, request, *args, **kwargs):
        # Even a wrong method gets the API's own body shape (`code` and `msg`).
        return Response({"code": -1, "msg": "请使用 POST 请求", "error": "method_not_allowed"}, status=405,
                        headers={"Allow": "POST"})

    def post(self, request, *args, **kwargs):
        try:
            if _content_length(request) > settings.HUB_MAX_REQUEST_BYTES:
                raise Refusal("too_large", f"request body over {settings.HUB_MAX_REQUEST_BYTES} bytes")
            try:
                data = request.data
            except (RequestDataTooBig,) as exc:
                raise Refusal("too_large", str(exc)) from exc
            except (ParseError, UnsupportedMediaType, TooManyFieldsSent, TooManyFilesSent, UnicodeDecodeError, ValueError,
                    RecursionError) as exc:
                raise Refusal("bad_request", str(exc)[:200]) from exc
            if not _is_utf8(data):
                raise Refusal("bad_request", "the body holds text that is not valid UTF-8")
            read_field = (lambda name: _field(data, name)) if hasattr(data, "get") else None
            admitted = admit(request.META, read_field, self.default_action)
            if admitted.action == "status":
                return self.status(admitted.app, _field(data, "id"))
            return self.send(request, admitted.app, data, admitted.ip)
        except Refusal as refusal:
            return refusal_response(refusal)

    def send(self, request, app, data, ip: str | None) -> Response:
        req = SendRequest(
            **{name: _field(data, name) for name in ("to", "subject", "message", "to_name", "from_name",
                                                     "cc", "bcc", "reply_to", "text")},
            idempotency_key=request.META.get("HTTP_IDEMPOTENCY_KEY", "") or _field(data, "request_id"),
            attachments=_attachments(request, data),
            event=_event(data),
        )
        flag = data.get("sync")  # JSON clients may send a real boolean
        sync = flag if isinstance(flag, bool) else _field(data, "sync").strip().lower() in ("1", "true", "yes")
        row = accept(app, req, ip)
        if sync:
            return self.sync_result(row)
        body = {"code": 0, "msg": "已加入发送队列", "id": row.id, "status": row.status}
        if row.event:
            body["event_uid"] = row.event["uid"]
        if row.replayed:
            body["idempotent_replay"] = True
        return Response(body)

    def sync_result(self, row: SendLog) -> Response:
        """The original system answered only after SMTP had spoken. Deliver now in this
        request (a drain that comes later finds the row taken and leaves it); if a worker got
        there first, wait for it, up to HUB_SYNC_TIMEOUT."""
        deliver_batch([row.id])
        deadline = time.monotonic() + settings.HUB_SYNC_TIMEOUT
        row.refresh_from_db()
        while not row.is_final and time.monotonic() < deadline:
            time.sleep(0.1)
            row.refresh_from_db()
        body = log_status(row)
        if row.status == SendLog.Status.SENT:
            return Response({"code": 0, "msg": "发送成功", **body})
        if row.status == SendLog.Status.FAILED:
            # HTTP 200: the request was handled; PHP clients read failure from `code`.
            return Response({"code": -1, "msg": "发送失败", **body})
        # Still on its way (a worker has it, or it waits for a retry): not a failure.
        return Response({"code": 0, "msg": "已加入发送队列", **body}, status=202)

    def status(self, app, log_id: str) -> Response:
        log_id = log_id.strip()
        if not log_id:
            raise Refusal("id_required")
        numeric = log_id.isascii() and log_id.isdigit() and len(log_id) < 19
        row = SendLog.objects.filter(pk=int(log_id), app=app).first() if numeric else None
        if row is None:
            raise Refusal("not_found")
        return Response({"code": 0, "msg": "ok", **log_status(row)})


class CompatSendView(SendView):
    default_action = ""
