"""Every way the hub refuses a request, with the HTTP status and the message callers see."""

from __future__ import annotations

# error code -> (HTTP status, the original system's message). The Chinese messages are the
# PHP system's own and stay as they are: integrators match on them.
REFUSALS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "请求格式错误"),
    "unknown_action": (400, "未知的操作"),
    "appid_required": (400, "appid 不能为空"),
    "appsecret_required": (400, "appsecret 不能为空"),
    "invalid_credentials": (401, "应用不存在"),
    "app_disabled": (403, "应用不可用"),
    "no_smtp_server": (503, "应用未绑定邮件服务"),
    "smtp_server_disabled": (503, "邮件服务不可用"),
    "to_required": (400, "收件人不能为空"),
    "subject_required": (400, "主题不能为空"),
    "message_required": (400, "内容不能为空"),
    "invalid_address": (400, "邮件地址无效"),
    "invalid_field": (400, "参数无效"),
    "header_injection": (400, "参数不能包含换行符"),
    "too_many_recipients": (413, "收件人过多"),
    "too_large": (413, "内容过大"),
    "id_required": (400, "id 不能为空"),
    "not_found": (404, "邮件不存在"),
    "ip_blocked": (403, "IP 已被禁止访问"),
    "ip_not_allowed": (403, "IP 不在应用的白名单内"),
    "rate_limited": (429, "请求过于频繁，请稍后再试"),
    "recipient_suppressed": (400, "收件人已被屏蔽（曾退信）"),
    "idempotency_conflict": (409, "Idempotency-Key 已用于不同的请求"),
    "invalid_event": (400, "日历事件参数无效"),
    "invalid_attachment": (400, "附件无效"),
    # Accounts and quota (hub.quota; docs/accounts.md). 403: the request is understood but the
    # account may not send now; none of them is "try again in a moment" (429).
    "account_disabled": (403, "账户已停用"),
    "service_disabled": (403, "发送服务已停用"),
    "service_not_started": (403, "发送服务尚未开始"),
    "service_expired": (403, "发送服务已过期"),
    "quota_exhausted": (403, "发送额度不足"),
    "too_many_attachments": (413, "附件过多"),
    "attachment_too_large": (413, "附件过大"),
    "malformed_message": (400, "邮件格式错误，无法投递"),
    "login_rate_limited": (429, "登录失败次数过多，请稍后再试"),
}


class Refusal(Exception):
    """A request the hub will not act on. Nothing has been written when it is raised."""

    def __init__(self, error: str, detail: str = "", retry_after: int = 0) -> None:
        self.error = error
        self.http_status, self.msg = REFUSALS[error]
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{error}: {detail}" if detail else error)
