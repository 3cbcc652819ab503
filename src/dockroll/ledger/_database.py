"""Where the ledger lives, how to connect to it, and how its schema is kept current."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from dockroll.errors import LedgerError
from dockroll.ledger._schema import (
    BUSY_TIMEOUT_SECONDS,
    LEDGER_URL_ENV,
    SCHEMA_HEAD,
    ledger_url,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "LEDGER_URL_ENV",
    "SCHEMA_HEAD",
    "create_ledger_engine",
    "head_revision",
    "ledger_url",
    "migrate",
    "schema_revision",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit key works; this one spells "dockroll" in ASCII so it is recognisable
# in pg_locks.
_PG_MIGRATION_LOCK = int.from_bytes(b"dockroll", "big") & 0x7FFF_FFFF_FFFF_FFFF
# Execution option read by the SQLite "begin" hook: writers take the write lock up
# front, so two writers queue on the busy timeout instead of one failing mid-transaction.
SQLITE_BEGIN = "dockroll_sqlite_begin"


def safe_url(url: str | URL) -> str:
    """``url`` with any password masked, fit for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def create_ledger_engine(url: str) -> Engine:
    """An engine for ``url`` set up for the ledger.

    ``postgresql://`` means psycopg 3 (the driver dockroll ships with). SQLite
    gets WAL, a busy timeout, enforced foreign keys and ``BEGIN IMMEDIATE`` for
    writers; its parent directory is created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(
            f"{url!r} is not a database URL",
            hint=f"set {LEDGER_URL_ENV} to sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST/DB",
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise LedgerError(
            f"cannot use {safe_url(parsed)} as the ledger: {exc}",
            hint="dockroll supports SQLite and PostgreSQL (postgresql+psycopg://…)",
        ) from exc


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_SECONDS}}
    if in_memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    elif url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver's own transaction handling would defer BEGIN past DDL and
        # cannot do BEGIN IMMEDIATE; take it over (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def writer(engine: Engine) -> Engine:
    """``engine`` for transactions that write: on SQLite they begin IMMEDIATE."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    return engine


def _alembic_config(connection: Any = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - Alembic loads only to migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this dockroll knows."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - Alembic loads only to migrate

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise LedgerError("the ledger migrations are missing from this dockroll install")
    return head


def schema_revision(engine: Engine) -> str | None:
    """The schema revision of the database behind ``engine``; None when it has none yet."""
    with translate_errors(engine):
        return _current_revision(engine)


def migrate(engine: Engine) -> None:
    """Upgrade the ledger schema to the newest revision; a no-op when it is current.

    Safe when several processes open a fresh ledger at once: SQLite upgrades
    under a file lock and inside ``BEGIN IMMEDIATE``, PostgreSQL inside a
    transaction holding an advisory lock. Whoever waits finds the schema
    current and does nothing.
    """
    with translate_errors(engine):
        if _current_revision(engine) == SCHEMA_HEAD:
            return
    from alembic import command  # noqa: PLC0415 - Alembic loads only to migrate
    from alembic.util.exc import CommandError  # noqa: PLC0415

    head = head_revision()
    with _file_lock(engine), translate_errors(engine):
        if _current_revision(engine) == head:
            return
        with writer(engine).begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            try:
                command.upgrade(_alembic_config(connection), "head")
            except CommandError as exc:
                raise LedgerError(
                    f"cannot migrate the ledger at {safe_url(engine.url)}: {exc}",
                    hint="a newer dockroll may have migrated it; upgrade dockroll",
                ) from exc


def _current_revision(engine: Engine) -> str | None:
    # What Alembic's MigrationContext.get_current_revision() reads, without importing Alembic.
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:
        raise LedgerError("the ledger schema has several heads; it was migrated by hand")
    return str(rows[0][0]) if rows else None


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    # Switching a new database to WAL needs an exclusive lock that the busy
    # timeout does not always cover, so first use is serialised outright.
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    lock_path = Path(f"{Path(database).expanduser()}.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def translate_errors(engine: Engine) -> Iterator[None]:
    """Re-raise database failures as :class:`LedgerError` naming the (masked) URL."""
    try:
        yield
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if engine.dialect.name == "sqlite":
            hint = f"check that {engine.url.database} is writable, or set {LEDGER_URL_ENV}"
        else:
            hint = (
                f"check that the database is up and {LEDGER_URL_ENV} is right "
                "(`dockroll dev up --with postgres` starts a local one)"
            )
        raise LedgerError(f"ledger {safe_url(engine.url)}: {detail}", hint=hint) from exc
