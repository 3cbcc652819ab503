"""``dockroll status``: an engine it cannot read is no all-clear, and the router's view is shown."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from dockroll.cli.app import main
from dockroll.cli.commands.status import _fail_when_incomplete, _print, _table
from dockroll.engine.port import ContainerInfo, Health
from dockroll.errors import EngineError, EngineUnavailable, RouterError
from dockroll.pipeline.status import EnvironmentStatus, _node_hostnames, replica_status
from dockroll.router.port import BackendServer, ServerHealth, ServerState
from tests.conftest import free_port


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    for name in ("DOCKROLL_CONFIG", "DOCKROLL_DEBUG", "DOCKROLL_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    return work


def _unreachable_config(work: Path) -> None:
    # A port nobody listens on: the Docker adapter itself finds no engine there.
    (work / "dockroll.yml").write_text(
        "service: web\nimage: 127.0.0.1:5000/team/web\nenvironments:\n"
        f"  dev: {{port: 9081, engine: 'tcp://127.0.0.1:{free_port()}'}}\n",
        encoding="utf-8",
    )


def test_status_exits_3_when_the_engine_does_not_answer(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _unreachable_config(isolated)
    assert main(["status"]) == 3
    captured = capsys.readouterr()
    assert "engine   unreachable: no Docker engine answers at tcp://127.0.0.1:" in captured.out
    assert "status is incomplete: the engine of dev could not be read" in captured.err
    assert "hint:" in captured.err


def test_status_json_still_prints_the_document_and_exits_3(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _unreachable_config(isolated)
    assert main(["status", "--json"]) == 3
    captured = capsys.readouterr()
    [env] = json.loads(captured.out)["environments"]
    assert env["engine_reachable"] is False
    assert env["engine"].startswith("unreachable: ")
    assert "status is incomplete" in captured.err


def _container(health: Health = Health.HEALTHY, status: str = "running") -> ContainerInfo:
    return ContainerInfo(
        id="c1",
        name="web-dev-r-1",
        image="127.0.0.1:5000/team/web@sha256:" + "a" * 64,
        status=status,
        health=health,
        exit_code=None,
        ports={},
        labels={},
    )


def _server(health: ServerHealth, check: str, weight: int = 256) -> BackendServer:
    return BackendServer(
        name="web-dev-r-1",
        address="172.18.0.5",
        port=5000,
        weight=weight,
        state=ServerState.READY,
        health=health,
        check_status=check,
    )


@pytest.mark.parametrize(
    ("container", "server", "summary"),
    [
        (_container(), _server(ServerHealth.DOWN, "L4CON"), "healthy (router: DOWN L4CON)"),
        (_container(), _server(ServerHealth.DOWN, "* L7STS"), "healthy (router: DOWN L7STS)"),
        (
            _container(Health.NONE),
            _server(ServerHealth.DOWN, "L4TOUT"),
            "none (router: DOWN L4TOUT)",
        ),
        (_container(), _server(ServerHealth.UP, "L7OK"), "healthy"),
        (
            _container(Health.UNHEALTHY),
            _server(ServerHealth.UP, "L7OK"),
            "unhealthy (router: UP L7OK)",
        ),
        (_container(Health.UNHEALTHY), _server(ServerHealth.DOWN, "L7STS"), "unhealthy"),
        (_container(Health.STARTING), _server(ServerHealth.DOWN, "INI"), "starting"),
        (_container(), None, "healthy"),
        (_container(), _server(ServerHealth.NO_CHECK, ""), "healthy"),
    ],
)
def test_the_health_shown_carries_the_routers_view_when_they_disagree(
    container: ContainerInfo, server: BackendServer | None, summary: str
) -> None:
    replica = replica_status(container, server, 1.0 if server else 0.0, "hash")
    assert replica.health_summary == summary
    assert replica.to_json()["health_summary"] == summary


def test_the_status_table_shows_the_routers_view() -> None:
    replica = replica_status(_container(), _server(ServerHealth.DOWN, "L4CON", weight=0), 0.0, "h")
    status = EnvironmentStatus(name="dev", port=9081, strategy="rolling", replicas=(replica,))
    console = Console(width=200, record=True)
    console.print(_table(status))
    text = console.export_text()
    assert "running/healthy (router: DOWN L4CON)" in text
    assert "w=0 down" in text


def test_the_last_undone_release_and_its_cost_are_shown() -> None:
    undone = {"version": "2.0", "status": "rolled_back", "failed_requests": 30,
              "served_requests": 120, "traffic_seconds": 4.5}  # fmt: skip
    status = EnvironmentStatus(name="dev", port=9081, strategy="canary", last_undone=undone)
    console = Console(width=200, record=True)
    _print(console, [status], [])
    assert "undone   2.0 (rolled_back): 30 of 120 requests failed, 4.5 traffic-s" in (
        console.export_text()
    )


def test_a_router_that_does_not_answer_makes_status_exit_10() -> None:
    refused = RouterError("router of web/dev: `show stat` failed: Connection refused", hint="h")
    statuses = [
        EnvironmentStatus(name="dev", port=9081, strategy="rolling", router_unreachable=refused),
        EnvironmentStatus(name="prod", port=9083, strategy="canary"),
    ]
    with pytest.raises(RouterError) as caught:
        _fail_when_incomplete(statuses)
    assert caught.value.exit_code == 10
    assert caught.value.message.startswith("status is incomplete: the router of dev")
    assert caught.value.hint == "h"


def test_an_unreachable_engine_wins_over_a_router_problem() -> None:
    statuses = [
        EnvironmentStatus(
            name="dev",
            port=9081,
            strategy="rolling",
            router_unreachable=RouterError("router down"),
        ),
        EnvironmentStatus(
            name="prod", port=9083, strategy="canary", unreachable=EngineUnavailable("no engine")
        ),
    ]
    with pytest.raises(EngineUnavailable) as caught:
        _fail_when_incomplete(statuses)
    assert caught.value.exit_code == 3
    assert "prod: no engine" in caught.value.message
    _fail_when_incomplete([EnvironmentStatus(name="dev", port=9081, strategy="rolling")])


class _NodeEngine:
    """Lists a Swarm's nodes (or fails to), counting the listings."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = names
        self.listings = 0

    def node_names(self) -> dict[str, str]:
        self.listings += 1
        if self.names is None:
            raise EngineError("the engine is no Swarm manager any more")
        return self.names


def _on_node(name: str, node: str) -> ContainerInfo:
    return replace(_container(), id=name, name=name, node=node)


def test_replicas_on_a_swarm_name_their_nodes_from_one_listing() -> None:
    engine = _NodeEngine({"n1": "worker-1", "n2": "worker-2"})
    containers = [_on_node("web-dev-r-1", "n1"), _on_node("web-dev-r-2", "n2"), _container()]

    hostnames = _node_hostnames(engine, containers)  # type: ignore[arg-type]

    assert hostnames == {"n1": "worker-1", "n2": "worker-2"}
    assert engine.listings == 1
    # Off a Swarm nothing is asked; a failed listing leaves the ids to say it.
    assert _node_hostnames(engine, [_container()]) == {}  # type: ignore[arg-type]
    assert engine.listings == 1
    assert _node_hostnames(_NodeEngine(None), containers) == {}  # type: ignore[arg-type]


def test_status_shows_each_replicas_node_by_hostname_and_json_keeps_the_id() -> None:
    replicas = (
        replica_status(_on_node("web-dev-r-1", "n1abcdefghijklmnop"), None, 0.0, "h",
                       node_hostname="worker-1"),
        replica_status(_on_node("web-dev-r-2", "n2abcdefghijklmnop"), None, 0.0, "h"),
    )  # fmt: skip
    status = EnvironmentStatus(name="dev", port=9081, strategy="rolling", replicas=replicas)
    console = Console(width=200, record=True)
    console.print(_table(status))
    text = console.export_text()

    header = next(line for line in text.splitlines() if "replica" in line)
    assert "node" in header
    assert "worker-1" in text
    assert "n2abcdefghij" in text  # a node the Swarm no longer lists: its short id
    assert "n1abcdefghijklmnop" not in text
    shown = replicas[0].to_json()
    assert (shown["node"], shown["node_hostname"]) == ("n1abcdefghijklmnop", "worker-1")


def test_off_a_swarm_the_table_has_no_node_column() -> None:
    replica = replica_status(_container(), None, 0.0, "h")
    status = EnvironmentStatus(name="dev", port=9081, strategy="rolling", replicas=(replica,))
    console = Console(width=200, record=True)
    console.print(_table(status))

    assert "node" not in console.export_text()
    assert replica.to_json()["node_hostname"] == ""
