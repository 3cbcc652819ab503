"""Who is acting: the name the ledger and the audit trail record."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess

__all__ = ["ACTOR_ENV", "who"]

ACTOR_ENV = "DOCKROLL_ACTOR"


def who() -> str:
    """The acting person or system.

    ``$DOCKROLL_ACTOR`` when set (CI sets it to the pipeline's user), else git's
    ``user.name <user.email>``, else ``$USER@hostname``.
    """
    explicit = os.environ.get(ACTOR_ENV, "").strip()
    if explicit:
        return explicit
    name, email = _git_config("user.name"), _git_config("user.email")
    if name and email:
        return f"{name} <{email}>"
    if name or email:
        return name or email
    return f"{_login()}@{socket.gethostname()}"


def _git_config(key: str) -> str:
    try:
        completed = subprocess.run(
            ["git", "config", "--get", key],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def _login() -> str:
    user = os.environ.get("USER", "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, as in some containers
        return "unknown"
