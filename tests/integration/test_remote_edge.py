"""The shared edge on a remote engine (ssh://): HTTPS by hostname, measured from this machine.

The "remote host" is a Docker-in-Docker node (:mod:`tests.integration.remote_support`)
that publishes the edge's listeners on this machine's 127.0.0.1. Two
environments with ``hosts`` and certificates from files are deployed there;
the edge runs in the node's host network with its files in named volumes and
its runtime API reached through the engine connection.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from dockroll.engine.docker import DockerEngine
from dockroll.errors import RouterError
from dockroll.pipeline.edge import (
    edge_status,
    reload_edge,
    renew_edge_certificates,
    upgrade_edge,
)
from dockroll.pipeline.lifecycle import environment_down
from dockroll.router.edge import Edge
from dockroll.router.tls import certificate_fingerprint
from tests.conftest import free_port
from tests.integration.remote_support import (
    OLD,
    SshHost,
    deploy_version,
    remote_cluster,
    remote_environment,
    ssh_host,
)
from tests.integration.rollout_support import Seeded, seed_service, state_of
from tests.integration.test_edge import _certificates
from tests.integration.test_router_acme import start_pebble

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Site:
    def __init__(self, seeded: Seeded, host: SshHost, certs: Path, ports: dict[str, int]) -> None:
        self.seeded = seeded
        self.host = host
        self.certs = certs
        self.ports = ports
        self.trusted = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def https(
        self, hostname: str, path: str = "/version", trusted: ssl.SSLContext | None = None
    ) -> tuple[str, str]:
        """GET over TLS with SNI ``hostname`` through the edge: (status and body, cert SHA-1)."""
        request = f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n"
        context = trusted or self.trusted
        with (
            socket.create_connection(("127.0.0.1", self.ports["tls"]), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=hostname) as conn,
        ):
            conn.sendall(request.encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
            der = conn.getpeercert(binary_form=True)
        assert der is not None
        head, _, body = reply.decode().partition("\r\n\r\n")
        return (
            f"{head.split()[1]} {body.strip()}",
            certificate_fingerprint(ssl.DER_cert_to_PEM_cert(der)),
        )

    def plain(self, hostname: str, port: int | None = None) -> str:
        """The status and Location of a plain-HTTP GET through the edge (its first listener
        unless ``port``)."""
        request = f"GET /version HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n"
        port = port or self.ports["plain"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(request.encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        lines = reply.decode().split("\r\n")
        location = next((ln for ln in lines if ln.lower().startswith("location:")), "")
        return f"{lines[0].split()[1]} {location.partition(':')[2].strip()}".strip()

    def fingerprint(self, stem: str) -> str:
        return certificate_fingerprint((self.certs / f"{stem}.pem").read_text(encoding="ascii"))


class _Load:
    """HTTPS GETs in a loop from a few threads until stopped: the answer of every one."""

    def __init__(self, call: Any, threads: int = 4) -> None:
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._call = call
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self._call())
            except (OSError, ssl.SSLError, IndexError) as exc:
                self.answers.append(f"failed: {exc!r}")

    def failed(self, good: str) -> list[str]:
        return [answer for answer in self.answers if answer != good]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(1.0)
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _edge_settings(ports: dict[str, int], stem: str, certs: Path) -> dict[str, Any]:
    listen: list[Any] = [
        f"0.0.0.0:{ports['plain']}",
        {"address": f"0.0.0.0:{ports['tls']}", "tls": True},
    ]
    return {
        "listen": listen,
        "tls": {"cert": str(certs / f"{stem}.pem"), "key": str(certs / f"{stem}.key")},
    }


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("remote-edge")
    certs = _certificates(tmp / "certs", {"one": "one.test", "two": "two.test"})
    ports = {"plain": free_port(), "tls": free_port(), "taken": free_port()}
    with remote_cluster("re") as cluster:
        ssh_port = free_port()
        engine = f"ssh://root@127.0.0.1:{ssh_port}"
        environments = {
            name: remote_environment(
                engine,
                cluster.registry,
                strategy="rolling",
                replicas=1,
                hosts=[f"{name}.test"],
                edge=_edge_settings(ports, name, certs),
            )
            for name in ("one", "two")
        }
        for seeded in seed_service(tmp_path_factory, registry, environments, prefix="redge"):
            with (
                ssh_host(
                    tmp,
                    cluster=cluster.name,
                    network=cluster.network,
                    registry=cluster.registry,
                    ssh_port=ssh_port,
                    router_ports=list(ports.values()),
                ) as host,
                state_of(seeded),
                pytest.MonkeyPatch.context() as patch,
            ):
                patch.setenv("DOCKROLL_EDGE_NAME", f"dockroll-edge-{seeded.service}")
                yield Site(seeded, host, certs, ports)


def test_a_remote_engine_serves_https_by_hostname_through_its_edge_and_a_second_joins(
    site: Site, docker_client: docker.DockerClient
) -> None:
    seeded = site.seeded
    assert deploy_version(seeded, "one", OLD) == "succeeded"
    answer, served = site.https("one.test")
    assert answer.startswith("200"), answer
    assert OLD in answer
    assert served == site.fingerprint("one")
    good = answer
    assert site.plain("one.test") == "301 https://one.test/version"

    # The second environment joins the running edge while the first is under HTTPS load.
    with _Load(lambda: site.https("one.test")[0]) as load:
        assert deploy_version(seeded, "two", OLD) == "succeeded"
    print(f"second environment joining: {len(load.answers)} requests to the first, "
          f"{len(load.failed(good))} failed")  # fmt: skip
    assert len(load.answers) >= 50
    assert load.failed(good) == [], load.failed(good)[:3]
    answer, served = site.https("two.test")
    assert answer.startswith("200"), answer
    assert OLD in answer
    assert served == site.fingerprint("two")
    assert site.plain("nobody.test") == "404"

    # It runs on the remote engine, in its host network, publishing nothing; none here.
    remote = DockerEngine(site.host.endpoint)
    try:
        edges = remote.containers({"dockroll.role": "edge"})
        assert len(edges) == 1
        assert edges[0].ports == {}
    finally:
        remote.close()
    assert not docker_client.containers.list(all=True, filters={"name": edges[0].name})
    status = edge_status(seeded.config(), "one")
    assert status.verdict == "up to date"
    assert [(r.hostname, r.owner, r.tls) for r in status.routes] == [
        ("one.test", f"{seeded.service}/one", True),
        ("two.test", f"{seeded.service}/two", True),
    ]
    assert [c.hostname for c in status.certificates] == ["one.test", "two.test"]


def test_a_hostname_clash_and_a_taken_port_are_refused_and_env_down_leaves_the_edge(
    site: Site,
) -> None:
    seeded = site.seeded
    for name in ("one", "two"):
        if not site.https(f"{name}.test")[0].startswith("200"):
            assert deploy_version(seeded, name, OLD) == "succeeded"
    good = site.https("one.test")[0]
    config = seeded.config()
    remote = DockerEngine(site.host.endpoint)
    edge = Edge(remote, config.environment("one").edge.addresses())  # type: ignore[union-attr]
    try:
        before = remote.container(edge.name)
        assert before is not None

        # Another project claiming one.test is refused; the first keeps it.
        with pytest.raises(RouterError, match=r"one\.test is already claimed by"):
            edge.claim(["one.test"], "other/prod", "10.0.0.9")
        assert edge.owners()["one.test"] == f"{seeded.service}/one"

        # A new listener on a port another process of the remote host holds: refused with
        # the address named, under load on the first, and the edge keeps serving unchanged.
        taken = site.ports["taken"]
        subprocess.run(
            ["docker", "exec", "-d", site.host.name, "perl", "-MIO::Socket::INET", "-e",
             f"my $held = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => {taken}, "
             "Listen => 5) or die $!; open my $pid, '>', '/tmp/held.pid'; print $pid $$; "
             "close $pid; sleep 600"],
            check=True,
        )  # fmt: skip
        time.sleep(1.0)
        data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
        pristine = yaml.safe_dump(data, sort_keys=False)
        for name in ("one", "two"):
            data["environments"][name]["edge"]["listen"].append(f"0.0.0.0:{taken}")
        seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        try:
            with (
                _Load(lambda: site.https("one.test")[0]) as load,
                seeded.ledger() as ledger,
                pytest.raises(RouterError) as refused,
            ):
                upgrade_edge(seeded.config(), "one", ledger)
        finally:
            seeded.config_path.write_text(pristine, encoding="utf-8")
        print(f"refused upgrade: {refused.value.message} ({refused.value.hint}); "
              f"{len(load.answers)} requests, {len(load.failed(good))} failed")  # fmt: skip
        assert f"cannot listen on 0.0.0.0:{taken}" in refused.value.message
        assert "nothing changed" in refused.value.message
        assert refused.value.hint is not None
        assert "edge.listen" in refused.value.hint
        assert len(load.answers) >= 20
        assert load.failed(good) == [], load.failed(good)[:3]
        after = remote.container(edge.name)
        assert after is not None
        assert after.id == before.id
        assert after.running
        assert remote.container(f"{edge.name}-next") is None

        # Once the port is free, the upgrade takes it, hitless: the new container takes
        # the listening sockets over from the old one's socket in the shared volume.
        subprocess.run(
            ["docker", "exec", site.host.name, "sh", "-c", 'kill "$(cat /tmp/held.pid)"'],
            check=True,
        )
        time.sleep(0.5)
        seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        try:
            with _Load(lambda: site.https("one.test")[0]) as load, seeded.ledger() as ledger:
                done_upgrade, described = upgrade_edge(seeded.config(), "one", ledger)
            # A reload there is hitless too: a new worker takes the sockets over.
            with _Load(lambda: site.https("one.test")[0]) as again, seeded.ledger() as ledger:
                reloaded = reload_edge(seeded.config(), "one", ledger)
        finally:
            seeded.config_path.write_text(pristine, encoding="utf-8")
        print(f"hitless upgrade on the remote host ({done_upgrade.seconds:.1f} s): "
              f"{len(load.answers)} requests, {len(load.failed(good))} failed")  # fmt: skip
        print(f"hitless reload on the remote host ({reloaded.seconds:.1f} s): "
              f"{len(again.answers)} requests, {len(again.failed(good))} failed")  # fmt: skip
        assert done_upgrade.how == "hitless"
        assert reloaded.worker != reloaded.previous_worker
        assert again.failed(good) == [], again.failed(good)[:3]
        assert load.failed(good) == [], load.failed(good)[:3]
        assert described.container_id != before.id
        assert described.verdict == "up to date"
        assert remote.container(f"{edge.name}-next") is None
        assert site.plain("one.test", taken) == "301 https://one.test/version"
        assert edge.owners()["one.test"] == f"{seeded.service}/one"

        # env down leaves the remote edge's hostnames: two.test answers 404, one.test serves.
        with seeded.ledger() as ledger:
            done = environment_down(seeded.config(), "two", ledger)
        assert done.hosts == ["two.test"]
        assert site.plain("two.test") == "404"  # no redirect either: its route is gone
        assert site.https("one.test")[0] == good
        assert "two.test" not in edge.routes()
    finally:
        edge.close()
        remote.close()


def test_an_acme_certificate_is_issued_through_the_remote_edge(site: Site, tmp_path: Path) -> None:
    """pebble here validates HTTP-01 on the remote edge's plain listener (the node publishes
    it on this machine's 127.0.0.1, where pebble's DNS stand-in resolves every name)."""
    seeded = site.seeded
    if not site.https("one.test")[0].startswith("200"):
        assert deploy_version(seeded, "one", OLD) == "succeeded"
    data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
    pristine = yaml.safe_dump(data, sort_keys=False)
    with start_pebble(tmp_path / "pebble", site.ports["plain"]) as server:
        data["environments"]["one"]["edge"]["tls"] = {
            "acme": {"directory": server.directory, "ca_bundle": str(server.ca)}
        }
        seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        try:
            with seeded.ledger() as ledger:
                renewals = renew_edge_certificates(seeded.config(), "one", ledger, force=True)
        finally:
            seeded.config_path.write_text(pristine, encoding="utf-8")
        trusted = ssl.create_default_context(cadata=server.root())
    assert [(r.hostname, r.renewal.renewed) for r in renewals] == [("one.test", True)]
    answer, served = site.https("one.test", trusted=trusted)  # pebble's, verified by its root
    assert answer.startswith("200"), answer
    assert served != site.fingerprint("one")
