"""The Swarm router's config (servers that resolve their replicas) and its server commands.

The integration tests on a DinD Swarm prove that the servers follow tasks that
move between nodes; these pin down the config and the commands it sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from dockroll.config import Config
from dockroll.engine import DockerEngine
from dockroll.errors import RouterError
from dockroll.router import HaproxyRouter, HaproxySettings, ServerSpec, ServerState
from dockroll.router.swarm import SwarmRouter, resolvers_section, swarm_replica_names
from tests.unit.router.fake_cli import FakeCli, serve_unix

REMOTE = DockerEngine("tcp://127.0.0.1:1")  # never contacted by these tests

_STAT = """\
# pxname,svname,status,weight,uweight,check_status,addr,scur,stot
app,FRONTEND,OPEN,,,,,0,0
app,web-prod-r-1,UP,10,10,L7OK,10.0.1.7:5000,1,40
app,web-prod-r-2,MAINT (resolution),0,0,,,0,0
app,web-prod-r-3,MAINT,0,0,,,0,0
app,BACKEND,UP,10,10,,,1,40
"""
_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port"
)
# r-1 serves (disabled in the config, then put into rotation); r-2 is in use but its
# name does not resolve (its task is moving); r-3 was never put into rotation.
_STATE = f"""\
1
{_HEADER}
3 app 1 web-prod-r-1 10.0.1.7 2 4 10 0 2 15 3 2 6 0 0 0 web-prod-r-1 5000 - 0 0 - - 0
3 app 2 web-prod-r-2 - 0 36 10 0 2 15 3 2 6 0 0 0 web-prod-r-2 5000 - 0 0 - - 0
3 app 3 web-prod-r-3 - 0 37 0 0 2 15 3 2 6 0 0 0 web-prod-r-3 5000 - 0 0 - - 0
"""


def _router(tmp_path: Path | None = None, replicas: int = 1) -> SwarmRouter:
    return SwarmRouter(
        DockerEngine("unix:///var/run/docker.sock"),  # never contacted by these tests
        service="web",
        environment="prod",
        port=8080,
        replica_names=swarm_replica_names("web", "prod", replicas),
        replica_port=5000,
        settings=HaproxySettings(api_timeout=2),
        state_root=tmp_path,
    )


def test_every_name_a_rollout_may_use_is_a_server_resolving_its_service() -> None:
    names = swarm_replica_names("web", "prod", 2)
    config = _router(replicas=2)._render("abc", ["    server carried 10.0.0.9:5000 weight 1"])

    # Old and new replicas side by side, in every slot a strategy uses.
    assert len(names) == 5 * 6
    assert {"web-prod-r-6", "web-prod-blue-1", "web-prod-green-6", "web-prod-canary-3"} <= set(
        names
    )
    assert (
        "    server web-prod-stable-2 web-prod-stable-2:5000 resolvers docker "
        "resolve-prefer ipv4 init-addr none weight 0 check inter 500 fall 2 rise 1 disabled"
    ) in config.splitlines()
    assert config.count("\n    server ") == len(names)
    assert "carried" not in config
    # The resolvers section is Docker's DNS on the overlay network.
    assert "\n".join(resolvers_section()) in config
    assert "    nameserver docker 127.0.0.11:53" in config


def test_more_replicas_is_another_config() -> None:
    assert _router(replicas=2).config_fingerprint() != _router(replicas=3).config_fingerprint()
    assert _router(replicas=2).config_fingerprint() == _router(replicas=2).config_fingerprint()


def test_a_swarm_environment_gets_the_swarm_router() -> None:
    config = Config.model_validate(
        {
            "service": "shop",
            "image": "127.0.0.1:5000/acme/shop",
            "container": {"port": 8000},
            "environments": {
                "dev": {"port": 8100},
                "fleet": {"port": 8200, "replicas": 3, "swarm": {}},
            },
        }
    )

    fleet = HaproxyRouter.for_environment(REMOTE, config, "fleet")
    assert isinstance(fleet, SwarmRouter)
    assert fleet.replica_port == 8000
    assert fleet.replica_names == swarm_replica_names("shop", "fleet", 3)
    assert not isinstance(HaproxyRouter.for_environment(REMOTE, config, "dev"), SwarmRouter)


@pytest.fixture
def cli() -> FakeCli:
    def answer(command: str) -> str:
        if command == "show stat":
            return _STAT
        if command == "show servers state app":
            return _STATE
        return "\n"

    return FakeCli(answer)


@pytest.fixture
def router(cli: FakeCli, tmp_path: Path) -> Iterator[SwarmRouter]:
    local = _router(tmp_path)
    assert local.admin.path is not None
    local.admin.path.parent.mkdir(parents=True)
    (local.directory / "conf").mkdir(parents=True)
    with serve_unix(local.admin.path, cli):
        yield local


def test_servers_in_forced_maintenance_are_not_in_use(router: SwarmRouter) -> None:
    servers = {s.name: s for s in router.servers()}

    assert sorted(servers) == ["web-prod-r-1", "web-prod-r-2"]
    # Disabled in the config only says where it started: r-1 serves.
    assert servers["web-prod-r-1"].state is ServerState.READY
    assert (servers["web-prod-r-1"].address, servers["web-prod-r-1"].port) == ("10.0.1.7", 5000)
    # A name that does not resolve (a task on its way to another node) is still in use.
    assert servers["web-prod-r-2"].state is ServerState.MAINT
    assert [s.name for s in router.stats().servers] == ["web-prod-r-1", "web-prod-r-2"]


def test_adding_puts_the_declared_server_into_rotation_down_until_checked(
    router: SwarmRouter, cli: FakeCli
) -> None:
    router.add_server("web-prod-r-3", "10.0.1.9", 5000, weight=7)

    assert cli.lines[-2] == (
        "set weight app/web-prod-r-3 7;set server app/web-prod-r-3 health down;"
        "enable health app/web-prod-r-3;set server app/web-prod-r-3 state ready"
    )
    router.add_server("web-prod-r-3", "10.0.1.9", 5000, check=False)
    assert cli.lines[-2] == (
        "set weight app/web-prod-r-3 0;disable health app/web-prod-r-3;"
        "set server app/web-prod-r-3 state ready"
    )


def test_removing_puts_it_back_into_maintenance(router: SwarmRouter, cli: FakeCli) -> None:
    router.remove_server("web-prod-r-1")

    assert cli.lines[-2] == "set server app/web-prod-r-1 state maint;set weight app/web-prod-r-1 0"


def test_every_change_is_saved_for_the_next_start(router: SwarmRouter, cli: FakeCli) -> None:
    state = router.directory / "conf" / "servers.state"

    for change in (
        lambda: router.add_server("web-prod-r-3", "10.0.1.9", 5000, weight=7),
        lambda: router.set_weights({"web-prod-r-1": 3}),
        lambda: router.drain("web-prod-r-1"),
        lambda: router.set_ready("web-prod-r-1"),
        lambda: router.remove_server("web-prod-r-1"),
    ):
        state.unlink(missing_ok=True)
        change()
        assert cli.lines[-1] == "show servers state app"
        assert state.read_text() == _STATE


def test_a_server_the_config_does_not_declare_is_refused(router: SwarmRouter, cli: FakeCli) -> None:
    with pytest.raises(RouterError, match="declares no server web-prod-r-9") as caught:
        router.add_server("web-prod-r-9", "10.0.1.9", 5000)
    assert caught.value.hint is not None
    assert "dockroll router reload --env prod" in caught.value.hint
    with pytest.raises(RouterError, match="listens on 8000"):
        router.add_server("web-prod-r-1", "10.0.1.9", 8000)
    assert cli.lines == []


def _remote_swarm_router(engine: object, tmp_path: Path, **settings: object) -> SwarmRouter:
    return SwarmRouter(
        engine,  # type: ignore[arg-type]
        service="web",
        environment="prod",
        port=8080,
        replica_names=swarm_replica_names("web", "prod", 1),
        replica_port=5000,
        settings=HaproxySettings(api_timeout=2, start_timeout=0.5, **settings),  # type: ignore[arg-type]
        state_root=tmp_path,
    )


def test_an_image_upgrade_on_the_manager_hands_the_listeners_over_in_the_holder(
    tmp_path: Path,
) -> None:
    from tests.unit.router.test_router_engine_port import RemoteEngine  # noqa: PLC0415

    engine = RemoteEngine()
    engine.add_image("sha256:newer", "haproxy:2.6-newer")
    _remote_swarm_router(engine, tmp_path).ensure()
    first = engine.container("dockroll-router-web-prod")
    assert first is not None
    upgraded = _remote_swarm_router(engine, tmp_path, image="haproxy:2.6-newer")
    assert "starts a new one beside it (hitless)" in upgraded.describe().verdict

    info = upgraded.upgrade()

    assert info.replaced == "hitless"
    holder, started, new = engine.runs
    # The holder joins the overlay network and publishes the listeners; HAProxy runs in it.
    assert holder.name == "dockroll-router-web-prod-net"
    assert holder.network == "dockroll-web-prod"
    assert started.network_container == new.network_container == holder.name
    generation = first.labels["dockroll.router.generation"]
    assert new.name == "dockroll-router-web-prod-next"
    assert new.command is not None
    assert list(new.command[-2:]) == ["-x", f"/var/lib/haproxy/admin-{generation}.sock"]
    # Every declared server resolving its replica is in the new one's config.
    config = new.files["/usr/local/etc/haproxy/haproxy.cfg"].decode()
    assert "server web-prod-r-1 web-prod-r-1:5000 resolvers docker" in config
    assert upgraded.describe().verdict == "up to date"


def test_servers_restored_during_a_hand_over_are_saved_in_the_new_container(
    tmp_path: Path,
) -> None:
    from tests.unit.router.test_router_engine_port import RemoteEngine  # noqa: PLC0415

    class Recording(RemoteEngine):
        """Which container each copy of the server-state file went into, by id."""

        def __init__(self) -> None:
            super().__init__()
            self.saved: list[str] = []

        def copy_files(self, container: str, directory: str, files: Mapping[str, bytes]) -> None:
            super().copy_files(container, directory, files)
            found = self.container(container)
            if "servers.state" in files and found is not None:
                self.saved.append(found.id)

    engine = Recording()
    engine.add_image("sha256:newer", "haproxy:2.6-newer")
    _remote_swarm_router(engine, tmp_path).ensure()
    upgraded = _remote_swarm_router(engine, tmp_path, image="haproxy:2.6-newer")
    engine.saved.clear()

    info = upgraded.upgrade([ServerSpec("web-prod-r-1", "10.0.1.7", 5000, weight=10)])

    assert info.replaced == "hitless"
    assert info.restored == ("web-prod-r-1",)
    new = engine.container("dockroll-router-web-prod")
    assert new is not None
    assert engine.saved[-1] == new.id


def test_a_swarm_router_started_without_a_holder_moves_into_one_once(tmp_path: Path) -> None:
    from tests.unit.router.test_router_engine_port import RemoteEngine  # noqa: PLC0415

    engine = RemoteEngine()
    older = _remote_swarm_router(engine, tmp_path)
    older.network_holder = False  # type: ignore[misc]
    older.ensure()
    router = _remote_swarm_router(engine, tmp_path)
    assert "this once" in router.describe().verdict

    assert router.upgrade().replaced == "migrate"
    assert router.upgrade().replaced == "hitless"


def test_the_router_as_a_swarm_service_has_no_holder() -> None:
    from dockroll.router.swarm_service import SwarmServiceRouter  # noqa: PLC0415

    assert SwarmRouter.network_holder
    assert not SwarmServiceRouter.network_holder
