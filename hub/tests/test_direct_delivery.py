"""Direct delivery (hub.delivery.direct): straight to each recipient domain's MX hosts, found
on the test DNS server, one transaction per domain, outcomes per recipient as for relayed
mail (retries, bounce classification, suppression, quota, events)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.models import DeliveryAttempt, FailureType, SendLog, Suppression

from .direct_world import SENDER

S = SendLog.Status
UNKNOWN = "550 5.1.1 <ghost@beta.test>: Recipient address rejected: User unknown"


def due(row: SendLog) -> None:
    """The row's retry time has come (instead of waiting for it)."""
    SendLog.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_message_to_two_domains_is_one_transaction_to_each_domains_mx(world, told):
    alpha = world.domain("alpha.test", "127.0.0.2")
    beta = world.domain("beta.test", "127.0.0.3")
    row = world.send("ann@alpha.test, bob@beta.test", cc="cat@alpha.test")
    [row] = world.deliver(row)
    assert row.status == S.SENT, row.error
    assert row.smtp_server_id == world.server.pk and row.refused_recipients == {}
    assert [m.rcpt_tos for m in alpha.messages] == [["ann@alpha.test", "cat@alpha.test"]]
    assert [m.rcpt_tos for m in beta.messages] == [["bob@beta.test"]]
    assert alpha.messages[0].mail_from == SENDER
    # Both got the same message (one build, one signature), with every visible recipient.
    assert alpha.messages[0].message["To"] == beta.messages[0].message["To"]
    attempts = list(DeliveryAttempt.objects.filter(log=row).values_list("result", "error"))
    assert [r for r, _e in attempts] == ["sent", "sent"]
    assert "alpha.test via mx.alpha.test [127.0.0.2]" in attempts[0][1]
    assert sorted((e.kind, e.email) for e in told) == [("sent", "ann@alpha.test"), ("sent", "bob@beta.test"),
                                                       ("sent", "cat@alpha.test")]


def test_mx_preference_and_a_primary_that_refuses_connections(world):
    world.mx("pref.test", "20 backup.pref.test", "10 primary.pref.test")
    world.host("primary.pref.test", "127.0.0.5")  # nothing listens there: connection refused
    world.host("backup.pref.test", "127.0.0.6")
    backup = world.sink("127.0.0.6")
    [row] = world.deliver(world.send("someone@pref.test"))
    assert row.status == S.SENT, row.error
    assert len(backup.messages) == 1
    tries = list(DeliveryAttempt.objects.filter(log=row).values_list("result", "error"))
    assert tries[0][0] == "connect_failed" and "primary.pref.test [127.0.0.5]" in tries[0][1]
    assert tries[1][0] == "sent" and row.attempts == 1


def test_the_preferred_mx_is_used_when_it_answers(world):
    world.mx("order.test", "20 second.order.test", "10 first.order.test")
    world.host("first.order.test", "127.0.0.7")
    world.host("second.order.test", "127.0.0.8")
    first, second = world.sink("127.0.0.7"), world.sink("127.0.0.8")
    rows = world.deliver(*[world.send(f"u{i}@order.test") for i in range(3)])
    assert [r.status for r in rows] == [S.SENT] * 3
    assert len(first.messages) == 3 and second.messages == []


def test_a_domain_without_mx_gets_its_a_record(world):
    world.host("plain.test", "127.0.0.4")
    sink = world.sink("127.0.0.4")
    [row] = world.deliver(world.send("x@plain.test"))
    assert row.status == S.SENT, row.error
    assert sink.messages[0].rcpt_tos == ["x@plain.test"]


def test_null_mx_fails_at_once_and_sends_nothing(world, told):
    world.mx("nomail.test", "0 .")
    world.host("nomail.test", "127.0.0.9")  # an A record is no reason to try (RFC 7505)
    sink = world.sink("127.0.0.9")
    [row] = world.deliver(world.send("who@nomail.test"))
    assert row.status == S.FAILED and row.attempts == 1
    assert row.smtp_code == 556 and "null MX" in row.smtp_reply
    assert row.failure_type == FailureType.NOT_EXIST
    assert row.refused_recipients == {"who@nomail.test": [556, row.smtp_reply]}
    assert sink.messages == []
    assert [(e.kind, e.email) for e in told] == [("failed", "who@nomail.test")]
    # A domain that takes no mail never will: the address is suppressed like a hard bounce.
    assert Suppression.objects.filter(app=world.app, email="who@nomail.test").exists()


def test_a_null_mx_domain_beside_a_good_one_is_a_refused_recipient(world):
    good = world.domain("good.test", "127.0.0.2")
    world.mx("nomail.test", "0 .")
    [row] = world.deliver(world.send("a@good.test, b@nomail.test"))
    assert row.status == S.SENT
    assert list(row.refused_recipients) == ["b@nomail.test"]
    assert good.messages[0].rcpt_tos == ["a@good.test"]


def test_an_unknown_domain_fails_and_nothing_is_sent(world):
    [row] = world.deliver(world.send("x@nowhere.test"))
    assert row.status == S.FAILED and row.smtp_code == 550 and "NXDOMAIN" in row.smtp_reply
    [attempt] = DeliveryAttempt.objects.filter(log=row)
    assert attempt.result == "refused" and attempt.error.startswith("nowhere.test: 5.1.2")


def test_recipients_refused_by_the_mx_are_recorded_and_hard_bounces_suppressed(world):
    world.domain("beta.test", "127.0.0.3", refuse={"ghost@beta.test": UNKNOWN})
    [row] = world.deliver(world.send("bob@beta.test, ghost@beta.test"))
    assert row.status == S.SENT
    assert row.refused_recipients == {"ghost@beta.test": [550, UNKNOWN[4:]]}
    assert Suppression.objects.filter(email="ghost@beta.test").exists()


def test_starttls_is_used_when_the_mx_offers_it(world):
    # This sink refuses MAIL before STARTTLS: delivery proves the session was encrypted (the
    # certificate is for 127.0.0.1/localhost, not the MX name: accepted, as MTAs do).
    sink = world.domain("secure.test", "127.0.0.2", mode="starttls")
    [row] = world.deliver(world.send("x@secure.test"))
    assert row.status == S.SENT, row.error
    assert len(sink.messages) == 1


def test_part_delivered_message_waits_with_only_its_remaining_recipients(world, told):
    alpha = world.domain("alpha.test", "127.0.0.2")
    beta = world.domain("beta.test", "127.0.0.3",
                        refuse={"bob@beta.test": "451 4.3.0 Temporary local problem"})
    row = world.send("ann@alpha.test, bob@beta.test")
    [row] = world.deliver(row)
    assert row.status == S.RETRYING and row.attempts == 1
    assert row.rcpt_to == "bob@beta.test" and row.next_attempt_at is not None
    assert len(alpha.messages) == 1 and beta.messages == []
    assert [(e.kind, e.email) for e in told] == [("sent", "ann@alpha.test")]
    beta.handler.refuse.clear()  # beta is well again
    due(row)
    [row] = world.deliver(row)
    assert row.status == S.SENT and row.attempts == 2
    assert len(alpha.messages) == 1  # not sent twice
    assert [m.rcpt_tos for m in beta.messages] == [["bob@beta.test"]]
    assert [(e.kind, e.email) for e in told] == [("sent", "ann@alpha.test"), ("sent", "bob@beta.test")]


def test_giving_up_on_the_rest_of_a_part_delivered_message_keeps_it_sent(world, settings):
    settings.HUB_RETRY_SCHEDULE = [60]
    world.domain("alpha.test", "127.0.0.2")
    world.mx("down.test", "10 mx.down.test")
    world.host("mx.down.test", "127.0.0.5")  # never answers
    row = world.send("ann@alpha.test, dan@down.test")
    [row] = world.deliver(row)
    assert row.status == S.RETRYING and row.rcpt_to == "dan@down.test"
    due(row)
    [row] = world.deliver(row)
    # The message reached ann: it was sent; dan is a refused recipient, and nothing is refunded.
    assert row.status == S.SENT and row.attempts == 2
    assert list(row.refused_recipients) == ["dan@down.test"]
    assert "gave up" in row.error


def test_dns_timeouts_are_retried(world, settings):
    settings.HUB_DNS_RESOLVER = "127.0.0.1:9"  # nothing answers DNS there
    settings.HUB_DNS_TIMEOUT = 0.3
    [row] = world.deliver(world.send("x@alpha.test"))
    assert row.status == S.RETRYING and row.attempts == 1 and "DNS" in row.error


@pytest.mark.parametrize("literal", ["x@[127.0.0.2]"])
def test_address_literals_are_not_delivered_directly(world, literal):
    sink = world.sink("127.0.0.2")
    row = SendLog.objects.create(app=world.app, to=literal, subject="s", html_body="<p>x</p>")
    [row] = world.deliver(row)
    assert row.status == S.FAILED and "address literals" in row.smtp_reply
    assert sink.messages == []


def test_mx_hosts_at_private_addresses_are_refused_unless_allowed(world, settings):
    settings.HUB_DIRECT_ALLOW_PRIVATE = False
    sink = world.domain("inside.test", "127.0.0.2")
    [row] = world.deliver(world.send("x@inside.test"))
    assert row.status == S.FAILED and "no public address" in row.smtp_reply
    assert sink.messages == []


def test_a_recipient_refused_for_now_inside_an_accepted_transaction_waits_alone(world, told):
    sink = world.domain("beta.test", "127.0.0.3", refuse={"carl@beta.test": "450 4.2.0 Greylisted, try again"})
    [row] = world.deliver(world.send("bob@beta.test, carl@beta.test"))
    assert row.status == S.RETRYING and row.rcpt_to == "carl@beta.test" and row.attempts == 1
    assert [m.rcpt_tos for m in sink.messages] == [["bob@beta.test"]]
    sink.handler.refuse.clear()
    due(row)
    [row] = world.deliver(row)
    assert row.status == S.SENT and row.refused_recipients == {}
    assert [m.rcpt_tos for m in sink.messages] == [["bob@beta.test"], ["carl@beta.test"]]
    assert sorted(e.email for e in told if e.kind == "sent") == ["bob@beta.test", "carl@beta.test"]


def test_a_failed_tls_handshake_is_tried_again_in_plain_text(world, monkeypatch):
    from hub.delivery import transport

    sink = world.domain("oldtls.test", "127.0.0.2", mode="plain")
    calls = []

    def broken_starttls(self, *args, **kwargs):
        calls.append(self._host)
        raise transport.ssl.SSLError("handshake failure (test)")

    # The sink offers no STARTTLS; make the session believe it does and fail the handshake.
    monkeypatch.setattr(transport.smtplib.SMTP, "has_extn", lambda self, name: name.lower() == "starttls"
                        or name.lower() in self.esmtp_features)
    monkeypatch.setattr(transport.smtplib.SMTP, "starttls", broken_starttls)
    [row] = world.deliver(world.send("x@oldtls.test"))
    assert row.status == S.SENT, row.error
    assert calls == ["mx.oldtls.test"]  # SNI: the MX host's name; once, then plain text
    assert len(sink.messages) == 1


def test_quota_is_taken_at_acceptance_and_given_back_when_the_message_fails(world):
    from hub.models import Account

    account = Account.objects.create(name="直发客户", quota_type=Account.QuotaType.TOTAL, quota_total=10,
                                     quota_available=10)
    world.app.account = account
    world.app.save(update_fields=["account"])
    world.domain("alpha.test", "127.0.0.2")
    world.mx("nomail.test", "0 .")
    sent = world.send("a@alpha.test")
    failed = world.send("b@nomail.test, c@nomail.test")
    assert Account.objects.get(pk=account.pk).quota_available == 7
    sent, failed = world.deliver(sent, failed)
    assert (sent.status, failed.status) == (S.SENT, S.FAILED)
    assert Account.objects.get(pk=account.pk).quota_available == 9  # the failed message's two came back


class RefusingGreeting:
    """A TCP server on one loopback address that greets with `reply` and hangs up."""

    def __init__(self, address: str, port: int, reply: bytes) -> None:
        import socket
        import threading

        self.sock = socket.create_server((address, port))
        self.sock.settimeout(5)
        self.reply, self.sessions = reply, 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            with conn:
                conn.sendall(self.reply)
                conn.recv(1024)

    def close(self) -> None:
        self.sock.close()


def test_a_5xx_greeting_from_every_mx_refuses_the_domain(world):
    world.mx("blocked.test", "10 mx.blocked.test")
    world.host("mx.blocked.test", "127.0.0.2")
    server = RefusingGreeting("127.0.0.2", world.port, b"554 5.7.1 Service unavailable; client host blocked\r\n")
    try:
        [row] = world.deliver(world.send("x@blocked.test"))
    finally:
        server.close()
    assert row.status == S.FAILED and row.smtp_code == 554 and "blocked" in row.smtp_reply
    assert server.sessions == 1


def test_a_421_greeting_slows_the_destination_down_without_failing(world):
    from hub.models import Destination

    world.mx("full.test", "10 mx.full.test")
    world.host("mx.full.test", "127.0.0.2")
    server = RefusingGreeting("127.0.0.2", world.port, b"421 4.7.0 Too many concurrent connections\r\n")
    try:
        [row] = world.deliver(world.send("x@full.test"))
    finally:
        server.close()
    assert row.status == S.RETRYING and row.attempts == 0 and row.smtp_code == 421
    dest = Destination.objects.get(name="full.test")
    assert dest.backoff_level == 1 and dest.deferrals_total == 1
