"""The plain SQLite ledger writes the rows the SQLAlchemy ledger writes, each reads the
other's back the same, and anything it does not do itself goes to a SQLAlchemy ledger."""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockroll.errors import LedgerError
from dockroll.ledger import (
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    Outcome,
    StepStatus,
    open_ledger,
    open_quick_ledger,
)
from dockroll.ledger._schema import AUDIT_EVENTS, LEDGER_URL_ENV
from dockroll.ledger._sqlite_writes import SQLiteLedger
from tests.unit.ledger.conftest import TickingClock, add_release
from tests.unit.ledger.history import assert_same_reads, record_history


def record_rollbacks(ledger: Ledger) -> None:
    """What an instant rollback records (deployment, plan, weight step, audit), twice, and a
    rollback that failed midway; plus the reads the rollout makes between the writes."""
    for version in ("1.1.0", "1.0.0"):
        target = ledger.find_release("web", version)
        assert target is not None
        deployment = ledger.start_deployment(
            target, "dev", strategy="blue-green", kind=DeploymentKind.ROLLBACK, reason="bad 1.2"
        )
        ledger.record_step(
            deployment,
            0,
            "plan",
            StepStatus.SUCCEEDED,
            detail={
                "plan": {"steps": [{"kind": "set-weights", "weights": {"b": 100, "g": 0}}]},
                "image": f"127.0.0.1:5000/team/web@{target.digest}",
                "note": "zurück ✓",
                "ratio": 0.25,
                "none": None,
            },
        )
        ledger.record_step(deployment, 1, "set-weights", StepStatus.PENDING)
        assert (
            ledger.audit_events(
                service="web", env="dev", action="pause", since=deployment.started_at
            )
            == []
        )
        ledger.record_step(deployment, 1, "set-weights", StepStatus.RUNNING)
        ledger.record_step(deployment, 1, "set-weights", StepStatus.SUCCEEDED, detail={"ms": 3})
        ledger.record_step(deployment, 1, "set-weights", StepStatus.SUCCEEDED, detail={"n": [1]})
        assert ledger.deployment(deployment.id).steps[1].detail == {"ms": 3, "n": [1]}
        ledger.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)
        ledger.audit(
            "rollback",
            service="web",
            env="dev",
            target=version,
            detail={"digest": target.digest, "instant": True},
        )
    failed = ledger.start_deployment(
        target, "staging", strategy="blue-green", kind=DeploymentKind.ROLLBACK, who="bob"
    )
    ledger.record_step(failed, 1, "set-weights", StepStatus.RUNNING, detail={"a": 1})
    ledger.record_step(failed, 1, "set-weights", StepStatus.FAILED, detail={"error": "down"})
    ledger.record_step(failed, 1, "set-weights", StepStatus.RUNNING)
    ledger.finish_deployment(failed, DeploymentStatus.ROLLED_BACK, message="router down")
    ledger.audit("pause", service="web", env="staging", target=str(failed.id), who="carol")
    ledger.audit("rollback", outcome=Outcome.FAILED, at=datetime(2025, 1, 1, tzinfo=UTC))


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows as SQLite holds them (text, numbers), in id order."""
    with sqlite3.connect(path) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: list(connection.execute(f"SELECT * FROM {table} ORDER BY rowid"))
            for table in tables
        }


@pytest.fixture
def quick_path(tmp_path: Path) -> Path:
    return tmp_path / "quick" / "ledger.db"


@pytest.fixture
def quick(quick_path: Path) -> Iterator[SQLiteLedger]:
    with open_ledger(f"sqlite:///{quick_path}"):
        pass  # created and migrated, as any earlier command leaves it
    opened = open_quick_ledger(f"sqlite:///{quick_path}", actor="alice", clock=TickingClock())
    assert isinstance(opened, SQLiteLedger)
    with opened:
        yield opened


def test_both_ledgers_write_the_same_rows(
    ledger: Ledger, ledger_path: Path, quick: SQLiteLedger, quick_path: Path
) -> None:
    for each in (ledger, quick):
        record_history(each)
        record_rollbacks(each)
    written = _rows(quick_path)
    assert written == _rows(ledger_path)
    assert len(written["deployments"]) == 15
    assert len(written["deployment_steps"]) > 10
    assert len(written[AUDIT_EVENTS]) == 4


def test_each_reads_what_the_other_wrote(
    ledger: Ledger, ledger_path: Path, quick: SQLiteLedger, quick_path: Path
) -> None:
    for each in (ledger, quick):
        record_history(each)
        record_rollbacks(each)
    with (
        open_ledger(f"sqlite:///{quick_path}") as orm_on_quick,
        open_quick_ledger(f"sqlite:///{ledger_path}") as quick_on_orm,
    ):
        for expected, actual in ((ledger, orm_on_quick), (ledger, quick_on_orm)):
            assert_same_reads(expected, actual)
            for deployment in expected.deployments("web"):
                assert actual.deployment(deployment.id) == deployment
            for filters in (
                {},
                {"service": "web"},
                {"env": "staging", "action": "pause", "actor": "carol"},
                {"since": datetime(2025, 3, 1, 12, 1, tzinfo=UTC), "limit": 2},
            ):
                assert actual.audit_events(**filters) == expected.audit_events(**filters)
            for reference in ("1.0.0", "9.9.9", expected.deployments("web")[0].digest):
                assert actual.find_release("web", reference) == expected.find_release(
                    "web", reference
                )


def test_the_same_mistakes_are_refused_with_the_same_words(
    ledger: Ledger, quick: SQLiteLedger
) -> None:
    def refusals(each: Ledger) -> list[str]:
        release = add_release(each, "1.0.0")
        deployment = each.start_deployment(release, "dev", strategy="rolling")
        each.record_step(deployment, 1, "start", StepStatus.RUNNING)
        each.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)
        other = add_release(each, "2.0.0", service="api")
        attempts = [
            lambda: each.record_step(DeploymentId(999), 0, "plan", StepStatus.RUNNING),
            lambda: each.record_step(deployment, 1, "stop", StepStatus.RUNNING),
            lambda: each.finish_deployment(deployment, DeploymentStatus.FAILED),
            lambda: each.finish_deployment(DeploymentId(999), DeploymentStatus.FAILED),
            lambda: each.finish_deployment(deployment, DeploymentStatus.RUNNING),
            lambda: each.deployment(DeploymentId(999)),
            lambda: each.start_deployment(
                release, "dev", strategy="rolling", status=DeploymentStatus.SUCCEEDED
            ),
            lambda: each.start_deployment(
                dataclasses.replace(other, id=release.id), "dev", strategy="rolling"
            ),
        ]
        messages = []
        for attempt in attempts:
            with pytest.raises(LedgerError) as refused:
                attempt()
            messages.append(f"{refused.value.message} | {refused.value.hint}")
        naive = datetime(2025, 3, 1)  # the mistake under test
        for call in (
            lambda: each.audit("x", at=naive),
            lambda: each.audit_events(since=naive),
            lambda: each.finish_deployment(deployment, DeploymentStatus.FAILED, at=naive),
        ):
            with pytest.raises(ValueError, match="naive"):
                call()
        return messages

    orm = refusals(ledger)
    assert refusals(quick) == [m.replace(ledger.url, quick.url) for m in orm]
    # A refused write leaves nothing behind.
    assert [d.status for d in quick.deployments("web")] == [DeploymentStatus.SUCCEEDED]


def test_what_it_does_not_do_itself_goes_to_sqlalchemy(ledger: Ledger, quick: SQLiteLedger) -> None:
    for each in (ledger, quick):
        add_release(each, "1.0.0")
        add_release(each, "1.1.0")
    assert quick.releases("web") == ledger.releases("web")
    assert quick.who() == ledger.who() == "alice"
    with pytest.raises(AttributeError):
        quick.no_such_method  # type: ignore[attr-defined]  # noqa: B018 - the access is the test


def test_an_instant_rollback_loads_no_sqlalchemy(quick_path: Path) -> None:
    with open_ledger(f"sqlite:///{quick_path}") as ledger:
        v1 = add_release(ledger, "1.0.0")
        add_release(ledger, "1.1.0")
        done = ledger.start_deployment(v1, "dev", strategy="blue-green")
        ledger.finish_deployment(done, DeploymentStatus.SUCCEEDED)
    script = f"""
import sys
from dockroll.ledger import DeploymentKind, DeploymentStatus, StepStatus, open_quick_ledger
with open_quick_ledger("sqlite:///{quick_path}") as ledger:
    target = ledger.find_release("web", "1.1.0")
    ledger.current_release("web", "dev")
    ledger.unfinished_deployment("web", "dev")
    d = ledger.start_deployment(target, "dev", strategy="blue-green", kind=DeploymentKind.ROLLBACK)
    ledger.record_step(d, 0, "plan", StepStatus.SUCCEEDED, detail={{"plan": {{}}}})
    ledger.record_step(d, 1, "set-weights", StepStatus.SUCCEEDED)
    ledger.audit_events(service="web", env="dev", action="pause", since=d.started_at)
    ledger.finish_deployment(d, DeploymentStatus.SUCCEEDED)
    ledger.audit("rollback", service="web", env="dev", target="1.1.0")
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy")))
"""
    done_run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done_run.stdout.strip() == "[]"
    with open_ledger(f"sqlite:///{quick_path}") as ledger:
        assert ledger.current_release("web", "dev") == ledger.find_release("web", "1.1.0")


def test_other_ledgers_are_opened_by_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh" / "ledger.db"
    with open_quick_ledger(f"sqlite:///{fresh}") as ledger:
        assert isinstance(ledger, Ledger)  # created and migrated first
    with open_quick_ledger(f"sqlite:///{fresh}") as ledger:
        assert isinstance(ledger, SQLiteLedger)
    monkeypatch.setenv(LEDGER_URL_ENV, "sqlite://")
    with open_quick_ledger() as ledger:
        assert isinstance(ledger, Ledger)


def test_a_file_that_is_no_ledger_is_left_to_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_text("not a database", encoding="utf-8")
    assert SQLiteLedger.open(path, f"sqlite:///{path}") is None
    with pytest.raises(LedgerError, match="not a database"):
        open_quick_ledger(f"sqlite:///{path}")


def test_every_method_it_defines_keeps_the_orm_ledgers_signature() -> None:
    own = {
        name
        for name, value in vars(SQLiteLedger).items()
        if callable(value) and not name.startswith("_")
    } | {"current_release", "deployments", "unfinished_deployment", "deployments_between"}
    public = {name for name in vars(Ledger) if not name.startswith("_")}
    assert own - {"configure", "open"} <= public
    for name in sorted(own & public):
        assert inspect.signature(getattr(SQLiteLedger, name)) == inspect.signature(
            getattr(Ledger, name)
        ), name


def test_a_ledger_another_process_writes_to_meanwhile(
    quick: SQLiteLedger, quick_path: Path
) -> None:
    release = add_release(quick, "1.0.0")
    with open_ledger(f"sqlite:///{quick_path}") as other:
        started = other.start_deployment(release, "dev", strategy="rolling")
    finished = quick.finish_deployment(started, DeploymentStatus.SUCCEEDED)
    assert finished.status is DeploymentStatus.SUCCEEDED
    assert quick.current_release("web", "dev") == release
