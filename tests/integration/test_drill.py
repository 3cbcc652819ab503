"""`dockroll drill` on a live environment: real engine, registry and HAProxy, real load."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from dockroll.ledger import DeploymentKind, DeploymentStatus
from dockroll.pipeline.deploy import deploy_release
from tests.integration.canary_support import seed_releases
from tests.integration.rollout_support import DOCKROLL, Seeded, cli_env, state_of, wait_serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STABLE, NEXT = "v1.0.0", "v1.1.0"
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "rehearsal": {"strategy": "rolling", "replicas": 2},
    "prod": {"strategy": "rolling", "replicas": 1},
}


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    del docker_client
    yield from seed_releases(
        tmp_path_factory, registry, ENVIRONMENTS, {STABLE: {}, NEXT: {}}, prefix="drill"
    )


def _dockroll(seeded: Seeded, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKROLL, "--json", *args], env=cli_env(seeded), cwd=seeded.repo,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_a_drill_deploys_kills_a_replica_rolls_back_and_is_recorded(seeded: Seeded) -> None:
    with state_of(seeded), seeded.ledger() as ledger:
        for env in ENVIRONMENTS:
            assert deploy_release(seeded.config(), env, seeded.releases[STABLE], ledger)
            wait_serving(seeded.url(env), STABLE)

    refused = _dockroll(seeded, "drill", "--env", "prod", "--to", NEXT)
    assert refused.returncode == 2, refused.stderr
    assert "production environment" in refused.stderr
    assert "--yes" in refused.stderr
    nothing_else = _dockroll(seeded, "drill", "--env", "rehearsal")
    assert nothing_else.returncode == 2
    assert "no other release to drill with" in nothing_else.stderr

    done = _dockroll(
        seeded, "drill", "--env", "rehearsal", "--to", NEXT, "--rate", "40", "--kill-replica"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    print(json.dumps({k: v for k, v in result.items() if k != "phases"}), result["phases"])
    assert (result["from_version"], result["to_version"]) == (STABLE, NEXT)
    assert result["deploy_status"] == "succeeded"
    assert result["killed_replica"].startswith(seeded.service)
    assert result["requests"] >= 40 * 4
    assert result["time_to_restore_seconds"] > 0
    assert result["p99_ms"] is not None
    assert set(result["phases"]) == {"before", "deploy", "killed", "rollback", "after"}
    assert sum(p["requests"] for p in result["phases"].values()) == result["requests"]
    assert sum(p["failed"] for p in result["phases"].values()) == result["failed_requests"]
    # Rolling deploys and rollbacks drain before they stop: only the crash may cost requests.
    assert result["phases"]["before"]["failed"] == 0
    assert result["phases"]["after"]["failed"] == 0
    wait_serving(seeded.url("rehearsal"), STABLE)

    with seeded.ledger() as ledger:
        drills = ledger.audit_events(action="drill", env="rehearsal")
        deploy, back = (ledger.deployment(i) for i in result["deployments"])
    assert len(drills) == 1
    assert drills[0].outcome.value == "ok"
    assert drills[0].detail["failed_requests"] == result["failed_requests"]
    assert (deploy.version, deploy.kind, deploy.status) == (
        NEXT, DeploymentKind.DEPLOY, DeploymentStatus.SUCCEEDED,
    )  # fmt: skip
    assert (back.version, back.kind, back.status) == (
        STABLE, DeploymentKind.ROLLBACK, DeploymentStatus.SUCCEEDED,
    )  # fmt: skip
