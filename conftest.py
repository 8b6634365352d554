"""Fixtures shared by every test: real SMTP servers (aiosmtpd, in-process, on loopback),
self-signed TLS certificates, provisioned apps, and a way to run queued tasks."""

from __future__ import annotations

import contextlib
import datetime
import email
import os
import random
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """One test database per pytest process, so two test runs on one machine (or one
    checkout) never share, and destroy, each other's database."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        name = test.get("NAME") or f"test_{db['NAME']}"
        if db["ENGINE"].endswith("sqlite3"):
            base, ext = os.path.splitext(name)
            test["NAME"] = f"{base}-{os.getpid()}{ext}"
        else:
            test["NAME"] = f"{name}_{os.getpid()}"
    yield
    from smtphub.sqlite3.base import gate_path

    for db in settings.DATABASES.values():
        if db["ENGINE"].endswith("sqlite3"):
            # The write gate's file; Django removes the database itself.
            with contextlib.suppress(FileNotFoundError):
                os.remove(gate_path(db["TEST"]["NAME"]))


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Delivery keeps SMTP connections open across tasks, the API keeps the site settings a
    few seconds: every test starts without either (its database was rolled back)."""
    from hub.models import Site

    Site._cached = None
    yield
    from hub.campaigns import topup
    from hub.delivery.transport import pool

    pool.close_all()
    topup.cancel_pending()
    Site._cached = None


def subprocess_database_url() -> str:
    """DATABASE_URL naming *this* test run's database (its name carries the pytest pid, see
    django_db_modify_db_settings), for a child process such as qcluster or smtpd."""
    from urllib.parse import quote

    from django.db import connection

    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(sd['NAME']).resolve()}"  # absolute path: sqlite:////abs/file
    if connection.vendor == "mysql":
        host = sd.get("HOST") or ""
        unix_socket = (sd.get("OPTIONS") or {}).get("unix_socket") or (host if host.startswith("/") else "")
        if host.startswith("/"):
            host = ""
        query = f"?unix_socket={quote(unix_socket, safe='')}" if unix_socket else ""
        port = f":{sd['PORT']}" if sd.get("PORT") else ""
        auth = f"{quote(sd['USER'] or '', safe='')}:{quote(sd['PASSWORD'] or '', safe='')}@"
        return f"mysql://{auth}{host}{port}/{sd['NAME']}{query}"
    raise RuntimeError(f"no DATABASE_URL recipe for {connection.vendor}")


def stop_process(proc, deadline: float = 15.0) -> None:
    """Stop a child started with start_new_session=True: SIGTERM (the graceful path), SIGKILL
    after `deadline`, and in any case SIGKILL its process group so no worker outlives it."""
    import signal
    import subprocess

    def killpg() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pgid == pid: it leads its own session
        except (ProcessLookupError, PermissionError):
            pass

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            killpg()
            proc.wait(timeout=deadline)
    killpg()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port for a test server to listen on. Chosen below the kernel's ephemeral
    range: a port the kernel picked with bind(0) and that was then closed can be taken by
    any outgoing connection (a client, the database) before the server binds it, which made
    "Address already in use" flakes under parallel tests. Random, so parallel test processes
    rarely meet, checked bindable, and never handed out twice by one process."""
    low, high = 20000, min(_EPHEMERAL[0], 65536) - 1
    if high - low < 1000:  # an unusual ephemeral range: fall back to the kernel's choice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(200):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with `cryptography`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=policy.default)


@dataclass
class SinkHandler:
    """Records what arrives. `refuse` maps recipient -> SMTP reply for RCPT (e.g. a 550)."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                                          or envelope.content))
        return "250 2.0.0 Ok: queued as TEST"


@dataclass
class SmtpSink:
    host: str
    port: int
    handler: SinkHandler
    controller: Controller
    username: str = ""
    password: str = ""

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages


class Gauge:
    """How many at once, and the most at once (sessions open, messages in DATA)."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def up(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def down(self) -> None:
        with self.lock:
            self.now -= 1


def start_session_counting(handler, host: str, port: int) -> tuple[Controller, Gauge]:
    """A started aiosmtpd server on host:port whose Gauge counts its open connections
    (SMTP sessions) at once: the concurrency tests' view of max_connections. Stop the
    controller when done."""
    sessions = Gauge()

    class CountingSMTP(SMTP):
        def connection_made(self, transport):
            sessions.up()
            super().connection_made(transport)

        def connection_lost(self, error):
            sessions.down()
            super().connection_lost(error)

    class CountingController(Controller):
        def factory(self):
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    controller = CountingController(handler, hostname=host, port=port)
    controller.start()
    return controller, sessions


def _server_ssl_context(tls_files) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


@pytest.fixture
def smtp_sink_factory(tls_files):
    """Start aiosmtpd servers: mode 'plain', 'starttls' or 'ssl'; with `username` set the
    server requires AUTH (PLAIN/LOGIN) with that username/password. `host` / `port` bind it
    elsewhere on loopback (direct delivery's MX hosts: 127.0.0.2, 127.0.0.3, ... on one
    port); `handler` replaces the recording SinkHandler (a subclass of it, usually)."""
    started: list[Controller] = []

    def start(mode: str = "plain", username: str = "", password: str = "", refuse: dict | None = None,
              host: str = "127.0.0.1", port: int | None = None, handler: SinkHandler | None = None) -> SmtpSink:
        handler = handler or SinkHandler(refuse=refuse or {})
        port = port or free_port()
        kwargs: dict = {}
        if username:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = isinstance(auth_data, LoginPassword) and (
                    auth_data.login.decode() == username and auth_data.password.decode() == password)
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=(mode == "starttls"))
        if mode == "starttls":
            kwargs.update(tls_context=_server_ssl_context(tls_files), require_starttls=True)
        elif mode == "ssl":
            kwargs.update(ssl_context=_server_ssl_context(tls_files))
        controller = Controller(handler, hostname=host, port=port, **kwargs)
        controller.start()
        started.append(controller)
        return SmtpSink(host, port, handler, controller, username, password)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_sink(smtp_sink_factory) -> SmtpSink:
    return smtp_sink_factory()


@pytest.fixture
def told():
    """hub.events seen while the test runs (every kind, in order)."""
    from hub import events

    seen: list = []

    def receiver(sender, event, **kwargs):
        seen.append(event)

    events.happened.connect(receiver, dispatch_uid="tests-told")
    yield seen
    events.happened.disconnect(dispatch_uid="tests-told")


@pytest.fixture
def make_server(db):
    from hub.models import SmtpServer

    def make(sink: SmtpSink | None = None, **fields) -> SmtpServer:
        values = {"name": "test", "host": "127.0.0.1", "port": free_port(), "security": "none",
                  "from_email": "noreply@example.com", "timeout": 5}
        if sink is not None:
            values.update(host=sink.host, port=sink.port, username=sink.username)
        password = fields.pop("password", sink.password if sink else "")
        values.update(fields)
        server = SmtpServer(**values)
        server.set_password(password)
        server.save()
        return server

    return make


@dataclass
class Provisioned:
    app: object
    secret: str

    @property
    def creds(self) -> dict:
        return {"appid": str(self.app.id), "appsecret": self.secret}


@pytest.fixture
def make_app(db):
    from hub.models import App, AppServer

    def make(*servers, **fields) -> Provisioned:
        app = App(name=fields.pop("name", "测试应用"), **fields)
        secret = app.rotate_secret()
        app.save()
        for i, server in enumerate(servers):
            AppServer.objects.create(app=app, server=server, priority=i)
        return Provisioned(app, secret)

    return make


@pytest.fixture
def run_queue(db):
    """Run what the API queued, the way a qcluster worker would: take the signed task
    packages off the ORM broker and call them."""
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    def run() -> int:
        broker = get_broker()
        count = 0
        while True:
            batch = broker.dequeue()
            if not batch:
                return count
            for ack_id, payload in batch:
                task = SignedPackage.loads(payload)
                func = import_string(task["func"]) if isinstance(task["func"], str) else task["func"]
                func(*task["args"], **task["kwargs"])
                broker.acknowledge(ack_id)
                count += 1

    return run


# --- a test DNS server ---------------------------------------------------------------------

class TestDns:
    """A small authoritative DNS server (dnslib) on 127.0.0.1, UDP and TCP on one random
    port, answering from records a test sets at runtime; NXDOMAIN for a name without any
    record, an empty answer (NODATA) for a name that has records of other types. Used by the
    sending-domain checks (SPF/MX/DKIM) and the tracking domains' CNAME checks.

        dns_server.add("example.org", "TXT", "v=spf1 include:spf.hub.test -all")
        dns_server.add("example.org", "MX", "10 mx.hub.test")
        dns_server.add("track.example.org", "CNAME", "count.hub.test")
    """

    TYPES = ("A", "AAAA", "TXT", "MX", "CNAME")

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._servers: list = []

    @staticmethod
    def _name(name: str) -> str:
        return name.strip().rstrip(".").lower()

    def add(self, name: str, rtype: str, value: str) -> None:
        rtype = rtype.upper()
        if rtype not in self.TYPES:
            raise ValueError(f"unsupported record type {rtype}")
        with self.lock:
            self.records.setdefault((self._name(name), rtype), []).append(value)

    def set(self, name: str, rtype: str, *values: str) -> None:
        """Replace the `rtype` records of `name` (no values: remove them)."""
        with self.lock:
            self.records.pop((self._name(name), rtype.upper()), None)
        for value in values:
            self.add(name, rtype, value)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.queries.clear()

    def _rdata(self, rtype: str, value: str):
        from dnslib import AAAA, CNAME, MX, TXT, A

        if rtype == "A":
            return A(value)
        if rtype == "AAAA":
            return AAAA(value)
        if rtype == "CNAME":
            return CNAME(value)
        if rtype == "MX":
            preference, _sep, host = value.strip().partition(" ")
            return MX(host.strip(), int(preference))
        raw = value.encode("utf-8")  # TXT: strings of at most 255 bytes (RFC 1035 3.3.14)
        return TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])

    def resolve(self, request, handler):
        from dnslib import QTYPE, RCODE, RR

        reply = request.reply()  # authoritative answer (aa=1, ra=1)
        qname = str(request.q.qname)
        name, qtype = self._name(qname), QTYPE.get(request.q.qtype)
        with self.lock:
            self.queries.append((name, qtype))
            records = dict(self.records)
        if not any(key[0] == name for key in records):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        target, types = name, [qtype]
        cname = records.get((name, "CNAME"))
        if cname and qtype != "CNAME":
            reply.add_answer(RR(qname, QTYPE.CNAME, rdata=self._rdata("CNAME", cname[0]), ttl=60))
            target = self._name(cname[0])  # followed when it is ours
        for rtype in types:
            for value in records.get((target, rtype), []):
                reply.add_answer(RR(target + ".", getattr(QTYPE, rtype), rdata=self._rdata(rtype, value), ttl=60))
        return reply

    def start(self) -> None:
        from dnslib.server import DNSLogger, DNSServer

        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        for _attempt in range(20):
            port = free_port()
            try:
                udp = DNSServer(self, port=port, address="127.0.0.1", logger=quiet)
                tcp = DNSServer(self, port=port, address="127.0.0.1", tcp=True, logger=quiet)
            except OSError:  # the port was taken for UDP or TCP meanwhile: another one
                continue
            udp.start_thread()
            tcp.start_thread()
            self._servers, self.port = [udp, tcp], port
            return
        raise RuntimeError("no free port for the test DNS server")

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def resolver(self, tcp: bool = False):
        """A dnspython resolver asking only this server."""
        import dns.nameserver
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", self.port)]
        res.lifetime = res.timeout = 5
        return res

    def dkim_dnsfunc(self, name, timeout: float = 5):
        """For dkim.verify(..., dnsfunc=): the TXT record at `name`, asked of this server
        over the network (dnspython), as a receiving MTA would."""
        import dns.resolver

        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = self.resolver().resolve(qname, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)


@pytest.fixture(scope="session")
def _dns_server_session():
    server = TestDns()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(_dns_server_session, settings) -> TestDns:
    """The test DNS server, empty, with HUB_DNS_RESOLVER pointing at it for this test."""
    _dns_server_session.clear()
    settings.HUB_DNS_RESOLVER = _dns_server_session.address
    settings.HUB_DNS_TIMEOUT = 5.0
    yield _dns_server_session
    _dns_server_session.clear()
