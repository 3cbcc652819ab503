"""Certificates on the shared edge: one per hostname, chosen by SNI, checked before loading.

The edge's TLS listeners load a default certificate (self-signed, made once,
served to clients whose SNI names no hostname with a certificate) and a
crt-list, ``certs.list``, with one line per hostname: its certificate file and
the hostname as the SNI filter. Hostnames get their certificate at runtime
(``new ssl cert``, ``set ssl cert``, ``commit ssl cert``, ``add ssl crt-list``)
and the files are written beside haproxy.cfg for a reload or a restart.

Before HAProxy sees a certificate dockroll checks it covers the hostname and
that the key is the certificate's: a mismatch is refused with both files
named, and the certificate serving stays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockroll.errors import RouterError
from dockroll.router import tls

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "DEFAULT_CERT",
    "ServedCertificate",
    "check_certificate",
    "covers",
    "default_certificate",
    "parse_show_ssl_cert",
]

DEFAULT_CERT = "default.pem"
_DEFAULT_NAME = "dockroll edge (no certificate for this name)"


@dataclass(frozen=True)
class ServedCertificate:
    """A certificate as the running edge has it (``show ssl cert <file>``)."""

    hostname: str
    not_after: str
    """As HAProxy prints it, e.g. ``Mar  4 21:06:17 2027 GMT``; empty when unknown."""
    fingerprint: str
    subject: str
    issuer: str


def covers(cert: x509.Certificate, hostname: str) -> bool:
    """Whether ``cert`` is valid for ``hostname`` (its DNS names, one-label wildcards)."""
    from cryptography import x509  # noqa: PLC0415 - the router's import path stays light

    try:
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    for name in (n.lower().rstrip(".") for n in names):
        if name == hostname:
            return True
        if name.startswith("*.") and hostname.split(".", 1)[-1] == name[2:] and "." in hostname:
            return True
    return False


def check_certificate(pem: str, hostname: str, source: str) -> dt.datetime:
    """Check the joined PEM (chain then key) suits ``hostname``; its expiry, or RouterError."""
    from cryptography import x509  # noqa: PLC0415 - loaded with a certificate
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        key = serialization.load_pem_private_key(
            pem[pem.index("-----BEGIN", pem.rindex("-----END CERTIFICATE-----")) :].encode(),
            password=None,
        )
    except (ValueError, TypeError) as exc:
        raise RouterError(
            f"edge: {source} is not a usable PEM certificate and key: {exc}"
        ) from None
    if not covers(cert, hostname):
        raise RouterError(
            f"edge: the certificate {source} does not cover {hostname}; the one serving stays",
            hint="its subjectAltName must list the hostname (or a wildcard for it)",
        )
    if not tls.same_key(cert, key):
        raise RouterError(
            f"edge: the key of {source} does not belong to its certificate; the one serving stays",
            hint="edge.tls.key must be the private key of edge.tls.cert",
        )
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        raise RouterError(
            f"edge: the certificate {source} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; the one serving stays"
        )
    return cert.not_valid_after_utc


def default_certificate() -> str:
    """A self-signed certificate and key for clients whose SNI has no certificate here."""
    cert, key = tls.self_signed(_DEFAULT_NAME, days=3650)
    return cert.decode() + key.decode()


def parse_show_ssl_cert(text: str) -> dict[str, str]:
    """``show ssl cert <file>`` as a dict of its ``Key: value`` lines; empty when unknown."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith(" "):
            fields.setdefault(key.strip(), value.strip())
    return fields if "Filename" in fields else {}


def certificate_path(config_dir: str, hostname: str) -> str:
    return f"{config_dir}/certs/{hostname}.pem"


def stored_hostname(path: str) -> str:
    return Path(path).name.removesuffix(".pem")
