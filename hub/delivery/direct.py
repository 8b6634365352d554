"""Direct delivery: a server of kind "direct" hands a message straight to each recipient
domain's MX hosts (V28's `send_type` `local`) instead of an upstream relay.

One transaction per recipient domain: a message to two domains is two deliveries, each to
its own MX hosts, recorded per recipient like a relay's refused recipients. For each domain:
its route (hub.delivery.mx: MX by preference, A/AAAA fallback, null MX refused), its
destination (hub.delivery.destinations: a provider's limits, or the domain's own), whether
the destination lets a transaction go now (paused after "too many", paced by its rate), then
its MX addresses in order over pooled sessions (hub.delivery.transport: one of the
destination's connection slots each, opportunistic STARTTLS), until one answers about the
message. A connection failure tries the next address/host; an answer about the message
(accepted, refused, 4xx) ends that domain for this attempt.

What each domain's answer makes of the row (hub.delivery.attempt records it, as for relayed
mail: attempts, retries, bounce classification, suppression, quota, events):
- every domain done: `sent` when any recipient has the message (now or in an earlier
  attempt), else `failed` with the last refusal;
- some domains waiting: the row stays `retrying` with only their recipients (its envelope
  narrowed), the others' outcomes are told (events) at once. A wait that is the
  destination's (a "too many" reply, a pause, its rate, all its connections busy) counts no
  attempt: the row comes back when the destination allows; a real temporary failure (no
  MX host reachable, a 4xx about the message, a DNS timeout) counts one, by the schedule.
This module never imports attempt.py (attempt imports it): it returns an Outcome."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from ..models import DeliveryAttempt, SendLog, SmtpServer
from . import destinations, mta_sts, mx, throttle, verp
from .destinations import throttled
from .message import envelope_recipients, wire_bytes
from .transport import ConnectionFailed, DirectTarget, NoConnectionSlot, Outcome, TlsFailed, pool

R = DeliveryAttempt.Result
SENT, REFUSED, DEFERRED, WAITING = "sent", "refused", "deferred", "waiting"


@dataclass
class HostTry:
    """One try on one MX address (a DeliveryAttempt row, with the host in its error text)."""

    result: str
    outcome: Outcome
    started_at: object
    duration_ms: int


@dataclass
class DomainResult:
    domain: str
    rcpts: list[str]
    state: str  # SENT, REFUSED (permanent), DEFERRED (temporary, counted), WAITING (not counted)
    outcome: Outcome
    wait: float = 0.0


@dataclass
class _Message:
    """The signed bytes, built once per row and only when a domain is ready to take them."""

    row: SendLog
    server: SmtpServer
    data: bytes | None = field(default=None)

    def bytes(self) -> bytes:
        if self.data is None:
            self.data = wire_bytes(self.row, self.server.sender)
        return self.data


def by_domain(rcpts: list[str]) -> dict[str, list[str]]:
    """Recipients grouped by their domain (lower case), in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for rcpt in rcpts:
        groups.setdefault(rcpt.rpartition("@")[2].lower().rstrip("."), []).append(rcpt)
    return groups


def helo_name(server: SmtpServer) -> str:
    return server.helo_name or settings.HUB_DIRECT_HELO_NAME


def source_address(server: SmtpServer) -> str:
    return server.source_address or settings.HUB_DIRECT_SOURCE_ADDRESS


def deliver(row: SendLog, server: SmtpServer,
            rcpts: list[str] | None = None) -> tuple[Outcome, list[HostTry], float]:
    """Deliver `row` over the direct server: returns the combined outcome, the tries, and the
    seconds until the waiting domains may go (when their wait counts no attempt). `rcpts`: the
    envelope recipients still allowed (default: all of the row's; attempt.py leaves out those
    suppressed since the message was accepted)."""
    slot, wait = throttle.acquire(server)  # the server's own send limits (e.g. warming an IP)
    if wait:
        return (Outcome(SendLog.Status.FAILED, error="waiting for the direct server's send limits", transient=True,
                        counts_attempt=False), [], wait)
    tries: list[HostTry] = []
    message = _Message(row, server)
    results = [_deliver_domain(server, domain, rcpts, message, tries)
               for domain, rcpts in by_domain(envelope_recipients(row) if rcpts is None else rcpts).items()]
    if not any(r.state in (SENT, REFUSED, DEFERRED) for r in results):
        throttle.release(slot)  # nothing went out: the send-limit step is not used
    return combine(row, results, tries)


def _deliver_domain(server: SmtpServer, domain: str, rcpts: list[str], message: _Message,
                    tries: list[HostTry]) -> DomainResult:
    started, t0 = timezone.now(), time.monotonic()
    if not domain or domain.startswith("["):
        text = f"5.1.2 no direct delivery to address literals or empty domains ({domain or '-'})"
        return _no_route(domain, rcpts, REFUSED, Outcome(SendLog.Status.FAILED, 550, text, text), started, t0, tries)
    try:
        hosts = mx.route(domain)
    except mx.NullMx as exc:
        text = f"5.1.10 {exc.reason}"
        return _no_route(domain, rcpts, REFUSED, Outcome(SendLog.Status.FAILED, 556, text, text), started, t0, tries)
    except mx.NoSuchDomain as exc:
        text = f"5.1.2 {exc.reason}"
        return _no_route(domain, rcpts, REFUSED, Outcome(SendLog.Status.FAILED, 550, text, text), started, t0, tries)
    except mx.DnsTemporary as exc:
        return _no_route(domain, rcpts, DEFERRED, Outcome(SendLog.Status.FAILED, None, "", exc.reason, transient=True),
                         started, t0, tries)
    hosts = [h for h in (_public_only(h) for h in hosts) if h.addresses]
    if not hosts:
        # An MX (or A record) pointing inside: the hub must not be made to talk SMTP to the
        # hosts of its own network for whoever registers a domain.
        text = f"5.4.4 no public address for any MX host of {domain} (HUB_DIRECT_ALLOW_PRIVATE is off)"
        return _no_route(domain, rcpts, REFUSED, Outcome(SendLog.Status.FAILED, 550, text, text), started, t0, tries)
    sts = mta_sts.policy(domain)
    if sts is not None and sts.enforced:
        hosts = [h for h in hosts if sts.matches(h.name)]
        if not hosts:  # RFC 8461 5.1: temporary, the MX records or the policy may be fixed
            return _no_route(domain, rcpts, DEFERRED, Outcome(
                SendLog.Status.FAILED, None, "", "no MX host matches the domain's MTA-STS policy", transient=True),
                started, t0, tries)
    dest, wait = destinations.admit(destinations.find(domain, hosts[0].name))
    if wait:
        why = "paused after a deferral" if dest.paused_until and dest.paused_until > timezone.now() else "paced"
        return _waiting(domain, rcpts, f"destination {dest.name} {why}", wait)
    last: ConnectionFailed | None = None
    refused_everywhere = True  # every host refused the session with a 5xx (not merely unreachable)
    for host in hosts:
        for address in host.addresses:
            target = DirectTarget(host.name, address, settings.HUB_DIRECT_PORT, dest.pk, helo_name(server),
                                  source_address(server), dest.connection_limit,
                                  verify_tls=sts is not None and sts.enforced)
            started, t0 = timezone.now(), time.monotonic()
            where = f"{domain} via {host.name} [{address}]"
            try:
                outcome = _send(server, target, rcpts, message)
            except NoConnectionSlot:
                return _waiting(domain, rcpts, f"all connections to destination {dest.name} are busy",
                                settings.HUB_DIRECT_BUSY_RETRY_SECONDS)
            except ConnectionFailed as exc:
                tries.append(HostTry(R.CONNECT_FAILED, Outcome(SendLog.Status.FAILED, exc.smtp_code, exc.smtp_reply,
                                                               f"{where}: {exc.error}", transient=exc.transient),
                                     started, _ms(t0)))
                if throttled(exc.smtp_code, exc.smtp_reply):  # e.g. a 421 greeting: "too many connections"
                    wait = destinations.deferred(dest.pk, host.name, exc.smtp_code, exc.smtp_reply)
                    return _waiting(domain, rcpts, f"{where}: {exc.error}", wait, exc.smtp_code, exc.smtp_reply)
                last = exc
                refused_everywhere = refused_everywhere and not exc.transient
                continue  # the next address or MX host
            return _answered(domain, rcpts, dest, host.name, where, outcome, started, t0, tries)
    if last is not None and refused_everywhere:  # a 5xx greeting from every host: refused
        text = last.smtp_reply or last.error
        return DomainResult(domain, rcpts, REFUSED, Outcome(SendLog.Status.FAILED, last.smtp_code, text,
                                                            f"{domain}: {last.error}"))
    error = f"no MX host of {domain} could be reached" + (f"; last: {last.error}" if last else "")
    return DomainResult(domain, rcpts, DEFERRED, Outcome(SendLog.Status.FAILED, last.smtp_code if last else None,
                                                         last.smtp_reply if last else "", error, transient=True))


def _public_only(host: mx.MxHost) -> mx.MxHost:
    """The host with only the addresses direct delivery may connect to: public ones, unless
    HUB_DIRECT_ALLOW_PRIVATE (tests; a hub that delivers inside its own network)."""
    if settings.HUB_DIRECT_ALLOW_PRIVATE:
        return host
    public = tuple(a for a in host.addresses if ipaddress.ip_address(a).is_global)
    return host if public == host.addresses else mx.MxHost(host.name, host.preference, public)


def _no_route(domain: str, rcpts: list[str], state: str, outcome: Outcome, started, t0: float,
              tries: list[HostTry]) -> DomainResult:
    """The DNS decided (null MX, no such domain, no answer): a try of its own on record."""
    noted = Outcome(outcome.status, outcome.smtp_code, outcome.smtp_reply, f"{domain}: {outcome.error}",
                    transient=outcome.transient)
    tries.append(HostTry(R.REFUSED if state == REFUSED else R.DEFERRED, noted, started, _ms(t0)))
    return DomainResult(domain, rcpts, state, outcome)


def _send(server: SmtpServer, target: DirectTarget, rcpts: list[str], message: _Message) -> Outcome:
    """One transaction on a pooled session to `target`. A pooled session found dead before
    DATA is replaced once; a failed TLS handshake is tried again in plain text (opportunistic
    TLS, as MTAs do). Raises ConnectionFailed / NoConnectionSlot."""
    wait = settings.HUB_DIRECT_SLOT_WAIT_SECONDS
    try:
        session = pool.get(server, wait=wait, target=target)
    except TlsFailed:
        target = DirectTarget(target.mx_host, target.address, target.port, target.destination_id, target.helo,
                              target.source_address, target.connection_limit, tls=False)  # (never when verified)
        session = pool.get(server, wait=wait, target=target)
    try:
        sender = verp.envelope_sender(message.row, server)  # VERP where it applies
        reused = session.uses > 0
        outcome = session.send(sender, rcpts, message.bytes())
        if outcome.lost_before_data and reused:
            pool.discard(session)
            session = pool.get(server, wait=wait, target=target)
            outcome = session.send(sender, rcpts, message.bytes())
        return outcome
    finally:
        pool.put(session)


def _answered(domain: str, rcpts: list[str], dest, host: str, where: str, outcome: Outcome, started, t0: float,
              tries: list[HostTry]) -> DomainResult:
    """The MX host answered about the message: what that makes of the domain."""
    noted = Outcome(outcome.status, outcome.smtp_code, outcome.smtp_reply,
                    f"{where}: {outcome.error}" if outcome.error else where, dict(outcome.refused), outcome.transient)
    if outcome.status == SendLog.Status.SENT:
        tries.append(HostTry(R.SENT, noted, started, _ms(t0)))
        destinations.delivered(dest)
        slow = [(code, text) for code, text in outcome.refused.values() if throttled(code, text)]
        if slow:  # some recipients refused with "too many": the destination slows down for them
            destinations.deferred(dest.pk, host, *slow[0])
        return DomainResult(domain, rcpts, SENT, outcome)
    refusals = list(outcome.refused.values())
    if throttled(outcome.smtp_code, outcome.smtp_reply) or (
            refusals and all(throttled(code, text) for code, text in refusals)):
        tries.append(HostTry(R.DEFERRED, noted, started, _ms(t0)))
        code, text = (outcome.smtp_code, outcome.smtp_reply) if outcome.smtp_code else refusals[-1]
        wait = destinations.deferred(dest.pk, host, code, text)
        return _waiting(domain, rcpts, noted.error, wait, code, text)
    if outcome.transient:
        tries.append(HostTry(R.DEFERRED, noted, started, _ms(t0)))
        return DomainResult(domain, rcpts, DEFERRED, noted)
    tries.append(HostTry(R.REFUSED, noted, started, _ms(t0)))
    return DomainResult(domain, rcpts, REFUSED, noted)


def _waiting(domain: str, rcpts: list[str], why: str, wait: float, code: int | None = None,
             reply: str = "") -> DomainResult:
    outcome = Outcome(SendLog.Status.FAILED, code, reply, why, transient=True, counts_attempt=False)
    return DomainResult(domain, rcpts, WAITING, outcome, max(wait, 0.5))


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def combine(row: SendLog, results: list[DomainResult], tries: list[HostTry]) -> tuple[Outcome, list[HostTry], float]:
    """One outcome for the row from its domains' results (see the module's docstring)."""
    refused: dict[str, list] = dict(row.refused_recipients or {})  # earlier attempts' refusals stay
    delivered: list[str] = []
    pending: list[str] = []
    waits: list[float] = []
    counted = False
    last_sent = last_failed = last_transient = None
    for result in results:
        outcome = result.outcome
        if result.state == SENT:
            last_sent = outcome
            for rcpt in result.rcpts:
                reply = outcome.refused.get(rcpt)
                if reply is None:
                    delivered.append(rcpt)
                elif 400 <= reply[0] < 500:  # a temporary refusal of one recipient: it waits
                    pending.append(rcpt)
                    if throttled(*reply):
                        waits.append(settings.HUB_DIRECT_BUSY_RETRY_SECONDS)
                    else:
                        counted = True
                else:
                    refused[rcpt] = list(reply)
        elif result.state == REFUSED:
            last_failed = outcome
            for rcpt in result.rcpts:
                reply = outcome.refused.get(rcpt) or [outcome.smtp_code or 550, outcome.smtp_reply or outcome.error]
                refused[rcpt] = list(reply)
        else:
            last_transient = outcome
            pending += result.rcpts
            if result.state == DEFERRED:
                counted = True
            else:
                waits.append(result.wait)
    partly = bool(delivered) or _delivered_before(row)
    if not pending:
        if partly:
            base = last_sent or Outcome(SendLog.Status.SENT, 250, "")
            return Outcome(SendLog.Status.SENT, base.smtp_code, base.smtp_reply, "", refused), tries, 0.0
        base = last_failed or Outcome(SendLog.Status.FAILED, None, "", "no recipient")
        return (Outcome(SendLog.Status.FAILED, base.smtp_code, base.smtp_reply, base.error, refused), tries, 0.0)
    base = last_transient or Outcome(SendLog.Status.FAILED, None, "", "recipients refused temporarily")
    error = base.error if len(results) == 1 else f"{len(pending)} recipient(s) waiting: {base.error}"
    outcome = Outcome(SendLog.Status.FAILED, base.smtp_code, base.smtp_reply, error, refused, transient=True,
                      pending=pending, partly_sent=partly, counts_attempt=counted)
    return outcome, tries, min(waits) if waits else 0.0


def _delivered_before(row: SendLog) -> bool:
    """Did an earlier attempt deliver part of this message? (Only a row with attempts behind
    it can say yes; its sent tries are DeliveryAttempt rows.)"""
    if row.pk is None or not (row.attempts or row.refused_recipients or row.rcpt_to):
        return False
    return DeliveryAttempt.objects.filter(log_id=row.pk, result=R.SENT).exists()
