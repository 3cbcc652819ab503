"""Who the ledger says acted."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from dockroll.ledger import ACTOR_ENV, who


@pytest.fixture
def no_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home and working directory where git knows no user."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    for variable in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ACTOR_ENV, raising=False)
    return tmp_path


def test_dockroll_actor_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ACTOR_ENV, "ci-bot")
    assert who() == "ci-bot"


def test_git_identity_next(no_git_identity: Path) -> None:
    subprocess.run(["git", "init", "-q", str(no_git_identity)], check=True)
    subprocess.run(["git", "config", "user.name", "Ada Lovelace"], check=True)
    subprocess.run(["git", "config", "user.email", "ada@example.org"], check=True)
    assert who() == "Ada Lovelace <ada@example.org>"


def test_user_at_host_last(no_git_identity: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    del no_git_identity
    monkeypatch.setenv("USER", "ops")
    assert who() == f"ops@{socket.gethostname()}"


def test_no_git_at_all(no_git_identity: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    del no_git_identity
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("USER", "ops")
    assert who() == f"ops@{socket.gethostname()}"
