"""Certificates from an ACME CA, end to end against Debian's pebble.

pebble validates HTTP-01 on the router's plain-HTTP listener (its ``httpPort``),
resolving the test domain to 127.0.0.1 through pebble-challtestsrv. The served
certificate must chain to pebble's root, and a renewal that fails (pebble
stopped) must leave the old certificate serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockroll.devenv import ensure_commands
from dockroll.errors import DevEnvError
from dockroll.pipeline.deploy import open_environment
from dockroll.router.tls import certificate_fingerprint
from tests.conftest import IN_CI, free_port
from tests.integration.test_router_lifecycle import Project, project

__all__ = ["project"]


@dataclass
class Pebble:
    directory: str
    management: str
    ca: Path
    processes: list[subprocess.Popen[bytes]]

    def root(self) -> str:
        """pebble's root CA (it makes a new one at every start)."""
        verify = ssl.create_default_context(cafile=str(self.ca))
        with httpx.Client(trust_env=False, timeout=10, verify=verify) as client:
            answer = client.get(f"{self.management}/roots/0")
        answer.raise_for_status()
        return answer.text

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def pebble(project: Project) -> Iterator[tuple[Pebble, int]]:
    """pebble and its DNS stand-in; yields it and the plain-HTTP port it validates on."""
    http_port = free_port()
    with start_pebble(project.state / "pebble", http_port) as server:
        yield server, http_port


@contextlib.contextmanager
def start_pebble(home: Path, http_port: int) -> Iterator[Pebble]:
    """pebble in ``home``, validating HTTP-01 on 127.0.0.1:``http_port`` (every name
    resolves there through its DNS stand-in); stopped afterwards."""
    try:
        ensure_commands({"pebble": "pebble", "pebble-challtestsrv": "pebble"})
    except DevEnvError as exc:
        if IN_CI:
            pytest.fail(f"{exc.message} (CI=true: integration tests must run)")
        pytest.skip(exc.message)
    home.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
         "-subj", "/CN=pebble", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=home, check=True, capture_output=True,
    )  # fmt: skip
    listen, management, dns = (free_port() for _ in range(3))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(home / "cert.pem"),
            "privateKey": str(home / "key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (home / "config.json").write_text(json.dumps(config), encoding="utf-8")
    environ = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_VA_ALWAYS_VALID": "0",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }
    log = (home / "log.txt").open("wb")
    # Every name resolves to 127.0.0.1 (A only), where the router's plain listener is.
    dns_server = [
        "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
        "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
        "-management", f"127.0.0.1:{free_port()}",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(dns_server, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen(
            ["pebble", "-config", str(home / "config.json"), "-dnsserver", f"127.0.0.1:{dns}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
        ),
    ]
    server = Pebble(
        f"https://127.0.0.1:{listen}/dir", f"https://127.0.0.1:{management}", home / "cert.pem",
        processes,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.root()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        log.close()


def _https_get(port: int, hostname: str, context: ssl.SSLContext) -> tuple[str, str]:
    """GET / over HTTPS to 127.0.0.1:port for ``hostname``: (status line, served cert SHA-1)."""
    request = f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as conn,
    ):
        conn.sendall(request.encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    pem = ssl.DER_cert_to_PEM_cert(der)
    head, _, body = reply.decode().partition("\r\n\r\n")
    status = head.splitlines()[0].split()[1]
    return f"{status} {body}", certificate_fingerprint(pem)


def test_acme_certificate_issued_served_renewed_and_a_failed_renewal_keeps_it(
    project: Project, pebble: tuple[Pebble, int]
) -> None:
    server, plain = pebble
    secure = free_port()
    domain = f"shop-{uuid.uuid4().hex[:6]}.example.com"
    config = project.write(
        router={
            "listen": [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{secure}", "tls": True}],
            "metrics": f"127.0.0.1:{free_port()}",
            "tls": {
                "acme": {
                    "directory": server.directory,
                    "email": "ops@example.com",
                    "domains": [domain],
                    "ca_bundle": "pebble/cert.pem",
                }
            },
        },
        port=None,
    )
    # The first command that changes the environment starts the router (a self-signed
    # stand-in serves meanwhile), answers the challenge and loads the issued certificate.
    with project.ledger() as ledger:
        environment = open_environment(config, "prod", ledger)
    router = environment.router
    started = project.container().id
    web = project.backend("web")
    router.ensure([web])
    router.wait_healthy("web", timeout=10)

    trusted = ssl.create_default_context(cadata=server.root())
    answer, first = _https_get(secure, domain, trusted)
    assert answer == "200 web"
    store = router.acme_store
    for path in (store.account_key, store.cert, store.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The challenge map comes before the redirect; other paths are still redirected.
    token = "/.well-known/acme-challenge/probe-token"
    router.publish_challenge(token, "probe-token.thumbprint")
    with httpx.Client(trust_env=False, timeout=10) as client:
        challenge = client.get(f"http://127.0.0.1:{plain}{token}", headers={"Host": domain})
        router.withdraw_challenge(token)
        withdrawn = client.get(f"http://127.0.0.1:{plain}{token}", headers={"Host": domain})
    assert (challenge.status_code, challenge.text) == (200, "probe-token.thumbprint")
    assert withdrawn.status_code == 301

    not_due = project.dockroll("router", "renew", "--env", "prod", "--json")
    assert not_due.returncode == 0, not_due.stderr
    assert json.loads(not_due.stdout)["renewed"] is False

    forced = project.dockroll("router", "renew", "--env", "prod", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "renewed the prod certificate" in forced.stdout
    answer, second = _https_get(secure, domain, trusted)
    assert answer == "200 web"
    assert second != first
    assert project.container().id == started

    # The CA is gone: the renewal fails, says why, and the certificate keeps serving.
    server.stop()
    failed = project.dockroll("router", "renew", "--env", "prod", "--force")
    assert failed.returncode == 15, failed.stdout + failed.stderr
    assert "the certificate serving stays: cannot connect to the CA" in failed.stderr
    answer, still = _https_get(secure, domain, trusted)
    assert (answer, still) == ("200 web", second)
    assert project.container().id == started
