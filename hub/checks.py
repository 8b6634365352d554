"""System checks: misconfiguration is reported by `manage.py check` (and so before
migrate, runserver and qcluster start), never discovered as a crash in production."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def check_secrets(app_configs, **kwargs):
    errors = []
    if settings.DEBUG:
        return errors
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is the built-in development key while DEBUG is off.",
                hint="Set SECRET_KEY in the environment or .env (bin/run generates one).",
                id="hub.E001",
            )
        )
    if not settings.HUB_ENCRYPTION_KEYS:
        errors.append(
            Error(
                "HUB_ENCRYPTION_KEYS is not set while DEBUG is off; SMTP passwords would be "
                "encrypted with a key derived from SECRET_KEY.",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="hub.E002",
            )
        )
    else:
        from cryptography.fernet import Fernet

        for key in settings.HUB_ENCRYPTION_KEYS:
            try:
                Fernet(key)
            except ValueError:
                errors.append(
                    Error(
                        "HUB_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                        "(32 url-safe base64-encoded bytes).",
                        id="hub.E003",
                    )
                )
    if not settings.HUB_SECRET_HASH_KEY:
        errors.append(
            Error(
                "HUB_SECRET_HASH_KEY is not set while DEBUG is off.",
                hint="Set it to a long random string; changing it later invalidates every AppSecret.",
                id="hub.E004",
            )
        )
    return errors


@register(Tags.security)
def check_smtpd(app_configs, **kwargs):
    from .smtpd import plaintext_auth_allowed

    warnings = []
    if settings.HUB_SMTPD_ALLOW_PLAINTEXT_AUTH and not plaintext_auth_allowed(settings.HUB_SMTPD_HOST):
        warnings.append(Warning(
            "HUB_SMTPD_ALLOW_PLAINTEXT_AUTH is ignored: smtpd does not listen on a loopback address.",
            hint="AUTH on a public address needs TLS: set HUB_SMTPD_TLS_CERT and HUB_SMTPD_TLS_KEY.",
            id="hub.W003"))
    if bool(settings.HUB_SMTPD_TLS_CERT) != bool(settings.HUB_SMTPD_TLS_KEY):
        warnings.append(Warning("Set both HUB_SMTPD_TLS_CERT and HUB_SMTPD_TLS_KEY (or neither).", id="hub.W004"))
    return warnings


@register(Tags.security, deploy=True)
def check_deploy(app_configs, **kwargs):
    warnings = []
    if "*" in settings.ALLOWED_HOSTS:
        warnings.append(Warning("ALLOWED_HOSTS contains '*'.", id="hub.W001"))
    if settings.Q_CLUSTER["retry"] <= settings.Q_CLUSTER["timeout"]:
        warnings.append(
            Warning("Q_CLUSTER retry must be longer than timeout, or tasks may run twice.", id="hub.W002")
        )
    return warnings


@register()
def check_direct_delivery(app_configs, **kwargs):
    """Direct delivery's settings (docs/direct-delivery.md): errors that would fail every
    direct connection, and (deploy) a HELO name receivers would refuse."""
    import ipaddress
    import os

    problems = []
    source = settings.HUB_DIRECT_SOURCE_ADDRESS
    if source:
        try:
            ipaddress.ip_address(source)
        except ValueError:
            problems.append(Error(f"HUB_DIRECT_SOURCE_ADDRESS is not an IP address: {source!r}.", id="hub.E005"))
    ca_file = settings.HUB_DIRECT_TLS_CA_FILE
    if ca_file and not os.path.isfile(ca_file):
        problems.append(Error(f"HUB_DIRECT_TLS_CA_FILE does not name a file: {ca_file!r}.", id="hub.E006"))
    return problems


@register(deploy=True)
def check_direct_helo(app_configs, **kwargs):
    helo = settings.HUB_DIRECT_HELO_NAME
    if "." not in helo or helo.endswith((".localdomain", ".local", ".invalid", ".localhost")):
        return [Warning(
            f"HUB_DIRECT_HELO_NAME is {helo!r}: receiving servers refuse or distrust an EHLO name that is not a "
            "public host name.",
            hint="Only matters for SMTP servers of kind direct: set it (or HUB_DOMAIN, or each direct server's "
                 "HELO name) to a name whose A record and reverse DNS match the sending address.",
            id="hub.W005")]
    return []
