"""The runtime API through the engine (as for a router on a remote engine), payloads included.

An HAProxy container listens for its runtime API on its own loopback only;
dockroll reaches it through a relay started in the container over the engine
connection. A certificate sent that way (``set ssl cert`` with its PEM
payload, then ``commit ssl cert``) is the one served next.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockroll.engine import DockerEngine
from dockroll.errors import RouterError
from dockroll.router.runtime_api import AdminAddress, RuntimeApi
from dockroll.router.tls import certificate_fingerprint
from dockroll.router.transport import LOOPBACK_ADMIN_PORT, ExecTransport
from tests.conftest import free_port
from tests.support import haproxy_image

pytestmark = pytest.mark.integration

_CERT = "/usr/local/etc/haproxy/site.pem"
_CONFIG = f"""global
    stats socket ipv4@127.0.0.1:{LOOPBACK_ADMIN_PORT} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend public
    bind :8443 ssl crt {_CERT}
    http-request return status 200 content-type text/plain string "ok\\n"
"""


def _pair(directory: Path, name: str) -> str:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
         "-subj", f"/CN={name}"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    return (directory / f"{name}.pem").read_text() + (directory / f"{name}.key").read_text()


@pytest.fixture
def haproxy(docker_client: docker.DockerClient) -> Iterator[tuple[str, int, Path]]:
    image = haproxy_image(docker_client)
    work = Path(tempfile.mkdtemp(prefix="dr-api-"))
    conf = work / "conf"
    conf.mkdir()
    (conf / "haproxy.cfg").write_text(_CONFIG, encoding="utf-8")
    (conf / "site.pem").write_text(_pair(work, "first"), encoding="utf-8")
    for path in (work, conf, *conf.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = f"dockroll-api-relay-{uuid.uuid4().hex[:8]}"
    port = free_port()
    docker_client.containers.run(
        image,
        name=name,
        volumes={str(conf): {"bind": "/usr/local/etc/haproxy", "mode": "ro"}},
        ports={"8443/tcp": ("127.0.0.1", port)},
        detach=True,
    )
    try:
        yield name, port, work
    finally:
        docker_client.containers.get(name).remove(force=True)
        shutil.rmtree(work, ignore_errors=True)


def _served(port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return certificate_fingerprint(ssl.get_server_certificate(("127.0.0.1", port)))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_certificate_payload_goes_through_the_engine_relay(
    haproxy: tuple[str, int, Path],
) -> None:
    name, port, work = haproxy
    engine = DockerEngine()
    transport = ExecTransport(engine, name)
    api = RuntimeApi(
        AdminAddress(host="127.0.0.1", port=LOOPBACK_ADMIN_PORT, container=name),
        owner="test",
        transport=transport,
    )
    try:
        deadline = time.monotonic() + 10
        while "Pid" not in _info(api):
            assert time.monotonic() < deadline, "the runtime API did not answer"
            time.sleep(0.2)
        assert _served(port) == certificate_fingerprint((work / "first.pem").read_text())

        second = _pair(work, "second")
        answer = api.execute_payload(f"set ssl cert {_CERT}", second)
        assert "Transaction" in answer, answer
        assert "Success" in api.execute(f"commit ssl cert {_CERT}")
        assert _served(port) == certificate_fingerprint(second)
        # The relay goes on with single lines after a payload.
        assert "Pid" in _info(api)
    finally:
        transport.close()
        engine.close()


def _info(api: RuntimeApi) -> str:
    try:
        return api.execute("show info")
    except RouterError:  # not listening yet
        return ""
