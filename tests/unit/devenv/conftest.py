from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.devenv.fakes import FakeSystem


@pytest.fixture
def system() -> FakeSystem:
    return FakeSystem()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path
