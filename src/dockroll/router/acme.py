"""Certificates from an ACME CA (RFC 8555), the HTTP-01 challenge answered by the router.

The router's plain-HTTP listeners answer ``/.well-known/acme-challenge/<token>``
from a runtime map (``acme.map`` beside haproxy.cfg) before anything else,
the HTTPS redirect included; dockroll adds each token's key authorization to
the map through the runtime API while the CA checks it, and removes it after:
nothing reloads.

The account key, the certificate's key and the issued chain live in the state
directory (``acme/<service>-<environment>/``), each readable by its owner only.
Until the CA has issued one, a self-signed stand-in lets HTTPS listeners start;
it is always due for renewal. A renewal that fails leaves the stored
certificate (and so the one serving) as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dockroll.errors import CertificateError

if TYPE_CHECKING:
    from cryptography import x509

# cryptography and requests load where a certificate is read, made or renewed: every
# router command imports this module, and most never touch a certificate.

__all__ = [
    "CHALLENGE_MAP",
    "CHALLENGE_PREFIX",
    "AcmeSettings",
    "CertificateStore",
    "ChallengeBoard",
    "Renewal",
    "frontend_lines",
    "renew",
]

CHALLENGE_MAP = "acme.map"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_STAND_IN = "dockroll stand-in (no certificate issued yet)"


def frontend_lines(config_dir: str) -> list[str]:
    """Answer HTTP-01 challenges from the map; must come before the HTTPS redirect."""
    table = f"{config_dir}/{CHALLENGE_MAP}"
    return [
        "    http-request return status 200 content-type text/plain "
        f"lf-string %[path,map({table})] "
        f"if {{ path_beg {CHALLENGE_PREFIX} }} {{ path,map({table}) -m found }}"
    ]


@dataclass(frozen=True)
class AcmeSettings:
    directory: str
    domains: tuple[str, ...]
    email: str | None = None
    ca_bundle: Path | None = None
    renew_before: float = 30 * 86400.0
    timeout: float = 90.0


class ChallengeBoard(Protocol):
    """Where HTTP-01 answers are published (the router's runtime map)."""

    def publish_challenge(self, path: str, answer: str) -> None: ...

    def withdraw_challenge(self, path: str) -> None: ...


@dataclass(frozen=True)
class Renewal:
    renewed: bool
    not_after: dt.datetime
    reason: str
    """Why it was (or was not) renewed, in words."""


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only, replacing ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _new_key() -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the top
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class CertificateStore:
    """The ACME files of one environment's router."""

    root: Path
    account: Path | None = None
    """The account key when it is shared with other stores (the edge's hostnames)."""

    @property
    def account_key(self) -> Path:
        return self.account or self.root / "account.key"

    @property
    def cert(self) -> Path:
        return self.root / "cert.pem"

    @property
    def key(self) -> Path:
        return self.root / "key.pem"

    def certificate(self) -> x509.Certificate | None:
        from cryptography import x509  # noqa: PLC0415 - see the top

        try:
            return x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError):
            return None

    def ensure_stand_in(self, domains: Sequence[str]) -> None:
        """A self-signed certificate for ``domains`` while none was issued."""
        if self.certificate() is not None and self.key.exists():
            return
        from dockroll.router.tls import self_signed  # noqa: PLC0415 - brings cryptography

        self.save(*self_signed(_STAND_IN, days=7, dns_names=domains))

    def save(self, chain: bytes, key_pem: bytes) -> None:
        _write_private(self.key, key_pem)
        _write_private(self.cert, chain)

    def due(self, settings: AcmeSettings, now: dt.datetime) -> str | None:
        """Why the certificate needs renewing, or None when it does not yet."""
        cert = self.certificate()
        if cert is None:
            return "no certificate issued yet"
        from cryptography import x509  # noqa: PLC0415 - loaded by certificate() already

        if cert.issuer == cert.subject and _STAND_IN in cert.subject.rfc4514_string():
            return "no certificate issued yet (a self-signed stand-in serves)"
        try:
            names = set(
                cert.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value.get_values_for_type(x509.DNSName)
            )
        except x509.ExtensionNotFound:
            names = set()
        if missing := sorted(set(settings.domains) - names):
            return f"it does not cover {', '.join(missing)}"
        left = cert.not_valid_after_utc - now
        if left.total_seconds() <= settings.renew_before:
            return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        return None


def renew(
    settings: AcmeSettings,
    store: CertificateStore,
    board: ChallengeBoard,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> Renewal:
    """Have the CA issue a certificate for ``settings.domains`` when it is due (or forced).

    Raises :class:`CertificateError` saying why when the CA cannot be reached or
    refuses; the stored certificate is then left as it was.
    """
    now = now or dt.datetime.now(dt.UTC)
    reason = store.due(settings, now)
    current = store.certificate()
    if reason is None and not force:
        assert current is not None
        return Renewal(False, current.not_valid_after_utc, "not due")
    try:
        chain, key_pem = _issue(settings, store, board)
    except CertificateError:
        raise
    except Exception as exc:  # the acme/requests/josepy errors have no common base
        raise _failure(settings, exc) from exc
    store.save(chain, key_pem)
    from cryptography import x509  # noqa: PLC0415 - see the top

    issued = x509.load_pem_x509_certificate(chain)
    return Renewal(True, issued.not_valid_after_utc, reason or "forced")


def _failure(settings: AcmeSettings, exc: BaseException) -> CertificateError:
    import requests  # noqa: PLC0415
    from acme import errors as acme_errors  # noqa: PLC0415 - only renewals need the client
    from acme import messages  # noqa: PLC0415

    detail = str(exc) or type(exc).__name__
    if isinstance(exc, requests.ConnectionError):
        reason = re.search(r"\[Errno -?\d+\] ([^\"')]+)", detail)
        detail = f"cannot connect to the CA ({reason.group(1) if reason else 'no answer'})"
    elif isinstance(exc, messages.Error):
        detail = f"{exc.typ}: {exc.detail}"
    elif isinstance(exc, acme_errors.ValidationError):
        problems = [
            f"{authz.body.identifier.value}: {challenge.error.detail}"
            for authz in exc.failed_authzrs
            for challenge in authz.body.challenges
            if challenge.error is not None
        ]
        detail = "the CA could not validate " + ("; ".join(problems) or "the domains")
    return CertificateError(
        f"ACME renewal from {settings.directory} failed; the certificate serving stays: {detail}",
        hint="check the CA's directory URL is reachable, and that each domain resolves to "
        "this router's plain-HTTP listener on port 80",
    )


def _issue(
    settings: AcmeSettings, store: CertificateStore, board: ChallengeBoard
) -> tuple[bytes, bytes]:
    from acme import challenges, client, crypto_util, errors, messages  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from josepy import jwa, jwk  # noqa: PLC0415 - only renewals need the client

    if not store.account_key.exists():
        _write_private(store.account_key, _new_key())
    account_key = serialization.load_pem_private_key(store.account_key.read_bytes(), password=None)
    assert isinstance(account_key, ec.EllipticCurvePrivateKey)
    account_jwk = jwk.JWKEC(key=account_key)
    verify: Any = str(settings.ca_bundle) if settings.ca_bundle else True
    net = client.ClientNetwork(
        account_jwk,
        alg=jwa.ES256,
        verify_ssl=verify,
        user_agent="dockroll",
        timeout=round(min(settings.timeout, 45)),
    )
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme_client = client.ClientV2(directory, net=net)
    registration = messages.NewRegistration.from_data(
        email=settings.email, terms_of_service_agreed=True
    )
    try:
        acme_client.new_account(registration)
    except errors.ConflictError as existing:
        net.account = messages.RegistrationResource(
            uri=existing.location, body=messages.Registration()
        )
    key_pem = _new_key()
    order = acme_client.new_order(crypto_util.make_csr(key_pem, list(settings.domains)))
    published: list[str] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            http01 = next(
                (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                None,
            )
            if http01 is None:
                raise CertificateError(
                    f"the CA {settings.directory} offers no HTTP-01 challenge for "
                    f"{authz.body.identifier.value}",
                    hint="dockroll answers HTTP-01 only; use certificate files instead",
                )
            response, validation = http01.response_and_validation(account_jwk)
            path = "/" + http01.chall.path.lstrip("/")
            board.publish_challenge(path, validation)
            published.append(path)
            acme_client.answer_challenge(http01, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=settings.timeout)
        finished = acme_client.poll_and_finalize(order, deadline)
    finally:
        for path in published:
            board.withdraw_challenge(path)
    return finished.fullchain_pem.encode("ascii"), key_pem
