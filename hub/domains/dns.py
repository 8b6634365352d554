"""DNS checks of a sending domain, with dnspython against the configured resolver.

`HUB_DNS_RESOLVER` = "host:port" (or "host", port 53) of the resolver to ask; empty = the
system's (/etc/resolv.conf). Tests and air-gapped sites point it at their own server.

The rules (V28 (a)7, our hosts instead of the vendor's):
- SPF: the domain's one `v=spf1` TXT record has the term `include:<HUB_SPF_INCLUDE>`
  (qualifier `+` or none). Two SPF records are a permanent error (RFC 7208 4.5): not ok.
  Nothing is evaluated recursively: the include is what the hub needs.
- MX: one of the domain's MX hosts is `HUB_MX_HOST`.
- DKIM: the TXT record at `<selector>._domainkey.<domain>` carries our public key (`p=`)
  for the right key type (`k=`, default rsa).
Verification passes when SPF and MX are right (the reference: "SPF and MX must be correct");
DKIM is reported beside them."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.resolver
from django.conf import settings

from hub.delivery.mx import parse_resolver, resolver  # noqa: F401  (parse_resolver: for the checks)


class DnsUnavailable(Exception):
    """The resolver did not answer (timeout, SERVFAIL): the check proves nothing either way."""


def _query(name: str, rdtype: str) -> list:
    try:
        return list(resolver().resolve(name, rdtype, raise_on_no_answer=False) or [])
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
        raise DnsUnavailable(f"{rdtype} {name}: {exc.__class__.__name__}") from exc


def txt(name: str) -> list[str]:
    """Each TXT record at `name`, its strings joined (long records come in 255-byte pieces)."""
    return [b"".join(r.strings).decode("utf-8", "replace") for r in _query(name, "TXT")]


def mx_hosts(name: str) -> list[str]:
    return [r.exchange.to_text(omit_final_dot=True).lower() for r in _query(name, "MX")]


def _host(value: str) -> str:
    return value.strip().rstrip(".").lower()


def spf_ok(records: list[str]) -> bool:
    spf = [r for r in records if r.strip().lower().split(" ")[0] == "v=spf1"]
    if len(spf) != 1:
        return False
    want = _host(settings.HUB_SPF_INCLUDE)
    for term in spf[0].split()[1:]:
        term = term.lower()
        term = term.removeprefix("+")
        if term.startswith("include:") and _host(term[len("include:"):]) == want:
            return True
    return False


def dkim_tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def dkim_ok(records: list[str], public_key: str, kind: str = "rsa") -> bool:
    for record in records:
        tags = dkim_tags(record)
        if tags.get("p") == public_key and tags.get("k", "rsa").lower() == kind:
            return True
    return False


@dataclass
class CheckResult:
    spf_ok: bool = False
    mx_ok: bool = False
    dkim_ok: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.spf_ok and self.mx_ok


def check(name: str, dkim_keys: list[tuple[str, str, str]] = ()) -> CheckResult:
    """Look `name` up. `dkim_keys`: (selector, public key, k) of each key that must be
    published; DKIM is ok when all are. Raises DnsUnavailable when the resolver fails."""
    result = CheckResult()
    records = txt(name)
    result.spf_ok = spf_ok(records)
    if not result.spf_ok:
        found = [r for r in records if r.lower().startswith("v=spf1")]
        result.notes.append(f"SPF: include:{settings.HUB_SPF_INCLUDE} not found"
                            + (f" in {found[0][:200]!r}" if len(found) == 1 else
                               " (more than one SPF record)" if found else " (no SPF record)"))
    hosts = mx_hosts(name)
    result.mx_ok = _host(settings.HUB_MX_HOST) in [_host(h) for h in hosts]
    if not result.mx_ok:
        result.notes.append(f"MX: {settings.HUB_MX_HOST} not among {', '.join(hosts[:5]) or 'no MX record'}")
    missing = [sel for sel, public, kind in dkim_keys if not dkim_ok(txt(f"{sel}._domainkey.{name}"), public, kind)]
    result.dkim_ok = bool(dkim_keys) and not missing
    if missing:
        result.notes.append("DKIM: no matching record at " + ", ".join(f"{s}._domainkey.{name}" for s in missing))
    return result
