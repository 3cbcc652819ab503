"""The router as a global Swarm service: its config, the fan-out to every task, the admin PKI.

The integration test on a DinD Swarm proves that every ingress node serves with
the same weights; these pin down the config, the merging of reads and that a
change reaches every task (or fails naming the one it did not reach).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.config import Config
from dockroll.engine import DockerEngine
from dockroll.engine.swarm_global import object_name
from dockroll.errors import RouterError
from dockroll.listeners import ListenAddress
from dockroll.router import HaproxyRouter, HaproxySettings
from dockroll.router.acme import AcmeSettings
from dockroll.router.runtime_api import AdminAddress, RuntimeApi
from dockroll.router.swarm_service import (
    ADMIN_PORT,
    AdminPki,
    FanOut,
    SwarmServiceRouter,
    TlsTransport,
    _port_taken,
    admin_lines,
    merge_stat,
)
from dockroll.router.tls import bundle, self_signed

REMOTE = DockerEngine("tcp://127.0.0.1:1")  # never contacted by these tests


def _router(tmp_path: Path, **settings: object) -> SwarmServiceRouter:
    return SwarmServiceRouter(
        REMOTE,
        service="web",
        environment="prod",
        port=18080,
        replica_names=["web-prod-r-1", "web-prod-r-2"],
        replica_port=5000,
        settings=HaproxySettings(**settings),  # type: ignore[arg-type]
        state_root=tmp_path,
    )


def test_the_config_puts_the_cli_behind_tls_with_client_certificates_only(
    tmp_path: Path,
) -> None:
    text = _router(tmp_path)._render("abc")
    lines = text.splitlines()
    # The runtime API is a unix socket in the task; nothing plain listens on the network.
    sockets = [line for line in lines if line.strip().startswith("stats socket")]
    assert sockets == [
        "    stats socket /var/lib/haproxy/admin.sock mode 666 level admin expose-fd listeners"
    ]
    assert not any("ipv4@" in line for line in lines)
    bind = next(line for line in lines if f"bind :{ADMIN_PORT}" in line)
    assert "ssl crt /run/secrets/dockroll-admin.pem" in bind
    assert "ca-file /run/secrets/dockroll-admin-ca.pem verify required" in bind
    assert "    server cli unix@/var/lib/haproxy/admin.sock" in lines
    # Servers resolve their replicas by Docker's DNS and start disabled, as on the manager.
    assert any(
        line.startswith("    server web-prod-r-2 web-prod-r-2:5000 resolvers docker")
        and line.endswith("disabled")
        for line in lines
    )
    assert "    description dockroll-config abc" in lines
    # The metrics port tells a load balancer whether this node's task has a server to use.
    metrics = lines.index("frontend metrics")
    ready = [line for line in lines[metrics:] if "path /ready" in line]
    assert "status 200" in ready[0]
    assert "{ nbsrv(app) gt 0 }" in ready[0]
    assert "status 503" in ready[1]
    assert lines.index(ready[1]) < lines.index(
        "    http-request use-service prometheus-exporter if { path /metrics }"
    )
    assert admin_lines()[0] == "frontend dockroll_admin"


def test_the_service_publishes_every_listener_and_the_metrics_port_on_its_nodes(
    tmp_path: Path,
) -> None:
    router = _router(tmp_path, image="haproxy:2.6")
    router.pki.ensure()
    spec = router.service_spec()
    assert spec.ports == {18080: 8080, 19080: 8404}
    assert spec.constraints == ("node.labels.dockroll.ingress==true",)
    assert spec.network == "dockroll-web-prod"
    assert set(spec.secrets) == {
        "/run/secrets/dockroll-admin.pem",
        "/run/secrets/dockroll-admin-ca.pem",
    }
    assert b"frontend dockroll_admin" in spec.configs["/usr/local/etc/haproxy/haproxy.cfg"]
    # The client key never leaves this machine.
    assert router.pki.client_key.read_bytes() not in b"".join(spec.secrets.values())
    # A changed config is a new config object, hence a service update.
    first = spec.fingerprint()
    changed = _router(tmp_path, image="haproxy:2.6", retries=5)
    assert changed.service_spec().fingerprint() != first
    assert _router(tmp_path, image="haproxy:2.6").service_spec().fingerprint() == first


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = self_signed(name, days=1, dns_names=[name])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pem").write_bytes(cert)
    (directory / f"{name}.key").write_bytes(key)
    return directory / f"{name}.pem", directory / f"{name}.key"


def _tls_router(tmp_path: Path, cert: Path, key: Path, **settings: object) -> SwarmServiceRouter:
    plain, secure = ListenAddress("0.0.0.0", 18080), ListenAddress("0.0.0.0", 18443)
    return _router(
        tmp_path,
        image="haproxy:2.6",
        listeners=(plain, secure),
        tls_listeners=(secure,),
        tls_cert=cert,
        tls_key=key,
        **settings,
    )


def test_tls_listeners_take_their_certificate_from_a_secret_where_a_container_keeps_it(
    tmp_path: Path,
) -> None:
    cert, key = _certificate(tmp_path / "certs", "a.test")
    router = _tls_router(tmp_path, cert, key, hsts_seconds=3600)
    router.pki.ensure()
    spec = router.service_spec()
    assert spec.ports == {18080: 8080, 18443: 8081, 19080: 8404}
    site = spec.secrets["/usr/local/etc/haproxy/site.pem"].decode()
    assert site == bundle(cert, key, router.owner)
    assert not any(b"PRIVATE KEY" in data for data in spec.configs.values())
    config = spec.configs["/usr/local/etc/haproxy/haproxy.cfg"].decode()
    assert "    bind :8080\n" in config
    assert (
        "    bind :8081 ssl crt /usr/local/etc/haproxy/site.pem ssl-min-ver TLSv1.2 alpn http/1.1\n"
        in config
    )
    assert "http-request redirect scheme https code 301 if !{ ssl_fc }" in config
    assert 'set-header Strict-Transport-Security "max-age=3600" if { ssl_fc }' in config

    # A replaced certificate is a new secret, hence a service update; the same one is not.
    first = spec.fingerprint()
    assert _tls_router(tmp_path, cert, key, hsts_seconds=3600).service_spec().fingerprint() == (
        first
    )
    cert.write_bytes(_certificate(tmp_path / "other", "a.test")[0].read_bytes())
    key.write_bytes((tmp_path / "other" / "a.test.key").read_bytes())
    renewed = _tls_router(tmp_path, cert, key, hsts_seconds=3600).service_spec()
    assert renewed.fingerprint() != first
    assert renewed.configs == spec.configs


def test_a_key_that_is_not_the_certificate_s_own_is_refused_before_the_service_changes(
    tmp_path: Path,
) -> None:
    cert, _ = _certificate(tmp_path / "certs", "a.test")
    _, other_key = _certificate(tmp_path / "certs", "b.test")
    router = _tls_router(tmp_path, cert, other_key)
    router.pki.ensure()
    with pytest.raises(RouterError, match="does not belong to the certificate") as caught:
        router.service_spec()
    assert str(other_key) in caught.value.message
    assert str(cert) in caught.value.message
    # Nor is it loaded live: refused before any task is reached (none is here).
    with pytest.raises(RouterError, match="does not belong to the certificate"):
        router.sync_certificate()

    (tmp_path / "certs" / "bad.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", encoding="ascii"
    )
    broken = _tls_router(tmp_path, tmp_path / "certs" / "bad.pem", other_key)
    with pytest.raises(RouterError, match="holds no certificate that can be read"):
        broken.service_spec()


def test_acme_and_hostnames_on_the_edge_are_refused_in_service_mode_naming_the_alternative(
    tmp_path: Path,
) -> None:
    address = ListenAddress("0.0.0.0", 18443)
    acme = AcmeSettings(directory="https://127.0.0.1:14000/dir", domains=("a.test",))
    with pytest.raises(RouterError, match="does not support certificates from an ACME CA") as c:
        _router(tmp_path, listeners=(address,), tls_listeners=(address,), acme=acme)
    assert "router.tls.cert and router.tls.key" in (c.value.hint or "")
    with pytest.raises(RouterError, match="does not support hostnames on the edge") as c:
        _router(tmp_path, edge=True)
    assert "swarm.router: container" in (c.value.hint or "")


def test_the_setting_picks_the_service_router_and_defaults_to_the_container(
    tmp_path: Path,
) -> None:
    def config(swarm: dict[str, object]) -> Config:
        return Config.model_validate(
            {
                "service": "web",
                "image": "127.0.0.1:5000/web",
                "environments": {
                    "prod": {"port": 18080, "engine": "tcp://127.0.0.1:1", "swarm": swarm}
                },
            }
        )

    plain = HaproxyRouter.for_environment(REMOTE, config({}), "prod", state_root=tmp_path)
    assert type(plain).__name__ == "SwarmRouter"
    service = HaproxyRouter.for_environment(
        REMOTE,
        config({"router": "service", "ingress": ["node.labels.edge==yes"]}),
        "prod",
        state_root=tmp_path,
    )
    assert isinstance(service, SwarmServiceRouter)
    assert service.ingress == ("node.labels.edge==yes",)
    with pytest.raises(ValueError, match=r"container\|service"):
        config({"router": "mesh"})


_STAT_A = """\
# pxname,svname,qcur,scur,stot,status,weight,rtime,hrsp_2xx,hrsp_5xx,req_tot
app,FRONTEND,,2,100,OPEN,,,,,
app,web-prod-r-1,0,1,60,UP,10,4,60,0,60
app,BACKEND,0,1,60,UP,10,4,60,0,60
"""
_STAT_B = """\
# pxname,svname,qcur,scur,stot,status,weight,rtime,hrsp_2xx,hrsp_5xx,req_tot
app,FRONTEND,,1,40,OPEN,,,,,
app,web-prod-r-1,1,3,40,UP,10,8,38,2,40
app,BACKEND,1,3,40,UP,10,8,38,2,40
"""


def test_show_stat_of_every_task_is_summed_and_averaged() -> None:
    merged = merge_stat([_STAT_A, _STAT_B]).splitlines()
    assert merged[0] == _STAT_A.splitlines()[0]
    assert merged[1] == "app,FRONTEND,,3,140,OPEN,,,,,"
    # counters add up, the weight is the task's own (the same on each), response times average
    assert merged[2] == "app,web-prod-r-1,1,4,100,UP,10,6,98,2,100"
    assert merge_stat([_STAT_A]) == _STAT_A


class _Task:
    def __init__(self, name: str, answer: str = "\n") -> None:
        self.name = name
        self.lines: list[str] = []
        self.answer = answer
        self.down = False

    def __call__(self, line: str) -> str:
        if self.down:
            raise OSError(111, "Connection refused")
        self.lines.append(line)
        if line.startswith("show stat"):
            return _STAT_A
        return self.answer


def _api(tasks: list[_Task]) -> RuntimeApi:
    return RuntimeApi(
        AdminAddress(host="tasks", port=ADMIN_PORT),
        owner="web/prod",
        transport=FanOut(lambda: [(t.name, t) for t in tasks]),
    )


def test_every_change_reaches_every_task() -> None:
    a, b = _Task("manager"), _Task("worker-1")
    api = _api([a, b])
    api.run("set weight app/web-prod-r-1 30", "set server app/web-prod-r-1 state ready")
    assert (
        a.lines
        == b.lines
        == ["set weight app/web-prod-r-1 30;set server app/web-prod-r-1 state ready"]
    )
    # reads other than counters ask one task; counters ask all and add up
    api.execute("show servers state app")
    assert len(a.lines) == 2
    assert len(b.lines) == 1
    rows = api.show_stat()
    assert len(a.lines) == 3
    assert len(b.lines) == 2
    server = next(r for r in rows if r.get("svname") == "web-prod-r-1")
    assert server["stot"] == "120"


def test_a_refusal_by_any_task_is_the_change_s_refusal() -> None:
    a, b = _Task("manager"), _Task("worker-1", answer="No such server.\n")
    with pytest.raises(RouterError, match="No such server"):
        _api([a, b]).run("set weight app/web-prod-r-9 30")


def test_a_task_that_cannot_be_reached_fails_the_change_naming_it() -> None:
    a, b = _Task("manager"), _Task("worker-1 (10.0.1.9)")
    b.down = True
    with pytest.raises(RouterError, match=r"worker-1 \(10\.0\.1\.9\)"):
        _api([a, b]).run("set weight app/web-prod-r-1 30")
    with pytest.raises(RouterError, match="no router task runs"):
        _api([]).run("set weight app/web-prod-r-1 30")


# -- the admin PKI and mutual TLS --------------------------------------------------


def test_the_pki_is_generated_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    pki = AdminPki(tmp_path / "pki", "web/prod")
    pki.ensure()
    first = pki.ca.read_bytes()
    for path in (pki.ca, pki.server, pki.client_cert, pki.client_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    pki.ensure()
    assert pki.ca.read_bytes() == first


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[AdminPki, int]]:
    """A TLS server that wants a client certificate from the PKI's CA and echoes a line."""
    pki = AdminPki(tmp_path / "pki", "web/prod")
    pki.ensure()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server))
    context.load_verify_locations(str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    line = conn.recv(4096)
                    conn.sendall(b"answer to " + line)
            except (OSError, ssl.SSLError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield pki, port
    listener.close()


def test_the_transport_speaks_tls_with_its_client_certificate(
    tls_server: tuple[AdminPki, int],
) -> None:
    pki, port = tls_server
    transport = TlsTransport(
        lambda: socket.create_connection(("127.0.0.1", port)), pki.context(), 5
    )
    assert transport("show info") == "answer to show info\n"


def test_a_server_of_another_ca_is_refused(
    tls_server: tuple[AdminPki, int], tmp_path: Path
) -> None:
    _, port = tls_server
    other = AdminPki(tmp_path / "other", "web/staging")
    other.ensure()
    transport = TlsTransport(
        lambda: socket.create_connection(("127.0.0.1", port)), other.context(), 5
    )
    with pytest.raises(OSError, match="TLS with the router task failed"):
        transport("show info")


def test_swarm_objects_are_named_by_content_and_service_within_64_characters() -> None:
    path = "/usr/local/etc/haproxy/haproxy.cfg"
    long = "dockroll-router-" + "x" * 60
    names = {
        object_name(long + "-prod", path, b"global\n"),
        object_name(long + "-test", path, b"global\n"),
        object_name(long + "-prod", path, b"global \n"),
    }
    assert len(names) == 3
    assert all(len(name) <= 64 for name in names)
    assert object_name("web", path, b"a") == object_name("web", path, b"a")


def test_a_port_the_node_refuses_fails_at_once_but_not_one_an_old_task_still_holds() -> None:
    assert _port_taken(
        "Error response from daemon: driver failed programming external connectivity: "
        "Bind for 0.0.0.0:2375 failed: port is already allocated"
    )
    assert _port_taken("listen tcp 0.0.0.0:2375: bind: address already in use")
    # The scheduler's word while a stop-first update waits for the old task to stop.
    assert not _port_taken("no suitable node (host-mode port already in use on 1 node)")


# -- a task keeps its servers' state on its node -------------------------------------

_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
    "srv_agent_port"
)


def _state(servers: dict[str, tuple[int, int]], seconds: int = 5) -> str:
    """A `show servers state app` answer: name → (weight, srv_admin_state)."""
    rows = [
        f"3 app {i} {name} 10.0.1.{i} 2 {admin} {weight} 256 {seconds} 6 3 4 6 0 0 0 "
        f"{name} 5000 - 0 0 - - 0"
        for i, (name, (weight, admin)) in enumerate(sorted(servers.items()), start=1)
    ]
    return "\n".join(["1", _HEADER, *rows]) + "\n"


def test_the_tasks_keep_their_server_state_in_a_volume_of_their_node(tmp_path: Path) -> None:
    router = _router(tmp_path, image="haproxy:2.6")
    router.pki.ensure()
    spec = router.service_spec()
    lines = spec.configs["/usr/local/etc/haproxy/haproxy.cfg"].decode().splitlines()
    # HAProxy loads the state its node's previous task left, from the volume.
    assert "    server-state-file /var/lib/haproxy/servers.state" in lines
    assert spec.volumes == {router.state_volume: "/var/lib/haproxy"}
    assert router.state_volume.startswith("dockroll-router-web-prod-state-")
    # The master runs the keeper beside the worker, against the worker's socket.
    assert lines[lines.index("global") + 1] == "    master-worker"
    program = lines.index("program dockroll-keep-state")
    command = lines[program + 1]
    assert "/usr/local/etc/haproxy/keep-state.pl /var/lib/haproxy/admin.sock" in command
    assert (
        "/var/lib/haproxy/servers.state app 0.5 "
        "/usr/local/etc/haproxy/state.map /var/lib/haproxy/flags.map" in command
    )
    assert lines[program + 2] == "    no option start-on-reload"
    assert b"show servers state" in spec.configs["/usr/local/etc/haproxy/keep-state.pl"]
    # An environment brought down (its CA removed) and up again starts from no state.
    kept = router.state_volume
    for path in router.pki.directory.iterdir():
        path.unlink()
    router.pki.ensure()
    assert router.state_volume != kept


def test_the_keeper_writes_the_state_whenever_the_servers_change(tmp_path: Path) -> None:
    """The Perl loop against a stand-in runtime API on a unix socket."""
    from dockroll.router.state_keeper import keeper_script  # noqa: PLC0415

    answers = {"state": _state({"web-prod-r-1": (256, 0)}, seconds=1)}
    flags = {"hold": "off", "hold_until": "0", "maintenance": "off"}
    asked = threading.Event()
    path = tmp_path / "api.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()
    commands: list[str] = []

    def answer(command: str) -> str:
        if command == "show info":
            return "Name: HAProxy\nPid: 7\n"
        if command == "show servers state app":
            asked.set()
            return answers["state"]
        if command == "show map /cfg/state.map":
            return "".join(f"0x{i:x} {k} {v}\n" for i, (k, v) in enumerate(flags.items()))
        words = command.split()
        if words[:3] == ["set", "map", "/cfg/state.map"]:
            commands.append(command)
            flags[words[3]] = words[4]
            return "\n"
        return "Unknown command.\n"

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            # The keeper is killed at the end, perhaps in the middle of an exchange.
            with conn, contextlib.suppress(OSError):
                conn.sendall(answer(conn.recv(1024).decode().strip()).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    script = tmp_path / "keep.pl"
    script.write_text(keeper_script())
    state, kept_flags = tmp_path / "servers.state", tmp_path / "flags.map"
    # The node's previous task was in maintenance: the new one is put back into it.
    kept_flags.write_text("hold off\nhold_until 0\nmaintenance on\nbogus; rm\n")
    keeper = subprocess.Popen(
        ["perl", str(script), str(path), str(state), "app", "0.05", "/cfg/state.map",
         str(kept_flags)]
    )  # fmt: skip
    try:

        def written(file: Path, expected: str) -> None:
            deadline = time.monotonic() + 10
            while not (file.is_file() and file.read_text() == expected):
                assert time.monotonic() < deadline, file.read_text() if file.is_file() else ""
                time.sleep(0.02)

        written(state, answers["state"])
        assert "set map /cfg/state.map maintenance on" in commands
        assert not any("bogus" in c for c in commands)
        assert flags["maintenance"] == "on"
        first = state.stat().st_ino
        # Only the seconds since the last change moved: the file stays as it was.
        answers["state"] = _state({"web-prod-r-1": (256, 0)}, seconds=9)
        asked.clear()
        for _ in range(3):
            asked.wait(5)
            asked.clear()
        assert state.stat().st_ino == first
        assert "256 256 1 " in state.read_text()
        # A weight changed: the new state replaces the file (renamed into place).
        answers["state"] = _state({"web-prod-r-1": (40, 8)}, seconds=0)
        written(state, answers["state"])
        assert not (tmp_path / "servers.state.tmp").exists()
        # A flag changed: kept too.
        flags["hold"] = "on"
        written(kept_flags, "hold on\nhold_until 0\nmaintenance on\n")
        # An answer that is not a state (the API starting, an error) is never written.
        answers["state"] = "Unknown command.\n"
        for _ in range(3):
            asked.wait(5)
            asked.clear()
        assert "40 256 0 " in state.read_text()
    finally:
        keeper.kill()
        keeper.wait(10)
        stop.set()
        thread.join(5)
        server.close()


class _Haproxy:
    """A router task's runtime API: its declared servers as name → [weight, srv_admin_state],
    those in forced maintenance (1) unused."""

    def __init__(self, servers: dict[str, tuple[int, int]]) -> None:
        self.servers = {name: [0, 1] for name in ("web-prod-r-1", "web-prod-r-2")}
        self.servers.update({name: list(value) for name, value in servers.items()})
        self.changes: list[str] = []

    def __call__(self, line: str) -> str:
        for command in (c.strip() for c in line.split(";")):
            if command == "show servers state app":
                return _state({n: (w, a) for n, (w, a) in self.servers.items()})
            if command == "show info":
                return "Pid: 1\n"
            self.changes.append(command)
            words = command.split()
            if words[:2] == ["set", "weight"]:
                self.servers[words[2].split("/")[1]][0] = int(words[3])
            elif words[:2] == ["set", "server"] and words[3] == "state":
                states = {"ready": 0, "drain": 8, "maint": 1}
                self.servers[words[2].split("/")[1]][1] = states[words[4]]
        return "\n"


def _tasks(router: SwarmServiceRouter, tasks: dict[str, _Haproxy]) -> None:
    """Run ``router`` against stand-in tasks, the first listed the longest-running."""
    router._running_tasks = lambda: [(node, f"10.0.9.{i}") for i, node in enumerate(tasks)]  # type: ignore[method-assign]
    addresses = {f"10.0.9.{i}": task for i, task in enumerate(tasks.values())}
    router._transport = lambda address: addresses[address]  # type: ignore[method-assign]


def test_a_task_that_started_from_an_old_state_gets_the_longest_running_task_s_servers(
    tmp_path: Path,
) -> None:
    router = _router(tmp_path)
    r1, r2 = "web-prod-r-1", "web-prod-r-2"
    # The manager's task ran on while a rollout drained r1 and put r2 in at weight 40;
    # the worker's task was down meanwhile and started again from its node's state.
    manager = _Haproxy({r1: (0, 8), r2: (40, 0)})
    worker = _Haproxy({r1: (256, 0), r2: (0, 1)})
    _tasks(router, {"manager": manager, "worker-1": worker})
    messages: list[str] = []
    router._progress = lambda event: messages.append(event.message)  # type: ignore[method-assign]
    assert router.restore([]) == (r1, r2)
    assert worker.servers == manager.servers == {r1: [0, 8], r2: [40, 0]}
    assert messages == [
        "restoring the router task on worker-1, whose servers differ from those of manager"
    ]
    # A server the task did not use comes back down until its first check, as any new one.
    assert f"set server app/{r2} health down" in worker.changes
    assert f"set server app/{r1} health down" not in worker.changes
    assert manager.changes == []
    # Once alike, nothing more to do.
    assert router.restore([]) == ()


def test_a_task_with_servers_no_other_has_puts_them_back_into_maintenance(
    tmp_path: Path,
) -> None:
    router = _router(tmp_path)
    manager = _Haproxy({"web-prod-r-2": (256, 0)})
    worker = _Haproxy({"web-prod-r-1": (256, 0), "web-prod-r-2": (256, 0)})
    _tasks(router, {"manager": manager, "worker-1": worker})
    router.restore([])
    assert worker.servers["web-prod-r-1"] == [0, 1]
    assert worker.servers["web-prod-r-2"] == [256, 0]


def test_tasks_that_all_came_back_empty_get_the_caller_s_servers(tmp_path: Path) -> None:
    from dockroll.router.port import ServerSpec  # noqa: PLC0415

    router = _router(tmp_path)
    manager, worker = _Haproxy({}), _Haproxy({})
    _tasks(router, {"manager": manager, "worker-1": worker})
    specs = [
        ServerSpec("web-prod-r-1", "10.0.1.1", 5000, weight=256),
        ServerSpec("web-prod-r-2", "10.0.1.2", 5000, weight=0),
        ServerSpec("web-prod-r-9", "10.0.1.9", 5000, weight=256),  # not declared: left out
    ]
    assert router.restore(specs) == ("web-prod-r-1", "web-prod-r-2")
    assert manager.servers == worker.servers == {"web-prod-r-1": [256, 0], "web-prod-r-2": [0, 0]}
    assert router.restore(specs) == ()


def _task_json(task_id: str, node: str, image: str, configs: list[str], state: str) -> dict:
    """A task as the Engine API lists it, on network dockroll-web-prod."""
    return {
        "ID": task_id,
        "NodeID": node,
        "CreatedAt": f"2026-01-01T00:00:0{task_id[-1]}Z",
        "DesiredState": "running",
        "Status": {"State": state},
        "Spec": {
            "ContainerSpec": {"Image": image, "Configs": [{"ConfigName": c} for c in configs]}
        },
        "NetworksAttachments": [
            {
                "Network": {"Spec": {"Name": "dockroll-web-prod"}},
                "Addresses": [f"10.0.9.{task_id[-1]}/24"],
            }
        ],
    }


class _SwarmApi:
    def __init__(self, tasks: list[dict]) -> None:
        self.listed = tasks
        self.spec = {
            "ContainerSpec": {"Image": "haproxy:2.6", "Configs": [{"ConfigName": "cfg-2"}]}
        }

    def tasks(self, filters: dict) -> list[dict]:
        return self.listed

    def inspect_service(self, name: str) -> dict:
        return {"Spec": {"TaskTemplate": self.spec}}


class _Swarm:
    def __init__(self, api: _SwarmApi) -> None:
        self.client = type("Client", (), {"api": api})()

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        yield

    def node_names(self) -> dict[str, str]:
        return {"n1": "manager", "n2": "worker-1"}


def test_a_task_a_service_update_has_not_replaced_yet_is_not_current() -> None:
    from dockroll.engine.swarm_global import global_tasks  # noqa: PLC0415

    api = _SwarmApi(
        [
            _task_json("t1", "n1", "haproxy:2.6", ["cfg-2"], "running"),
            _task_json("t2", "n2", "haproxy:2.6", ["cfg-1"], "running"),
        ]
    )
    found = {t.node: t for t in global_tasks(_Swarm(api), "svc", "dockroll-web-prod")}  # type: ignore[arg-type]
    assert found["manager"].current
    assert not found["worker-1"].current
    assert found["worker-1"].running
    assert found["worker-1"].address == "10.0.9.2"


def test_the_router_waits_until_every_node_runs_the_updated_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = _router(tmp_path)
    api = _SwarmApi(
        [
            _task_json("t1", "n1", "haproxy:2.6", ["cfg-2"], "running"),
            _task_json("t2", "n2", "haproxy:2.6", ["cfg-1"], "running"),
        ]
    )
    looks: list[int] = []

    def sleep(seconds: float) -> None:
        looks.append(1)
        # Swarm's update reaches the worker: its new task runs the new spec.
        api.listed = [
            api.listed[0],
            _task_json("t3", "n2", "haproxy:2.6", ["cfg-2"], "running"),
        ]

    monkeypatch.setattr("dockroll.router.swarm_service.time.sleep", sleep)
    monkeypatch.setattr(router, "_swarm", lambda: _Swarm(api))
    monkeypatch.setattr(router, "_answering", lambda pairs: True)
    pairs = router._wait_tasks({"n1", "n2"}, updated=True)
    assert looks == [1]
    assert pairs == [("manager", "10.0.9.1"), ("worker-1", "10.0.9.3")]
