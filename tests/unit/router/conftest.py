from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "recorded"


@pytest.fixture
def show_stat() -> str:
    """``show stat`` of a real HAProxy 2.6: web-a up, web-b drained, web-c down, web-d maint."""
    return (RECORDED / "show_stat.csv").read_text()


@pytest.fixture
def show_servers_state() -> str:
    return (RECORDED / "show_servers_state.txt").read_text()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a path short enough for a unix socket (pytest's tmp_path may not be)."""
    with tempfile.TemporaryDirectory(prefix="dr-") as path:
        yield Path(path)
