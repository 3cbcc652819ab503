"""The HAProxy adapter's generated config, and its server operations over a scripted socket.

Only the integration tests prove it against a real HAProxy; these pin down the
commands it sends and the errors it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockroll.config import Config
from dockroll.engine import DockerEngine
from dockroll.engine.port import ContainerInfo, Health
from dockroll.errors import RouterError
from dockroll.listeners import ListenAddress
from dockroll.router import CheckSettings, HaproxyRouter, HaproxySettings, ServerState
from dockroll.router.haproxy import render_config
from dockroll.router.transport import ADMIN_PORT_LABEL, ExecTransport
from tests.unit.router.fake_cli import FakeCli, serve_unix

REMOTE = DockerEngine("tcp://127.0.0.1:1")  # never contacted by these tests


def _config(**settings: Any) -> str:
    return render_config(service="web", environment="prod", settings=HaproxySettings(**settings))


def test_config_declares_no_server_and_tunes_for_zero_downtime() -> None:
    config = _config()

    assert "\n    server " not in config
    assert "default_backend app" in config
    for line in (
        "stats socket /var/run/dockroll/admin.sock mode 666 level admin expose-fd listeners",
        "server-state-file /usr/local/etc/haproxy/servers.state",
        "load-server-state-from-file global",
        "option redispatch 1",
        "retries 3",
        "retry-on conn-failure empty-response response-timeout",
        "http-request disable-l7-retry unless { method GET HEAD OPTIONS }",
        "option http-server-close",
        "balance roundrobin",
        "option httpchk GET /ready",
        "timeout connect 2000ms",
        "timeout queue 5000ms",
        "http-request use-service prometheus-exporter if { path /metrics }",
        "bind :8080",
        "bind :8404",
    ):
        assert f"    {line}\n" in config, line


def test_config_follows_settings() -> None:
    config = _config(health_path="/healthz", connect_timeout=0.5, server_timeout=120, retries=2)

    assert "    option httpchk GET /healthz\n" in config
    assert "    timeout connect 500ms\n" in config
    assert "    timeout server 120000ms\n" in config
    assert "    retries 2\n" in config


def test_a_remote_router_serves_its_runtime_api_on_its_own_loopback_only() -> None:
    config = render_config(
        service="web",
        environment="prod",
        settings=HaproxySettings(),
        admin_socket=False,
        loopback_admin=True,
    )

    sockets = [line for line in config.splitlines() if line.startswith("    stats socket")]
    # The unix socket stays inside the container: it only hands listeners to a reload.
    assert sockets == [
        "    stats socket /var/lib/haproxy/reload.sock mode 600 level admin expose-fd listeners",
        "    stats socket ipv4@127.0.0.1:9999 level admin",
    ]
    assert "0.0.0.0" not in config


def test_a_reload_config_names_its_fingerprint_and_carries_servers() -> None:
    server = "    server web-1 10.0.0.5:5000 weight 100 check inter 500 fall 2 rise 1"
    config = render_config(
        service="web",
        environment="prod",
        settings=HaproxySettings(),
        fingerprint="0123abcd",
        servers=[server],
    )

    assert "    description dockroll-config 0123abcd\n" in config
    backend = config[config.index("backend app") : config.index("frontend metrics")]
    assert f"{server}\n" in backend


def test_each_listener_is_its_own_bind() -> None:
    listeners = (ListenAddress("0.0.0.0", 80), ListenAddress("::", 80))
    config = _config(listeners=listeners)

    assert "    bind :8080\n    bind :8081\n" in config


def test_a_remote_router_passes_listeners_over_a_socket_of_its_own() -> None:
    config = render_config(
        service="web",
        environment="prod",
        settings=HaproxySettings(),
        admin_socket=False,
        loopback_admin=True,
    )

    assert "stats socket /var/lib/haproxy/reload.sock mode 600 level admin expose-fd listeners" in (
        config
    )


def test_a_carried_server_keeps_its_initial_weight_and_its_check(tmp_path: Path) -> None:
    router = HaproxyRouter(
        DockerEngine("unix:///var/run/docker.sock"),
        service="web",
        environment="prod",
        port=8081,
        state_root=tmp_path,
    )
    row = {
        "srv_name": "web-prod-blue-1",
        "srv_addr": "172.18.0.4",
        "srv_port": "5000",
        "srv_iweight": "100",
        "srv_uweight": "30",
        "srv_check_state": "6",
    }

    assert router._server_line(row) == (
        "    server web-prod-blue-1 172.18.0.4:5000 weight 100 check inter 500 fall 2 rise 1"
    )
    assert router._server_line({**row, "srv_check_state": "0"}).endswith("weight 100")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        router._server_line({**row, "srv_addr": "10.0.0.1 backup"})


def test_the_config_fingerprint_follows_the_settings_not_the_servers() -> None:
    def router(**settings: Any) -> HaproxyRouter:
        return HaproxyRouter(
            REMOTE,
            service="web",
            environment="prod",
            port=8080,
            settings=HaproxySettings(**settings),
        )

    assert router().config_fingerprint() == router().config_fingerprint()
    assert router().config_fingerprint() != router(retries=1).config_fingerprint()
    # Listeners are the container's business (published ports), so both change.
    moved = router(listeners=(ListenAddress("0.0.0.0", 80),))
    assert moved._container_fingerprint() != router()._container_fingerprint()
    assert router(retries=1)._container_fingerprint() == router()._container_fingerprint()


def test_tcp_checks_only_without_a_health_path() -> None:
    assert "httpchk" not in _config(health_path=None)


def test_a_router_needs_some_runtime_api() -> None:
    with pytest.raises(RouterError, match="no runtime API"):
        render_config(
            service="web", environment="prod", settings=HaproxySettings(), admin_socket=False
        )


def test_names_ports_and_paths(tmp_path: Path) -> None:
    router = HaproxyRouter(
        DockerEngine("unix:///var/run/docker.sock"),
        service="web",
        environment="staging",
        port=8081,
        state_root=tmp_path,
    )

    assert router.container_name == "dockroll-router-web-staging"
    assert router.network == "dockroll-web-staging"
    assert router.metrics_port == 9081
    assert str(router.admin) == f"unix:{tmp_path}/routers/web-staging/run/admin.sock"


def test_metrics_port_must_fit() -> None:
    with pytest.raises(RouterError, match="metrics port 65600 is out of range"):
        HaproxyRouter(REMOTE, service="web", environment="prod", port=64600)
    router = HaproxyRouter(
        REMOTE,
        service="web",
        environment="prod",
        port=65000,
        settings=HaproxySettings(metrics_port=9000),
    )
    assert router.metrics_port == 9000


def test_a_remote_router_is_driven_through_the_engine_connection() -> None:
    cli = FakeCli(lambda command: "Uptime_sec: 1\n" if command == "show info" else "\n")
    engine = ExecEngine(cli)
    router = HaproxyRouter(engine, service="web", environment="prod", port=8080)  # type: ignore[arg-type]

    assert str(router.admin) == "tcp:127.0.0.1:9999 in container dockroll-router-web-prod"
    assert router.api.execute("show info") == "Uptime_sec: 1\n"
    assert engine.containers_execed == ["dockroll-router-web-prod"]
    assert cli.lines == ["show info"]


def test_a_remote_router_that_does_not_listen_yet_is_a_router_error() -> None:
    engine = ExecEngine(FakeCli(lambda command: ""), exit_code=111)
    router = HaproxyRouter(engine, service="web", environment="prod", port=8080)  # type: ignore[arg-type]

    with pytest.raises(RouterError, match=r"nothing listens on 127\.0\.0\.1:9999"):
        router.api.execute("show info")


class ExecEngine:
    """An engine whose attached exec relays each line to a scripted HAProxy, as the relay does."""

    endpoint = "ssh://deploy@app1"

    def __init__(
        self, cli: FakeCli, exit_code: int = 0, ports: dict[str, str] | None = None
    ) -> None:
        self.cli = cli
        self.exit_code = exit_code
        self.containers_execed: list[str] = []
        self.ports_execed: list[int] = []
        self.ports = ports or {}
        """Container name → its admin-port label; a container not in it has no label."""

    def container(self, name: str) -> ContainerInfo:
        labels = {ADMIN_PORT_LABEL: self.ports[name]} if name in self.ports else {}
        return ContainerInfo(name, name, "haproxy", "running", Health.NONE, None, {}, labels)

    def open_exec(self, container: str, command: list[str], *, timeout: float) -> FakeRelay:
        self.containers_execed.append(container)
        self.ports_execed.append(int(command[-2]))
        assert command[:2] == ["bash", "-c"]
        return FakeRelay(self, marker=command[-1])


def test_the_relay_reaches_the_port_each_container_names_and_follows_a_retarget() -> None:
    engine = ExecEngine(FakeCli(lambda command: "ok\n"), ports={"r": "23001", "r-next": "23002"})
    relay = ExecTransport(engine, "r", port=None)  # type: ignore[arg-type]

    relay("show info")
    relay("show stat")
    relay.retarget("r-next")  # a hand-over's new container, under its temporary name
    relay("show info")
    relay.retarget("r-next")  # the same: the open relay stays
    relay("show info")
    relay.retarget("old")  # no label: the fixed port
    relay("show info")

    assert engine.containers_execed == ["r", "r-next", "old"]
    assert engine.ports_execed == [23001, 23002, 9999]
    assert str(relay) == "exec:old:127.0.0.1:9999"
    fixed = ExecTransport(engine, "r", port=9999)  # type: ignore[arg-type]
    fixed("show info")
    assert engine.ports_execed[-1] == 9999


def test_a_relay_to_a_container_that_is_gone_is_an_os_error() -> None:
    class Gone(ExecEngine):
        def container(self, name: str) -> None:  # type: ignore[override]
            return None

    relay = ExecTransport(Gone(FakeCli(lambda command: "")), "r", port=None)  # type: ignore[arg-type]

    with pytest.raises(OSError, match="no container r"):
        relay("show info")


class FakeRelay:
    def __init__(self, engine: ExecEngine, marker: str) -> None:
        self.engine = engine
        self.marker = marker
        self.output: list[bytes] = []

    def send(self, data: bytes) -> None:
        line = data.decode().rstrip("\n")
        if self.engine.exit_code:
            self.output.append(f"\n{self.marker} {self.engine.exit_code}\n".encode())
            return
        answer = self.engine.cli.handle(line)
        # in two pieces, so the transport must join them to find the marker
        self.output += [answer.encode(), f"\n{self.marker} 0\n".encode()]

    def receive(self) -> bytes:
        return self.output.pop(0) if self.output else b""

    def close(self) -> None:
        pass


def test_the_router_publishes_on_the_environments_bind_address() -> None:
    config = Config.model_validate(
        {
            "service": "shop",
            "image": "127.0.0.1:5000/acme/shop",
            "environments": {"prod": {"port": 8100, "router_bind": "0.0.0.0"}},
        }
    )

    router = HaproxyRouter.for_environment(REMOTE, config, "prod")

    assert router.settings.bind == "0.0.0.0"
    # The default listeners (the environment's port and port + 1000) are published there.
    assert router.listeners == (ListenAddress("0.0.0.0", 8100),)
    assert router.metrics_address == ListenAddress("0.0.0.0", 9100)


def test_settings_from_dockroll_yml() -> None:
    config = Config.model_validate(
        {
            "service": "shop",
            "image": "127.0.0.1:5000/acme/shop",
            "health": {"path": "/health/ready", "interval": "250ms", "timeout": "1s"},
            "environments": {"dev": {"port": 8100}},
        }
    )

    router = HaproxyRouter.for_environment(REMOTE, config, "dev")

    assert (router.service, router.environment, router.port) == ("shop", "dev", 8100)
    assert router.settings.health_path == "/health/ready"
    assert router.settings.check == CheckSettings(interval_ms=250)
    assert router.settings.connect_timeout == 1.0
    with pytest.raises(RouterError, match="no environment 'prod'"):
        HaproxyRouter.for_environment(REMOTE, config, "prod")


class ScriptedHaproxy:
    """Answers `show` commands from recorded output and scripts `del server`."""

    def __init__(self, show_stat: str, show_servers_state: str) -> None:
        self.show_stat = show_stat
        self.show_servers_state = show_servers_state
        self.del_answers = ["Server deleted.\n"]

    def __call__(self, command: str) -> str:
        if command == "show stat":
            return self.show_stat
        if command == "show servers state app":
            return self.show_servers_state
        if command.startswith("del server"):
            return self.del_answers.pop(0) if len(self.del_answers) > 1 else self.del_answers[0]
        if command.startswith("add server app/web-a "):
            return "Already exists a server with the same name in backend.\n\n"
        if command.startswith("add server"):
            return "New server registered.\n\n"
        if "app/nope" in command:
            return "No such server.\n\n"
        return "\n"


@pytest.fixture
def haproxy(show_stat: str, show_servers_state: str) -> ScriptedHaproxy:
    return ScriptedHaproxy(show_stat, show_servers_state)


@pytest.fixture
def cli(haproxy: ScriptedHaproxy) -> FakeCli:
    return FakeCli(haproxy)


@pytest.fixture
def router(cli: FakeCli, tmp_path: Path) -> Iterator[HaproxyRouter]:
    local = HaproxyRouter(
        DockerEngine("unix:///var/run/docker.sock"),  # never contacted by these tests
        service="web",
        environment="prod",
        port=8080,
        settings=HaproxySettings(api_timeout=2),
        state_root=tmp_path,
    )
    assert local.admin.path is not None
    local.admin.path.parent.mkdir(parents=True)
    with serve_unix(local.admin.path, cli):
        yield local


def test_servers(router: HaproxyRouter) -> None:
    servers = router.servers()

    assert [(s.name, s.state) for s in servers] == [
        ("web-a", ServerState.READY),
        ("web-b", ServerState.DRAIN),
        ("web-c", ServerState.READY),
        ("web-d", ServerState.MAINT),
    ]


def test_set_weights_is_one_exchange_raising_before_cutting(
    router: HaproxyRouter, cli: FakeCli
) -> None:
    router.set_weights({"web-a": 0, "web-c": 100})

    assert cli.lines[-1] == "set weight app/web-c 100;set weight app/web-a 0"


def test_set_weights_refuses_unknown_servers_before_changing_anything(
    router: HaproxyRouter, cli: FakeCli
) -> None:
    with pytest.raises(RouterError, match="has no server web-z") as caught:
        router.set_weights({"web-a": 0, "web-z": 100})

    assert not any(c.startswith("set weight") for c in cli.commands)
    assert caught.value.hint == "it has: web-a, web-b, web-c, web-d"


def test_add_server_adds_then_enables_in_a_second_exchange(
    router: HaproxyRouter, cli: FakeCli
) -> None:
    router.add_server("web-e", "172.22.0.9", 5000, weight=0)

    assert cli.changes == [
        "add server app/web-e 172.22.0.9:5000 weight 0 check inter 500 fall 2 rise 1",
        "enable server app/web-e;set server app/web-e health down;enable health app/web-e",
    ]


def test_add_server_reports_haproxys_refusal(router: HaproxyRouter, cli: FakeCli) -> None:
    with pytest.raises(RouterError, match="Already exists a server with the same name"):
        router.add_server("web-a", "172.22.0.9", 5000)

    assert len(cli.changes) == 1  # nothing enabled after a failed add


def test_drain_and_ready(router: HaproxyRouter, cli: FakeCli) -> None:
    router.drain("web-a")
    router.set_ready("web-a")

    assert cli.changes == ["set server app/web-a state drain", "set server app/web-a state ready"]


def test_drain_of_an_unknown_server(router: HaproxyRouter) -> None:
    with pytest.raises(RouterError, match=r"`set server app/nope state drain` failed: No such"):
        router.drain("nope")


def test_remove_server_waits_for_connections_to_close(
    router: HaproxyRouter, haproxy: ScriptedHaproxy, cli: FakeCli
) -> None:
    busy = "Server still has connections attached to it, cannot remove it.\n"
    haproxy.del_answers = [busy, busy, "Server deleted.\n"]

    router.remove_server("web-b", timeout=5)

    assert cli.changes == ["disable server app/web-b"] + ["del server app/web-b"] * 3


def test_remove_server_gives_up_after_its_timeout(
    router: HaproxyRouter, haproxy: ScriptedHaproxy
) -> None:
    haproxy.del_answers = ["Server still has connections attached to it, cannot remove it.\n"]

    with pytest.raises(RouterError, match="still has connections") as caught:
        router.remove_server("web-b", timeout=0.2)
    assert caught.value.hint is not None
    assert "wait_drained" in caught.value.hint


def test_removing_a_missing_server_is_done(router: HaproxyRouter, cli: FakeCli) -> None:
    router.remove_server("nope")

    assert cli.changes == ["disable server app/nope"]


def test_wait_drained_returns_once_idle(router: HaproxyRouter) -> None:
    assert router.wait_drained("web-b", timeout=1).current_sessions == 0


def test_wait_drained_names_what_is_still_in_flight(
    router: HaproxyRouter, haproxy: ScriptedHaproxy
) -> None:
    haproxy.show_stat = haproxy.show_stat.replace("app,web-b,0,0,0,", "app,web-b,0,0,3,")

    with pytest.raises(RouterError, match="web-b still has 3 requests in flight"):
        router.wait_drained("web-b", timeout=0.2)


def test_wait_healthy(router: HaproxyRouter) -> None:
    assert router.wait_healthy("web-a", timeout=1).name == "web-a"
    with pytest.raises(RouterError, match=r"web-c .* did not pass its health check .*L4TOUT"):
        router.wait_healthy("web-c", timeout=0.2)
    with pytest.raises(RouterError, match="has no server nope"):
        router.wait_healthy("nope", timeout=0.2)


def test_stats_snapshot(router: HaproxyRouter) -> None:
    stats = router.stats()

    assert stats.backend.http_2xx == 30
    server = stats.server("web-a")
    assert server is not None
    assert server.total_requests == 20
    assert stats.server("nope") is None


def test_a_proxy_protocol_listener_accepts_proxy_and_forwarded_headers_are_set() -> None:
    direct, behind = ListenAddress("0.0.0.0", 80), ListenAddress("0.0.0.0", 8443)
    config = _config(listeners=(direct, behind), accept_proxy=(behind,))

    assert "    bind :8080\n    bind :8081 accept-proxy\n" in config
    for line in (
        "option forwardfor",
        "http-request del-header X-Forwarded-For",
        "http-request del-header X-Request-ID unless dockroll_trusted_peer",
        "unique-id-format %{+X}o%pid-%Ts-%rt",
    ):
        assert f"    {line}\n" in config, line


def test_proxy_protocol_comes_from_dockroll_yml() -> None:
    config = Config.model_validate(
        {
            "service": "shop",
            "image": "127.0.0.1:5000/acme/shop",
            "environments": {
                "prod": {
                    "router": {
                        "listen": ["0.0.0.0:80", {"address": "0.0.0.0:81", "proxy_protocol": True}]
                    }
                }
            },
        }
    )
    router = HaproxyRouter.for_environment(REMOTE, config, "prod")

    assert router.settings.accept_proxy == (ListenAddress("0.0.0.0", 81),)


def test_the_edge_routes_by_hostname_from_its_maps_and_answers_404_otherwise() -> None:
    from dockroll.router.edge import render_edge_config  # noqa: PLC0415 - only here

    config = render_edge_config([ListenAddress("0.0.0.0", 80), ListenAddress("::", 80)])

    assert "    bind 0.0.0.0:80\n    bind [::]:80 v6only\n" in config
    assert "map(/usr/local/etc/haproxy/routes.map)" in config
    assert "http-request return status 404" in config
    assert "    server router 0.0.0.0:8090 send-proxy-v2\n" in config
    served = _config(edge=True)
    assert "    bind :8090 accept-proxy\n" in served
