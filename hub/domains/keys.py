"""DKIM key pairs: made here, private halves encrypted at rest (hub.crypto, as SMTP
passwords), public halves published by the customer as TXT records."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .models import DkimKey


def generate(algorithm: str) -> tuple[str, str]:
    """(private key text, public key base64 for `p=`).

    RSA: the private key as PKCS#1 PEM (what dkimpy reads), the public key as the DER
    SubjectPublicKeyInfo (RFC 6376 3.6.1). Ed25519 (RFC 8463): the raw 32-byte seed and the
    raw 32-byte public key, both base64 (what dkimpy/PyNaCl read)."""
    if algorithm == DkimKey.Algorithm.ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(seed).decode(), base64.b64encode(public).decode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def new_key(domain, selector: str, algorithm: str, state: str) -> DkimKey:
    private, public = generate(algorithm)
    key = DkimKey(domain=domain, selector=selector, algorithm=algorithm, public_key=public, state=state)
    key.set_private_key(private)
    key.save()
    return key
