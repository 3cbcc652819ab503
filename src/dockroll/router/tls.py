"""TLS on an environment's listeners: certificates from files, loaded without a restart.

The certificate (with its chain) and its key are joined into one PEM file
beside haproxy.cfg, which listeners marked ``tls`` load (``bind … ssl crt …``,
TLS 1.2 at least). A renewed or replaced certificate goes into the running
router through the runtime API (``set ssl cert`` then ``commit ssl cert``):
connections open keep their session, new ones get the new certificate.
HAProxy checks that the key matches the certificate and refuses the change
otherwise, and the one serving stays. The certificate that runs is told
apart by its SHA-1 fingerprint (``show ssl cert``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dockroll.errors import RouterError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "CERT_FILE",
    "bind_options",
    "bundle",
    "certificate_fingerprint",
    "check_pair",
    "frontend_lines",
    "same_key",
    "self_signed",
]

CERT_FILE = "site.pem"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_KEY = re.compile(
    r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----.*?-----END (?:RSA |EC )?PRIVATE KEY-----", re.DOTALL
)


def bind_options(config_dir: str) -> str:
    return f" ssl crt {config_dir}/{CERT_FILE} ssl-min-ver TLSv1.2 alpn http/1.1"


def frontend_lines(*, redirect_http: bool, hsts_seconds: int | None) -> list[str]:
    """HTTP→HTTPS redirect on plain listeners and HSTS on TLS ones."""
    lines = []
    if redirect_http:
        # A balancer in front that ended TLS says so (trusted: PROXY protocol listeners only).
        lines.append(
            "    http-request redirect scheme https code 301 "
            "if !{ ssl_fc } !{ req.hdr(x-forwarded-proto) -m str https }"
        )
    if hsts_seconds:
        lines.append(
            "    http-after-response set-header Strict-Transport-Security "
            f'"max-age={hsts_seconds}" if {{ ssl_fc }}'
        )
    return lines


def bundle(cert: Path, key: Path, owner: str) -> str:
    """The certificate chain and key as the one PEM HAProxy loads; RouterError when unusable."""
    texts = []
    for path, what in ((cert, "certificate"), (key, "key")):
        try:
            texts.append(path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError) as exc:
            raise RouterError(
                f"router of {owner}: cannot read the TLS {what} {path}: {exc}",
                hint="router.tls.cert and router.tls.key name PEM files (relative to dockroll.yml)",
            ) from None
    cert_text, key_text = texts
    if not _PEM.search(cert_text):
        raise RouterError(f"router of {owner}: {cert} holds no PEM certificate")
    found = _KEY.search(key_text)
    if not found:
        raise RouterError(f"router of {owner}: {key} holds no PEM private key")
    chain = "\n".join(m.group(0) for m in _PEM.finditer(cert_text))
    return f"{chain}\n{found.group(0)}\n"


def check_pair(pem: str, owner: str, cert: Path | None, key: Path | None) -> None:
    """RouterError unless the bundle's key is the private key of its first certificate.

    Where no running HAProxy checks a certificate before it serves (a file read at a
    task's start), this check stands in for the one ``commit ssl cert`` makes.
    """
    from cryptography import x509  # noqa: PLC0415 - only where a certificate is checked
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    first = _PEM.search(pem)
    found = _KEY.search(pem)
    if first is None or found is None:
        raise RouterError(f"router of {owner}: {cert} with {key} is no certificate and key")
    try:
        certificate = x509.load_pem_x509_certificate(first.group(0).encode())
    except ValueError as exc:
        raise RouterError(
            f"router of {owner}: {cert} holds no certificate that can be read: {exc}",
            hint="router.tls.cert names the PEM certificate, its chain after it",
        ) from None
    try:
        private = serialization.load_pem_private_key(found.group(0).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise RouterError(
            f"router of {owner}: {key} holds no private key that can be read: {exc}",
            hint="router.tls.key names the certificate's key, PEM and not encrypted",
        ) from None
    if not same_key(certificate, private):
        raise RouterError(
            f"router of {owner}: the key {key} does not belong to the certificate {cert}",
            hint="router.tls.key must be the key of router.tls.cert: replace both files "
            "together (the certificate that serves stays meanwhile)",
        )


def same_key(certificate: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """Whether ``key`` is the private half of the certificate's public key."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return certificate.public_key().public_bytes(der, spki) == key.public_key().public_bytes(
        der, spki
    )


def certificate_fingerprint(pem: str) -> str:
    """SHA-1 of the first certificate's DER, in upper-case hex as ``show ssl cert`` prints it."""
    match = _PEM.search(pem)
    if match is None:
        raise ValueError("no certificate in the PEM text")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the certificate is not valid base64: {exc}") from None
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def self_signed(
    common_name: str, *, days: float, dns_names: Sequence[str] = ()
) -> tuple[bytes, bytes]:
    """A new P-256 key and a certificate it signs itself: (certificate PEM, key PEM).

    Valid from five minutes ago (clocks drift) for ``days``; ``dns_names`` become
    its subject alternative names.
    """
    import datetime as dt  # noqa: PLC0415 - only where a certificate is made

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns_names]), critical=False
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
