"""POST /api/v1/send/batch: up to HUB_BATCH_MAX_MESSAGES messages in one JSON request, queued
in one transaction or not at all (the rules: hub.batch). Two forms:

    {"appid": ..., "appsecret": ..., "messages": [{"to", "subject", "message", ...}, ...]}
    {"appid": ..., "appsecret": ..., "message": {"subject", "message", "text", "from_name", ...},
     "recipients": [{"to", "to_name", "vars": {"name": "value"}}, ...]}

Admission is the single send's (hub.access.admit: blocklist, credentials, allowlist, rate
limit counted once). The Idempotency-Key header (or `request_id`) covers the whole batch."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response

from hub.access import admit
from hub.batch import BatchRefused, accept_batch, personalize
from hub.sending import Refusal, SendRequest

from .views import SendView, _content_length, _field, _is_utf8, refusal_response

_MESSAGE_FIELDS = ("to", "subject", "message", "to_name", "from_name", "cc", "bcc", "reply_to", "text")
_COMMON_FIELDS = ("subject", "message", "from_name", "cc", "bcc", "reply_to", "text")
_NOT_IN_BATCH = ("attachments", "event", "sync")


def _request(item, index: int) -> SendRequest:
    if not isinstance(item, dict):
        raise Refusal("invalid_field", f"messages[{index}] must be an object")
    for name in _NOT_IN_BATCH:
        if name in item:
            raise Refusal("invalid_field", f"messages[{index}].{name}: not supported in a batch (use /api/v1/send)")
    return SendRequest(**{name: _field(item, name) for name in _MESSAGE_FIELDS})


def _variables(value, index: int) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 100:
        raise Refusal("invalid_field", f"recipients[{index}].vars must be an object of at most 100 names")
    result = {}
    for name, text in value.items():
        if isinstance(text, bool) or not isinstance(text, (str, int, float)) or len(str(text)) > 10_000:
            raise Refusal("invalid_field", f"recipients[{index}].vars.{str(name)[:50]}: a string of at most 10000")
        result[str(name)] = str(text)
    return result


def batch_requests(data: dict) -> list:
    """The batch's SendRequests, or (index, Refusal) for an item whose shape is wrong."""
    limit = settings.HUB_BATCH_MAX_MESSAGES
    messages, recipients = data.get("messages"), data.get("recipients")
    if (messages is None) == (recipients is None):
        raise Refusal("invalid_field", "give either messages (a list) or message and recipients")
    items = messages if messages is not None else recipients
    if not isinstance(items, list):
        raise Refusal("invalid_field", "messages / recipients must be a list")
    if len(items) > limit:
        raise Refusal("too_large", f"at most {limit} messages per batch")
    if messages is not None:
        common, form = None, "messages"
    else:
        common, form = data.get("message"), "recipients"
        if not isinstance(common, dict) or "to" in common:
            raise Refusal("invalid_field", "message must be an object without `to` (recipients give it)")
        for name in _NOT_IN_BATCH:
            if name in common:
                raise Refusal("invalid_field", f"message.{name}: not supported in a batch (use /api/v1/send)")
        base = SendRequest(**{name: _field(common, name) for name in _COMMON_FIELDS})
    result: list = []
    for index, item in enumerate(items):
        try:
            if form == "messages":
                result.append(_request(item, index))
            else:
                if not isinstance(item, dict):
                    raise Refusal("invalid_field", f"recipients[{index}] must be an object")
                req = SendRequest(**{**vars(base), "to": _field(item, "to"), "to_name": _field(item, "to_name")})
                result.append(personalize(req, _variables(item.get("vars"), index)))
        except Refusal as refusal:
            result.append((index, refusal))
    return result


def _refused_body(refused: list) -> Response:
    first = refused[0][1]
    return Response({
        "code": -1, "msg": first.msg, "error": "batch_refused",
        "detail": f"{len(refused)} message(s) refused; nothing was queued",
        "refused": [{"index": i, "error": r.error, "msg": r.msg, "detail": r.detail} for i, r in refused],
    }, status=first.http_status)


class SendBatchView(SendView):
    def post(self, request, *args, **kwargs):
        try:
            if _content_length(request) > settings.HUB_MAX_REQUEST_BYTES:
                raise Refusal("too_large", f"request body over {settings.HUB_MAX_REQUEST_BYTES} bytes")
            if request.content_type != "application/json":
                raise Refusal("bad_request", "the batch API takes a JSON body (Content-Type: application/json)")
            try:
                data = request.data
            except RequestDataTooBig as exc:
                raise Refusal("too_large", str(exc)) from exc
            except (ParseError, UnsupportedMediaType, UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise Refusal("bad_request", str(exc)[:200]) from exc
            if not isinstance(data, dict):
                raise Refusal("bad_request", "the body must be a JSON object")
            if not _is_utf8(data):
                raise Refusal("bad_request", "the body holds text that is not valid UTF-8")
            admitted = admit(request.META, lambda name: _field(data, name), "send")
            if admitted.action != "send":
                raise Refusal("unknown_action", "the batch API only sends")
            reqs = batch_requests(data)
            shape_errors = [item for item in reqs if isinstance(item, tuple)]
            if shape_errors:
                return _refused_body(shape_errors)
            key = request.META.get("HTTP_IDEMPOTENCY_KEY", "") or _field(data, "request_id")
            result = accept_batch(admitted.app, reqs, key, admitted.ip)
        except BatchRefused as refused:
            return _refused_body(refused.refused)
        except Refusal as refusal:
            return refusal_response(refusal)
        body = {"code": 0, "msg": "已加入发送队列", "count": len(result.rows),
                "results": [{"index": i, "id": row.id, "status": row.status} for i, row in enumerate(result.rows)]}
        if result.replayed:
            body["idempotent_replay"] = True
        return Response(body)
