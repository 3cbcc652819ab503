"""The edge's config and certificate checks, without HAProxy."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockroll.errors import RouterError
from dockroll.listeners import ListenAddress
from dockroll.router.edge import render_edge_config
from dockroll.router.edge_tls import check_certificate, covers, parse_show_ssl_cert


def _pem(*names: str, days: int = 30) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_tls_listeners_load_a_default_certificate_and_the_crt_list_at_tls_1_2() -> None:
    plain, secure = ListenAddress("0.0.0.0", 80), ListenAddress("0.0.0.0", 443)
    config = render_edge_config([plain, secure], [secure], fingerprint="f00")

    assert "    bind 0.0.0.0:80\n" in config
    assert (
        "    bind 0.0.0.0:443 ssl crt /usr/local/etc/haproxy/default.pem "
        "crt-list /usr/local/etc/haproxy/certs.list ssl-min-ver TLSv1.2 alpn http/1.1\n"
    ) in config
    assert "    description dockroll-edge-config f00\n" in config
    # The CA's challenge is answered before the 404 and the HTTPS redirect.
    challenge = config.index("acme-challenge")
    assert challenge < config.index("return status 404") < config.index("redirect scheme https")


def test_the_longest_path_prefix_is_looked_up_last_by_whole_segments() -> None:
    config = render_edge_config([ListenAddress("0.0.0.0", 80)])
    lookups = [line for line in config.splitlines() if "set-var(txn.segment)" in line]

    assert [line.split("field(")[1] for line in lookups] == ["2,/)", "3,/)", "4,/)", "5,/)"]


def test_a_certificate_must_cover_the_hostname_and_match_its_key() -> None:
    cert, key = _pem("shop.test", "*.shop.test")
    other_cert, other_key = _pem("other.test")
    loaded = x509.load_pem_x509_certificate(cert.encode())

    assert covers(loaded, "shop.test")
    assert covers(loaded, "www.shop.test")
    assert not covers(loaded, "a.www.shop.test")
    assert not covers(loaded, "other.test")
    assert check_certificate(cert + key, "www.shop.test", "c.pem") > dt.datetime.now(dt.UTC)
    with pytest.raises(RouterError, match=r"does not cover other\.test"):
        check_certificate(cert + key, "other.test", "c.pem")
    with pytest.raises(RouterError, match="does not belong to its certificate"):
        check_certificate(cert + other_key, "shop.test", "c.pem")
    with pytest.raises(RouterError, match="expired"):
        check_certificate("".join(_pem("shop.test", days=-1)), "shop.test", "c.pem")
    assert other_cert


def test_show_ssl_cert_is_read_as_fields() -> None:
    text = (
        "Filename: /usr/local/etc/haproxy/certs/a.test.pem\nStatus: Used\n"
        "notAfter: Dec  6 21:06:17 2026 GMT\nSHA1 FingerPrint: B71C5A\n\n"
    )
    assert parse_show_ssl_cert(text)["notAfter"] == "Dec  6 21:06:17 2026 GMT"
    assert parse_show_ssl_cert("Can't display the certificate: Not found\n") == {}


def test_the_edge_binds_its_addresses_in_the_host_namespace_with_a_socket_of_its_own() -> None:
    listeners = [ListenAddress("127.0.0.1", 8443), ListenAddress("::", 80)]
    config = render_edge_config(listeners, socket_name="admin-0a1b2c3d.sock")

    assert "    bind 127.0.0.1:8443\n    bind [::]:80 v6only\n" in config
    assert (
        "    stats socket /var/run/dockroll/admin-0a1b2c3d.sock mode 666 level admin "
        "expose-fd listeners\n"
    ) in config
    # The master binds as root (ports below 1024); the workers drop to haproxy.
    assert "    user haproxy\n    group haproxy\n" in config


def test_an_edge_an_older_dockroll_started_keeps_its_published_ports_config() -> None:
    listeners = [ListenAddress("0.0.0.0", 80), ListenAddress("0.0.0.0", 443)]
    config = render_edge_config(listeners, published=True, socket_name="admin-0a1b2c3d.sock")

    assert "    bind :8080\n    bind :8081\n" in config
    assert "    stats socket /var/run/dockroll/admin.sock " in config
    assert "user haproxy" not in config
