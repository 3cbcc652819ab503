"""The plain SQLite reader gives what the SQLAlchemy ledger gives, and steps aside when
it cannot be sure to (another database, an older or newer schema, no ledger yet)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dockroll.ledger import Ledger, open_ledger, open_ledger_reads
from dockroll.ledger._schema import (
    JSON_COLUMNS,
    LEDGER_URL_ENV,
    SCHEMA_HEAD,
    TIMESTAMP_COLUMNS,
    sqlite_path,
)
from dockroll.ledger._sqlite_reads import SQLiteReads
from tests.unit.ledger.conftest import TickingClock
from tests.unit.ledger.history import assert_same_reads, record_history


@pytest.fixture
def recorded(ledger: Ledger) -> Ledger:
    record_history(ledger)
    return ledger


def test_the_sqlite_reader_returns_the_records_the_orm_returns(
    recorded: Ledger, ledger_path: Path
) -> None:
    with open_ledger_reads(f"sqlite:///{ledger_path}") as reads:
        assert isinstance(reads, SQLiteReads)
        assert_same_reads(recorded, reads)


def test_a_time_window_selects_the_same_deployments(
    recorded: Ledger, ledger_path: Path, clock: TickingClock
) -> None:
    everything = recorded.deployments_between()
    middle = everything[len(everything) // 2].started_at
    with open_ledger_reads(f"sqlite:///{ledger_path}") as reads:
        for since, until in [
            (middle, None),
            (None, middle),
            (middle - timedelta(seconds=3), middle + timedelta(seconds=2)),
            (middle.astimezone(timezone(timedelta(hours=5, minutes=30))), None),
        ]:
            assert reads.deployments_between(since=since, until=until) == (
                recorded.deployments_between(since=since, until=until)
            )
        release = everything[0].release_id
        assert reads.deployments_between(release=release) == recorded.deployments_between(
            release=release
        )
        with pytest.raises(ValueError, match="naive"):
            reads.deployments_between(since=datetime(2025, 3, 1))


def test_the_default_ledger_is_read_without_sqlalchemy(
    recorded: Ledger, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(ledger_path.parent))
    with open_ledger_reads() as reads:
        assert isinstance(reads, SQLiteReads)
        assert reads.current_release("web", "dev") == recorded.current_release("web", "dev")


def test_a_ledger_at_another_schema_revision_is_read_through_sqlalchemy(
    recorded: Ledger, ledger_path: Path
) -> None:
    # An older file gets migrated by open_ledger; this one claims a revision no
    # migration knows, so opening it fails the way every other command fails.
    with sqlite3.connect(ledger_path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    assert SQLiteReads.open(ledger_path, f"sqlite:///{ledger_path}") is None
    with sqlite3.connect(ledger_path) as connection:
        connection.execute(f"UPDATE alembic_version SET version_num = '{SCHEMA_HEAD}'")
    assert SQLiteReads.open(ledger_path, f"sqlite:///{ledger_path}") is not None


def test_no_ledger_yet_is_created_by_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "ledger.db"
    with open_ledger_reads(f"sqlite:///{path}") as reads:
        assert isinstance(reads, Ledger)
        assert reads.current_release("web", "dev") is None
    assert path.is_file()
    with open_ledger_reads(f"sqlite:///{path}") as reads:
        assert isinstance(reads, SQLiteReads)


def test_a_file_that_is_no_ledger_is_left_to_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_text("not a database", encoding="utf-8")
    assert SQLiteReads.open(path, f"sqlite:///{path}") is None


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/dockroll/ledger.db", "/var/lib/dockroll/ledger.db"),
        ("sqlite:///ledger.db", "ledger.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///ledger.db?mode=ro", None),
        ("sqlite+pysqlite:///ledger.db", None),
        ("postgresql+psycopg://u:p@127.0.0.1/dockroll", None),
    ],
)
def test_only_plain_sqlite_files_take_the_sqlite_reader(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


def test_the_readers_column_kinds_are_the_models(ledger: Ledger) -> None:
    # The SQLite reader decodes timestamps and JSON documents by these names; a column
    # added, renamed or retyped in the models must be reflected there.
    from dockroll.ledger._models import Base, JSONDocument, UTCDateTime  # noqa: PLC0415

    tables = Base.metadata.tables
    for table, columns in TIMESTAMP_COLUMNS.items():
        model = {c.name for c in tables[table].columns if isinstance(c.type, UTCDateTime)}
        assert model == columns, table
    for table, columns in JSON_COLUMNS.items():
        model = {c.name for c in tables[table].columns if isinstance(c.type, JSONDocument)}
        assert model == columns, table


def test_an_in_memory_ledger_is_read_through_sqlalchemy() -> None:
    with open_ledger_reads("sqlite://") as reads:
        assert isinstance(reads, Ledger)


def test_a_sqlite_ledger_is_stamped_by_this_machines_clock(
    recorded: Ledger, ledger_path: Path
) -> None:
    with open_ledger_reads(f"sqlite:///{ledger_path}") as reads:
        assert abs(reads.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_reader_never_writes(recorded: Ledger, ledger_path: Path) -> None:
    mtime = ledger_path.stat().st_mtime_ns
    with open_ledger_reads(f"sqlite:///{ledger_path}") as reads:
        assert_same_reads(recorded, reads)
    assert ledger_path.stat().st_mtime_ns == mtime


def test_orm_ledger_still_opens_the_same_file(recorded: Ledger, ledger_path: Path) -> None:
    # Reading with sqlite3 leaves nothing behind that bothers the next writer.
    with open_ledger_reads(f"sqlite:///{ledger_path}") as reads:
        reads.deployments("web")
    with open_ledger(f"sqlite:///{ledger_path}") as again:
        assert again.current_release("web", "dev") == recorded.current_release("web", "dev")
