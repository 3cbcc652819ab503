"""Analysis samples, the cost of an undone release, commit times, and the 0001 → 0002 upgrade."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from dockroll.errors import LedgerError
from dockroll.ledger import (
    DeploymentId,
    DeploymentStatus,
    Ledger,
    create_ledger_engine,
    head_revision,
    migrate,
    open_ledger,
    schema_revision,
)
from dockroll.ledger._database import _alembic_config
from tests.unit.ledger.conftest import START, add_release, digest_of


def test_samples_come_back_in_step_and_tick_order_with_their_numbers(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    deployment = ledger.start_deployment(release, "prod", strategy="canary")
    ledger.record_sample(
        deployment, step_index=5, tick=1, elapsed=0.0, action="continue", reason="collecting data",
        percent=10, canary_weight=10, baseline_weight=90, detail={"settings": {"interval": 1.0}},
    )  # fmt: skip
    ledger.record_sample(
        deployment, step_index=3, tick=2, elapsed=1.0, action="fail", reason="success-rate: bad",
        percent=5, canary_weight=5, baseline_weight=95,
        canary=(40.0, 10.0, 12.5), baseline=(760.0, 1.0, 8.0),
    )  # fmt: skip
    ledger.record_sample(
        deployment, step_index=3, tick=1, elapsed=0.0, action="continue", reason="collecting data",
        percent=5, canary_weight=5, baseline_weight=95,
    )  # fmt: skip
    samples = ledger.samples(deployment)
    assert [(s.step_index, s.tick) for s in samples] == [(3, 1), (3, 2), (5, 1)]
    failing = samples[1]
    assert failing.canary_requests == 40.0
    assert failing.canary_error_rate == 0.25
    assert failing.baseline_error_rate == pytest.approx(1 / 760)
    assert failing.baseline_latency_ms == 8.0
    assert (failing.action, failing.reason) == ("fail", "success-rate: bad")
    assert samples[0].canary_error_rate is None
    assert samples[2].detail["settings"] == {"interval": 1.0}
    assert [s.tick for s in ledger.samples(deployment, after=samples[2].id)] == [1, 2]
    assert failing.as_dict()["canary_requests"] == 40.0


def test_recording_a_tick_again_replaces_it(ledger: Ledger) -> None:
    deployment = ledger.start_deployment(add_release(ledger, "1.0.0"), "dev", strategy="canary")
    for action in ("continue", "pass"):
        ledger.record_sample(deployment, step_index=1, tick=1, elapsed=0, action=action, reason="")
    assert [s.action for s in ledger.samples(deployment)] == ["pass"]


def test_a_sample_of_a_missing_deployment_is_a_ledger_error(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no deployment 99"):
        ledger.record_sample(
            DeploymentId(99), step_index=1, tick=1, elapsed=0, action="continue", reason=""
        )


def test_the_cost_of_an_undone_release_is_kept_with_its_deployment(ledger: Ledger) -> None:
    deployment = ledger.start_deployment(add_release(ledger, "1.0.0"), "prod", strategy="canary")
    assert deployment.failed_requests is None
    ledger.record_cost(deployment, served_requests=120, failed_requests=30, traffic_seconds=4.5)
    ledger.finish_deployment(deployment, DeploymentStatus.ROLLED_BACK, message="bad")
    again = ledger.deployment(deployment.id)
    assert (again.served_requests, again.failed_requests, again.traffic_seconds) == (120, 30, 4.5)
    assert again.as_dict()["failed_requests"] == 30
    with pytest.raises(ValueError, match="never negative"):
        ledger.record_cost(deployment, served_requests=-1, failed_requests=0, traffic_seconds=0)


def test_a_commit_time_is_kept_and_filled_in_when_first_missing(ledger: Ledger) -> None:
    first = add_release(ledger, "1.0.0")
    assert first.committed_at is None
    committed = START - timedelta(hours=3)
    again = add_release(ledger, "1.0.0", committed_at=committed)
    assert again.id == first.id
    assert again.committed_at == committed
    later = add_release(ledger, "1.0.0", committed_at=START)
    assert later.committed_at == committed


def test_deployments_between_spans_services_and_leaves_out_steps(ledger: Ledger) -> None:
    for service in ("web", "api"):
        release = add_release(ledger, "1.0.0", service=service)
        deployment = ledger.start_deployment(release, "prod", strategy="rolling")
        ledger.record_step(deployment, 0, "plan", "succeeded")
    ledger.start_deployment(add_release(ledger, "1.0.0", service="db"), "dev", strategy="rolling")
    found = ledger.deployments_between(env="prod")
    assert [d.service for d in found] == ["api", "web"]
    assert all(d.steps == () for d in found)
    assert ledger.services() == ["api", "db", "web"]
    assert ledger.deployments_between(since=START + timedelta(days=1)) == []


def test_a_ledger_at_0001_upgrades_keeping_its_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "0001")
        assert schema_revision(engine) == "0001"
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO releases (id, service, version, digest, registry, repository, tags,"
                " labels, pushed_at, created_by, created_at) VALUES (1, 'web', '1.0', ?, 'r',"
                " 'team/web', '[]', '{}', '2025-03-01 12:00:00', 'old', '2025-03-01 12:00:00')",
                (digest_of("web:1.0"),),
            )
            connection.exec_driver_sql(
                "INSERT INTO deployments (id, service, env, release_id, digest, kind, strategy,"
                " status, started_by, started_at) VALUES (7, 'web', 'dev', 1, ?, 'deploy',"
                " 'rolling', 'succeeded', 'old', '2025-03-01 12:00:01')",
                (digest_of("web:1.0"),),
            )
        migrate(engine)
        assert schema_revision(engine) == head_revision() == "0002"
        columns = {c["name"] for c in inspect(engine).get_columns("deployments")}
        assert {"served_requests", "failed_requests", "traffic_seconds"} <= columns
    finally:
        engine.dispose()
    with open_ledger(url, actor="new") as ledger:
        kept = ledger.deployment(DeploymentId(7))
        assert kept.version == "1.0"
        assert kept.failed_requests is None
        ledger.record_sample(kept, step_index=1, tick=1, elapsed=0, action="continue", reason="")


def test_downgrading_to_0001_removes_what_0002_added(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_ledger_engine(url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0001")
        assert schema_revision(engine) == "0001"
        assert "analysis_samples" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    columns = [row[1] for row in sqlite3.connect(tmp_path / "ledger.db").execute(
        "PRAGMA table_info(releases)")]  # fmt: skip
    assert "committed_at" not in columns
