"""TLS settings: the certificate bundle, its fingerprint, the config lines, dockroll.yml checks."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from dockroll.config import Config
from dockroll.engine import DockerEngine
from dockroll.errors import RouterError
from dockroll.listeners import ListenAddress
from dockroll.router import HaproxyRouter, HaproxySettings
from dockroll.router.haproxy import render_config
from dockroll.router.tls import bundle, certificate_fingerprint

DER = b"not really DER, but base64 all the same"
CERT = (
    "-----BEGIN CERTIFICATE-----\n"
    + base64.encodebytes(DER).decode()
    + "-----END CERTIFICATE-----\n"
)
REMOTE = DockerEngine("tcp://127.0.0.1:1")  # never contacted
KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"


def test_the_fingerprint_is_the_sha1_of_the_first_certificate() -> None:
    chain = CERT + CERT.replace(base64.encodebytes(DER).decode(), "QUJD\n")

    assert certificate_fingerprint(chain) == hashlib.sha1(DER).hexdigest().upper()


def test_the_bundle_is_the_chain_then_the_key(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("subject=...\n" + CERT, encoding="ascii")
    (tmp_path / "k.pem").write_text(KEY, encoding="ascii")

    pem = bundle(tmp_path / "c.pem", tmp_path / "k.pem", "web/prod")

    assert pem == CERT + KEY


@pytest.mark.parametrize(
    ("cert", "key", "says"),
    [(KEY, KEY, "holds no PEM certificate"), (CERT, CERT, "holds no PEM private key")],
)
def test_files_that_are_not_pem_are_named(tmp_path: Path, cert: str, key: str, says: str) -> None:
    (tmp_path / "c.pem").write_text(cert, encoding="ascii")
    (tmp_path / "k.pem").write_text(key, encoding="ascii")

    with pytest.raises(RouterError, match=says):
        bundle(tmp_path / "c.pem", tmp_path / "k.pem", "web/prod")
    with pytest.raises(RouterError, match="cannot read the TLS certificate"):
        bundle(tmp_path / "missing.pem", tmp_path / "k.pem", "web/prod")


def test_tls_listeners_redirect_and_hsts_in_the_config() -> None:
    plain, secure = ListenAddress("0.0.0.0", 80), ListenAddress("0.0.0.0", 443)
    config = render_config(
        service="web",
        environment="prod",
        settings=HaproxySettings(
            listeners=(plain, secure), tls_listeners=(secure,), hsts_seconds=3600
        ),
    )

    assert "    bind :8080\n" in config
    assert (
        "    bind :8081 ssl crt /usr/local/etc/haproxy/site.pem ssl-min-ver TLSv1.2 alpn http/1.1\n"
        in config
    )
    assert "http-request redirect scheme https code 301 if !{ ssl_fc }" in config
    assert 'set-header Strict-Transport-Security "max-age=3600" if { ssl_fc }' in config
    without = render_config(
        service="web",
        environment="prod",
        settings=HaproxySettings(
            listeners=(plain, secure), tls_listeners=(secure,), redirect_http=False
        ),
    )
    assert "redirect" not in without
    assert "Strict-Transport-Security" not in without


def _config(router: dict[str, object]) -> Config:
    return Config.model_validate(
        {
            "service": "shop",
            "image": "127.0.0.1:5000/acme/shop",
            "environments": {"prod": {"router": router}},
            "root": "/srv/shop",
        }
    )


def test_tls_settings_come_from_dockroll_yml() -> None:
    config = _config(
        {
            "listen": ["0.0.0.0:80", {"address": "0.0.0.0:443", "tls": True}],
            "tls": {"cert": "tls/fullchain.pem", "key": "/etc/tls/key.pem", "hsts": "1h"},
        }
    )
    router = HaproxyRouter.for_environment(REMOTE, config, "prod")

    assert router.settings.tls_listeners == (ListenAddress("0.0.0.0", 443),)
    assert router.settings.tls_cert == Path("/srv/shop/tls/fullchain.pem")
    assert router.settings.tls_key == Path("/etc/tls/key.pem")
    assert router.settings.hsts_seconds == 3600


@pytest.mark.parametrize(
    ("router", "says"),
    [
        ({"listen": [{"address": "0.0.0.0:443", "tls": True}]}, "no certificate"),
        (
            {"listen": ["0.0.0.0:80"], "tls": {"cert": "c.pem", "key": "k.pem"}},
            "no listener serves TLS",
        ),
    ],
)
def test_tls_without_its_other_half_is_refused(router: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        _config(router)
