"""The blue-green standby's keep_previous window on the real engine and router.

Inside the window a rollback is a switch back to the standby; `status` says
until when. Past it the standby is no promise: `status` says so, and a
rollback retires it and rolls back with a full deploy. A standby the router
sees up is switched back to even before the image's HEALTHCHECK first ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import docker
import pytest

from dockroll.config import Config
from dockroll.ledger import DeploymentKind, DeploymentStatus, StepStatus
from dockroll.lock import lock_name
from dockroll.pipeline.deploy import deploy_release, rollback_release
from dockroll.pipeline.status import environment_status
from tests.integration.rollout_support import (
    Seeded,
    run_dockroll,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = pytest.mark.integration

OLD, NEW = "v1.0.0", "v1.1.0"
KEEP = 6.0
BLUE_GREEN = {
    "strategy": "blue-green",
    "replicas": 1,
    "blue_green": {"keep_previous": f"{KEEP:g}s"},
}


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_service(
        tmp_path_factory,
        registry,
        # "fresh" is only deployed to by the HEALTHCHECK test, so its standby is new there.
        {"bg": BLUE_GREEN, "fresh": BLUE_GREEN},
        prefix="standby",
    )


def _to_new_with_standby(
    seeded: Seeded, environment: str = "bg", config: Config | None = None
) -> set[str]:
    """Deploy OLD then NEW; return the standby's container names."""
    config = config or seeded.config()
    with seeded.ledger() as ledger:
        for version in (OLD, NEW):
            deploy_release(config, environment, seeded.releases[version], ledger)
        wait_serving(seeded.url(environment), NEW)
        status = environment_status(config, environment, ledger)
    assert status.standby is not None
    assert status.standby["version"] == OLD
    assert status.standby["expired"] is False
    until = datetime.fromisoformat(str(status.standby["until"]))
    assert timedelta(0) < until - datetime.now(UTC) <= timedelta(seconds=KEEP + 1)
    assert status.standby_note is not None
    assert "instant rollback until" in status.standby_note
    return {str(name) for name in status.standby["replicas"]}  # type: ignore[attr-defined]


def test_inside_the_window_a_rollback_switches_back_to_the_standby(seeded: Seeded) -> None:
    with state_of(seeded):
        standby = _to_new_with_standby(seeded)
        with seeded.ledger() as ledger:
            outcome = rollback_release(seeded.config(), "bg", ledger)
        assert outcome is not None
        assert outcome.status == "succeeded"
        assert set(outcome.plan.new) == standby  # the very containers that waited
        assert versions(seeded.url("bg"), 20) == {OLD: 20}


def test_past_the_window_status_says_so_and_a_rollback_redeploys(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    with state_of(seeded):
        standby = _to_new_with_standby(seeded)
        waited = {docker_client.containers.get(name).id for name in standby}
        time.sleep(KEEP + 0.5)
        config = seeded.config()
        with seeded.ledger() as ledger:
            status = environment_status(config, "bg", ledger)
            assert status.standby is not None
            assert status.standby["expired"] is True
            assert status.standby_note is not None
            assert "past its keep_previous window" in status.standby_note

            outcome = rollback_release(config, "bg", ledger)
            assert outcome is not None
            assert outcome.status == "succeeded"
            assert outcome.deployment.status is DeploymentStatus.SUCCEEDED
            assert outcome.plan.steps[0].kind == "start"  # a full rollout, not a switch
        # The stale standby was retired; the old release runs in fresh containers.
        running = {c.id for c in docker_client.containers.list(filters={"name": seeded.service})}
        assert waited.isdisjoint(running)
        assert versions(seeded.url("bg"), 20) == {OLD: 20}


def test_a_standby_whose_healthcheck_has_not_run_yet_is_switched_back_to(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    # As dockroll.yml has it by default: the image's HEALTHCHECK (first run 10 s after
    # the start) counts too. The deploy let the replica take traffic once the router's
    # check passed and the HEALTHCHECK said "starting"; the rollback judges the standby
    # the same way instead of redeploying it.
    config = seeded.config()
    config = config.model_copy(
        update={"health": config.health.model_copy(update={"use_docker_healthcheck": True})}
    )
    with state_of(seeded):
        standby = _to_new_with_standby(seeded, "fresh", config)
        states = {
            docker_client.containers.get(name).attrs["State"]["Health"]["Status"]
            for name in standby
        }
        assert states == {"starting"}, "the standby's HEALTHCHECK ran already: nothing tested"
        with seeded.ledger() as ledger:
            outcome = rollback_release(config, "fresh", ledger)
        assert outcome is not None
        assert outcome.status == "succeeded"
        assert outcome.message == "switched back to the standby slot"
        assert set(outcome.plan.new) == standby
        assert versions(seeded.url("fresh"), 20) == {OLD: 20}


def test_the_cli_records_a_switch_back_and_a_full_rollout_back_in_a_sqlite_ledger(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    # `dockroll rollback` writes a current SQLite ledger with sqlite3 (ledger/_sqlite_writes.py);
    # past the window its full rollout back goes through SQLAlchemy on the same file.
    with state_of(seeded):
        standby = _to_new_with_standby(seeded)
        instant = run_dockroll(seeded, "--json", "rollback", "--env", "bg")
        assert instant.returncode == 0, instant.stderr
        switched = json.loads(instant.stdout)
        assert switched["message"] == "switched back to the standby slot"
        assert set(switched["new"]) == standby
        assert versions(seeded.url("bg"), 20) == {OLD: 20}

        time.sleep(KEEP + 0.5)  # NEW waits as the standby now, until its window ends
        full = run_dockroll(seeded, "--json", "rollback", "--env", "bg")
        assert full.returncode == 0, full.stderr
        redeployed = json.loads(full.stdout)
        assert redeployed["status"] == "succeeded"
        assert redeployed["message"] != "switched back to the standby slot"
        assert versions(seeded.url("bg"), 20) == {NEW: 20}

        with seeded.ledger() as ledger:
            back, switch = ledger.deployments(seeded.service, "bg", limit=2)
            assert [switch.id, back.id] == [switched["deployment"], redeployed["deployment"]]
            assert {switch.kind, back.kind} == {DeploymentKind.ROLLBACK}
            assert {switch.status, back.status} == {DeploymentStatus.SUCCEEDED}
            assert [(s.kind, s.status) for s in switch.steps] == [
                ("plan", StepStatus.SUCCEEDED),
                ("set-weights", StepStatus.SUCCEEDED),
            ]
            assert switch.steps[0].detail["plan"]["new"] == sorted(standby)
            assert back.steps[1].kind == "start"
            assert ledger.current_release(seeded.service, "bg") == seeded.releases[NEW]
            events = ledger.audit_events(service=seeded.service, env="bg", action="rollback")
            assert [e.target for e in events[:2]] == [NEW, OLD]
    # The lock each rollback took is gone again.
    lock = lock_name(seeded.service, "bg")
    assert docker_client.containers.list(all=True, filters={"name": lock}) == []
