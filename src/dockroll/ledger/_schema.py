"""What every way of reading the ledger shares, without SQLAlchemy: where it lives, the
schema revision this dockroll writes, and the names and kinds of the columns it reads.

The SQLAlchemy models (``_models``) take their table names from here, and
``tests/unit/ledger/test_schema.py`` checks that the column kinds below are the
models' own, so the plain SQLite reader (``_sqlite_reads``) cannot drift from them
unnoticed.
"""

from __future__ import annotations

import os

from dockroll.statedir import state_dir

__all__ = [
    "ANALYSIS_SAMPLES",
    "APPROVALS",
    "AUDIT_EVENTS",
    "BUSY_TIMEOUT_SECONDS",
    "DEPLOYMENTS",
    "DEPLOYMENT_STEPS",
    "JSON_COLUMNS",
    "LEDGER_URL_ENV",
    "PROMOTIONS",
    "RELEASES",
    "SCHEMA_HEAD",
    "TIMESTAMP_COLUMNS",
    "ledger_url",
    "sqlite_path",
]

LEDGER_URL_ENV = "DOCKROLL_LEDGER_URL"
SCHEMA_HEAD = "0002"
"""The newest revision under migrations/versions (a test keeps the two equal). Opening a
ledger already at this revision needs no Alembic import, which keeps every command quick."""
BUSY_TIMEOUT_SECONDS = 30

RELEASES = "releases"
PROMOTIONS = "promotions"
APPROVALS = "approvals"
DEPLOYMENTS = "deployments"
DEPLOYMENT_STEPS = "deployment_steps"
AUDIT_EVENTS = "audit_events"
ANALYSIS_SAMPLES = "analysis_samples"

TIMESTAMP_COLUMNS: dict[str, frozenset[str]] = {
    RELEASES: frozenset({"build_date", "pushed_at", "created_at", "committed_at"}),
    PROMOTIONS: frozenset({"promoted_at"}),
    DEPLOYMENTS: frozenset({"started_at", "finished_at"}),
    DEPLOYMENT_STEPS: frozenset({"started_at", "finished_at"}),
    AUDIT_EVENTS: frozenset({"occurred_at"}),
}
"""Per table the plain SQLite reader and writer use: the columns holding UTC timestamps
(stored naive on SQLite)."""
JSON_COLUMNS: dict[str, frozenset[str]] = {
    RELEASES: frozenset({"tags", "labels"}),
    PROMOTIONS: frozenset({"tags"}),
    DEPLOYMENTS: frozenset(),
    DEPLOYMENT_STEPS: frozenset({"detail"}),
    AUDIT_EVENTS: frozenset({"detail"}),
}
"""Per table the plain SQLite reader and writer use: the columns holding JSON documents."""


def ledger_url(url: str | None = None) -> str:
    """The ledger's database URL: ``url``, else ``$DOCKROLL_LEDGER_URL``, else SQLite.

    The SQLite default is ``<state dir>/ledger.db``.
    """
    chosen = url or os.environ.get(LEDGER_URL_ENV, "").strip()
    if chosen:
        return chosen
    return f"sqlite:///{state_dir() / 'ledger.db'}"


def sqlite_path(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for anything else (another
    database or driver, an in-memory database, query options)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url.removeprefix(prefix)
    return path if path and path != ":memory:" else None
