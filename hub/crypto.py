"""Secrets at rest: SMTP passwords (reversible, Fernet) and app secrets (one-way, HMAC).

App secrets are checked on every API request, so they are hashed with HMAC-SHA256 under a
server key rather than a slow password hasher: a slow hash would make the send API an easy
CPU denial-of-service target, and a 32-byte random secret does not need key stretching.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured key."""


def _derived(purpose: str) -> bytes:
    # Development fallback only (hub.checks reports it as an error when DEBUG is off):
    # derive a stable key from SECRET_KEY so a dev install works without extra setup.
    return hashlib.sha256(f"smtphub:{purpose}:{settings.SECRET_KEY}".encode()).digest()


def uses_derived_keys() -> bool:
    return not settings.HUB_ENCRYPTION_KEYS or not settings.HUB_SECRET_HASH_KEY


def _fernet() -> MultiFernet:
    keys = settings.HUB_ENCRYPTION_KEYS or [base64.urlsafe_b64encode(_derived("fernet")).decode()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(
            "cannot decrypt a stored SMTP password: none of HUB_ENCRYPTION_KEYS matches "
            "(was the key changed or removed?)"
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a token with the newest key (raises DecryptionError if no key fits)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError("cannot re-encrypt: no configured key decrypts this value") from exc


def new_app_secret() -> str:
    # 24 random bytes -> 32 URL-safe characters, like the original system's secrets. Never
    # starting with "-": command-line tools (swaks, curl -u) would read it as an option.
    while (secret := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return secret


def secret_digest(secret: str) -> str:
    key = settings.HUB_SECRET_HASH_KEY.encode() if settings.HUB_SECRET_HASH_KEY else _derived("appsecret")
    return hmac.new(key, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret), digest or "")
