"""The ledger's read queries for `status` and rollbacks, in plain SQL over stdlib sqlite3.

Opening SQLAlchemy and its ORM costs a command a quarter of a second before it
asks anything; the few reads ``dockroll status`` makes need neither. A SQLite
ledger at the schema revision this dockroll writes (:data:`SCHEMA_HEAD`) is read
here; any other URL or revision goes through :class:`~dockroll.ledger.Ledger`,
which returns the same records (``tests/unit/ledger/test_sqlite_reads.py`` and the
PostgreSQL integration test compare the two). Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, Self

from dockroll.errors import LedgerError
from dockroll.ledger._records import (
    Deployment,
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    DeploymentStep,
    PromotionStatus,
    Release,
    ReleaseId,
    StepStatus,
)
from dockroll.ledger._schema import (
    BUSY_TIMEOUT_SECONDS,
    DEPLOYMENT_STEPS,
    DEPLOYMENTS,
    JSON_COLUMNS,
    LEDGER_URL_ENV,
    PROMOTIONS,
    RELEASES,
    SCHEMA_HEAD,
    TIMESTAMP_COLUMNS,
    ledger_url,
    sqlite_path,
)
from dockroll.refs import Digest

__all__ = [
    "LedgerReads",
    "SQLiteReads",
    "decoded",
    "deployment_from_row",
    "frozen",
    "open_ledger_reads",
    "release_from_row",
    "step_from_row",
    "stored",
]


class LedgerReads(Protocol):
    """The reads `status` and the standby window make; :class:`Ledger` has them too."""

    @property
    def url(self) -> str: ...

    def now(self) -> datetime: ...

    def current_release(self, service: str, env: str) -> Release | None: ...

    def deployments(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[Deployment]: ...

    def unfinished_deployment(self, service: str, env: str) -> Deployment | None: ...

    def deployments_between(
        self,
        *,
        env: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        release: ReleaseId | None = None,
        limit: int | None = None,
    ) -> list[Deployment]: ...

    def close(self) -> None: ...

    def __enter__(self) -> LedgerReads: ...

    def __exit__(self, *_exc: object) -> None: ...


class _ReleaseReads(Protocol):
    def current_release(self, service: str, env: str) -> Release | None: ...

    def deployments(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[Deployment]: ...

    def find_release(self, service: str, version_or_digest: str) -> Release | None: ...


def previous_release(ledger: _ReleaseReads, release: Release, env: str) -> Release | None:
    """What ``env`` runs before ``release`` is rolled out: the natural rollback target.

    That is the current release, except when the current release is this very
    one only because it was promoted a moment ago: then it is what the last
    succeeded deployment put there. Both ledgers record a deployment's
    ``previous_release_id`` with it.
    """
    current = ledger.current_release(release.service, env)
    if current is None or current.digest != release.digest:
        return current
    for deployment in ledger.deployments(release.service, env):
        if deployment.status is DeploymentStatus.SUCCEEDED:
            return ledger.find_release(release.service, deployment.digest)
    return None


def open_ledger_reads(url: str | None = None) -> LedgerReads:
    """The ledger at ``url`` (as :func:`~dockroll.ledger.open_ledger` finds it), for reading.

    A SQLite file already at this dockroll's schema revision is read with sqlite3;
    anything else is opened (and, when new or older, migrated) by SQLAlchemy.
    """
    chosen = ledger_url(url)
    path = sqlite_path(chosen)
    if path is not None:
        reads = SQLiteReads.open(Path(path), chosen)
        if reads is not None:
            return reads
    from dockroll.ledger._ledger import open_ledger  # noqa: PLC0415 - SQLAlchemy only here

    return open_ledger(chosen)


class SQLiteReads:
    """Read-only queries on a SQLite ledger at revision :data:`SCHEMA_HEAD`."""

    def __init__(self, connection: sqlite3.Connection, url: str) -> None:
        self._connection = connection
        self._url = url
        self._lock = threading.Lock()
        """One transaction at a time on the one connection (status may read from threads)."""

    @classmethod
    def open(cls, path: Path, url: str) -> Self | None:
        """The ledger in ``path``; None when there is none yet or its schema is not the one
        this dockroll expects (the caller migrates it first)."""
        if not path.is_file():
            return None
        try:
            connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None
        reads = cls(connection, url)
        try:
            revision = reads._revision()
        except LedgerError:
            revision = None
        if revision != SCHEMA_HEAD:
            connection.close()
            return None
        return reads

    @property
    def url(self) -> str:
        return self._url

    def now(self) -> datetime:
        """A SQLite ledger lives on this machine: its clock stamps the records."""
        return datetime.now(UTC)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> SQLiteReads:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- queries (each the SQL of the Ledger method of the same name) ------------

    def current_release(self, service: str, env: str) -> Release | None:
        with self._snapshot() as run:
            promotion = run(
                f"SELECT release_id, promoted_at FROM {PROMOTIONS} "
                "WHERE service = ? AND to_env = ? AND status = ? "
                "ORDER BY promoted_at DESC, id DESC LIMIT 1",
                (service, env, PromotionStatus.SUCCEEDED.value),
            )
            if promotion:
                (release_id, promoted_at), *_ = promotion
                deployed_since = run(
                    f"SELECT 1 FROM {DEPLOYMENTS} "
                    "WHERE service = ? AND env = ? AND started_at >= ? LIMIT 1",
                    (service, env, promoted_at),
                )
                if not deployed_since:
                    return self._release(run, release_id)
            deployed = run(
                f"SELECT release_id FROM {DEPLOYMENTS} "
                "WHERE service = ? AND env = ? AND status = ? "
                "ORDER BY finished_at DESC, id DESC LIMIT 1",
                (service, env, DeploymentStatus.SUCCEEDED.value),
            )
            return self._release(run, deployed[0][0]) if deployed else None

    def deployments(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[Deployment]:
        rows = self._deployment_rows(service=service, env=env, limit=limit)
        with self._snapshot() as run:
            steps = self._steps(run, [row["id"] for row in rows])
        return [deployment_from_row(row, steps.get(row["id"], ())) for row in rows]

    def unfinished_deployment(self, service: str, env: str) -> Deployment | None:
        for deployment in self.deployments(service, env, limit=10):
            if not deployment.status.finished:
                return deployment
        return None

    def deployments_between(
        self,
        *,
        env: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        release: ReleaseId | None = None,
        limit: int | None = None,
    ) -> list[Deployment]:
        rows = self._deployment_rows(
            service=service, env=env, since=since, until=until, release=release, limit=limit
        )
        return [deployment_from_row(row) for row in rows]

    # -- helpers -------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[_Run]:
        """One read transaction: every query inside sees the same snapshot."""
        connection = self._connection
        try:
            with self._lock:
                connection.execute("BEGIN DEFERRED")
                try:
                    yield _Run(connection)
                finally:
                    connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(
                f"ledger {self._url}: {exc}",
                hint=f"check that the file is readable, or set {LEDGER_URL_ENV}",
            ) from exc

    def _revision(self) -> str | None:
        with self._snapshot() as run:
            table = run(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'", ()
            )
            rows = run("SELECT version_num FROM alembic_version", ()) if table else []
        return str(rows[0][0]) if len(rows) == 1 else None

    def _release(self, run: _Run, release_id: int) -> Release:
        (row,) = run(f"SELECT * FROM {RELEASES} WHERE id = ?", (release_id,))
        return release_from_row(decoded(RELEASES, row))

    def _deployment_rows(
        self,
        *,
        service: str | None,
        env: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        release: ReleaseId | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        values: list[Any] = []
        for column, value in (("service", service), ("env", env), ("release_id", release)):
            if value is not None:
                where.append(f"d.{column} = ?")
                values.append(value)
        for operator, moment in ((">=", since), ("<", until)):
            if moment is not None:
                if moment.utcoffset() is None:
                    raise ValueError(
                        f"the ledger needs timezone-aware datetimes, got naive {moment!r}"
                    )
                where.append(f"d.started_at {operator} ?")
                values.append(stored(moment))
        query = (
            f"SELECT d.*, r.version AS release_version FROM {DEPLOYMENTS} AS d "
            f"JOIN {RELEASES} AS r ON r.id = d.release_id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY d.started_at DESC, d.id DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            values.append(limit)
        with self._snapshot() as run:
            return [decoded(DEPLOYMENTS, row) for row in run(query, tuple(values))]

    def _steps(
        self, run: _Run, deployment_ids: Sequence[int]
    ) -> dict[int, tuple[DeploymentStep, ...]]:
        if not deployment_ids:
            return {}
        marks = ", ".join("?" * len(deployment_ids))
        rows = run(
            f"SELECT * FROM {DEPLOYMENT_STEPS} WHERE deployment_id IN ({marks}) "
            'ORDER BY deployment_id, "index"',
            tuple(deployment_ids),
        )
        steps: dict[int, list[DeploymentStep]] = {}
        for row in rows:
            values = decoded(DEPLOYMENT_STEPS, row)
            steps.setdefault(values["deployment_id"], []).append(step_from_row(values))
        return {deployment: tuple(found) for deployment, found in steps.items()}


class _Run:
    """Runs one query inside :meth:`SQLiteReads._snapshot` and returns its rows."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __call__(self, query: str, values: tuple[Any, ...]) -> list[sqlite3.Row]:
        cursor = self._connection.cursor()
        cursor.row_factory = sqlite3.Row
        try:
            return list(cursor.execute(query, values))
        finally:
            cursor.close()


def stored(moment: datetime) -> str:
    """``moment`` as SQLite ledgers store it: naive UTC, microseconds always written."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def decoded(table: str, row: sqlite3.Row) -> dict[str, Any]:
    """A row's columns as Python values: timestamps aware (UTC), JSON documents parsed."""
    timestamps = TIMESTAMP_COLUMNS[table]
    documents = JSON_COLUMNS[table]
    values: dict[str, Any] = {}
    for column in row.keys():  # noqa: SIM118 - sqlite3.Row iterates its values, not its keys
        value = row[column]
        if value is not None and column in timestamps:
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        elif value is not None and column in documents:
            value = json.loads(value)
        values[column] = value
    return values


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def release_from_row(row: Mapping[str, Any]) -> Release:
    """A release from the columns of its row (Python values, by column name)."""
    return Release(
        id=ReleaseId(row["id"]),
        service=row["service"],
        version=row["version"],
        digest=Digest(row["digest"]),
        registry=row["registry"],
        repository=row["repository"],
        tags=tuple(row["tags"]),
        pushed_at=row["pushed_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        git_sha=row["git_sha"],
        build_date=row["build_date"],
        labels=frozen(row["labels"]),
        sbom_digest=Digest(row["sbom_digest"]) if row["sbom_digest"] else None,
        committed_at=row["committed_at"],
    )


def step_from_row(row: Mapping[str, Any]) -> DeploymentStep:
    """A deployment step from the columns of its row."""
    return DeploymentStep(
        deployment_id=DeploymentId(row["deployment_id"]),
        index=row["index"],
        kind=row["kind"],
        status=StepStatus(row["status"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        detail=frozen(row["detail"]),
    )


def deployment_from_row(
    row: Mapping[Any, Any], steps: tuple[DeploymentStep, ...] = ()
) -> Deployment:
    """A deployment from the columns of its row and its release's ``release_version``
    (a SQLAlchemy row mapping, too: the ORM path builds its reports' records here)."""
    previous = row["previous_release_id"]
    return Deployment(
        id=DeploymentId(row["id"]),
        service=row["service"],
        env=row["env"],
        release_id=ReleaseId(row["release_id"]),
        version=row["release_version"],
        digest=Digest(row["digest"]),
        kind=DeploymentKind(row["kind"]),
        strategy=row["strategy"],
        status=DeploymentStatus(row["status"]),
        started_by=row["started_by"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        reason=row["reason"],
        message=row["message"],
        previous_release_id=ReleaseId(previous) if previous is not None else None,
        steps=steps,
        served_requests=row["served_requests"],
        failed_requests=row["failed_requests"],
        traffic_seconds=row["traffic_seconds"],
    )
