"""Deployment locks that live with the target engine.

A lock is a container that is created but never started, named
``dockroll-lock-<service>-<environment>``. The engine refuses a second
container of the same name, so taking the lock is one atomic call shared by
every client of that engine: two machines deploying to the same engine exclude
each other, not only two processes on one laptop. Who holds it, why, since when
and for how long are its labels. An expired lock may be taken over, and so may
one whose holder ran on this host and has died (its pid is gone): a deploy
killed with SIGKILL leaves its lock behind.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockroll import labels
from dockroll.engine.port import ContainerInfo, Engine
from dockroll.errors import LockHeld

__all__ = ["DEFAULT_TTL", "EnvironmentLock", "LockHeld", "LockInfo", "lock_name"]

DEFAULT_TTL = 1800.0
HOLDER = labels.PREFIX + "lock.holder"
REASON = labels.PREFIX + "lock.reason"
SINCE = labels.PREFIX + "lock.since"
TTL = labels.PREFIX + "lock.ttl"
HOST = labels.PREFIX + "lock.host"
OPERATION = labels.PREFIX + "lock.operation"


def lock_name(service: str, environment: str) -> str:
    return f"dockroll-lock-{service}-{environment}"


@dataclass(frozen=True)
class LockInfo:
    service: str
    environment: str
    holder: str
    reason: str
    operation: str
    host: str
    since: datetime
    ttl: float
    container_id: str

    @property
    def expires(self) -> datetime:
        return self.since + timedelta(seconds=self.ttl)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires

    def holder_gone(self) -> bool:
        """Whether the holding process ran on this host and no longer exists.

        A deploy killed with SIGKILL cannot release its lock; waiting out the TTL
        would block the environment for nothing. Holders on other hosts are never
        judged from here: only their TTL frees their lock.
        """
        hostname, _, pid_text = self.host.rpartition(":")
        if hostname != socket.gethostname() or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it exists, under another user
        return False

    def describe(self) -> str:
        age = int((datetime.now(UTC) - self.since).total_seconds())
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.holder} holds the {self.environment} lock for {self.operation}{why} "
            f"since {self.since:%Y-%m-%d %H:%M:%S} UTC ({age}s ago, from {self.host}), "
            f"expires {self.expires:%H:%M:%S} UTC"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "environment": self.environment,
            "holder": self.holder,
            "reason": self.reason,
            "operation": self.operation,
            "host": self.host,
            "since": self.since.isoformat(),
            "expires": self.expires.isoformat(),
            "ttl": self.ttl,
        }


def _info(container: ContainerInfo) -> LockInfo:
    values = container.labels
    try:
        since = datetime.fromisoformat(values.get(SINCE, ""))
    except ValueError:
        since = datetime.fromtimestamp(0, UTC)
    try:
        ttl = float(values.get(TTL, DEFAULT_TTL))
    except ValueError:
        ttl = DEFAULT_TTL
    return LockInfo(
        service=values.get(labels.SERVICE, ""),
        environment=values.get(labels.ENVIRONMENT, ""),
        holder=values.get(HOLDER, "unknown"),
        reason=values.get(REASON, ""),
        operation=values.get(OPERATION, ""),
        host=values.get(HOST, ""),
        since=since,
        ttl=ttl,
        container_id=container.id,
    )


class EnvironmentLock:
    """The deployment lock of one service's environment on one engine."""

    def __init__(
        self,
        engine: Engine,
        service: str,
        environment: str,
        image: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.service = service
        self.environment = environment
        self.image = image
        """Any image the engine has: the lock container is created from it, never run."""
        self._sleep = sleep

    @property
    def name(self) -> str:
        return lock_name(self.service, self.environment)

    def status(self) -> LockInfo | None:
        container = self.engine.container(self.name)
        return _info(container) if container is not None else None

    def acquire(
        self,
        holder: str,
        *,
        reason: str = "",
        operation: str = "manual",
        ttl: float = DEFAULT_TTL,
        wait: float = 0.0,
    ) -> LockInfo:
        """Take the lock, or raise :class:`LockHeld` naming the holder (after ``wait`` s)."""
        deadline = time.monotonic() + wait
        while True:
            created = self.engine.reserve(
                self.name,
                self.image,
                {
                    **labels.selector(self.service, self.environment, "lock"),
                    HOLDER: holder,
                    REASON: reason,
                    OPERATION: operation,
                    HOST: f"{socket.gethostname()}:{os.getpid()}",
                    SINCE: datetime.now(UTC).isoformat(timespec="seconds"),
                    TTL: f"{ttl:g}",
                },
            )
            if created is not None:
                return _info(created)
            current = self.status()
            if current is None:
                continue  # released between our attempt and our look: try again
            if current.expired() or current.holder_gone():
                # Remove exactly that one; a fresh holder's container has another id.
                self.engine.remove(current.container_id, grace=0)
                continue
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"{self.service} {self.environment} is locked: {current.describe()}",
                    hint="wait for it (`--wait SECONDS`), or if the holder is gone: "
                    f"`dockroll lock release --env {self.environment} --force`",
                )
            self._sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def release(self, holder: str | None = None, *, force: bool = False) -> LockInfo | None:
        """Give the lock back; only its holder may, unless ``force``. Returns what was held."""
        current = self.status()
        if current is None:
            return None
        if not force and holder is not None and current.holder != holder:
            raise LockHeld(
                f"the {self.environment} lock belongs to {current.holder}, not {holder}",
                hint=f"`dockroll lock release --env {self.environment} --force` takes it away",
            )
        self.engine.remove(current.container_id, grace=0)
        return current

    @contextmanager
    def held(
        self,
        holder: str,
        *,
        reason: str = "",
        operation: str,
        ttl: float = DEFAULT_TTL,
        wait: float = 0.0,
    ) -> Iterator[LockInfo]:
        """Hold the lock for the duration of a block (released even when the block fails)."""
        info = self.acquire(holder, reason=reason, operation=operation, ttl=ttl, wait=wait)
        try:
            yield info
        finally:
            current = self.status()
            if current is not None and current.container_id == info.container_id:
                self.engine.remove(info.container_id, grace=0)
