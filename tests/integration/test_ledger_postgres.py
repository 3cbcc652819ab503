"""The ledger on a real PostgreSQL, the one ``dockroll dev up --with postgres`` provides.

Each test works in a schema of its own (dropped afterwards), so runs repeat
cleanly and never touch a ledger someone keeps in the same database. Skipped
locally when PostgreSQL does not answer; a failure under ``CI=true``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from dockroll.ledger import (
    DeploymentKind,
    DeploymentStatus,
    HistoryKind,
    Ledger,
    Outcome,
    StepStatus,
    create_ledger_engine,
    head_revision,
    migrate,
    open_ledger,
    open_ledger_reads,
    schema_revision,
)
from dockroll.ledger import _ledger as ledger_module
from dockroll.ledger._models import Base
from dockroll.ledger._sqlite_reads import SQLiteReads
from dockroll.refs import Digest
from tests.conftest import IN_CI
from tests.unit.ledger.concurrency import WORKERS, run_concurrent_first_use
from tests.unit.ledger.conftest import TickingClock, add_release, digest_of
from tests.unit.ledger.history import assert_same_reads, record_history

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get(
    "DOCKROLL_TEST_POSTGRES_URL",
    "postgresql+psycopg://dockroll:dockroll@127.0.0.1:5432/dockroll",
)


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """The database URL, once PostgreSQL is known to answer."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        reason = f"no PostgreSQL answers at {make_url(POSTGRES_URL).render_as_string()}: {detail}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: integration tests must run; `make test` starts it)")
        pytest.skip(f"{reason}; run `dockroll dev up --with postgres` to start it")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own."""
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with open_ledger(url, actor="alice", clock=TickingClock()) as opened:
        yield opened


def test_migrates_an_empty_schema_to_head_and_matches_the_models(url: str) -> None:
    engine = create_ledger_engine(url)
    try:
        assert schema_revision(engine) is None
        migrate(engine)
        assert schema_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == {
            "alembic_version",
            "analysis_samples",
            "approvals",
            "audit_events",
            "deployment_steps",
            "deployments",
            "promotions",
            "releases",
        }
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrating_twice_changes_nothing(url: str) -> None:
    with open_ledger(url, actor="a") as first:
        first.audit("before")
    engine = create_ledger_engine(url)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert versions.scalars().all() == [head_revision()]
    finally:
        engine.dispose()
    with open_ledger(url, actor="a") as again:
        assert [e.action for e in again.audit_events()] == ["before"]


def test_a_ledger_at_0001_upgrades_to_0002_and_back(url: str) -> None:
    from alembic import command  # noqa: PLC0415 - only this test drives Alembic itself

    from dockroll.ledger._database import _alembic_config  # noqa: PLC0415

    engine = create_ledger_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "0001")
        migrate(engine)
        assert schema_revision(engine) == "0002"
        with open_ledger(url, actor="a", clock=TickingClock()) as ledger:
            deployment = ledger.start_deployment(add_release(ledger, "1.0"), "dev", strategy="x")
            ledger.record_sample(
                deployment, step_index=2, tick=1, elapsed=0.5, action="fail", reason="bad",
                canary=(10.0, 5.0, 3.25), baseline=(90.0, 0.0, None), detail={"v": [1, 2]},
            )  # fmt: skip
            ledger.record_cost(deployment, served_requests=10, failed_requests=5, traffic_seconds=1)
            (sample,) = ledger.samples(deployment)
            assert (sample.canary_error_rate, sample.canary_latency_ms) == (0.5, 3.25)
            assert sample.detail == {"v": [1, 2]}
            assert ledger.deployment(deployment.id).failed_requests == 5
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0001")
        assert "analysis_samples" not in inspect(engine).get_table_names()
        migrate(engine)
        assert schema_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_plain_postgresql_scheme_works(url: str) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with open_ledger(plain, actor="a") as opened:
        assert opened.releases("web") == []


def test_every_record_round_trips(ledger: Ledger) -> None:
    built = datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    one = add_release(ledger, "1.0.0", git_sha="abc1234", build_date=built, labels={"k": "v"})
    assert add_release(ledger, "1.0.0") == one
    two = add_release(ledger, "2.0.0", sbom_digest=digest_of("sbom"))
    assert ledger.get_release("web", one.digest) == one
    assert ledger.get_release("web", "1.0.0").build_date == built
    assert ledger.releases("web") == [two, one]

    promotion = ledger.record_promotion(
        one, from_env="staging", to_env="prod", tags=["prod"], notes="notes"
    )
    approval = ledger.record_approval(two, "prod", note="ok", who="carol")
    assert ledger.promotions("web", "prod") == [promotion]
    assert ledger.approvals("web", "2.0.0", "prod") == [approval]

    deployment = ledger.start_deployment(two, "prod", strategy="canary")
    assert deployment.previous_release_id == one.id
    ledger.record_step(deployment, 0, "start", StepStatus.RUNNING, detail={"slot": "b"})
    ledger.record_step(deployment, 0, "start", StepStatus.SUCCEEDED, detail={"n": [1, 2]})
    ledger.finish_deployment(deployment, DeploymentStatus.FAILED, message="5xx")
    back = ledger.start_deployment(one, "prod", strategy="canary", kind=DeploymentKind.ROLLBACK)
    ledger.finish_deployment(back, DeploymentStatus.SUCCEEDED)

    stored = ledger.deployment(deployment.id)
    assert stored.steps[0].detail == {"slot": "b", "n": [1, 2]}
    assert stored.steps[0].finished_at is not None
    assert stored.started_at.tzinfo == UTC
    assert ledger.current_release("web", "prod") == one
    assert [e.kind for e in ledger.history("web", "prod")] == [
        HistoryKind.ROLLBACK,
        HistoryKind.DEPLOYMENT,
        HistoryKind.PROMOTION,
    ]

    event = ledger.audit(
        "promote", service="web", env="prod", outcome=Outcome.DENIED, detail={"why": "soak"}
    )
    assert ledger.audit_events(service="web", env="prod") == [event]


def test_racing_writers_of_one_release_get_one_row(ledger: Ledger) -> None:
    barrier = threading.Barrier(8)
    results: list[int] = []
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait()
            release = ledger.record_release(
                service="web",
                version="9.9.9",
                digest=Digest("sha256:" + "b" * 64),
                registry="127.0.0.1:5000",
                repository="team/web",
            )
            results.append(release.id)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    assert len(ledger.releases("web")) == 1


def test_concurrent_first_use_from_several_processes(url: str, tmp_path: Path) -> None:
    run_concurrent_first_use(url, tmp_path / "go")

    with open_ledger(url, actor="check") as ledger:
        releases = ledger.releases("web")
        assert len(releases) == 1
        assert set(releases[0].tags) == {f"worker{n}" for n in range(WORKERS)}
        assert len(ledger.audit_events(action="first-use")) == WORKERS
        assert len(ledger.promotions("web")) == WORKERS
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert versions.scalars().all() == [head_revision()]
    finally:
        engine.dispose()


def test_a_client_whose_clock_runs_behind_still_orders_by_the_database(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ledger(url, actor="ci") as punctual:
        one = add_release(punctual, "1.0.0")
        two = add_release(punctual, "2.0.0")
        deployment = punctual.start_deployment(one, "prod", strategy="rolling")
        punctual.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)

    # A laptop an hour behind promotes 2.0.0 afterwards (prod is fed by its tag).
    monkeypatch.setattr(ledger_module, "_utcnow", lambda: datetime.now(UTC) - timedelta(hours=1))
    with open_ledger(url, actor="laptop") as late:
        promotion = late.record_promotion(two, to_env="prod", tags=["prod"])
        assert abs(promotion.promoted_at - datetime.now(UTC)) < timedelta(minutes=5)
        assert late.current_release("web", "prod") == two


def test_a_sqlite_ledger_read_with_sqlite3_gives_what_postgresql_gives(
    url: str, tmp_path: Path
) -> None:
    # The same history recorded on PostgreSQL (read by the SQLAlchemy ledger) and on
    # SQLite (read by the plain sqlite3 reader `status` uses) reads back the same.
    sqlite_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with (
        open_ledger(url, actor="alice", clock=TickingClock()) as postgres,
        open_ledger(sqlite_url, actor="alice", clock=TickingClock()) as sqlite,
    ):
        record_history(postgres)
        record_history(sqlite)
        with open_ledger_reads(url) as through_orm:
            assert isinstance(through_orm, Ledger)
        with open_ledger_reads(sqlite_url) as plain:
            assert isinstance(plain, SQLiteReads)
            assert_same_reads(postgres, plain)
