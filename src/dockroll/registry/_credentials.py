"""Where registry credentials come from: argument, environment, docker config.

The lookup order is the one a user expects from ``docker login``: an explicit
argument wins, then ``DOCKROLL_REGISTRY_USERNAME`` / ``DOCKROLL_REGISTRY_PASSWORD``,
then the docker client's own config (``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``), including its credential helpers, which are asked
through docker-py's credential store (:mod:`dockroll.engine.credentials`).
Secrets never appear in ``repr``, ``str`` or error messages.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockroll.errors import EngineError

__all__ = [
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "Credentials",
    "docker_config_path",
    "find_credentials",
]

ENV_USERNAME = "DOCKROLL_REGISTRY_USERNAME"
ENV_PASSWORD = "DOCKROLL_REGISTRY_PASSWORD"

# A credential helper that hangs must not hang a deploy.
_HELPER_TIMEOUT = 10.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """A username and secret for one registry; the secret never shows."""

    username: str
    password: str = field(repr=False)
    source: str = "argument"
    """Where they came from (``argument``, ``environment``, ``docker config``, a helper)."""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', source={self.source!r})"

    def __str__(self) -> str:
        return f"{self.username} (from {self.source})"


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    directory = env.get("DOCKER_CONFIG")
    base = Path(directory) if directory else Path.home() / ".docker"
    return base / "config.json"


def find_credentials(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Credentials | None:
    """The credentials to use for ``host``, or None to go anonymous.

    ``username``/``password`` given together win; otherwise the environment,
    otherwise the docker config. A broken config or helper means "no
    credentials", never a crash: the registry's 401 then says what to do.
    """
    if username is not None and password is not None:
        return Credentials(username, password, "argument")
    env = os.environ if env is None else env
    env_user, env_password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if env_user and env_password is not None:
        return Credentials(env_user, env_password, "environment")
    path = config_path if config_path is not None else docker_config_path(env)
    return _from_docker_config(host, path)


def _from_docker_config(host: str, path: Path) -> Credentials | None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _same_host(key, host) and isinstance(helper, str):
                return _from_helper(helper, host)
    auths = config.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _same_host(key, host) and isinstance(entry, dict):
                found = _from_auth_entry(entry)
                if found is not None:
                    return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, host)
    return None


def _same_host(key: str, host: str) -> bool:
    # `docker login` writes "host", older clients "https://host/v1/".
    bare = key.split("://", 1)[-1].split("/", 1)[0]
    return bare == host


def _from_auth_entry(entry: Mapping[str, Any]) -> Credentials | None:
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        # docker-py (and the SDK behind it) only when a config names credentials.
        from dockroll.engine.credentials import decode_auth_entry  # noqa: PLC0415

        try:
            user, secret = decode_auth_entry(encoded)
        except ValueError:  # not base64, not UTF-8, or no ":" in it
            return None
        return Credentials(user, secret, "docker config") if user else None
    name, word = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(word, str) and name:
        return Credentials(name, word, "docker config")
    return None


def _from_helper(helper: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-<helper>`` through docker-py's credential store.

    The store has no timeout of its own, so the call runs in a daemon thread
    that is given up on after ``_HELPER_TIMEOUT``.
    """
    # docker-py (and the SDK behind it) only when a config names a helper.
    from dockroll.engine.credentials import HELPER_PREFIX, helper_credentials  # noqa: PLC0415

    if shutil.which(f"{HELPER_PREFIX}{helper}") is None:
        _log.info("%s%s is not on the PATH: no credentials for %s", HELPER_PREFIX, helper, host)
        return None  # (the store would warn, then fail the same way)
    answer: list[tuple[str, str] | None] = []

    def ask() -> None:
        # Not found, or a failing or garbled helper: anonymous.
        try:
            answer.append(helper_credentials(helper, host))
        except EngineError as exc:
            _log.info("no credentials for %s: %s", host, exc.message)

    asking = threading.Thread(target=ask, name=f"{HELPER_PREFIX}{helper}", daemon=True)
    asking.start()
    asking.join(_HELPER_TIMEOUT)
    if asking.is_alive():
        _log.warning(
            "%s%s did not answer for %s within %g s; going on without credentials",
            HELPER_PREFIX,
            helper,
            host,
            _HELPER_TIMEOUT,
        )
    found = answer[0] if answer else None
    if found is None:
        return None
    user, secret = found
    # "<token>" marks an OAuth identity token, which needs a refresh-token
    # exchange dockroll does not do; treat it as no credentials.
    if user == "<token>":
        return None
    return Credentials(user, secret, f"{HELPER_PREFIX}{helper}")
