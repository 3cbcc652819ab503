"""Edge benchmark: HTTPS through dockroll's shared edge while the things that change it run.

One run, one machine, one open-loop load generator (the zero-downtime
benchmark's, speaking TLS here: a new connection and TLS handshake per request,
SNI and Host set to the site's hostname, the certificate verified). For every
row the load runs --duration seconds (the command starts --lead seconds in; the
window ends --tail seconds after a longer command) and the table shows failed
requests, p99 and max latency and the 1-minute load average at the row's end.

dockroll rows, all through the edge on 127.0.0.1 to the sample service
(2 replicas, blue-green), its certificate issued by a local ACME CA (Debian's
pebble, as the integration tests start it; every name resolves to 127.0.0.1):

  baseline           nothing changes: what the box sustains through the edge
  deploy             dockroll deploy of the other version (blue-green)
  rollback           dockroll rollback (switch back to the standby slot)
  renewal            dockroll edge renew --force: a new certificate from pebble,
                     HTTP-01 answered by the edge, loaded through the runtime API
  second service     another project (its own dockroll.yml, hostname and
                     certificate) deploys behind the edge for the first time
  config change      the edge runs an older config (as after a dockroll upgrade);
                     dockroll edge reload applies this one (hitless reload)
  upgrade            dockroll edge upgrade: a new edge container takes the
                     listening sockets over, then the old one stops (new before old)
  router upgrade     dockroll router upgrade: the environment's router, behind the
                     edge, moves to a new HAProxy container the same way (in the
                     network namespace its holder keeps)
  hold               dockroll hold, 5 s, dockroll release: requests wait

peers, doing the deploy's switch (v1 -> v2, a container of each behind the proxy)
over HTTPS with a certificate from the same run:

  docker restart     HAProxy (the router's image) in a container, its config
                     rewritten and the container restarted (the Kamal-style gap)
  nginx reload       Debian's nginx, the upstream rewritten and `nginx -s reload`

    .venv/bin/python bench/edge/run.py [--rate 200] [--duration 10] [--hold 5]

Exits 1 when a dockroll row failed a request. Removes
everything it started: containers, the edge, networks, volumes, pebble, nginx,
the registry manifests and local images.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from dockroll.config import load_config
from dockroll.devenv import ensure_commands
from dockroll.engine.base_images import load_substitutes
from dockroll.errors import DevEnvError
from dockroll.router.edge import render_edge_config

# One copy of the helpers the benchmarks share with the tests (tests/support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.integration.test_router_acme import pebble
from tests.support import load_bench, quiet, run, say

zd: Any = load_bench("zero-downtime")

ENV = zd.ENV
V1, V2 = zd.VERSIONS
# command → Debian package, installed when missing (as `dockroll dev up` does).
TOOLS = {
    "docker": "docker.io",
    "git": "git",
    "openssl": "openssl",
    "nginx": "nginx",
    "pebble": "pebble",
    "pebble-challtestsrv": "pebble",
}
UPGRADE = "dockroll edge upgrade"
PEER_HAPROXY_PORT = 8443
PEER_HAPROXY_CONF = """\
# The router of the Kamal-style set-up: HAProxy in a container, TLS at the front,
# one backend; a change rewrites this file and restarts the container.
global
    maxconn 4096

defaults
    mode http
    option http-server-close
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend public
    bind :{port} ssl crt /usr/local/etc/haproxy/site.pem ssl-min-ver TLSv1.2
    default_backend app

backend app
    server app {backend}:5000
"""


@dataclass
class EdgeBench(zd.Bench):  # type: ignore[misc]
    hold: float = 5.0
    timeout: float = 20.0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockroll-edge-")))
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    context: ssl.SSLContext | None = None
    server_name: str = "127.0.0.1"
    load_average: dict[str, float] = field(default_factory=dict)
    edge_listen: list[Any] = field(default_factory=list)
    tls_port: int = 0
    pebble: Any = None
    held_seconds: float = float("nan")

    @property
    def service(self) -> str:
        return f"edgebench{self.run_id}"

    @property
    def edge_name(self) -> str:
        return f"dockroll-edge-{self.service}"

    @property
    def site(self) -> str:
        return f"shop-{self.run_id}.example.com"

    @property
    def second(self) -> Path:
        """The second project's directory (its own dockroll.yml)."""
        return self.workdir / "second"

    def env(self, **extra: str) -> dict[str, str]:
        env: dict[str, str] = zd.Bench.env(self, DOCKROLL_EDGE_NAME=self.edge_name)
        env.update(extra)
        return env

    def load(self, port: int, host: str) -> Any:
        return zd.Load(
            port,
            self.rate,
            max_seconds=self.duration + 180,
            host=host,
            timeout=self.timeout,
            tls=self.context,
            server_name=self.server_name,
        )

    def measure(self, scenario: str, *args: Any, **kwargs: Any) -> Any:
        row = zd.Bench.measure(self, scenario, *args, **kwargs)
        self.load_average[scenario] = os.getloadavg()[0]
        return row

    # -- set-up -----------------------------------------------------------------------

    def start_pebble(self) -> None:
        """pebble and its DNS stand-in, started as the integration tests start them."""
        started = contextlib.contextmanager(pebble.__wrapped__)(SimpleNamespace(state=self.workdir))
        server, plain = self.stack.enter_context(started)
        self.pebble = server
        self.context = ssl.create_default_context(cadata=server.root())
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        # The edge's plain listener is where pebble checks HTTP-01.
        self.tls_port = zd.free_port(avoid=self.ports)
        self.edge_listen = [
            f"127.0.0.1:{plain}",
            {"address": f"127.0.0.1:{self.tls_port}", "tls": True},
        ]

    def edge_settings(self) -> dict[str, Any]:
        return {
            "listen": self.edge_listen,
            "tls": {
                "acme": {
                    "directory": self.pebble.directory,
                    "email": "ops@example.com",
                    "ca_bundle": str(self.pebble.ca),
                }
            },
        }

    def serve_behind_edge(self) -> None:
        """The environment gets its hostname on the edge; the first deploy starts both."""
        path = self.app / "dockroll.yml"
        config = yaml.safe_load(path.read_text())
        settings = config["environments"][ENV]
        settings.update(strategy="blue-green", hosts=[self.site], edge=self.edge_settings())
        path.write_text(yaml.safe_dump(config, sort_keys=False))

        self.second.mkdir()
        other = dict(config, service=f"{self.service}b")
        other["environments"] = {
            ENV: {
                "port": zd.free_port(also_plus=1000, avoid=self.ports),
                "replicas": 1,
                "hosts": [f"b-{self.site}"],
                "edge": self.edge_settings(),
            }
        }
        (self.second / "dockroll.yml").write_text(yaml.safe_dump(other, sort_keys=False))

    def https_version(self, port: int, name: str) -> str:
        """Wait until https://<name> on 127.0.0.1:<port> answers /version; its version."""
        answer: str = zd.answering_version(port, tls=self.context, server_name=name)
        return answer

    # -- dockroll through the edge ------------------------------------------------------

    def command(self, *args: str) -> None:
        """A dockroll command of the environment, its JSON answer left unread."""
        self.dockroll(*args)

    def run_older_edge_config(self) -> None:
        """Put the edge on a config rendered with another fingerprint, as an older dockroll's."""
        older = "0123456789abcdef"
        edge = load_config(self.app / "dockroll.yml").environment(ENV).edge
        if edge is None:
            raise SystemExit("the environment has no edge")
        tls = [listener.listen_address for listener in edge.listen if listener.tls]
        labels = json.loads(
            run(["docker", "inspect", "--format", "{{json .Config.Labels}}", self.edge_name])
        )
        generation = labels.get("dockroll.edge.generation")
        name = f"haproxy-{generation}.cfg" if generation else "haproxy.cfg"
        rendered = render_edge_config(
            edge.addresses(),
            tls,
            fingerprint=older,
            published=generation is None,
            socket_name=f"admin-{generation}.sock",
        )
        (self.state / self.edge_name / "conf" / name).write_text(rendered)
        run(["docker", "kill", "--signal", "USR2", self.edge_name])
        deadline = time.monotonic() + 30
        while self.dockroll("edge", "status").get("config") != older:
            if time.monotonic() > deadline:
                raise SystemExit("the edge did not load the older config")
            time.sleep(0.5)

    def deploy_second(self) -> float | None:
        out = run(
            [zd.DOCKROLL, "--config", str(self.second / "dockroll.yml"), "--json",
             "deploy", self.digests[V1], "--env", ENV],
            env=self.env(),
            cwd=self.second,
        )  # fmt: skip
        seconds = json.loads(out).get("seconds")
        return float(seconds) if isinstance(seconds, int | float) else None

    def hold_and_release(self) -> None:
        self.command("hold", "--env", ENV, "--max", "30s")
        held = time.monotonic()
        time.sleep(self.hold)
        self.command("release", "--env", ENV)
        # Requests wait from before `hold` returns until before `release` returns: the
        # sleep plus release's own start-up.
        self.held_seconds = time.monotonic() - held

    def bench_dockroll_edge(self) -> list[Any]:
        self.server_name = self.site
        self.deploy(V1)
        port = self.tls_port
        self.https_version(port, self.site)
        rows = [
            self.measure("dockroll baseline (no change)", port, lambda: None, V1,
                         note="the load alone through the edge: what the box sustains"),
            self.measure("dockroll deploy", port, lambda: self.deploy(V2), V2,
                         note="blue-green, 2 + 2 replicas, one switch at the router"),
            self.measure("dockroll rollback", port, self.rollback, V1,
                         note="switch back to the standby slot"),
            self.measure("dockroll edge renew --force", port,
                         lambda: self.command("edge", "renew", "--force"), V1,
                         note="ACME (pebble): HTTP-01 at the edge, set/commit ssl cert"),
            self.measure("dockroll second service joins", port, self.deploy_second, V1,
                         note="another project's first deploy: its router, hostname, cert"),
        ]  # fmt: skip
        if self.https_version(port, f"b-{self.site}") != self.answers[V1]:
            raise SystemExit("the second service does not answer through the edge")
        self.run_older_edge_config()
        rows += [
            self.measure("dockroll edge reload", port,
                         lambda: self.command("edge", "reload"), V1,
                         note="older config -> this one: new worker on the passed sockets"),
            self.measure(UPGRADE, port, lambda: self.command("edge", "upgrade"), V1,
                         note="new container on the old one's sockets, then the old stops"),
            self.measure("dockroll router upgrade", port,
                         lambda: self.command("router", "upgrade", "--env", ENV), V1,
                         note="the env's router: new HAProxy beside the old, in its holder"),
            self.measure(f"dockroll hold {self.hold:g}s / release", port,
                         self.hold_and_release, V1,
                         note=f"requests wait {self.hold:g}s at the router, then flow"),
        ]  # fmt: skip
        rows[-1].note += f"; held about {self.held_seconds:.1f}s (hold's return to release's)"
        return rows

    # -- peers ------------------------------------------------------------------------------

    def peer_certificate(self) -> tuple[Path, Path]:
        """A self-signed certificate for the peers' hostname, trusted by the load generator."""
        directory = self.workdir / "peer-tls"
        directory.mkdir(exist_ok=True)
        cert, key = directory / "cert.pem", directory / "key.pem"
        run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN=peer-{self.site}", "-addext", f"subjectAltName=DNS:peer-{self.site}"]
        )  # fmt: skip
        if self.context is None:
            raise SystemExit("no TLS context: pebble did not start")
        self.context.load_verify_locations(cafile=str(cert))
        return cert, key

    def peer_colours(self) -> dict[str, int]:
        """v1 (blue) and v2 (green) on 127.0.0.1 ports and on the peers' network."""
        network = f"{self.service}-peers"
        run(["docker", "network", "create", network])
        ports = {}
        for colour, version in (("blue", V1), ("green", V2)):
            ports[colour] = self.colour(colour, version)
            run(["docker", "network", "connect", network, f"{self.service}-{colour}"])
            zd.answering_version(ports[colour])  # plain HTTP, straight to the container
        return ports

    def bench_docker_restart(self, cert: Path, key: Path) -> Any:
        name, network = f"{self.service}-haproxy", f"{self.service}-peers"
        port = zd.free_port(avoid=self.ports)
        pem = self.workdir / "peer-tls" / "site.pem"
        pem.write_text(cert.read_text() + key.read_text())
        pem.chmod(0o644)  # the image's haproxy user reads it
        config = self.workdir / "peer-haproxy.cfg"
        image = load_substitutes().get(zd.ROUTER_IMAGE, zd.ROUTER_IMAGE)

        def configure(colour: str) -> None:
            config.write_text(
                PEER_HAPROXY_CONF.format(port=PEER_HAPROXY_PORT, backend=f"{self.service}-{colour}")
            )
            config.chmod(0o644)
            run(["docker", "cp", str(config), f"{name}:/usr/local/etc/haproxy/haproxy.cfg"])

        run(["docker", "create", "--name", name, "--network", network,
             "-p", f"127.0.0.1:{port}:{PEER_HAPROXY_PORT}", image])  # fmt: skip
        run(["docker", "cp", str(pem), f"{name}:/usr/local/etc/haproxy/site.pem"])
        configure("blue")
        run(["docker", "start", name])
        self.https_version(port, self.server_name)

        def restart() -> None:
            configure("green")
            run(["docker", "restart", name])

        note = "config rewritten to v2, the router's container restarted"
        return self.measure("peer: docker restart (HAProxy)", port, restart, V2, note=note)

    def bench_nginx_reload(self, cert: Path, key: Path, ports: dict[str, int]) -> Any:
        root = self.nginx_root = self.workdir / "nginx"
        root.mkdir()
        port = zd.free_port(avoid=self.ports)
        secure = zd.NGINX_CONF.replace(
            "listen 127.0.0.1:{port};",
            "listen 127.0.0.1:{port} ssl;\n"
            "        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;",
        )
        (root / "nginx.conf").write_text(secure.format(root=root, port=port, cert=cert, key=key))
        self.point_nginx_at(ports["blue"])
        self.nginx()
        self.https_version(port, self.server_name)

        def reload() -> None:
            self.point_nginx_at(ports["green"])
            self.nginx("-s", "reload")

        row = self.measure("peer: nginx -s reload", port, reload, V2,
                           note="upstream rewritten to v2, nginx -s reload")  # fmt: skip
        self.stop_nginx()
        return row

    def bench_peers(self) -> list[Any]:
        cert, key = self.peer_certificate()
        self.server_name = f"peer-{self.site}"
        ports = self.peer_colours()
        return [self.bench_docker_restart(cert, key), self.bench_nginx_reload(cert, key, ports)]

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):  # pebble's own clean-up kills what is left
            self.stack.close()
        quiet(["docker", "rm", "-f", self.edge_name])  # restarts unless stopped
        zd.Bench.cleanup(self)


# -- the table ------------------------------------------------------------------------------


def print_table(rows: Sequence[Any], bench: EdgeBench) -> None:
    print()
    print(
        f"GET /version over HTTPS at {bench.rate:g} req/s, a new connection and TLS handshake per "
        f"request, {bench.timeout:g} s timeout; {os.cpu_count()} CPUs"
    )
    header = (
        f"{'scenario':<32} {'failed / total':>15} {'p99':>9} {'max':>9} {'load 1m':>8} "
        f"{'command':>8}  notes"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.scenario:<32} {f'{row.failed} / {len(row.samples)}':>15} "
            f"{row.latency(0.99) * 1000:>7.1f}ms {row.latency(1.0) * 1000:>7.1f}ms "
            f"{bench.load_average.get(row.scenario, float('nan')):>8.1f} "
            f"{row.command_seconds:>7.2f}s  {row.note}"
        )
    print()
    print(
        "failed = non-200 answers, refused/reset connections, TLS errors and timeouts; "
        "p99/max over the 200s,\nfrom the scheduled send time; load 1m = the 1-minute load "
        "average at the row's end; command = the command's wall time"
    )
    for row in rows:
        if row.errors:
            kinds = ", ".join(f"{k} x{v}" for k, v in sorted(row.errors.items()))
            print(f"  {row.scenario}: {kinds}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per row")
    parser.add_argument("--lead", type=float, default=2, help="seconds of load before the command")
    parser.add_argument("--tail", type=float, default=3, help="least seconds of load after it")
    parser.add_argument("--hold", type=float, default=5, help="seconds the hold row holds")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="the local registry")
    args = parser.parse_args()
    if args.registry.rpartition(":")[0] not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark talks to a registry on 127.0.0.1 only")
    if not 1 <= args.rate <= 1000 or not 1 <= args.duration <= 120 or not 1 <= args.hold <= 25:
        raise SystemExit("--rate must be 1..1000, --duration 1..120 and --hold 1..25")
    try:
        ensure_commands(TOOLS, progress=say)
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    bench = EdgeBench(args.rate, args.duration, args.lead, args.tail, args.registry, hold=args.hold)
    rows: list[Any] = []
    setup_failures: list[str] = []
    try:
        print(f"building {bench.image} {V1} and {V2} …", file=sys.stderr)
        bench.prepare()
        bench.start_pebble()
        bench.serve_behind_edge()
        phases: dict[str, Callable[[], list[Any]]] = {
            "dockroll": bench.bench_dockroll_edge,
            "peers": bench.bench_peers,
        }
        for phase in phases.values():
            try:
                rows += phase()
            except SystemExit as exc:  # a set-up step failed: the other phase still runs
                print(exc, file=sys.stderr)
                setup_failures.append(str(exc).strip().splitlines()[0])
        print_table(rows, bench)
    finally:
        bench.cleanup()

    failures = [f"set-up: {failure}" for failure in setup_failures]
    failures += [
        f"{row.scenario}: {row.failed} failed"
        for row in rows
        if row.scenario.startswith("dockroll") and row.failed
    ]
    if failures:
        print("TARGET MISSED:\n  " + "\n  ".join(failures))
        return 1
    print("target met: no dockroll row failed a request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
