"""The suppression list: a recipient that hard-bounced ("user unknown" family, 5xx) for an
app is suppressed for the app's ACCOUNT; the API then refuses it (400 recipient_suppressed,
nothing written or sent) in to, cc or bcc, from any app of that account; other accounts are
unaffected; other refusals suppress nothing; admins list and remove entries with
`hub_suppression`. Also hub.bounces' classification (providers' wordings: test_bounce_table)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_q.models import OrmQ

from api.tests.test_send_api import good_fields, post
from hub.delivery import bounces
from hub.delivery.outbox import deliver_batch
from hub.models import FailureType, SendLog, Suppression

GHOST = "ghost@example.com"
UNKNOWN = "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown in virtual mailbox table"


@pytest.fixture
def bouncing(smtp_sink_factory, make_server, make_app):
    """A server that says GHOST does not exist, and an app sending through it."""
    sink = smtp_sink_factory(refuse={GHOST: UNKNOWN, "policy@example.com": "550 5.7.1 Relaying denied by policy",
                                     "busy@example.com": "450 4.1.1 User unknown (try again later)",
                                     "Shadow@Example.COM": "550 5.1.1 No such user"})
    server = make_server(sink)
    return sink, server, make_app(server, name="bouncing")


def send(client, creds: dict, **fields):
    return post(client, "/api.php", good_fields(creds, **fields))


def bounce_ghost(client, bouncing, run_queue) -> SendLog:
    _sink, _server, p = bouncing
    r = send(client, p.creds, to=GHOST)
    assert r.status_code == 200, r.content
    assert run_queue() == 1
    return SendLog.objects.get(pk=r.json()["id"])


def test_user_unknown_suppresses_the_recipient(client, bouncing, run_queue):
    sink, _server, p = bouncing

    row = bounce_ghost(client, bouncing, run_queue)

    assert row.status == SendLog.Status.FAILED
    assert row.failure_type == FailureType.NOT_EXIST
    assert row.refused_recipients == {GHOST: [550, UNKNOWN[4:]]}
    entry = Suppression.objects.get()
    assert (entry.account_id, entry.app_id, entry.email, entry.smtp_code, entry.log_id) == (
        p.app.account_id, p.app.id, GHOST, 550, row.id)
    assert (entry.cause, entry.bulk_only, entry.failure_type) == ("hard_bounce", False, FailureType.NOT_EXIST)
    assert "User unknown" in entry.smtp_reply
    assert sink.messages == []


def test_partial_bounce_suppresses_only_the_unknown_recipient(client, bouncing, run_queue):
    sink, _server, p = bouncing
    r = send(client, p.creds, to="alice@example.com, Shadow@Example.COM")
    assert r.status_code == 200
    assert run_queue() == 1

    row = SendLog.objects.get()
    assert row.status == SendLog.Status.SENT  # alice got it
    assert row.refused_recipients == {"Shadow@Example.COM": [550, "5.1.1 No such user"]}
    # Stored lower-case, so any spelling of the address is refused later.
    assert list(Suppression.objects.values_list("email", flat=True)) == ["shadow@example.com"]
    r = send(client, p.creds, to="shadow@EXAMPLE.com")
    assert (r.status_code, r.json()["error"]) == (400, "recipient_suppressed")
    assert [m.rcpt_tos for m in sink.messages] == [["alice@example.com"]]


@pytest.mark.parametrize("fields", [
    {"to": GHOST},
    {"to": GHOST.upper()},
    {"to": f'"Ghost" <{GHOST}>'},
    {"to": f"alice@example.com, {GHOST}"},
    {"cc": GHOST},
    {"bcc": "bob@example.com, Ghost@Example.COM"},
], ids=["to", "to-upper-case", "to-with-name", "to-among-others", "cc", "bcc"])
def test_api_refuses_a_suppressed_recipient(client, bouncing, run_queue, fields):
    sink, _server, p = bouncing
    bounce_ghost(client, bouncing, run_queue)
    logs_before = SendLog.objects.count()

    r = send(client, p.creds, **fields)

    assert r.status_code == 400
    body = r.json()
    assert (body["code"], body["error"], body["msg"]) == (-1, "recipient_suppressed", "收件人已被屏蔽（曾退信）")
    assert GHOST in body["detail"]
    # Nothing written, nothing queued, nothing sent.
    assert SendLog.objects.count() == logs_before
    assert OrmQ.objects.count() == 0
    assert run_queue() == 0
    assert sink.messages == []


def test_suppression_is_per_account(client, bouncing, make_app, run_queue, other):
    _sink, server, p = bouncing
    bounce_ghost(client, bouncing, run_queue)
    sibling = make_app(server, name="sibling", account=p.app.account)
    foreign = make_app(server, name="foreign", account=other)

    r = send(client, sibling.creds, to="alice@example.com", cc=GHOST)
    assert (r.status_code, r.json()["error"]) == (400, "recipient_suppressed")
    r = send(client, foreign.creds, to="alice@example.com", cc=GHOST)
    assert r.status_code == 200, r.content
    assert r.json()["code"] == 0


@pytest.mark.parametrize("to,status", [
    ("policy@example.com", SendLog.Status.FAILED),   # 5xx, but not "does not exist"
    ("busy@example.com", SendLog.Status.RETRYING),   # "user unknown", but only 4xx
])
def test_other_refusals_suppress_nothing(client, bouncing, run_queue, settings, to, status):
    settings.HUB_RETRY_SCHEDULE = [60]
    _sink, _server, p = bouncing
    r = send(client, p.creds, to=to)
    assert r.status_code == 200
    assert run_queue() == 1

    assert SendLog.objects.get().status == status
    assert not Suppression.objects.exists()
    # The address may be used again.
    r = send(client, p.creds, to=to)
    assert r.status_code == 200 and r.json()["code"] == 0


def test_second_bounce_keeps_the_first_entry(client, bouncing, run_queue):
    first = bounce_ghost(client, bouncing, run_queue)
    # A second message to the address was already queued before the first bounce landed.
    _sink, _server, p = bouncing
    second = SendLog.objects.create(app=p.app, to=GHOST, subject="s", html_body="x")

    deliver_batch([second.id])

    second.refresh_from_db()
    assert second.status == SendLog.Status.FAILED
    assert list(Suppression.objects.values_list("log_id", flat=True)) == [first.id]


# --- the command --------------------------------------------------------------------------

def command(*args) -> str:
    out = StringIO()
    call_command("hub_suppression", *args, stdout=out)
    return out.getvalue()


def test_list_and_remove(client, bouncing, make_app, run_queue, other):
    _sink, server, p = bouncing
    bounce_ghost(client, bouncing, run_queue)
    foreign = make_app(server, name="other", account=other)
    Suppression.objects.create(app=foreign.app, email="gone@example.com", smtp_code=550, smtp_reply="no such user")

    lines = [json.loads(line) for line in command("list").splitlines()]
    assert [(e["account"], e["appid"], e["email"], e["smtp_code"], e["cause"]) for e in lines] == [
        (p.app.account_id, p.app.id, GHOST, 550, "hard_bounce"), (other.id, foreign.app.id, "gone@example.com", 550,
                                                                  "manual")]
    assert "User unknown" in lines[0]["smtp_reply"] and lines[0]["created_at"]
    only = [json.loads(line) for line in command("list", "--app", str(foreign.app.id)).splitlines()]
    assert [e["email"] for e in only] == ["gone@example.com"]
    only = [json.loads(line) for line in command("list", "--account", str(other.id)).splitlines()]
    assert [e["email"] for e in only] == ["gone@example.com"]

    assert json.loads(command("remove", "--app", str(p.app.id), GHOST.upper())) == {
        "account": p.app.account_id, "email": GHOST, "removed": True}
    assert list(Suppression.objects.values_list("email", flat=True)) == ["gone@example.com"]

    # Sending to it works again (and reaches the server, which still refuses it).
    r = send(client, p.creds, to=GHOST)
    assert r.status_code == 200 and r.json()["code"] == 0
    assert run_queue() == 1


def test_remove_unknown_entry_fails(bouncing):
    _sink, _server, p = bouncing
    with pytest.raises(CommandError, match="not suppressed"):
        command("remove", "--app", str(p.app.id), "nobody@example.com")


def test_list_empty(db):
    assert command("list") == ""


# --- classification ----------------------------------------------------------------------

@pytest.mark.parametrize("code,text,expected", [
    (None, "cannot connect to 127.0.0.1:25: ConnectionRefusedError", FailureType.CONNECT_ERROR),
    (550, "5.1.1 <a@b.example>: Recipient address rejected: User unknown", FailureType.NOT_EXIST),
    (550, "No such user here", FailureType.NOT_EXIST),
    (550, "Mailbox not found", FailureType.NOT_EXIST),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound", FailureType.NOT_EXIST),
    (553, "Mailbox unavailable: user does not exist", FailureType.NOT_EXIST),
    (550, "Mailbox not found or access denied: 用户不存在", FailureType.NOT_EXIST),
    (552, "5.2.2 Mailbox full", FailureType.OVER_QUOTA),
    (452, "4.2.2 The email account that you tried to reach is over quota", FailureType.OVER_QUOTA),
    # The message's size, and the sender's IP on a block list, are refusals (5): the
    # recipient's mailbox and address are fine. Type 6 is the hub's own suppression list.
    (552, "5.3.4 Message size exceeds fixed limit", FailureType.REFUSED),
    (554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", FailureType.REFUSED),
    (550, "IP in blacklist", FailureType.REFUSED),
    (554, "5.7.1 Message rejected as spam", FailureType.SPAM_CONTENT),
    (550, "DT:SPM 垃圾邮件", FailureType.SPAM_CONTENT),
    (553, "5.1.3 Bad recipient address syntax", FailureType.FORMAT_ERROR),
    (501, "5.5.4 Invalid parameters", FailureType.REFUSED),
    (553, "mailbox name not allowed", FailureType.INVALID),
    (550, "5.7.1 Relaying denied", FailureType.REFUSED),
    (451, "4.3.0 try later", FailureType.REFUSED),
])
def test_failure_type(code, text, expected):
    assert bounces.failure_type(code, text) == expected


@pytest.mark.parametrize("code,text,hard", [
    (550, "5.1.1 User unknown", True),
    (551, "user unknown; please try <x@y>", True),
    (550, "用户不存在", True),
    (450, "4.1.1 User unknown (greylisted)", False),  # temporary: never suppress
    (None, "user unknown", False),
    (550, "5.7.1 Relaying denied", False),
    (552, "5.2.2 Mailbox full", False),
])
def test_is_hard_bounce(code, text, hard):
    assert bounces.is_hard_bounce(code, text) is hard
