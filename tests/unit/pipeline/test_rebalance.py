"""``rebalance_environment``: what a dry run says, and what it refuses before anything changes.

The moves themselves run on a real three-node Swarm in tests/integration/test_swarm.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dockroll import labels
from dockroll.config import Config, load_config
from dockroll.container_settings import resolve_container
from dockroll.engine.port import ContainerInfo, Health
from dockroll.engine.swarm import SwarmEngine
from dockroll.errors import UsageError
from dockroll.ledger import DeploymentStatus, Ledger, Release, open_ledger
from dockroll.pipeline import rebalance
from dockroll.pipeline.rebalance import rebalance_environment
from dockroll.pipeline.status import ReplicaStatus, _balance_note
from dockroll.refs import Digest


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def test_an_environment_off_a_swarm_is_refused_with_nothing_changed(
    tmp_path: Path, ledger: Ledger
) -> None:
    path = tmp_path / "dockroll.yml"
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": {"port": 8001}},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        rebalance_environment(load_config(path), "dev", ledger)

    assert "does not run on a Swarm" in caught.value.message
    assert caught.value.hint is not None
    assert ledger.deployments("web", "dev") == []


def test_a_swarm_environment_with_nothing_deployed_is_refused(
    tmp_path: Path, ledger: Ledger
) -> None:
    path = tmp_path / "dockroll.yml"
    environment = {"port": 8001, "engine": "tcp://127.0.0.1:1", "swarm": {}}
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": environment},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    # Refused from the ledger alone: the engine (nothing listens there) is never asked.
    with pytest.raises(UsageError, match="nothing has been deployed to dev"):
        rebalance_environment(load_config(path), "dev", ledger, dry_run=True)


class _Swarm(SwarmEngine):
    """A Swarm adapter that answers from memory: replicas with nodes, and the nodes."""

    def __init__(self, replicas: list[ContainerInfo], eligible: list[str] | None) -> None:
        super().__init__("tcp://127.0.0.1:1")
        self.replicas = replicas
        self.eligible = eligible
        self.closed = False

    def ping(self) -> str:
        return "20.10"

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return [r for r in self.replicas if all(r.labels.get(k) == v for k, v in labels.items())]

    def placement_nodes(self) -> list[str] | None:
        return self.eligible

    def node_names(self) -> dict[str, str]:
        return {"n1": "worker-1", "n2": "worker-2"}

    def close(self) -> None:
        self.closed = True


def _swarm_config(tmp_path: Path) -> Config:
    path = tmp_path / "dockroll.yml"
    environment = {"port": 8001, "engine": "tcp://127.0.0.1:1", "swarm": {}}
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": environment},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def _deployed(ledger: Ledger) -> Release:
    release = ledger.record_release(
        service="web",
        version="v1.0.0",
        digest=Digest("sha256:" + "1" * 64),
        registry="127.0.0.1:5000",
        repository="team/web",
    )
    deployment = ledger.start_deployment(release, "dev", strategy="rolling")
    ledger.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)
    return release


def _replica(name: str, node: str, release: Release, config_hash: str) -> ContainerInfo:
    return ContainerInfo(
        id=name,
        name=name,
        image="img",
        status="running",
        health=Health.NONE,
        exit_code=None,
        ports={},
        labels={
            **labels.selector("web", "dev"),
            labels.DIGEST: release.digest,
            labels.SLOT: "r",
            labels.CONFIG_HASH: config_hash,
        },
        node=node,
    )


def test_a_dry_run_says_what_would_move_and_changes_nothing(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _swarm_config(tmp_path)
    release = _deployed(ledger)
    wanted = resolve_container(config, "dev").config_hash
    engine = _Swarm(
        [_replica(f"web-dev-r-{n}", "n1", release, wanted) for n in (1, 2)], ["n1", "n2"]
    )
    monkeypatch.setattr(rebalance, "environment_engine", lambda config, env: engine)

    result = rebalance_environment(config, "dev", ledger, dry_run=True)

    assert result.status == "dry-run"
    assert [(m.replica, m.node) for m in result.moves] == [("web-dev-r-1", "worker-1")]
    assert result.nodes == {"worker-1": 2}
    assert engine.closed
    assert len(ledger.deployments("web", "dev")) == 1

    engine.replicas[1] = replace(engine.replicas[1], node="n2")
    balanced = rebalance_environment(config, "dev", ledger, dry_run=True)
    assert (balanced.status, balanced.moves) == ("balanced", ())
    assert balanced.to_json()["nodes"] == {"worker-1": 1, "worker-2": 1}


def test_replicas_with_other_settings_or_unreadable_constraints_are_refused(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _swarm_config(tmp_path)
    release = _deployed(ledger)
    engine = _Swarm([_replica("web-dev-r-1", "n1", release, "older")], ["n1", "n2"])
    monkeypatch.setattr(rebalance, "environment_engine", lambda config, env: engine)

    with pytest.raises(UsageError, match="runs with settings that differ") as caught:
        rebalance_environment(config, "dev", ledger, dry_run=True)
    assert "dockroll deploy v1.0.0 --env dev" in str(caught.value.hint)

    wanted = resolve_container(config, "dev").config_hash
    engine.replicas = [_replica("web-dev-r-1", "n1", release, wanted)]
    engine.eligible = None
    with pytest.raises(UsageError, match="cannot be evaluated"):
        rebalance_environment(config, "dev", ledger, dry_run=True)


def test_an_unfinished_rollout_is_refused_under_the_lock(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _swarm_config(tmp_path)
    release = _deployed(ledger)
    unfinished = ledger.start_deployment(release, "dev", strategy="canary")
    held: list[str] = []

    class _Environment:
        engine = _Swarm([], ["n1", "n2"])

        @contextmanager
        def held(self, *args: object, **kwargs: object) -> Iterator[None]:
            held.append(str(kwargs.get("operation")))
            yield

    monkeypatch.setattr(rebalance, "open_environment", lambda *args, **kwargs: _Environment())

    with pytest.raises(UsageError, match=f"deployment {unfinished.id} of v1.0.0 to dev is"):
        rebalance_environment(config, "dev", ledger)
    assert held == ["rebalance"]


def _shown(name: str, node: str, share: float = 0.5) -> ReplicaStatus:
    return ReplicaStatus(
        name=name,
        version="v1.0.0",
        digest="sha256:1",
        git_sha="",
        slot="r",
        since="",
        state="running",
        health="none",
        weight=100 if share else 0,
        share=share,
        router_health="up",
        config_drift=False,
        node=node,
    )


def test_status_says_when_a_rebalance_would_spread_the_replicas() -> None:
    engine = _Swarm([], ["n1", "n2"])
    doubled = [_shown("web-dev-r-1", "n1"), _shown("web-dev-r-2", "n1")]

    note = _balance_note(engine, "dev", doubled)

    assert note is not None
    assert note.startswith("web-dev-r-1 shares a node with another replica")
    assert "`dockroll rebalance --env dev`" in note
    # Spread, with nowhere better to go, or sharing only with a standby: nothing to say.
    assert _balance_note(engine, "dev", [_shown("web-dev-r-1", "n1"), _shown("x", "n2")]) is None
    assert _balance_note(_Swarm([], ["n1"]), "dev", doubled) is None
    assert _balance_note(engine, "dev", [doubled[0], _shown("web-dev-r-2", "n1", 0.0)]) is None
