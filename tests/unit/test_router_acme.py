"""Certificates from an ACME CA: settings, the challenge rule, the store and due dates."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockroll.config import Config, load_config
from dockroll.errors import CertificateError, ConfigError
from dockroll.listeners import ListenAddress
from dockroll.router.acme import AcmeSettings, CertificateStore, renew
from dockroll.router.haproxy import HaproxySettings, render_config
from dockroll.router.tls import certificate_fingerprint
from tests.conftest import free_port

HEAD = (
    "service: web\nimage: 127.0.0.1:5000/team/web\nenvironments:\n  prod:\n"
    "    router:\n      listen: ['0.0.0.0:80', {address: '0.0.0.0:443', tls: true}]\n"
)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _load(tmp_path: Path, tls: str) -> Config:
    path = tmp_path / "dockroll.yml"
    path.write_text(HEAD + f"      tls: {tls}\n", encoding="utf-8")
    return load_config(path)


def test_acme_settings_load(tmp_path: Path) -> None:
    tls = (
        _load(
            tmp_path,
            "{acme: {directory: 'https://ca.example/dir', domains: [Shop.Example.com.], "
            "email: ops@example.com, renew_before: 240h}}",
        )
        .environments["prod"]
        .router.tls
    )

    assert tls is not None
    assert tls.acme is not None
    assert tls.acme.domains == ["shop.example.com"]
    assert tls.acme.renew_before == 10 * 86400


@pytest.mark.parametrize(
    ("tls", "says"),
    [
        (
            "{cert: c.pem, key: k.pem, acme: {directory: 'https://ca/dir', domains: [a.example]}}",
            "both certificate files and acme",
        ),
        ("{cert: c.pem}", "needs cert and key"),
        ("{hsts: 1h}", "needs cert and key"),
        ("{acme: {directory: 'http://ca.example/dir', domains: [a.example]}}", "https:// URL"),
        ("{acme: {directory: 'https://ca.example/dir', domains: []}}", "at least 1"),
        ("{acme: {directory: 'https://ca.example/dir', domains: ['*.a.example']}}", "wildcards"),
        ("{acme: {directory: 'https://ca.example/dir', domains: [10.0.0.1]}}", "IP addresses"),
        ("{acme: {directory: 'https://ca.example/dir', domains: [a.example, A.example]}}", "twice"),
    ],
)
def test_bad_acme_settings_say_what_is_wrong(tmp_path: Path, tls: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("*", r"\*")):
        _load(tmp_path, tls)


def test_challenges_are_answered_before_the_https_redirect() -> None:
    settings = HaproxySettings(
        listeners=(ListenAddress("0.0.0.0", 80), ListenAddress("0.0.0.0", 443)),
        tls_listeners=(ListenAddress("0.0.0.0", 443),),
        acme=AcmeSettings("https://ca.example/dir", ("a.example",)),
    )
    lines = render_config(service="web", environment="prod", settings=settings).splitlines()
    challenge = next(i for i, line in enumerate(lines) if "acme-challenge" in line)
    redirect = next(i for i, line in enumerate(lines) if "redirect scheme https" in line)

    assert challenge < redirect
    assert "http-request return status 200" in lines[challenge]
    assert "acme.map" in lines[challenge]
    plain = HaproxySettings(tls_listeners=settings.tls_listeners)
    assert "acme-challenge" not in render_config(service="w", environment="p", settings=plain)


def _certificate(store: CertificateStore, days: float, names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    store.save(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def test_the_stand_in_is_private_and_always_due(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "acme" / "web-prod")
    settings = AcmeSettings("https://ca.example/dir", ("a.example",))
    store.ensure_stand_in(settings.domains)

    for path in (store.cert, store.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "stand-in" in (store.due(settings, dt.datetime.now(dt.UTC)) or "")
    first = store.cert.read_text()
    store.ensure_stand_in(settings.domains)
    assert store.cert.read_text() == first


@pytest.mark.parametrize(
    ("days", "names", "says"),
    [
        (60, ["a.example"], None),
        (29, ["a.example"], "expires on 2026-06-30"),
        (60, ["b.example"], "does not cover a.example"),
    ],
)
def test_renewal_is_due_30_days_before_expiry_or_for_a_new_domain(
    tmp_path: Path, days: float, names: list[str], says: str | None
) -> None:
    store = CertificateStore(tmp_path)
    _certificate(store, days, names)
    due = store.due(AcmeSettings("https://ca.example/dir", ("a.example",)), NOW)

    assert due == says if says is None else says in (due or "")


class _Board:
    def __init__(self) -> None:
        self.published: list[str] = []

    def publish_challenge(self, path: str, answer: str) -> None:
        self.published.append(path)

    def withdraw_challenge(self, path: str) -> None:
        self.published.remove(path)


def test_a_certificate_not_due_is_kept_without_asking_the_ca(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    _certificate(store, 60, ["a.example"])
    settings = AcmeSettings(f"https://127.0.0.1:{free_port()}/dir", ("a.example",))

    renewal = renew(settings, store, _Board(), now=NOW)

    assert not renewal.renewed
    assert renewal.reason == "not due"


def test_an_unreachable_ca_is_a_clear_error_and_the_certificate_stays(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    _certificate(store, 5, ["a.example"])
    before = certificate_fingerprint(store.cert.read_text())
    settings = AcmeSettings(f"https://127.0.0.1:{free_port()}/dir", ("a.example",), timeout=5)

    with pytest.raises(CertificateError, match="the certificate serving stays") as failed:
        renew(settings, store, _Board(), now=NOW)

    assert failed.value.exit_code == 15
    assert "cannot connect to the CA (Connection refused)" in failed.value.message
    assert certificate_fingerprint(store.cert.read_text()) == before
