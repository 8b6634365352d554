"""Secrets at rest: SMTP passwords (Fernet, reversible, rotatable keys) and app secrets
(HMAC-SHA256 digests; the secret itself is never stored)."""

from __future__ import annotations

import hashlib
import hmac
import io
import re

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from hub import crypto
from hub.crypto import DecryptionError
from hub.models import App, SmtpServer

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))
PASSWORD = "smtp-密码-pässwörd-123"


def reloaded(server: SmtpServer) -> SmtpServer:
    return SmtpServer.objects.get(pk=server.pk)


def rotate_keys() -> str:
    out = io.StringIO()
    call_command("hub_rotate_keys", stdout=out)
    return out.getvalue()


# --- SMTP passwords ---------------------------------------------------------------------

def test_password_round_trip_and_not_stored_in_clear(make_server):
    server = reloaded(make_server(password=PASSWORD))

    assert server.get_password() == PASSWORD
    assert server.password_encrypted
    assert PASSWORD not in server.password_encrypted
    row = SmtpServer.objects.filter(pk=server.pk).values().get()
    assert not any(PASSWORD in str(value) for value in row.values())


def test_same_password_encrypts_differently_each_time(make_server):
    # Fernet tokens carry a random IV: equal passwords cannot be spotted in the table.
    first, second = make_server(password=PASSWORD), make_server(password=PASSWORD)
    assert first.password_encrypted != second.password_encrypted


def test_empty_password_stays_empty(make_server):
    server = reloaded(make_server(password=""))
    assert server.password_encrypted == ""
    assert server.get_password() == ""


def test_round_trip_with_configured_keys(settings, make_server):
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    server = reloaded(make_server(password=PASSWORD))

    assert server.get_password() == PASSWORD
    assert Fernet(KEY_A.encode()).decrypt(server.password_encrypted.encode()).decode() == PASSWORD


def test_wrong_key_raises_never_returns_ciphertext(settings, make_server):
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    server = reloaded(make_server(password=PASSWORD))

    settings.HUB_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(DecryptionError) as info:
        server.get_password()
    # The message explains; it leaks neither the ciphertext nor the key.
    assert "HUB_ENCRYPTION_KEYS" in str(info.value)
    assert server.password_encrypted not in str(info.value)
    assert KEY_A not in str(info.value)


def test_default_derived_key_is_not_a_configured_one(settings, make_server):
    # A password stored under the development key (derived from SECRET_KEY) must not
    # silently decrypt once real keys are configured: it needs rotating first.
    settings.HUB_ENCRYPTION_KEYS = []
    server = reloaded(make_server(password=PASSWORD))

    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    with pytest.raises(DecryptionError):
        server.get_password()


def test_garbage_ciphertext_raises_decryption_error(make_server):
    server = make_server(password=PASSWORD)
    server.password_encrypted = "not-a-fernet-token"
    with pytest.raises(DecryptionError):
        server.get_password()


# --- key rotation ---------------------------------------------------------------------------

def test_rotate_keys(settings, make_server):
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    server = make_server(password=PASSWORD)
    no_password = make_server(password="")
    old_token = reloaded(server).password_encrypted

    settings.HUB_ENCRYPTION_KEYS = [KEY_B, KEY_A]  # new key first, old one still readable
    out = rotate_keys()

    assert re.search(r"\b1\b", out), out  # one password re-encrypted; the empty one is skipped
    assert reloaded(server).password_encrypted != old_token
    assert reloaded(no_password).password_encrypted == ""
    settings.HUB_ENCRYPTION_KEYS = [KEY_B]  # old key dropped
    assert reloaded(server).get_password() == PASSWORD
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]  # and really re-encrypted under B
    with pytest.raises(DecryptionError):
        reloaded(server).get_password()


def test_rotate_with_no_matching_key_changes_nothing(settings, make_server):
    settings.HUB_ENCRYPTION_KEYS = [KEY_B]
    readable = make_server(name="readable", password="pw-b")
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    unreadable = make_server(name="unreadable", password=PASSWORD)
    before = dict(SmtpServer.objects.values_list("id", "password_encrypted"))

    # B can read the first server, nothing can read the second: all or nothing.
    settings.HUB_ENCRYPTION_KEYS = [KEY_C, KEY_B]
    with pytest.raises(CommandError) as info:
        rotate_keys()

    assert str(unreadable.id) in str(info.value)
    assert dict(SmtpServer.objects.values_list("id", "password_encrypted")) == before
    settings.HUB_ENCRYPTION_KEYS = [KEY_B]
    assert reloaded(readable).get_password() == "pw-b"
    settings.HUB_ENCRYPTION_KEYS = [KEY_A]
    assert reloaded(unreadable).get_password() == PASSWORD


# --- app secrets ------------------------------------------------------------------------------

def test_secret_shape_and_digest(settings, db):
    settings.HUB_SECRET_HASH_KEY = "test-hash-key"
    app = App(name="demo")
    secret = app.rotate_secret()
    app.save()

    assert len(secret) >= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)  # URL-safe: no escaping in forms or URLs
    assert re.fullmatch(r"[0-9a-f]{64}", app.secret_digest)
    expected = hmac.new(b"test-hash-key", secret.encode(), hashlib.sha256).hexdigest()
    assert app.secret_digest == expected


def test_secrets_are_random(db):
    secrets_ = {App(name="x").rotate_secret() for _ in range(20)}
    assert len(secrets_) == 20


def test_check_secret(db):
    app = App(name="demo")
    secret = app.rotate_secret()
    app.save()
    app = App.objects.get(pk=app.pk)

    assert app.check_secret(secret) is True
    assert app.check_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is False
    assert app.check_secret(secret + "x") is False
    assert app.check_secret("") is False
    assert app.check_secret(app.secret_digest) is False  # the digest is not a password


def test_check_secret_with_empty_digest_is_false(db):
    # An app row without a digest (e.g. made by hand) must not accept the empty secret.
    assert crypto.secret_matches("", "") is False
    assert App(name="no-digest").check_secret("") is False


def test_changing_hash_key_invalidates_secrets(settings, db):
    settings.HUB_SECRET_HASH_KEY = "key-one"
    app = App(name="demo")
    secret = app.rotate_secret()
    settings.HUB_SECRET_HASH_KEY = "key-two"
    assert app.check_secret(secret) is False


def test_rotate_secret_invalidates_the_old_one(db):
    app = App(name="demo")
    old = app.rotate_secret()
    new = app.rotate_secret()
    assert new != old
    assert app.check_secret(new) and not app.check_secret(old)


def test_secret_is_in_no_column(db):
    app = App(name="demo", from_name="sender")
    secret = app.rotate_secret()
    app.save()

    row = App.objects.filter(pk=app.pk).values().get()
    assert row["secret_digest"] == app.secret_digest
    for column, value in row.items():
        assert secret not in str(value), column


def test_app_secrets_never_start_with_a_dash():
    # Command-line tools (swaks, curl) would read "-abc..." as an option. 1 in 64 secrets
    # started with "-" before; 3,000 draws without one cannot happen by chance.
    from hub.crypto import new_app_secret

    secrets = [new_app_secret() for _ in range(3000)]
    assert not any(s.startswith("-") for s in secrets)
    assert all(len(s) == 32 for s in secrets) and len(set(secrets)) == 3000
