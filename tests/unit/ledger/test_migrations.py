"""The schema: migrated on first use, idempotently, safely from two processes at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dockroll.ledger import (
    create_ledger_engine,
    head_revision,
    migrate,
    open_ledger,
    schema_revision,
)
from dockroll.ledger._database import MIGRATIONS_DIR, SCHEMA_HEAD
from dockroll.ledger._models import Base
from tests.unit.ledger.concurrency import run_concurrent_first_use

TABLES = {
    "alembic_version",
    "analysis_samples",
    "approvals",
    "audit_events",
    "deployment_steps",
    "deployments",
    "promotions",
    "releases",
}


def test_migrates_an_empty_database_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'ledger.db'}"
    engine = create_ledger_engine(url)
    try:
        assert schema_revision(engine) is None
        migrate(engine)
        assert schema_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url, actor="a") as ledger:
        ledger.audit("first")
    engine = create_ledger_engine(url)
    try:
        migrate(engine)
        migrate(engine)
        assert schema_revision(engine) == head_revision()
    finally:
        engine.dispose()
    with open_ledger(url, actor="a") as ledger:
        assert [e.action for e in ledger.audit_events()] == ["first"]
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT * FROM alembic_version")
    assert rows.fetchall() == [(head_revision(),)]


def test_the_models_match_the_migrations(tmp_path: Path) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("v*.py"))
    assert MIGRATIONS_DIR.parent.name == "ledger"
    assert MIGRATIONS_DIR.parent.parent.name == "dockroll"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar() == 30000
            assert pragma("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    with open_ledger("sqlite://", actor="a") as ledger:
        ledger.audit("x")
        assert len(ledger.audit_events()) == 1


@pytest.mark.parametrize("attempt", range(2))
def test_concurrent_first_use_from_several_processes(tmp_path: Path, attempt: int) -> None:
    del attempt  # repeated because races do not show every time
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run_concurrent_first_use(url, tmp_path / "go")

    with open_ledger(url, actor="check") as ledger:
        releases = ledger.releases("web")
        assert len(releases) == 1
        assert set(releases[0].tags) == {f"worker{n}" for n in range(4)}
        assert len(ledger.audit_events(action="first-use")) == 4
        assert len(ledger.promotions("web")) == 4
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT * FROM alembic_version")
    assert rows.fetchall() == [(head_revision(),)]


def test_the_fast_path_knows_the_newest_revision() -> None:
    # migrate() skips Alembic when a ledger is at SCHEMA_HEAD; a new migration must move it.
    assert head_revision() == SCHEMA_HEAD
