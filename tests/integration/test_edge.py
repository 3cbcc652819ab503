"""The shared edge by hand and with TLS: status, hitless reload, upgrade, SNI, ACME.

Each test names an edge of its own (``DOCKROLL_EDGE_NAME``) and runs it, the
routers and the backends in real HAProxy and Python containers; ACME runs
against Debian's pebble, verified with pebble's root CA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import httpx
import pytest

from dockroll.config import Config
from dockroll.errors import RouterError
from dockroll.pipeline.deploy import open_environment
from dockroll.pipeline.edge import edge_status
from dockroll.router.edge import render_edge_config
from dockroll.router.tls import certificate_fingerprint
from tests.conftest import free_port
from tests.integration.test_router_acme import Pebble, pebble
from tests.integration.test_router_lifecycle import Project, _other_project, project

__all__ = ["pebble", "project"]


@pytest.fixture
def edge(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's own edge name; removes it, its network and the other projects after."""
    name = f"dockroll-edge-{project.service}"
    monkeypatch.setenv("DOCKROLL_EDGE_NAME", name)
    yield name
    client = project.client
    for container in (name, f"{name}-next"):  # -next: an upgrade a failure interrupted
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container).remove(force=True)
    prefix = f"dockroll-router-{project.service[:8]}"
    for container in client.containers.list(all=True, filters={"name": prefix}):
        container.remove(force=True)
    for network in client.networks.list(names=[f"dockroll-{project.service[:8]}"]):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
    for network in client.networks.list(names=[name]):
        network.remove()


def _serve(project: Project, hosts: list[str], edge: dict[str, Any]) -> Config:
    """The project's prod behind the edge under ``hosts``, with one backend answering its name."""
    config = project.write(hosts=hosts, edge=edge)
    router = project.router(config)
    router.ensure()
    backend = project.backend(project.service)
    router.ensure([backend])
    router.wait_healthy(project.service, timeout=10)
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    return config


def _rehost(project: Project, hosts: list[str], edge: dict[str, Any]) -> None:
    """The project's prod, already served, now under ``hosts``."""
    config = project.write(hosts=hosts, edge=edge)
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)


def _get(port: int, host: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{port}/", headers={"Host": host})


def _https(port: int, hostname: str, context: ssl.SSLContext) -> tuple[str, str, str]:
    """GET / over TLS with SNI ``hostname``: (status and body, HSTS header, served cert SHA-1)."""
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
    head, _, body = reply.decode().partition("\r\n\r\n")
    lines = head.splitlines()
    headers = dict(line.partition(":")[::2] for line in lines[1:])
    hsts = {k.lower(): v.strip() for k, v in headers.items()}.get("strict-transport-security", "")
    return (
        f"{lines[0].split()[1]} {body}",
        hsts,
        certificate_fingerprint(ssl.DER_cert_to_PEM_cert(der)),
    )


def _status(project: Project) -> dict[str, Any]:
    answer = project.dockroll("edge", "status", "--json")
    assert answer.returncode == 0, answer.stderr
    data: dict[str, Any] = json.loads(answer.stdout)
    return data


def _described(project: Project) -> dict[str, Any]:
    """What `edge status --json` says, asked in-process (quicker where it is asked often)."""
    return dataclasses.asdict(edge_status(project.config()))


class _Load:
    """Requests in a loop from a few threads until stopped: the status of every one."""

    def __init__(self, call: Any, threads: int = 4) -> None:
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._call = call
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self._call())
            except (OSError, httpx.HTTPError, ssl.SSLError) as exc:
                self.answers.append(f"failed: {exc}")

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.3)
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_edge_status_reload_and_upgrade_by_hand(project: Project, edge: str) -> None:
    port = free_port()
    _serve(project, ["a.test"], {"listen": [f"127.0.0.1:{port}"]})
    container = project.client.containers.get(edge)
    owner = f"{project.service}/prod"

    status = _status(project)
    assert status["running"] is True
    assert status["verdict"] == "up to date"
    assert status["listeners"] == [f"127.0.0.1:{port}"]
    assert [(r["hostname"], r["owner"]) for r in status["routes"]] == [("a.test", owner)]
    text = project.dockroll("edge", "status")
    assert f"a.test -> {owner}, no certificate" in text.stdout, text.stdout + text.stderr

    # An edge an older dockroll configured: status says so and changes nothing; a deploy
    # reloads it, hitless, under load.
    conf = project.state / edge / "conf"
    generation = container.labels["dockroll.edge.generation"]
    older = render_edge_config(
        [_address(port)], fingerprint="0123456789abcdef", socket_name=f"admin-{generation}.sock"
    )
    (conf / f"haproxy-{generation}.cfg").write_text(older, encoding="utf-8")
    container.kill(signal="SIGUSR2")
    deadline = time.monotonic() + 10
    while _described(project)["config"] != "0123456789abcdef":
        assert time.monotonic() < deadline, "the edge did not load the older config"
        time.sleep(0.2)
    status = _described(project)
    assert "runs an older config" in status["verdict"]
    assert project.dockroll("edge", "status").returncode == 0
    assert _described(project)["config"] == "0123456789abcdef"
    before = status["worker"]
    with _Load(lambda: str(_get(port, "a.test").status_code)) as load:
        with project.ledger() as ledger:
            open_environment(project.config(), "prod", ledger)
        reloaded = project.dockroll("edge", "reload", "--json")
    assert reloaded.returncode == 0, reloaded.stderr
    assert len(load.answers) >= 50
    assert set(load.answers) == {"200"}, [a for a in load.answers if a != "200"][:3]
    status = _status(project)
    assert status["verdict"] == "up to date"
    assert status["worker"] != before
    assert json.loads(reloaded.stdout)["worker"] == status["worker"]
    assert project.client.containers.get(edge).id == container.id

    # New listeners: a deploy refuses and names the upgrade; only `edge upgrade` replaces it.
    second = free_port()
    config = project.write(edge={"listen": [f"127.0.0.1:{port}", f"127.0.0.1:{second}"]})
    assert _described(project)["needs_upgrade"] is True
    with pytest.raises(RouterError, match="dockroll edge upgrade"), project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert project.client.containers.get(edge).id == container.id
    # A new listener another process holds: refused before anything stops.
    with socket.create_server(("127.0.0.1", second)):
        taken = project.dockroll("edge", "upgrade")
    assert taken.returncode == 10, taken.stdout + taken.stderr
    assert f"cannot listen on 127.0.0.1:{second}" in taken.stderr
    assert project.client.containers.get(edge).id == container.id
    assert _get(port, "a.test").status_code == 200
    upgraded = project.dockroll("edge", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(hitless)" in upgraded.stdout, upgraded.stdout
    assert project.client.containers.get(edge).id != container.id
    for listener in (port, second):
        answer = _get(listener, "a.test")
        assert (answer.status_code, answer.text) == (200, project.service)
    assert _described(project)["verdict"] == "up to date"


def _address(port: int) -> Any:
    from dockroll.listeners import ListenAddress  # noqa: PLC0415 - only here

    return ListenAddress("127.0.0.1", port)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path, names: dict[str, str]) -> Path:
    """A test CA (ca.pem) and, per file stem in ``names``, a certificate for that DNS name."""
    directory.mkdir(exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=dockroll edge test CA", cwd=directory)  # fmt: skip
    for stem, name in names.items():
        (directory / f"{stem}.ext").write_text(f"subjectAltName=DNS:{name}\n", encoding="utf-8")
        _openssl("req", *ec, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
                 "-subj", f"/CN={name}", cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{stem}.pem", "-days", "2",
                 "-extfile", f"{stem}.ext", cwd=directory)  # fmt: skip
    return directory


def _fingerprint(path: Path) -> str:
    return certificate_fingerprint(path.read_text(encoding="ascii"))


def test_a_router_behind_the_edge_upgrades_hitless_and_new_listeners_keep_its_hostname(
    project: Project, edge: str
) -> None:
    port = free_port()
    _serve(project, ["a.test"], {"listen": [f"127.0.0.1:{port}"]})
    before = project.container().id

    with _Load(lambda: str(_get(port, "a.test").status_code)) as load:
        upgraded = project.dockroll("router", "upgrade", "--env", "prod")

    assert upgraded.returncode == 0, upgraded.stderr
    assert "router hitless" in upgraded.stdout, upgraded.stdout
    assert project.container().id != before
    assert len(load.answers) >= 50
    assert set(load.answers) == {"200"}, [a for a in load.answers if a != "200"][:3]
    # New published listeners need a new holder: it joins the edge's network again.
    project.write(port=free_port())
    moved = project.dockroll("router", "upgrade", "--env", "prod")
    assert moved.returncode == 0, moved.stderr
    assert "router hitless" not in moved.stdout
    assert "needs a new holder" in moved.stderr
    answer = _get(port, "a.test")
    assert (answer.status_code, answer.text) == (200, project.service)


def test_edge_tls_by_sni_from_files_redirect_hsts_and_a_second_project_joining(
    project: Project, edge: str
) -> None:
    certs = _certificates(project.state / "certs", {"a1": "a.test", "a2": "a.test", "b": "b.test"})
    shutil.copy(certs / "a1.pem", certs / "live.pem")
    shutil.copy(certs / "a1.key", certs / "live.key")
    plain, secure = free_port(), free_port()
    listen = [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{secure}", "tls": True}]
    _serve(project, ["a.test"], {"listen": listen, "tls": {
        "cert": "certs/live.pem", "key": "certs/live.key", "hsts": "4320h"}})  # fmt: skip
    started = project.client.containers.get(edge).id
    trusted = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    trusted.minimum_version = ssl.TLSVersion.TLSv1_2

    answer, hsts, served = _https(secure, "a.test", trusted)
    assert (answer, hsts, served) == (
        f"200 {project.service}",
        "max-age=15552000",
        _fingerprint(certs / "a1.pem"),
    )
    redirect = _get(plain, "a.test")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://a.test/"
    assert "strict-transport-security" not in redirect.headers
    assert _get(plain, "nobody.test").status_code == 404

    # A second project joins with its own certificate under TLS load on the first.
    second = _other_project(project, "b")
    shutil.copy(certs / "b.pem", project.state / "b.pem")
    shutil.copy(certs / "b.key", project.state / "b.key")
    with _Load(lambda: _https(secure, "a.test", trusted)[0]) as load:
        _serve(second, ["b.test"], {"listen": listen, "tls": {
            "cert": "b.pem", "key": "b.key", "redirect_http": False}})  # fmt: skip
    assert len(load.answers) >= 30
    assert set(load.answers) == {f"200 {project.service}"}, load.answers[:3]
    answer, hsts, served = _https(secure, "b.test", trusted)
    assert (answer, hsts, served) == (f"200 {second.service}", "", _fingerprint(certs / "b.pem"))
    assert _get(plain, "b.test").status_code == 200  # no redirect asked
    assert _https(secure, "a.test", trusted)[2] == _fingerprint(certs / "a1.pem")
    # A client naming no hostname here gets the edge's default certificate.
    anonymous = ssl.create_default_context()
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE
    assert _https(secure, "nobody.test", anonymous)[2] not in {
        _fingerprint(certs / name) for name in ("a1.pem", "a2.pem", "b.pem")
    }

    # A renewed certificate goes in through the runtime API on the next deploy.
    shutil.copy(certs / "a2.pem", certs / "live.pem")
    shutil.copy(certs / "a2.key", certs / "live.key")
    config = project.config()
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert _https(secure, "a.test", trusted)[2] == _fingerprint(certs / "a2.pem")

    # Bad certificates are refused before HAProxy sees them; the one serving stays.
    shutil.copy(certs / "a1.key", certs / "live.key")
    with (
        pytest.raises(RouterError, match="does not belong to its certificate"),
        project.ledger() as ledger,
    ):
        open_environment(config, "prod", ledger)
    shutil.copy(certs / "b.pem", certs / "live.pem")
    shutil.copy(certs / "b.key", certs / "live.key")
    with pytest.raises(RouterError, match=r"does not cover a\.test"), project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert _https(secure, "a.test", trusted)[2] == _fingerprint(certs / "a2.pem")

    # Certificates outlive a hitless reload; status lists them; nothing restarted.
    assert project.dockroll("edge", "reload").returncode == 0
    assert _https(secure, "a.test", trusted)[2] == _fingerprint(certs / "a2.pem")
    assert _https(secure, "b.test", trusted)[2] == _fingerprint(certs / "b.pem")
    status = _status(project)
    assert [c["hostname"] for c in status["certificates"]] == ["a.test", "b.test"]
    assert [(r["hostname"], r["tls"]) for r in status["routes"]] == [
        ("a.test", True),
        ("b.test", True),
    ]
    assert all(c["not_after"] for c in status["certificates"])
    assert project.client.containers.get(edge).id == started


def test_edge_acme_certificates_per_hostname_renewed_and_a_failed_renewal_keeps_them(
    project: Project, edge: str, pebble: tuple[Pebble, int]
) -> None:
    server, plain = pebble
    secure = free_port()
    tag = uuid.uuid4().hex[:6]
    hosts = [f"shop-{tag}.example.com", f"www-{tag}.example.com"]
    listen = [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{secure}", "tls": True}]
    _serve(project, hosts, {"listen": listen, "tls": {"acme": {
        "directory": server.directory, "email": "ops@example.com",
        "ca_bundle": "pebble/cert.pem"}}})  # fmt: skip
    started = project.client.containers.get(edge).id
    trusted = ssl.create_default_context(cadata=server.root())
    first = {}
    for host in hosts:
        answer, _, first[host] = _https(secure, host, trusted)
        assert answer == f"200 {project.service}"
    assert first[hosts[0]] != first[hosts[1]]  # each hostname its own certificate, by SNI
    root = project.state / "acme" / edge
    for path in (
        root / "account.key",
        *(root / h / f for h in hosts for f in ("cert.pem", "key.pem")),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path  # fmt: skip
    assert _get(plain, hosts[0]).status_code == 301

    not_due = project.dockroll("edge", "renew", "--json")
    assert not_due.returncode == 0, not_due.stderr
    assert [c["renewed"] for c in json.loads(not_due.stdout)["certificates"]] == [False, False]

    forced = project.dockroll("edge", "renew", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"{hosts[0]}: renewed (forced)" in forced.stdout
    renewed = {host: _https(secure, host, trusted)[2] for host in hosts}
    assert all(renewed[h] != first[h] for h in hosts)
    assert project.client.containers.get(edge).id == started

    # Each deploy checks: not due, nothing changes; due (renew_before past the expiry), renewed.
    with project.ledger() as ledger:
        open_environment(project.config(), "prod", ledger)
    assert {host: _https(secure, host, trusted)[2] for host in hosts} == renewed
    settings = project.data["environments"]["prod"]["edge"]
    settings["tls"]["acme"]["renew_before"] = "175200h"  # 20 years: always due
    with project.ledger() as ledger:
        open_environment(project.write(edge=settings), "prod", ledger)
    due = {host: _https(secure, host, trusted)[2] for host in hosts}
    assert all(due[h] != renewed[h] for h in hosts)
    renewed = due

    server.stop()
    failed = project.dockroll("edge", "renew", "--force")
    assert failed.returncode == 15, failed.stdout + failed.stderr
    assert "cannot connect to the CA" in failed.stderr
    assert "the certificate serving stays" in failed.stderr
    for host in hosts:
        assert _https(secure, host, trusted)[1:] == ("", renewed[host])
    # A deploy whose renewal fails warns and goes on; the certificates keep serving.
    warnings: list[str] = []
    with project.ledger() as ledger:
        open_environment(project.config(), "prod", ledger, lambda p: warnings.append(p.message))
    assert any("warning" in w and "cannot connect to the CA" in w for w in warnings), warnings
    for host in hosts:
        assert _https(secure, host, trusted)[2] == renewed[host]
    assert project.client.containers.get(edge).id == started


def test_path_prefixes_route_by_the_longest_and_a_claimed_one_is_refused(
    project: Project, edge: str
) -> None:
    port = free_port()
    listen = {"listen": [f"127.0.0.1:{port}"]}
    api, third = _other_project(project, "a"), _other_project(project, "c")
    _serve(project, ["p.test", "q.test/shop"], listen)
    _serve(api, ["p.test/api/v1"], listen)

    def answer(host: str, path: str) -> tuple[int, str]:
        with httpx.Client(trust_env=False, timeout=10) as client:
            got = client.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
        return got.status_code, got.text

    ours, theirs = (200, project.service), (200, api.service)
    assert answer("p.test", "/") == ours
    assert answer("p.test", "/api/v1") == theirs
    assert answer("p.test", "/api/v1/orders?x=1") == theirs
    assert answer("p.test", "/api/v1x") == ours  # whole segments only
    assert answer("p.test", "/api") == ours
    assert answer("q.test", "/shop/cart") == ours
    assert answer("q.test", "/")[0] == 404
    assert answer("r.test", "/shop")[0] == 404

    with pytest.raises(RouterError, match=f"p.test/api/v1 is already claimed by {api.service}"):
        _serve(third, ["p.test/api/v1"], listen)
    assert answer("p.test", "/api/v1/orders") == theirs
    routes = {r["hostname"]: r["owner"] for r in _described(project)["routes"]}
    assert routes == {
        "p.test": f"{project.service}/prod",
        "p.test/api/v1": f"{api.service}/prod",
        "q.test/shop": f"{project.service}/prod",
    }

    # A hostname a project no longer names, or whose environment went down, is released:
    # the longest prefix left answers it, and another project may claim it.
    _rehost(api, ["z.test"], listen)
    assert answer("p.test", "/api/v1/orders") == ours
    assert answer("z.test", "/") == theirs
    _rehost(third, ["p.test/api/v1"], listen)
    assert answer("p.test", "/api/v1/orders") == (200, third.service)
    # Its stand-in backend is no replica of dockroll's: out of the way, so the network goes.
    project.client.containers.get(f"dockroll-router-{third.service}-prod-{third.service}").remove(
        force=True
    )
    down = third.dockroll("--json", "env", "down", "--env", "prod")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["hosts"] == ["p.test/api/v1"]
    assert answer("p.test", "/api/v1/orders") == ours
    routes = {r["hostname"]: r["owner"] for r in _described(project)["routes"]}
    assert routes == {
        "p.test": f"{project.service}/prod",
        "q.test/shop": f"{project.service}/prod",
        "z.test": f"{api.service}/prod",
    }


def test_edge_upgrade_to_a_new_image_and_a_new_listener_drops_nothing_under_load(
    project: Project, edge: str
) -> None:
    certs = _certificates(project.state / "certs", {"a": "a.test"})
    plain, secure = free_port(), free_port()
    listen: list[Any] = [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{secure}", "tls": True}]
    tls = {"cert": "certs/a.pem", "key": "certs/a.key", "redirect_http": False}
    _serve(project, ["a.test"], {"listen": listen, "tls": tls})
    trusted = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    served = f"200 {project.service}"

    def plain_get(port: int = plain) -> str:
        answer = _get(port, "a.test")
        return f"{answer.status_code} {answer.text}"

    def upgrade_under_load() -> subprocess.CompletedProcess[str]:
        with (
            _Load(plain_get, threads=2) as http,
            _Load(lambda: _https(secure, "a.test", trusted)[0], threads=2) as https,
        ):
            upgraded = project.dockroll("edge", "upgrade")
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert "(hitless)" in upgraded.stdout, upgraded.stdout
        for load in (http, https):
            assert len(load.answers) >= 20
            assert set(load.answers) == {served}, [a for a in load.answers if a != served][:3]
        return upgraded

    # A new HAProxy image: a re-tagged copy of the one running, named by the substitutes.
    running = project.client.containers.get(edge)
    copy = f"dockroll.local/edge-upgrade-{project.service}"
    project.client.images.get(running.attrs["Config"]["Image"]).tag(copy, "next")
    substitutes = project.state / "base-images.json"
    chosen = json.loads(substitutes.read_text(encoding="utf-8")) if substitutes.exists() else {}
    try:
        substitutes.write_text(json.dumps({**chosen, "haproxy:2.6": f"{copy}:next"}), "utf-8")
        upgrade_under_load()
        upgraded = project.client.containers.get(edge)
        assert upgraded.id != running.id
        if chosen:  # the engine has no official image: the substitute is what runs
            assert upgraded.attrs["Config"]["Image"] == f"{copy}:next"
        assert not project.client.containers.list(all=True, filters={"name": f"{edge}-next"})
        assert _described(project)["verdict"] == "up to date"

        # A new listener: bound by the new container, the others handed over.
        third = free_port()
        project.write(edge={"listen": [*listen, f"127.0.0.1:{third}"], "tls": tls})
        assert _described(project)["needs_upgrade"] is True
        upgrade_under_load()
        assert plain_get(third) == served
        assert _described(project)["verdict"] == "up to date"
        serving = project.client.containers.get(edge).id

        # Bad input: refused before anything stops; the edge keeps serving as it was.
        fourth = free_port()
        project.write(edge={"listen": [*listen, f"127.0.0.1:{fourth}"], "tls": tls})
        with socket.create_server(("127.0.0.1", fourth)):
            taken = project.dockroll("edge", "upgrade")
        assert taken.returncode == 10, taken.stdout + taken.stderr
        assert f"cannot listen on 127.0.0.1:{fourth}" in taken.stderr
        substitutes.write_text(json.dumps({"haproxy:2.6": f"{copy}:missing"}), "utf-8")
        missing = project.dockroll("edge", "upgrade")
        assert missing.returncode == 10, missing.stdout + missing.stderr
        assert "no HAProxy image" in missing.stderr, missing.stderr
        substitutes.write_text(json.dumps({**chosen, "haproxy:2.6": f"{copy}:next"}), "utf-8")
        default = project.state / edge / "conf" / "default.pem"
        kept = default.read_text(encoding="ascii")
        default.write_text("not a certificate\n", encoding="ascii")
        refused = project.dockroll("edge", "upgrade")
        default.write_text(kept, encoding="ascii")
        assert refused.returncode == 10, refused.stdout + refused.stderr
        assert "refuses the edge's config; nothing changed" in refused.stderr
        assert project.client.containers.get(edge).id == serving
        assert not project.client.containers.list(all=True, filters={"name": f"{edge}-next"})
        assert plain_get() == served
        assert _https(secure, "a.test", trusted)[0] == served
    finally:
        with contextlib.suppress(docker.errors.APIError):
            project.client.containers.get(edge).remove(force=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            project.client.images.remove(f"{copy}:next")


def test_an_edge_an_older_dockroll_started_is_restarted_once_then_upgrades_hitless(
    project: Project, edge: str
) -> None:
    port = free_port()
    _serve(project, ["a.test"], {"listen": [f"127.0.0.1:{port}"]})
    # What an older dockroll ran: the port published by the engine, one runtime socket.
    current = project.client.containers.get(edge)
    image, listen = current.attrs["Config"]["Image"], current.labels["dockroll.edge.listen"]
    current.remove(force=True)
    conf, run = project.state / edge / "conf", project.state / edge / "run"
    unmarked = render_edge_config([_address(port)], published=True)
    fingerprint = hashlib.sha256(unmarked.encode()).hexdigest()[:16]
    (conf / "haproxy.cfg").write_text(
        render_edge_config([_address(port)], fingerprint=fingerprint, published=True), "utf-8"
    )
    (run / "admin.sock").unlink()
    older = project.client.containers.run(
        image,
        name=edge,
        labels={"dockroll.role": "edge", "dockroll.edge.listen": listen},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={
            str(conf): {"bind": "/usr/local/etc/haproxy", "mode": "ro"},
            str(run): {"bind": "/var/run/dockroll", "mode": "rw"},
        },
        network=edge,
        detach=True,
    )
    deadline = time.monotonic() + 20
    while _described(project)["config"] != fingerprint:
        assert time.monotonic() < deadline, "the older edge did not come up"
        time.sleep(0.2)
    assert _get(port, "a.test").status_code == 200
    assert "predates hitless upgrades" in _described(project)["verdict"]
    with project.ledger() as ledger:  # a deploy keeps it: it is up to date
        open_environment(project.config(), "prod", ledger)
    assert project.client.containers.get(edge).id == older.id

    restarted = project.dockroll("edge", "upgrade")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "one-time restart: the running edge predates hitless upgrades" in restarted.stdout
    upgraded = project.client.containers.get(edge)
    assert upgraded.attrs["HostConfig"]["NetworkMode"] == "host"
    assert "dockroll.edge.generation" in upgraded.labels
    assert _described(project)["verdict"] == "up to date"
    with _Load(lambda: str(_get(port, "a.test").status_code)) as load:
        again = project.dockroll("edge", "upgrade")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(hitless)" in again.stdout
    assert len(load.answers) >= 30
    assert set(load.answers) == {"200"}, [a for a in load.answers if a != "200"][:3]


def test_a_new_edge_on_a_taken_address_is_refused_and_nothing_runs(
    project: Project, edge: str
) -> None:
    port = free_port()
    with (
        socket.create_server(("127.0.0.1", port)),
        pytest.raises(RouterError, match=f"the edge cannot listen on 127.0.0.1:{port}"),
    ):
        _serve(project, ["a.test"], {"listen": [f"127.0.0.1:{port}"]})
    assert not project.client.containers.list(all=True, filters={"name": edge})
