"""Polling an IMAP bounce mailbox (hub.inbound.imap) against a real Dovecot the test starts
(Debian's dovecot-imapd; skipped with the reason when the binary is absent): new messages
are processed once, flagged \\Seen, an oversized one skipped; a refused login is recorded on
the mailbox and changes nothing."""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port, stop_process
from hub.inbound import imap
from hub.inbound.models import BounceMailbox, Report
from hub.models import FailureType, SendLog, Suppression

from .conftest import sample

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
USER, PASSWORD = "bounces", "s3cret-pass"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(DOVECOT is None, reason="dovecot is not installed (apt-get install dovecot-imapd)")]


@dataclass
class Imap:
    host: str
    port: int

    def append(self, raw: bytes) -> None:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            conn.login(USER, PASSWORD)
            typ, data = conn.append("INBOX", None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def seen(self) -> list[int]:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            conn.login(USER, PASSWORD)
            conn.select("INBOX", readonly=True)
            return sorted(int(x) for x in conn.uid("SEARCH", None, "SEEN")[1][0].split())
        finally:
            conn.logout()


def _accounts() -> tuple[str, str, str, str]:
    """(internal user, its group, login user, mail user): Dovecot refuses root for its login
    and mail processes, so as root the package's own users serve; otherwise ours."""
    if os.geteuid() != 0:
        me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        return me, group, me, me
    return "dovecot", "dovecot", "dovenull", "dovecot"


@pytest.fixture
def dovecot():
    internal, group, login, mail_user = _accounts()
    root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    root.chmod(0o755)  # the login and mail processes run as other users
    for sub in ("mail", "home"):
        (root / sub).mkdir()
        if os.geteuid() == 0:
            shutil.chown(root / sub, mail_user, mail_user)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    port = free_port()
    (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = 0
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
""")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                stop_process(proc)
                pytest.fail(f"dovecot did not start:\n{log[-3000:]}")
            time.sleep(0.1)
    yield Imap("127.0.0.1", port)
    stop_process(proc)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot, account) -> BounceMailbox:
    box = BounceMailbox(account=account, name="bounces", host=dovecot.host, port=dovecot.port,
                        security=BounceMailbox.Security.NONE, username=USER)
    box.set_password(PASSWORD)
    box.save()
    return box


def test_new_messages_are_processed_once(dovecot, mailbox, sent, settings):
    first, second = sent.row(), sent.row(to="full@example.com")
    # Returned to the From address, so no VERP: matched by the hub's headers in the copy.
    dovecot.append(sample("exim-plain.eml", first, crlf=True, RETURN_PATH="noreply@example.org"))
    dovecot.append(b"From: alice@example.com\r\nSubject: Out of office\r\n\r\nAway.\r\n")  # not a report

    assert imap.poll(mailbox) == 2

    first.refresh_from_db()
    assert (first.status, first.failure_type) == (SendLog.Status.FAILED, FailureType.NOT_EXIST)
    assert list(Report.objects.values_list("source", "matched_by", "mailbox_id")) == [("imap", "header", mailbox.id)]
    assert Suppression.objects.get().email == "ghost@example.com"
    assert dovecot.seen() == [1, 2]
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 2 and mailbox.uid_validity > 0

    # Nothing new: nothing read again. A new bounce: only that one.
    assert imap.poll(mailbox) == 0
    dovecot.append(sample("qq-mailbox-full.eml", second, crlf=True, RETURN_PATH="noreply@example.org"))
    assert imap.poll(mailbox) == 1
    assert Report.objects.count() == 2
    second.refresh_from_db()
    assert second.failure_type == FailureType.OVER_QUOTA


def test_an_oversized_message_is_skipped(dovecot, mailbox, sent, settings):
    settings.HUB_INBOUND_MAX_BYTES = 2000
    row = sent.row()
    dovecot.append(sample("postfix-user-unknown.eml", row, crlf=True))
    assert imap.poll(mailbox) == 0
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 1  # passed over, not retried for ever
    assert not Report.objects.exists() and not Suppression.objects.exists()
    assert dovecot.seen() == []


def test_a_refused_login_is_recorded_and_changes_nothing(dovecot, mailbox, sent):
    row = sent.row()
    dovecot.append(sample("postfix-user-unknown.eml", row, crlf=True))
    mailbox.set_password("wrong")
    mailbox.save()

    results = imap.poll_all()

    assert "login refused" in results[mailbox.id]
    mailbox.refresh_from_db()
    assert "login refused" in mailbox.last_error and mailbox.last_polled_at is not None
    assert mailbox.last_uid == 0
    assert not Report.objects.exists() and not Suppression.objects.exists()


def test_unreachable_server_is_an_error(mailbox):
    mailbox.port = free_port()  # nobody listens there
    with pytest.raises(imap.PollError, match="cannot connect"):
        imap.poll(mailbox)
