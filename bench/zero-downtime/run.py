"""Zero-downtime benchmark: a release change under constant load, six ways.

A copy of the sample service (examples/flask-app) becomes its own git repository
with two tagged versions (v1.0.0, v1.1.0) under a fresh service name; both are
built and pushed once to the local registry. Then, one after another, each
scenario changes the running version while a load generator written here sends
GET /version at a fixed rate (open loop: requests leave on schedule whether or
not earlier ones answered) and records every request's status, latency and the
version that answered:

  compose          docker-compose up -d with the new APP_VERSION (the sample's own
                   docker-compose.yml, one container published on 127.0.0.1:8085)
  nginx blue-green the course's manual blue-green: nginx (Debian's, installed when
                   missing) in front of one container per colour; the new colour is
                   started and checked, the upstream file rewritten, `nginx -s
                   reload`, the old colour stopped
  swarm            docker service update --image, start-first then stop-first, on
                   the Docker-in-Docker Swarm of `dockroll dev up --with swarm`
                   (never on this machine's engine): 2 tasks on an overlay network,
                   behind HAProxy (the image and proxy settings of dockroll's router)
                   on the manager, which finds the tasks through the overlay's DNS
  dockroll rolling / blue-green / canary
                   dockroll deploy behind its HAProxy router, 2 replicas
  rollbacks        dockroll rollback right after the blue-green deploy (switch back
                   to the standby slot) and after a rolling deploy (rolled again)
  baselines        per topology (compose, nginx, swarm, dockroll's router), the same load
                   with nothing changing: what the box sustains through that path

Each scenario's load window is --duration seconds (the command starts --lead
seconds in; when it runs longer, the window ends --tail seconds after it). For
every scenario the table shows failed / total requests, p99 and max latency of
the successful ones, when 100% of the answers came from the target version
(the first moment after which every answer did, counted from the command's
start), and the command's wall time.

    .venv/bin/python bench/zero-downtime/run.py [--rate 250] [--duration 20]

Everything it starts is removed at the end: containers, routers, networks, the
compose project, the swarm service, its proxy and network (the Swarm itself stays
up, as `dockroll dev up` left it), the registry manifests and local images.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dockroll.devenv import ensure_commands
from dockroll.devenv.cluster import SwarmCluster, ensure_swarm
from dockroll.engine.base_images import load_substitutes
from dockroll.errors import DevEnvError
from dockroll.events import Progress
from dockroll.registry import RegistryClient

# One copy of the helpers the benchmarks share with the tests (tests/support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import quiet, run, say

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "flask-app"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))
ENV = "bench"
COMPOSE_PORT = 8085
VERSIONS = ("v1.0.0", "v1.1.0")
# The commands each scenario group runs (command → Debian package), installed when missing.
TOOLS = {"docker": "docker.io", "git": "git"}
PEERS = {"compose": {"docker-compose": "docker-compose"}, "nginx": {"nginx": "nginx"}}
ROUTER_IMAGE = "haproxy:2.6"
"""dockroll's router image (or the local stand-in `dockroll dev up` records for it)."""
SWARM_PROXY_PORT = 8080
SWARM_HAPROXY_CONF = """\
# HAProxy in front of a Swarm service, with dockroll's router's proxy settings
# (retries, timeouts, health checks every 500 ms); the service's tasks are found
# through the overlay network's DNS (tasks.<service>, endpoint mode dnsrr).
global
    maxconn 4096
    hard-stop-after 30s

resolvers swarm
    nameserver dns 127.0.0.11:53
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 500ms
    timeout retry 500ms
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    hold obsolete 1s

defaults
    mode http
    option http-server-close
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 5s
    timeout queue 5s
    timeout check 2s

frontend public
    bind :{port}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS }}
    default-server check inter 500 fall 2 rise 1 resolvers swarm init-addr none
    server-template task 6 tasks.{service}:5000
"""
NGINX_CONF = """\
# The manual blue-green of the course: nginx in front, the upstream file rewritten
# to the other colour and `nginx -s reload`.
daemon on;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


# -- load generator ---------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    sent: float
    """Scheduled send time, seconds since the load started."""
    latency: float
    """From the scheduled send time to the full answer (or the error)."""
    status: int
    """HTTP status; 0 for a connection error or timeout."""
    version: str
    error: str = ""


class Load:
    """GET /version on <host>:<port> at a fixed rate, one connection per request (or TLS session).

    ``host`` is 127.0.0.1, or the address of one of this machine's own
    Docker-in-Docker nodes on the bridge network `dockroll dev up` made.
    Bounded twice: at most ``rate * max_seconds`` requests, and never past
    ``max_seconds`` even if :meth:`stop` is not called.
    """

    def __init__(
        self,
        port: int,
        rate: float,
        max_seconds: float,
        timeout: float = 5.0,
        host: str = "127.0.0.1",
        *,
        tls: ssl.SSLContext | None = None,
        server_name: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.tls = tls
        """Speak HTTPS with this context (one handshake per request); plain HTTP when None."""
        self.server_name = server_name
        """The Host header, and the SNI name over TLS."""
        self.port = port
        self.rate = rate
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._started = 0.0
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def now(self) -> float:
        return time.monotonic() - self._started

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(self.max_seconds + self.timeout + 5)
        return sorted(self.samples, key=lambda s: s.sent)

    async def _main(self) -> None:
        interval = 1.0 / self.rate
        limit = math.ceil(self.rate * self.max_seconds)
        tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._ready.set()
        for index in range(limit):
            if self._stop.is_set():
                break
            due = index * interval
            delay = due - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)

    async def _one(self, due: float) -> None:
        status, version, error = 0, "", ""
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.server_name if self.tls else None,
                )
                writer.write(
                    f"GET /version HTTP/1.1\r\nHost: {self.server_name}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                await writer.drain()
                raw = await reader.read()
            head, _, body = raw.partition(b"\r\n\r\n")
            parts = head.split(b" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                error = "empty or malformed response"
            else:
                status = int(parts[1])
                if status == 200:
                    try:
                        version = str(json.loads(body).get("version", ""))
                    except ValueError:
                        error = "unreadable body"
        except TimeoutError:
            error = "timeout"
        except OSError as exc:
            error = type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        if error and status == 200:
            status = 0
        self.samples.append(Sample(due, self.now() - due, status, version, error))


# -- results ------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    note: str
    samples: list[Sample]
    command_start: float
    command_seconds: float
    target: str
    dockroll_seconds: float | None = None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)

    def latency(self, quantile: float) -> float:
        ok = sorted(s.latency for s in self.samples if s.status == 200)
        if not ok:
            return float("nan")
        return ok[min(len(ok) - 1, math.ceil(quantile * len(ok)) - 1)]

    @property
    def all_on_target(self) -> float | None:
        """Seconds from the command's start until every later answer came from ``target``.

        Only answers count (HTTP 200): failures are in their own column.
        """
        answers = [s for s in self.samples if s.status == 200]
        last_other = max((i for i, s in enumerate(answers) if s.version != self.target), default=-1)
        if last_other == len(answers) - 1:
            return None
        return max(0.0, answers[last_other + 1].sent - self.command_start)

    @property
    def window(self) -> float:
        return self.samples[-1].sent - self.samples[0].sent if self.samples else 0.0


def print_table(rows: Sequence[Row], rate: float) -> None:
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"\nload average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs")
    print()
    print(f"GET /version at {rate:g} req/s, one connection per request, 5 s timeout")
    header = (
        f"{'scenario':<28} {'failed / total':>15} {'p99':>9} {'max':>9} "
        f"{'100% target after':>18} {'command':>9} {'dockroll':>9}  notes"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        on_target = row.all_on_target
        shown = f"{on_target:.2f}s" if on_target is not None else "never"
        own = f"{row.dockroll_seconds:.2f}s" if row.dockroll_seconds is not None else "-"
        print(
            f"{row.scenario:<28} {f'{row.failed} / {len(row.samples)}':>15} "
            f"{row.latency(0.99) * 1000:>7.1f}ms {row.latency(1.0) * 1000:>7.1f}ms "
            f"{shown:>18} {row.command_seconds:>8.2f}s {own:>9}  {row.note}"
        )
    print()
    print(
        "failed = non-200 answers, connection errors and timeouts; p99/max over the 200s, "
        "from the scheduled send time;\n100% target after = from the command's start to the "
        "first request after which every 200 answer came from the target version;\n"
        "command = the command's wall time (CLI start-up included); dockroll = the rollout's "
        "own time as dockroll reports it"
    )
    for row in rows:
        if row.errors:
            kinds = ", ".join(f"{k} x{v}" for k, v in sorted(row.errors.items()))
            print(f"  {row.scenario}: {kinds}")


# -- helpers ------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, also_plus: int | None = None, avoid: set[int]) -> int:
    """A free port (and, with ``also_plus``, port + also_plus free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port in avoid or (also_plus is not None and port + also_plus > 65535):
            continue
        if also_plus is None or port_free(port + also_plus):
            avoid.add(port)
            return port
    raise SystemExit("no free port on 127.0.0.1")


def answering_version(
    port: int,
    timeout: float = 60.0,
    host: str = "127.0.0.1",
    *,
    tls: ssl.SSLContext | None = None,
    server_name: str = "x",
) -> str:
    """Wait until <host>:<port>/version answers 200 (over TLS with ``tls``); its version."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with (
                socket.create_connection((host, port), timeout=2) as plain,
                plain
                if tls is None
                else tls.wrap_socket(plain, server_hostname=server_name) as sock,
            ):
                sock.sendall(
                    f"GET /version HTTP/1.1\r\nHost: {server_name}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            if b" 200 " in head.split(b"\r\n", 1)[0]:
                return str(json.loads(body)["version"])
            last = head.split(b"\r\n", 1)[0].decode(errors="replace")
        except (OSError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise SystemExit(f"{host}:{port} did not answer /version within {timeout:g}s ({last})")


# -- the bench ----------------------------------------------------------------------


@dataclass
class Bench:
    rate: float
    duration: float
    lead: float
    tail: float
    registry: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockroll-zd-")))
    ports: set[int] = field(default_factory=set)
    digests: dict[str, str] = field(default_factory=dict)
    """version → digest"""
    tags: dict[str, str] = field(default_factory=dict)
    """version → the pushed tag equal to the version"""
    answers: dict[str, str] = field(default_factory=dict)
    """version → what /version answers for it"""
    swarm: SwarmCluster | None = None
    nginx_root: Path | None = None

    @property
    def service(self) -> str:
        return f"zdbench{self.run_id}"

    @property
    def repository(self) -> str:
        return f"bench/{self.service}"

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def app(self) -> Path:
        return self.workdir / "app"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DOCKROLL_LEDGER_URL"}
        env.update(DOCKROLL_STATE_DIR=str(self.state), DOCKROLL_ACTOR="bench", NO_COLOR="1")
        env.update(extra)
        return env

    def dockroll(self, *args: str) -> dict[str, object]:
        out = run(
            [DOCKROLL, "--config", str(self.app / "dockroll.yml"), "--json", *args],
            env=self.env(),
            cwd=self.app,
        )
        data: dict[str, object] = json.loads(out)
        return data

    # -- set-up ---------------------------------------------------------------------

    def prepare(self) -> None:
        shutil.copytree(
            EXAMPLE,
            self.app,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "tests"),
        )
        self.state.mkdir()
        home_state = Path.home() / ".local" / "state" / "dockroll" / "base-images.json"
        if not home_state.exists():
            raise SystemExit(f"{home_state} is missing: run `dockroll dev up` first")
        shutil.copy(home_state, self.state / "base-images.json")

        self.router_port = free_port(also_plus=1000, avoid=self.ports)
        self.compose_port = COMPOSE_PORT if port_free(COMPOSE_PORT) else free_port(avoid=self.ports)

        config = yaml.safe_load((self.app / "dockroll.yml").read_text())
        config["service"] = self.service
        config["image"] = self.image
        config["environments"] = {
            ENV: {
                "port": self.router_port,
                "strategy": "rolling",
                "replicas": 2,
                "canary": {"steps": [10, 50, 100], "pause": "3s"},
                "blue_green": {"keep_previous": "300s"},
            }
        }
        (self.app / "dockroll.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        if self.compose_port != COMPOSE_PORT:
            compose = self.app / "docker-compose.yml"
            compose.write_text(
                compose.read_text().replace(
                    f"127.0.0.1:{COMPOSE_PORT}:", f"127.0.0.1:{self.compose_port}:"
                )
            )

        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        run([*git, "init", "-q", "-b", "main"], cwd=self.app)
        run([*git, "add", "-A"], cwd=self.app)
        run([*git, "commit", "-q", "-m", "v1"], cwd=self.app)
        run([*git, "tag", VERSIONS[0]], cwd=self.app)
        with (self.app / "README.md").open("a") as readme:
            readme.write("\nSecond version of the benchmark's copy.\n")
        run([*git, "commit", "-q", "-am", "v2"], cwd=self.app)
        run([*git, "tag", VERSIONS[1]], cwd=self.app)

        for version in VERSIONS:
            run(["git", "checkout", "-q", version], cwd=self.app)
            started = time.monotonic()
            self.dockroll("build")
            pushed = self.dockroll("push")
            self.digests[version] = str(pushed["digest"])
            self.tags[version] = version
            self.answers[version] = run(
                ["docker", "image", "inspect", "-f",
                 '{{index .Config.Labels "org.opencontainers.image.version"}}',
                 f"{self.image}:{version}"]
            ).strip()  # fmt: skip
            print(
                f"built and pushed {version} in {time.monotonic() - started:.1f}s "
                f"as {pushed['digest']}",
                file=sys.stderr,
            )

    # -- one measured scenario -----------------------------------------------------

    def load(self, port: int, host: str) -> Load:
        """The load generator of one scenario (not started)."""
        return Load(port, self.rate, max_seconds=self.duration + 180, host=host)

    def measure(
        self,
        scenario: str,
        port: int,
        command: Callable[[], float | None],
        target: str,
        note: str = "",
        *,
        host: str = "127.0.0.1",
    ) -> Row:
        print(f"measuring {scenario} …", file=sys.stderr)
        load = self.load(port, host)
        load.start()
        time.sleep(self.lead)
        command_start = load.now()
        own = None
        try:
            own = command()
        except SystemExit as exc:  # the table still shows what the load saw
            lines = str(exc).strip().splitlines()
            note = f"FAILED: {lines[-1] if lines else exc}"
            print(exc, file=sys.stderr)
        command_seconds = load.now() - command_start
        end = max(self.duration, load.now() + self.tail)
        while load.now() < end:
            time.sleep(0.05)
        samples = load.stop()
        errors: dict[str, int] = {}
        for sample in samples:
            if sample.status != 200:
                key = sample.error or f"HTTP {sample.status}"
                errors[key] = errors.get(key, 0) + 1
        return Row(
            scenario,
            note,
            samples,
            command_start,
            command_seconds,
            self.answers[target],
            own,
            errors,
        )

    # -- scenarios ------------------------------------------------------------------

    def compose_env(self, version: str) -> dict[str, str]:
        return self.env(IMAGE_NAME=self.image, APP_VERSION=self.tags[version])

    def compose(self, version: str, *args: str) -> None:
        run(
            ["docker-compose", "-p", self.service, "-f", str(self.app / "docker-compose.yml"),
             *args],
            env=self.compose_env(version),
        )  # fmt: skip

    def bench_compose(self) -> list[Row]:
        self.compose(VERSIONS[0], "up", "-d", "--no-build")
        answering_version(self.compose_port)
        baseline = self.measure(
            "baseline compose (no change)",
            self.compose_port,
            lambda: None,
            VERSIONS[0],
            note="1 container, no proxy: what the box sustains",
        )

        def update() -> None:
            self.compose(VERSIONS[1], "up", "-d", "--no-build")

        row = self.measure(
            "docker-compose up -d",
            self.compose_port,
            update,
            VERSIONS[1],
            note=f"1 container on 127.0.0.1:{self.compose_port}, recreated",
        )
        self.compose(VERSIONS[1], "down", "--remove-orphans")
        return [baseline, row]

    def nginx(self, *args: str) -> None:
        root = self.nginx_root
        if root is None:
            raise SystemExit("nginx has no configuration yet")
        run(["nginx", "-e", str(root / "error.log"), "-c", str(root / "nginx.conf"), *args])

    def colour(self, name: str, version: str) -> int:
        """Start the ``name`` colour of ``version`` on a free port; returns the port."""
        port = free_port(avoid=self.ports)
        run(
            ["docker", "run", "-d", "--name", f"{self.service}-{name}",
             "-p", f"127.0.0.1:{port}:5000", f"{self.image}:{self.tags[version]}"]
        )  # fmt: skip
        return port

    def point_nginx_at(self, port: int) -> None:
        upstream = self.nginx_root / "upstream.conf"
        upstream.write_text(f"upstream app {{ server 127.0.0.1:{port}; keepalive 16; }}\n")

    def bench_nginx(self) -> list[Row]:
        root = self.nginx_root = self.workdir / "nginx"
        root.mkdir()
        port = self.nginx_port = free_port(avoid=self.ports)
        (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
        blue = self.colour("blue", VERSIONS[0])
        answering_version(blue)
        self.point_nginx_at(blue)
        self.nginx()
        answering_version(port)
        baseline = self.measure(
            "baseline nginx (no change)",
            port,
            lambda: None,
            VERSIONS[0],
            note="nginx → 1 container: what the box sustains through it",
        )

        def switch() -> None:
            green = self.colour("green", VERSIONS[1])
            answering_version(green)  # the new colour answers before it gets traffic
            self.point_nginx_at(green)
            self.nginx("-s", "reload")
            time.sleep(2)  # old workers finish their requests
            run(["docker", "rm", "-f", f"{self.service}-blue"])

        row = self.measure(
            "nginx blue-green (manual)",
            port,
            switch,
            VERSIONS[1],
            note="green started and checked, upstream rewritten, nginx -s reload",
        )
        self.stop_nginx()
        quiet(["docker", "rm", "-f", f"{self.service}-green"])
        return [baseline, row]

    def stop_nginx(self) -> None:
        pid = self.nginx_root / "nginx.pid" if self.nginx_root else None
        if pid is not None and pid.exists():
            root = self.nginx_root
            quiet(
                [
                    "nginx",
                    "-e",
                    str(root / "error.log"),
                    "-c",
                    str(root / "nginx.conf"),
                    "-s",
                    "quit",
                ]
            )
            for _ in range(40):
                if not pid.exists():
                    break
                time.sleep(0.1)

    def swarm_name(self) -> str:
        return f"{self.service}-swarm"

    def on_swarm(self, *args: str) -> str:
        """``docker`` against the Swarm's manager (never this machine's engine)."""
        if self.swarm is None:
            raise SystemExit("the Swarm is not up")
        return run(["docker", "--host", self.swarm.engine, *args])

    def swarm_image(self, version: str) -> str:
        """The release as the Swarm's nodes pull it (through the registry relay)."""
        if self.swarm is None:
            raise SystemExit("the Swarm is not up")
        return f"{self.swarm.registry}/{self.repository}:{self.tags[version]}"

    def start_swarm_proxy(self) -> int:
        """HAProxy on the manager, on the service's overlay network; its published port."""
        if self.swarm is None:
            raise SystemExit("the Swarm is not up")
        name = f"{self.swarm_name()}-proxy"
        image = load_substitutes().get(ROUTER_IMAGE, ROUTER_IMAGE)
        manager = ["docker", "--host", self.swarm.engine]
        if not quiet([*manager, "image", "inspect", image]):
            say(Progress("bench", f"copying {image} to the Swarm's manager"))
            saved = subprocess.run(["docker", "save", image], capture_output=True, check=True)
            subprocess.run([*manager, "load"], input=saved.stdout, capture_output=True, check=True)
        config = self.workdir / "swarm-haproxy.cfg"
        config.write_text(
            SWARM_HAPROXY_CONF.format(port=SWARM_PROXY_PORT, service=self.swarm_name())
        )
        self.on_swarm(
            "create", "--name", name, "--network", self.swarm_name(),
            # published inside the manager node only; this machine reaches it at the
            # node's address on the cluster's bridge network
            "-p", str(SWARM_PROXY_PORT), image,
        )  # fmt: skip
        self.on_swarm("cp", str(config), f"{name}:/usr/local/etc/haproxy/haproxy.cfg")
        self.on_swarm("start", name)
        published = self.on_swarm("port", name, f"{SWARM_PROXY_PORT}/tcp").split()[0]
        return int(published.rsplit(":", 1)[1])

    def bench_swarm(self) -> list[Row]:
        self.swarm = ensure_swarm(progress=say)  # as `dockroll dev up --with swarm`
        host = self.swarm.manager.address
        v1, v2 = VERSIONS
        self.on_swarm("network", "create", "--driver", "overlay", "--attachable", self.swarm_name())
        self.on_swarm(
            "service", "create", "--detach=false", "--quiet",
            "--name", self.swarm_name(), "--replicas", "2",
            "--network", self.swarm_name(), "--endpoint-mode", "dnsrr",
            "--constraint", "node.role==worker",
            # health known within a second or two, as dockroll checks replicas every 500 ms
            "--health-interval", "1s", "--health-start-period", "10s",
            "--update-parallelism", "1", "--update-delay", "0s",
            "--stop-grace-period", "10s",
            # A new task sometimes ends right after its start during an update
            # (seen as "Complete", exit 0); swarm restarts it, and the update should
            # go on rather than pause.
            "--update-failure-action", "continue",
            self.swarm_image(v1),
        )  # fmt: skip
        port = self.start_swarm_proxy()
        answering_version(port, host=host)

        def update(version: str, order: str) -> None:
            self.on_swarm(
                "service", "update", "--detach=false", "--quiet",
                "--update-order", order, "--image", self.swarm_image(version),
                self.swarm_name(),
            )  # fmt: skip

        rows = [
            self.measure(
                "baseline swarm (no change)",
                port,
                lambda: None,
                v1,
                note="HAProxy → 2 tasks on the overlay: what the box sustains through it",
                host=host,
            ),
            self.measure(
                "swarm update start-first",
                port,
                lambda: update(v2, "start-first"),
                v2,
                note="2 tasks, one at a time, new task healthy before the old stops",
                host=host,
            ),
            self.measure(
                "swarm update stop-first",
                port,
                lambda: update(v1, "stop-first"),
                v1,
                note="back to v1, one task at a time, old stopped first",
                host=host,
            ),
        ]
        self.remove_swarm_service()
        return rows

    def remove_swarm_service(self) -> None:
        if self.swarm is None:
            return
        manager = ["docker", "--host", self.swarm.engine]
        quiet([*manager, "rm", "-f", f"{self.swarm_name()}-proxy"])
        quiet([*manager, "service", "rm", self.swarm_name()])
        # the tasks' containers leave the overlay network a moment after the service
        for _ in range(40):
            quiet([*manager, "network", "rm", self.swarm_name()])
            if not quiet(
                [*manager, "network", "ls", "-q", "--filter", f"name={self.swarm_name()}"]
            ).strip():
                break
            time.sleep(0.5)
        for node in self.swarm.nodes:
            images = quiet(
                ["docker", "exec", node.name, "docker", "images", "-q",
                 f"{self.swarm.registry}/{self.repository}"]
            ).split()  # fmt: skip
            if images:
                quiet(["docker", "exec", node.name, "docker", "rmi", "-f", *set(images)])

    def deploy(self, version: str, *extra: str) -> float | None:
        result = self.dockroll("deploy", self.digests[version], "--env", ENV, *extra)
        seconds = result.get("seconds")
        return float(seconds) if isinstance(seconds, int | float) else None

    def rollback(self) -> float | None:
        result = self.dockroll("rollback", "--env", ENV)
        seconds = result.get("seconds")
        return float(seconds) if isinstance(seconds, int | float) else None

    def bench_dockroll(self) -> list[Row]:
        v1, v2 = VERSIONS
        self.deploy(v1)
        answering_version(self.router_port)
        rows = [
            self.measure(
                "baseline dockroll (no change)",
                self.router_port,
                lambda: None,
                v1,
                note="dockroll's router, nothing deployed: what the box sustains",
            ),
            self.measure(
                "dockroll rolling",
                self.router_port,
                lambda: self.deploy(v2, "--strategy", "rolling"),
                v2,
                note="2 replicas, batch 1, surge 1",
            ),
            self.measure(
                "dockroll rollback (rolling)",
                self.router_port,
                self.rollback,
                v1,
                note="rolled back replica by replica",
            ),
            self.measure(
                "dockroll blue-green",
                self.router_port,
                lambda: self.deploy(v2, "--strategy", "blue-green"),
                v2,
                note="2 + 2 replicas, one switch",
            ),
            self.measure(
                "dockroll rollback (b/g)",
                self.router_port,
                self.rollback,
                v1,
                note="switch back to the standby slot",
            ),
            self.measure(
                "dockroll canary",
                self.router_port,
                lambda: self.deploy(v2, "--strategy", "canary"),
                v2,
                note="10% → 50% → 100%, 3 s pauses",
            ),
        ]
        return rows

    # -- clean-up -------------------------------------------------------------------

    def cleanup(self) -> None:
        self.stop_nginx()
        compose = self.app / "docker-compose.yml"
        if compose.exists():
            quiet(
                ["docker-compose", "-p", self.service, "-f", str(compose), "down",
                 "--remove-orphans"],
                env=self.compose_env(VERSIONS[0]) if self.tags else self.env(),
            )  # fmt: skip
        self.remove_swarm_service()
        containers = quiet(["docker", "ps", "-aq", "--filter", f"name={self.service}"]).split()
        if containers:
            quiet(["docker", "rm", "-f", *containers])
        networks = quiet(["docker", "network", "ls", "-q", "--filter", f"name={self.service}"])
        for network in networks.split():
            quiet(["docker", "network", "rm", network])
        volumes = quiet(["docker", "volume", "ls", "-q", "--filter", f"name={self.service}"])
        for volume in volumes.split():
            quiet(["docker", "volume", "rm", volume])
        try:
            with RegistryClient(self.registry, lookup_credentials=False) as client:
                digests = {
                    digest
                    for tag in client.list_tags(self.repository)
                    if (digest := client.manifest_digest(self.repository, tag)) is not None
                }
                for digest in digests:
                    client.delete_manifest(self.repository, digest)
        except Exception as exc:  # cleanup reports and goes on
            print(
                f"cleanup: could not delete {self.repository}'s manifests: {exc}", file=sys.stderr
            )
        images = quiet(["docker", "images", "-q", "--filter", f"reference={self.image}"]).split()
        images += quiet(["docker", "images", "-q", "--filter", f"reference={self.image}:*"]).split()
        if images:
            quiet(["docker", "rmi", "-f", *set(images)])
        shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=250, help="requests per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load per scenario")
    parser.add_argument("--lead", type=float, default=2, help="seconds of load before the command")
    parser.add_argument("--tail", type=float, default=3, help="least seconds of load after it")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="the local registry")
    parser.add_argument(
        "--only",
        action="append",
        choices=("compose", "nginx", "swarm", "dockroll"),
        help="run only these scenario groups (repeatable; default: all)",
    )
    args = parser.parse_args()
    if args.registry.rpartition(":")[0] not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark talks to a registry on 127.0.0.1 only")
    if not 1 <= args.rate <= 2000 or not 1 <= args.duration <= 120:
        raise SystemExit("--rate must be 1..2000 and --duration 1..120")
    groups = args.only or ["compose", "nginx", "swarm", "dockroll"]
    needed = dict(TOOLS)
    for group in groups:
        needed.update(PEERS.get(group, {}))
    try:
        ensure_commands(needed, progress=say)
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    bench = Bench(args.rate, args.duration, args.lead, args.tail, args.registry)
    rows: list[Row] = []
    setup_failures: list[str] = []
    try:
        print(f"building {bench.image} {' and '.join(VERSIONS)} …", file=sys.stderr)
        bench.prepare()
        phases: dict[str, Callable[[], list[Row]]] = {
            "compose": bench.bench_compose,
            "nginx": bench.bench_nginx,
            "swarm": bench.bench_swarm,
            "dockroll": bench.bench_dockroll,
        }
        for name, phase in phases.items():
            if name not in groups:
                continue
            try:
                rows += phase()
            except SystemExit as exc:  # a set-up step failed: the other phases still run
                print(exc, file=sys.stderr)
                setup_failures.append(str(exc).strip().splitlines()[0])
        print_table(rows, args.rate)
    finally:
        bench.cleanup()

    dockroll_rows = [row for row in rows if row.scenario.startswith("dockroll")]
    baseline = next((row for row in rows if row.scenario.startswith("baseline dockroll")), None)
    if baseline is not None and baseline.failed:
        print(
            f"the baseline failed {baseline.failed} requests with nothing deployed: "
            "the machine cannot sustain this rate now; the failures below are not the rollouts'"
        )
    return verdict(dockroll_rows, setup_failures, "no dockroll scenario failed a request")


def verdict(dockroll_rows: Sequence[Row], setup_failures: Sequence[str], met: str) -> int:
    """Print whether the dockroll rows met the target (no failed request, every one on
    the target version in the end) and give the exit code."""
    failures = [f"set-up: {failure}" for failure in setup_failures]
    failures += [f"{row.scenario}: {row.failed} failed" for row in dockroll_rows if row.failed]
    failures += [
        f"{row.scenario}: never all on the target version"
        for row in dockroll_rows
        if row.all_on_target is None
    ]
    if failures:
        print("TARGET MISSED:\n  " + "\n  ".join(failures))
        return 1
    print(f"target met: {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
