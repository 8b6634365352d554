"""MTA-STS (hub.delivery.mta_sts, RFC 8461) in direct delivery: a domain's `enforce` policy,
served over HTTPS by a test server on loopback, makes TLS with a certificate valid for a
listed MX host mandatory (no plain-text fallback); `testing` changes nothing; policies are
cached. The certificates come from a test CA (HUB_DIRECT_TLS_CA_FILE)."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller

from conftest import SinkHandler, free_port
from hub.delivery import mta_sts
from hub.models import SendLog

S = SendLog.Status
DOMAIN = "secure.test"
MX = f"mx.{DOMAIN}"


def _pki(tmp_path):
    """A test CA and a certificate it signed for the MX and the policy host."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool, names=()):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                            critical=False)
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("Test CA", ca_key, "Test CA", ca_key, True)
    leaf = cert(MX, leaf_key, "Test CA", ca_key, False, names=(MX, f"mta-sts.{DOMAIN}"))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    return tmp_path / "ca.pem", (tmp_path / "leaf.pem", tmp_path / "leaf.key")


def _server_ctx(cert_and_key) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert_and_key)
    return ctx


class Sts:
    """The policy host: HTTPS on 127.0.0.4:HUB_DIRECT_MTA_STS_PORT serving `policy`."""

    def __init__(self, leaf, port: int) -> None:
        self.policy, self.requests = "", 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                body = outer.policy.encode()
                self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.4", port), Handler)
        self.httpd.socket = _server_ctx(leaf).wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sts(world, settings, tmp_path):
    ca, leaf = _pki(tmp_path)
    settings.HUB_DIRECT_TLS_CA_FILE = str(ca)
    settings.HUB_DIRECT_MTA_STS_PORT = port = free_port()
    server = Sts(leaf, port)
    world.dns.set(f"_mta-sts.{DOMAIN}", "TXT", "v=STSv1; id=20261130T1")
    world.host(f"mta-sts.{DOMAIN}", "127.0.0.4")
    world.mx(DOMAIN, f"10 {MX}")
    world.host(MX, "127.0.0.2")
    server.leaf = leaf
    yield server
    server.stop()


@pytest.fixture
def mx_sink(world):
    started = []

    def start(mode: str, cert_and_key=None):
        kwargs = {}
        if mode == "starttls":
            kwargs.update(tls_context=_server_ctx(cert_and_key), require_starttls=True)
        handler = SinkHandler()
        controller = Controller(handler, hostname="127.0.0.2", port=world.port, **kwargs)
        controller.start()
        started.append(controller)
        return handler

    yield start
    for controller in started:
        controller.stop()


ENFORCE = f"version: STSv1\nmode: enforce\nmx: {MX}\nmax_age: 86400\n"


def test_an_enforced_policy_delivers_over_verified_tls(world, sts, mx_sink):
    sts.policy = ENFORCE
    sink = mx_sink("starttls", sts.leaf)
    rows = world.deliver(world.send(f"a@{DOMAIN}"), world.send(f"b@{DOMAIN}"))
    assert [r.status for r in rows] == [S.SENT, S.SENT], [r.error for r in rows]
    assert len(sink.messages) == 2
    assert sts.requests == 1  # the policy is cached


def test_an_enforced_policy_refuses_a_certificate_it_cannot_verify(world, sts, mx_sink, tls_files):
    sts.policy = ENFORCE
    sink = mx_sink("starttls", tls_files)  # self-signed, for localhost: fine opportunistically, not here
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.RETRYING and row.attempts == 1
    assert "MTA-STS" in row.error and sink.messages == []


def test_an_enforced_policy_needs_starttls(world, sts, mx_sink):
    sts.policy = ENFORCE
    sink = mx_sink("plain")
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.RETRYING and "no STARTTLS offered" in row.error and sink.messages == []


def test_mx_hosts_the_policy_does_not_name_are_not_used(world, sts, mx_sink):
    sts.policy = "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n"
    sink = mx_sink("starttls", sts.leaf)
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.RETRYING and "no MX host matches" in row.error and sink.messages == []


def test_a_testing_policy_changes_nothing(world, sts, mx_sink, tls_files):
    sts.policy = ENFORCE.replace("enforce", "testing")
    sink = mx_sink("starttls", tls_files)
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.SENT and len(sink.messages) == 1


def test_a_policy_that_cannot_be_fetched_is_no_policy(world, sts, mx_sink, tls_files, settings):
    sts.policy = ENFORCE
    settings.HUB_DIRECT_MTA_STS_PORT = free_port()  # nothing listens there
    sink = mx_sink("starttls", tls_files)
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.SENT and len(sink.messages) == 1


def test_mta_sts_can_be_turned_off(world, sts, mx_sink, tls_files, settings):
    settings.HUB_DIRECT_MTA_STS = False
    sts.policy = ENFORCE
    sink = mx_sink("starttls", tls_files)
    [row] = world.deliver(world.send(f"a@{DOMAIN}"))
    assert row.status == S.SENT and sts.requests == 0 and len(sink.messages) == 1


@pytest.mark.parametrize(("text", "expected"), [
    (ENFORCE, ("enforce", (MX,), 86400)),
    ("version: STSv1\r\nmode: testing\r\nmx: a.test\r\nmx: *.b.test\r\nmax_age: 60\r\n",
     ("testing", ("a.test", "*.b.test"), 60)),
    ("version: STSv1\nmode: none\nmax_age: 60\n", ("none", (), 60)),
    ("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 60\n", None),
    ("version: STSv1\nmode: enforce\nmax_age: 60\n", None),  # enforce without any mx
    ("version: STSv1\nmode: strict\nmx: a.test\nmax_age: 60\n", None),
    ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: soon\n", None),
    ("<html>not a policy</html>", None),
])
def test_policy_files_are_parsed_strictly(text, expected):
    found = mta_sts.parse(text)
    assert (found and (found.mode, found.mx, found.max_age)) == expected


def test_wildcards_match_exactly_one_label():
    policy = mta_sts.Policy("enforce", ("*.mail.test", "mx.exact.test"), 60)
    assert policy.matches("mx1.mail.test") and policy.matches("MX.EXACT.TEST.")
    assert not policy.matches("a.b.mail.test") and not policy.matches("mail.test")
    assert not policy.matches("other.exact.test")
