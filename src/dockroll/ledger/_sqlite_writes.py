"""The records an instant rollback writes, in plain SQL over stdlib sqlite3.

A blue-green rollback with a standby only moves router weights; loading
SQLAlchemy, its ORM and the ledger's models to record that (and compiling the
statements afresh in every process) took longer than the switch itself. On a
SQLite ledger at this dockroll's schema revision, :class:`SQLiteLedger` reads
what :class:`~dockroll.ledger._sqlite_reads.SQLiteReads` reads and writes the
deployment, its steps and the audit trail itself, with the same SQL the ORM
emits; anything else a caller asks (a full rollout back, analysis samples, a
release's cost…) goes to a :class:`~dockroll.ledger.Ledger` opened on first use.
``tests/unit/ledger/test_sqlite_writes.py`` checks that both write the same
rows and read each other's back identically.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from dockroll.errors import LedgerError
from dockroll.ledger._actor import who as current_actor
from dockroll.ledger._records import (
    AuditEvent,
    Deployment,
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    DeploymentStep,
    Outcome,
    Release,
    StepStatus,
)
from dockroll.ledger._schema import (
    AUDIT_EVENTS,
    DEPLOYMENT_STEPS,
    DEPLOYMENTS,
    LEDGER_URL_ENV,
    RELEASES,
    ledger_url,
    sqlite_path,
)
from dockroll.ledger._sqlite_reads import (
    SQLiteReads,
    decoded,
    deployment_from_row,
    frozen,
    previous_release,
    release_from_row,
    step_from_row,
    stored,
)
from dockroll.refs import is_digest

if TYPE_CHECKING:
    from dockroll.ledger._ledger import Ledger

    # Checked as a Ledger: every method defined here must keep the ORM ledger's signature.
    _LedgerShape = Ledger
else:
    _LedgerShape = object

__all__ = ["SQLiteLedger", "open_quick_ledger"]

Clock = Callable[[], datetime]


def open_quick_ledger(
    url: str | None = None, *, actor: str | None = None, clock: Clock | None = None
) -> Ledger:
    """The ledger at ``url`` (as :func:`~dockroll.ledger.open_ledger` finds it) for a
    command that mostly records a deployment: a SQLite file at this dockroll's schema
    revision is written with sqlite3 (SQLAlchemy loads only if a call needs it);
    anything else is the SQLAlchemy :class:`~dockroll.ledger.Ledger`."""
    chosen = ledger_url(url)
    path = sqlite_path(chosen)
    if path is not None:
        quick = SQLiteLedger.open(Path(path), chosen)
        if quick is not None:
            quick.configure(actor=actor, clock=clock)
            return quick
    from dockroll.ledger._ledger import open_ledger  # noqa: PLC0415 - SQLAlchemy only here

    return open_ledger(chosen, actor=actor, clock=clock)


def _aware(*moments: datetime | None) -> None:
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"the ledger needs timezone-aware datetimes, got naive {moment!r}")


class SQLiteLedger(SQLiteReads, _LedgerShape):
    """A SQLite ledger at :data:`~dockroll.ledger._schema.SCHEMA_HEAD`: the rollback's
    reads and writes in sqlite3, every other :class:`~dockroll.ledger.Ledger` method
    through a Ledger on the same file, opened when first asked for."""

    def __init__(self, connection: sqlite3.Connection, url: str) -> None:
        super().__init__(connection, url)
        self._actor: str | None = None
        self._clock: Clock | None = None
        self._full: Ledger | None = None

    @classmethod
    def open(cls, path: Path, url: str) -> Self | None:
        """As :meth:`SQLiteReads.open`, the connection set up as the ORM ledger's are
        (ledger/_database.py): foreign keys enforced, WAL synced at checkpoints."""
        opened = super().open(path, url)
        if opened is not None:
            try:
                opened._connection.execute("PRAGMA foreign_keys = ON")
                opened._connection.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error:
                opened.close()
                return None
        return opened

    def configure(self, *, actor: str | None, clock: Clock | None) -> None:
        """``actor`` and ``clock`` as :func:`~dockroll.ledger.open_ledger` takes them."""
        self._actor = actor
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        # Called only for what this class lacks: the Ledger's other methods.
        if name.startswith("__") or "_full" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self._full_ledger(), name)

    def _full_ledger(self) -> Ledger:
        if self._full is None:
            from dockroll.ledger._ledger import open_ledger  # noqa: PLC0415 - only when asked

            self._full = open_ledger(self.url, actor=self.who(), clock=self._clock)
        return self._full

    # -- lifecycle -------------------------------------------------------------

    def now(self) -> datetime:
        if self._clock is not None:
            return self._clock()
        return super().now()

    def close(self) -> None:
        if self._full is not None:
            self._full.close()
        super().close()

    def __enter__(self) -> SQLiteLedger:
        return self

    def who(self) -> str:
        if self._actor is None:
            self._actor = current_actor()
        return self._actor

    # -- releases --------------------------------------------------------------

    def find_release(self, service: str, version_or_digest: str) -> Release | None:
        column = "digest" if is_digest(version_or_digest) else "version"
        with self._snapshot() as run:
            rows = run(
                f"SELECT * FROM {RELEASES} WHERE service = ? AND {column} = ? "
                "ORDER BY pushed_at DESC, id DESC LIMIT 1",
                (service, version_or_digest),
            )
        return release_from_row(decoded(RELEASES, rows[0])) if rows else None

    # -- deployments -----------------------------------------------------------

    def start_deployment(
        self,
        release: Release,
        env: str,
        *,
        strategy: str,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        status: DeploymentStatus = DeploymentStatus.RUNNING,
        reason: str | None = None,
        who: str | None = None,
        at: datetime | None = None,
    ) -> Deployment:
        _aware(at)
        status = DeploymentStatus(status)
        if status.finished:
            raise LedgerError(
                f"a deployment starts pending or running, not {status}",
                hint="record the outcome with finish_deployment()",
            )
        previous = previous_release(self, release, env)
        with self._transaction() as connection:
            recorded = connection.execute(
                f"SELECT digest, service FROM {RELEASES} WHERE id = ?", (release.id,)
            ).fetchone()
            if recorded is None or tuple(recorded) != (release.digest, release.service):
                raise LedgerError(
                    f"release {release.service} {release.version} ({release.digest}) "
                    f"is not recorded in {self.url}",
                    hint="record_release() it first",
                )
            cursor = connection.execute(
                f"INSERT INTO {DEPLOYMENTS} (service, env, release_id, previous_release_id, "
                "digest, kind, strategy, status, started_by, started_at, finished_at, reason, "
                "message, served_requests, failed_requests, traffic_seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL, NULL, NULL)",
                (
                    release.service,
                    env,
                    release.id,
                    previous.id if previous else None,
                    release.digest,
                    DeploymentKind(kind).value,
                    str(strategy),
                    status.value,
                    who or self.who(),
                    stored(at or self.now()),
                    reason,
                ),
            )
            deployment_id = cursor.lastrowid
            return self._deployment_in(connection, deployment_id, with_steps=False)

    def record_step(
        self,
        deployment: Deployment | DeploymentId,
        index: int,
        kind: str,
        status: StepStatus,
        *,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> DeploymentStep:
        _aware(at)
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        status = StepStatus(status)
        with self._transaction() as connection:
            now = stored(at or self.now())
            finished_at = now if status.finished else None
            parent = connection.execute(
                f"SELECT 1 FROM {DEPLOYMENTS} WHERE id = ?", (deployment_id,)
            ).fetchone()
            if parent is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            where = 'deployment_id = ? AND "index" = ?'
            row = connection.execute(
                f"SELECT kind, detail FROM {DEPLOYMENT_STEPS} WHERE {where}",
                (deployment_id, index),
            ).fetchone()
            if row is None:
                connection.execute(
                    f'INSERT INTO {DEPLOYMENT_STEPS} (deployment_id, "index", kind, status, '
                    "started_at, finished_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        deployment_id,
                        index,
                        kind,
                        status.value,
                        now,
                        finished_at,
                        json.dumps(dict(detail or {})),
                    ),
                )
            else:
                recorded_kind, recorded_detail = row
                if recorded_kind != kind:
                    raise LedgerError(
                        f"step {index} of deployment {deployment_id} is {recorded_kind!r}, "
                        f"not {kind!r}"
                    )
                merged = recorded_detail
                if detail:
                    merged = json.dumps({**json.loads(recorded_detail), **detail})
                connection.execute(
                    f"UPDATE {DEPLOYMENT_STEPS} SET status = ?, detail = ?, finished_at = ? "
                    f"WHERE {where}",
                    (status.value, merged, finished_at, deployment_id, index),
                )
            cursor = connection.cursor()
            cursor.row_factory = sqlite3.Row
            (step,) = cursor.execute(
                f"SELECT * FROM {DEPLOYMENT_STEPS} WHERE {where}", (deployment_id, index)
            )
            return step_from_row(decoded(DEPLOYMENT_STEPS, step))

    def finish_deployment(
        self,
        deployment: Deployment | DeploymentId,
        status: DeploymentStatus,
        *,
        message: str | None = None,
        at: datetime | None = None,
    ) -> Deployment:
        _aware(at)
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        status = DeploymentStatus(status)
        if not status.finished:
            raise LedgerError(f"a deployment finishes with a final status, not {status}")
        with self._transaction() as connection:
            row = connection.execute(
                f"SELECT status FROM {DEPLOYMENTS} WHERE id = ?", (deployment_id,)
            ).fetchone()
            if row is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            if DeploymentStatus(row[0]).finished:
                raise LedgerError(
                    f"deployment {deployment_id} already finished as {row[0]}",
                    hint="start a new deployment (or a rollback) instead",
                )
            connection.execute(
                f"UPDATE {DEPLOYMENTS} SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                (status.value, stored(at or self.now()), message, deployment_id),
            )
            return self._deployment_in(connection, deployment_id)

    def deployment(self, deployment_id: DeploymentId) -> Deployment:
        with self._transaction("DEFERRED") as connection:
            return self._deployment_in(connection, deployment_id)

    # -- audit -----------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        service: str | None = None,
        env: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        outcome: Outcome = Outcome.OK,
        who: str | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        _aware(at)
        with self._transaction() as connection:
            cursor = connection.execute(
                f"INSERT INTO {AUDIT_EVENTS} (occurred_at, actor, action, outcome, service, "
                "env, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stored(at or self.now()),
                    who or self.who(),
                    action,
                    Outcome(outcome).value,
                    service,
                    env,
                    target,
                    json.dumps(dict(detail or {})),
                ),
            )
            events = self._audit_rows(connection, "WHERE id = ?", [cursor.lastrowid])
            return events[0]

    def audit_events(
        self,
        *,
        service: str | None = None,
        env: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        _aware(since)
        where: list[str] = []
        values: list[Any] = []
        for column, value in (
            ("service", service),
            ("env", env),
            ("action", action),
            ("actor", actor),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(value)
        if since is not None:
            where.append("occurred_at >= ?")
            values.append(stored(since))
        query = (f"WHERE {' AND '.join(where)} " if where else "") + (
            "ORDER BY occurred_at DESC, id DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            values.append(limit)
        with self._transaction("DEFERRED") as connection:
            return self._audit_rows(connection, query, values)

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _transaction(self, begin: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction. Writers begin IMMEDIATE, taking the write lock up front as the
        ORM ledger's writers do, so two queue on the busy timeout instead of one failing
        midway; reads that need no snapshot lock begin DEFERRED."""
        connection = self._connection
        try:
            with self._lock:
                connection.execute(f"BEGIN {begin}")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(
                f"ledger {self.url}: {exc}",
                hint=f"check that {sqlite_path(self.url)} is writable, or set {LEDGER_URL_ENV}",
            ) from exc

    def _deployment_in(
        self, connection: sqlite3.Connection, deployment_id: int | None, *, with_steps: bool = True
    ) -> Deployment:
        cursor = connection.cursor()
        cursor.row_factory = sqlite3.Row
        rows = list(
            cursor.execute(
                f"SELECT d.*, r.version AS release_version FROM {DEPLOYMENTS} AS d "
                f"JOIN {RELEASES} AS r ON r.id = d.release_id WHERE d.id = ?",
                (deployment_id,),
            )
        )
        if not rows:
            raise LedgerError(f"no deployment {deployment_id} in the ledger")
        steps: tuple[DeploymentStep, ...] = ()
        if with_steps:
            steps = tuple(
                step_from_row(decoded(DEPLOYMENT_STEPS, step))
                for step in cursor.execute(
                    f'SELECT * FROM {DEPLOYMENT_STEPS} WHERE deployment_id = ? ORDER BY "index"',
                    (deployment_id,),
                )
            )
        return deployment_from_row(decoded(DEPLOYMENTS, rows[0]), steps)

    def _audit_rows(
        self, connection: sqlite3.Connection, query: str, values: list[Any]
    ) -> list[AuditEvent]:
        cursor = connection.cursor()
        cursor.row_factory = sqlite3.Row
        events = []
        for row in cursor.execute(f"SELECT * FROM {AUDIT_EVENTS} {query}", tuple(values)):
            columns = decoded(AUDIT_EVENTS, row)
            events.append(
                AuditEvent(
                    id=columns["id"],
                    at=columns["occurred_at"],
                    actor=columns["actor"],
                    action=columns["action"],
                    outcome=Outcome(columns["outcome"]),
                    service=columns["service"],
                    env=columns["env"],
                    target=columns["target"],
                    detail=frozen(columns["detail"]),
                )
            )
        return events
