"""A fresh SQLite ledger per test, with a clock that ticks one second per reading."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockroll.ledger import Ledger, Release, open_ledger
from dockroll.refs import Digest

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class TickingClock:
    """Each reading is one second after the previous, so order is never a tie."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def digest_of(text: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(text.encode()).hexdigest())


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.db"


@pytest.fixture
def ledger(ledger_path: Path, clock: TickingClock) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{ledger_path}", actor="alice", clock=clock) as opened:
        yield opened


def add_release(ledger: Ledger, version: str, service: str = "web", **kwargs: Any) -> Release:
    """Record ``version`` of ``service`` with a digest derived from both."""
    return ledger.record_release(
        service=service,
        version=version,
        digest=digest_of(f"{service}:{version}"),
        registry="127.0.0.1:5000",
        repository=f"team/{service}",
        tags=[version],
        **kwargs,
    )
