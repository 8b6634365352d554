"""Messages pipelined one behind the other on a session (RFC 2920): the next message's MAIL,
RCPT and DATA leave in the same write as the current message's content, so each message
costs a session one round trip instead of two.

Why: against a server 30 ms away a message took its session two round trips (the envelope
group, then the content and its end-of-data reply: 70.8 ms on average in the bench), so a
hub's rate was its sessions / 70 ms. RFC 2920 allows the content to be the first "command"
of a group: written behind it, the next envelope's replies come back with the content's.

How: a crew thread (hub.delivery.crew) delivers its row A; once the server has said 354 for
A, the session asks `follow` for a next row. The thread takes the crew queue's head B if
its first server is A's (and, behind a transactional row, only another transactional row:
campaign mail never rides the connection kept for transactional mail, nor keeps a session
a transactional message of the process waits for), takes B's send-limit slot, builds B's
message, and writes A's content and B's envelope together. A's outcome is
read and recorded as usual; then the same thread delivers B on the same session, reading
the replies to the envelope already sent (an `Ahead`), and may send C behind B's content.

Crash semantics do not change: B's envelope without its content delivers nothing, so a
killed worker still repeats at most the messages whose content was on the wire (one per
thread). B is in the crew's in-flight rows from the moment it is taken, so a stopping
worker finds it (hub.delivery.crew.Crew.stop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from ..models import SendLog, SmtpServer, ThrottleSlot
from . import throttle, verp
from .message import wire_bytes
from .policy import by_health
from .suppression import suppressed_now
from .transport import SmtpSession, pool

log = logging.getLogger(__name__)


@dataclass
class Ahead:
    """The next row of a chain: its message built, its send-limit slot taken and its
    envelope written behind the previous message's content (replies not read yet)."""

    row: SendLog
    server: SmtpServer
    rcpts: list[str]
    dropped: dict[str, list]
    data: bytes
    sender: str
    throttle_slot: ThrottleSlot | None
    started: object = field(default_factory=timezone.now)
    t0: float = field(default_factory=time.monotonic)
    session: SmtpSession | None = None  # the session its replies arrive on (None: lost)

    def drop(self) -> None:
        """Not delivered on its session (it closed, or the row went elsewhere): the session
        is out of step, so it closes; the send-limit slot goes back."""
        session, self.session = self.session, None
        if session is not None:
            pool.discard(session)
        slot, self.throttle_slot = self.throttle_slot, None
        throttle.release(slot)


class Chain:
    """A crew thread's source of next rows. `take(wanted)` pops the queue's head row if
    `wanted(row, its servers)` (else None) and counts it in flight; `give_back(row)` returns
    a taken row that could not follow, untouched (hub.delivery.crew.Crew._give_back)."""

    def __init__(self, take: Callable[[Callable[[SendLog, list[SmtpServer]], bool]], SendLog | None],
                 give_back: Callable[[SendLog], None]) -> None:
        self.take = take
        self.give_back = give_back
        self.ahead: Ahead | None = None

    def next_row(self) -> SendLog | None:
        """The row whose envelope is on the wire, to deliver next in this thread."""
        return self.ahead.row if self.ahead is not None else None

    def claim_ahead(self, row: SendLog) -> Ahead | None:
        """The Ahead of `row` (now the caller's), or None when row is not the chained one."""
        ahead = self.ahead
        if ahead is None or ahead.row is not row:
            return None
        self.ahead = None
        return ahead

    def follower(self, row: SendLog, server: SmtpServer, session: SmtpSession,
                 prepare: Callable[[SendLog, SmtpServer], Ahead | None] | None = None,
                 ) -> Callable[[], tuple[str, list[str]] | None]:
        """SmtpSession.send's `follow` for `row` on `session` of `server` (`prepare`: how a
        next row is made ready: make_ready below unless a test stands in)."""
        prepare = prepare or make_ready
        def wanted(candidate: SendLog, servers: list[SmtpServer]) -> bool:
            # Its first server now is this session's (so not a direct one: those never chain).
            # A campaign row follows neither a transactional row (whose session may be the
            # reserved one) nor while a transactional message waits in the pool for a session
            # of this server: this one goes back to the pool after its message, as before.
            if candidate.priority and (not row.priority or pool.urgent_waiting(session.key)):
                return False
            return bool(servers) and by_health(servers)[0].pk == server.pk

        def follow() -> tuple[str, list[str]] | None:
            if self.ahead is not None or session.worn_out() or session.slot_lost:
                return None
            candidate = self.take(wanted)
            if candidate is None:
                return None
            ahead = prepare(candidate, server)
            if ahead is None:
                self.give_back(candidate)
                return None
            self.ahead = ahead
            return ahead.sender, ahead.rcpts

        return follow

    def hand_on(self, session: SmtpSession) -> None:
        """After a message: the session goes to the row whose envelope it carries, or back
        to the pool. An Ahead whose session was lost goes its own way (its slot freed)."""
        ahead = self.ahead
        if ahead is not None and ahead.session is None and session.pending is not None and session.is_open:
            ahead.session = session
            return
        pool.put(session)  # (one with an envelope pending and no taker is closed there)
        if ahead is not None and ahead.session is None:
            ahead.drop()  # (no session: frees its send-limit slot only)


def make_ready(row: SendLog, server: SmtpServer) -> Ahead | None:
    """`row` ready to follow another message on a session of `server` (hub.delivery.chain):
    recipients checked, message built and signed, send-limit slot taken. None when it
    cannot follow: it is then delivered on its own, where whatever failed here is recorded."""
    slot = None
    try:
        rcpts, dropped = suppressed_now(row)
        if not rcpts:
            return None
        started, t0 = timezone.now(), time.monotonic()
        # The send limit first: over it, nothing is built for nothing (the server waits at 354).
        slot, wait = throttle.acquire(server)
        if wait:
            return None
        data = wire_bytes(row, server.sender)
        sender = verp.envelope_sender(row, server)
    except Exception:
        log.debug("SendLog %s cannot follow on a session; it is delivered on its own", row.id, exc_info=True)
        try:
            throttle.release(slot)
        except Exception:
            log.exception("could not give back the send-limit slot taken for SendLog %s", row.id)
        return None
    return Ahead(row, server, rcpts, dropped, data, sender, slot, started=started, t0=t0)
