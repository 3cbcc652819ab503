"""Deployment locks that live with the target engine.

A lock is a container that is created but never started, named
``dockroll-lock-<service>-<environment>``. The engine refuses a second
container of the same name, so taking the lock is one atomic call shared by
every client of that engine: two machines deploying to the same engine exclude
each other, not only two processes on one laptop. Who holds it, why and for how
long are its labels.

Time is the engine's: a lock is as old as its container's creation time, and
every client compares that with the engine's clock, so two machines whose
clocks disagree still agree on when a lock expires. Labels cannot change, so a
holder renews by creating a *lease* container (``<lock>.lease-<n>``) and
removing the one before it; the lock expires ``ttl`` seconds after its last
renewal. A rollout renews at each step and during its pauses, however long
they last.

An expired lock may be taken over, and so may one whose holder ran on this
host and has died (its pid is gone): a deploy killed with SIGKILL leaves its
lock behind. A lock taken by hand (``dockroll lock acquire``) names no process
and by default never expires: it holds until it is released.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from dockroll import labels
from dockroll.engine.port import ContainerInfo, Engine
from dockroll.errors import LockHeld, LockLost

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TTL",
    "EnvironmentLock",
    "LockHeld",
    "LockInfo",
    "LockLost",
    "lock_name",
]

DEFAULT_TTL = 1800.0
HOLDER = labels.PREFIX + "lock.holder"
REASON = labels.PREFIX + "lock.reason"
SINCE = labels.PREFIX + "lock.since"
TTL = labels.PREFIX + "lock.ttl"
HOST = labels.PREFIX + "lock.host"
OPERATION = labels.PREFIX + "lock.operation"
LEASE_OF = labels.PREFIX + "lock.lease-of"
"""On a lease container: the id of the lock container it renews."""
LEASE_ROLE = "lock-lease"
NEVER = "never"
"""The TTL label of a lock that holds until released."""


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
    """``hostname:pid`` of the holding process; a lock taken by hand names only the host."""
    since: datetime
    """When the lock was taken, by the engine's clock."""
    ttl: float | None
    """Seconds it holds after its last renewal; None: until released."""
    container_id: str
    renewed: datetime | None = None
    """The last renewal (engine clock); None when never renewed."""
    observed: datetime | None = None
    """The engine's clock when this was read; expiry is judged against it."""

    @property
    def expires(self) -> datetime | None:
        if self.ttl is None:
            return None
        return (self.renewed or self.since) + timedelta(seconds=self.ttl)

    def expired(self, now: datetime | None = None) -> bool:
        expires = self.expires
        if expires is None:
            return False
        return (now or self.observed or datetime.now(UTC)) >= expires

    @property
    def manual(self) -> bool:
        """Taken by hand: no process holds it, only its release frees it before the TTL."""
        return not self.host.rpartition(":")[2].isdigit()

    def holder_gone(self) -> bool:
        """Whether the holding process ran on this host and no longer exists.

        A deploy killed with SIGKILL cannot release its lock; waiting out the TTL
        would block the environment for nothing. Holders on other hosts are never
        judged from here: only their TTL frees their lock. A lock taken by hand
        names no process, so it is never judged gone.
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
        now = self.observed or datetime.now(UTC)
        age = int((now - self.since).total_seconds())
        why = f" ({self.reason})" if self.reason else ""
        expires = self.expires
        until = "until released" if expires is None else f"expires {expires:%Y-%m-%d %H:%M:%S} UTC"
        renewed = ""
        if self.renewed is not None:
            renewed = f", renewed {int((now - self.renewed).total_seconds())}s ago"
        return (
            f"{self.holder} holds the {self.environment} lock for {self.operation}{why} "
            f"since {self.since:%Y-%m-%d %H:%M:%S} UTC ({age}s ago, from {self.host}"
            f"{renewed}), {until}"
        )

    def to_json(self) -> dict[str, object]:
        expires = self.expires
        return {
            "service": self.service,
            "environment": self.environment,
            "holder": self.holder,
            "reason": self.reason,
            "operation": self.operation,
            "host": self.host,
            "manual": self.manual,
            "since": self.since.isoformat(),
            "renewed": self.renewed.isoformat() if self.renewed else None,
            "expires": expires.isoformat() if expires else None,
            "ttl": self.ttl,
        }


def _ttl(text: str | None) -> float | None:
    if text == NEVER:
        return None
    try:
        return float(text if text is not None else DEFAULT_TTL)
    except ValueError:
        return DEFAULT_TTL


def _info(
    container: ContainerInfo, leases: list[ContainerInfo], observed: datetime | None
) -> LockInfo:
    values = container.labels
    since = container.created
    if since is None:
        try:
            since = datetime.fromisoformat(values.get(SINCE, ""))
        except ValueError:
            since = datetime.fromtimestamp(0, UTC)
    renewals = [lease.created for lease in leases if lease.created is not None]
    return LockInfo(
        service=values.get(labels.SERVICE, ""),
        environment=values.get(labels.ENVIRONMENT, ""),
        holder=values.get(HOLDER, "unknown"),
        reason=values.get(REASON, ""),
        operation=values.get(OPERATION, ""),
        host=values.get(HOST, ""),
        since=since,
        ttl=_ttl(values.get(TTL)),
        container_id=container.id,
        renewed=max(renewals) if renewals else None,
        observed=observed,
    )


@dataclass
class _Holding:
    info: LockInfo
    renewals: int = 0
    last_renewal: float = 0.0
    """``time.monotonic()`` of the last renewal (or of taking the lock)."""


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.service = service
        self.environment = environment
        self.image = image
        """Any image the engine has: the lock container is created from it, never run."""
        self._sleep = sleep
        self._monotonic = monotonic
        self._holding: _Holding | None = None

    @property
    def name(self) -> str:
        return lock_name(self.service, self.environment)

    def _leases(self, container_id: str | None = None) -> list[ContainerInfo]:
        found = self.engine.containers(labels.selector(self.service, self.environment, LEASE_ROLE))
        if container_id is None:
            return found
        return [lease for lease in found if lease.labels.get(LEASE_OF) == container_id]

    def status(self) -> LockInfo | None:
        container = self.engine.container(self.name)
        if container is None:
            return None
        return _info(container, self._leases(container.id), self.engine.now())

    def acquire(
        self,
        holder: str,
        *,
        reason: str = "",
        operation: str = "manual",
        ttl: float | None = DEFAULT_TTL,
        wait: float = 0.0,
    ) -> LockInfo:
        """Take the lock, or raise :class:`LockHeld` naming the holder (after ``wait`` s).

        ``ttl=None`` holds until released. A lock taken for ``operation="manual"``
        names no process: it outlives the command that took it.
        """
        if ttl is not None and ttl <= 0:
            raise ValueError(f"a lock's ttl must be positive, not {ttl:g}")
        host = socket.gethostname()
        if operation != "manual":
            host = f"{host}:{os.getpid()}"
        deadline = self._monotonic() + wait
        while True:
            created = self.engine.reserve(
                self.name,
                self.image,
                {
                    **labels.selector(self.service, self.environment, "lock"),
                    HOLDER: holder,
                    REASON: reason,
                    OPERATION: operation,
                    HOST: host,
                    SINCE: datetime.now(UTC).isoformat(timespec="seconds"),
                    TTL: NEVER if ttl is None else f"{ttl:g}",
                },
            )
            if created is not None:
                self._remove_stale_leases(created.id)
                info = _info(created, [], created.created)
                self._holding = _Holding(info, last_renewal=self._monotonic())
                _log.debug("%s taken by %s for %s", self.name, holder, operation)
                return info
            current = self.status()
            if current is None:
                continue  # released between our attempt and our look: try again
            if current.expired() or current.holder_gone():
                _log.info(
                    "%s: removing the lock %s left (%s)",
                    self.name,
                    current.holder,
                    "expired" if current.expired() else "its process is gone",
                )
                # Remove exactly that one; a fresh holder's container has another id.
                self.engine.remove(current.container_id, grace=0)
                continue
            if self._monotonic() >= deadline:
                raise LockHeld(
                    f"{self.service} {self.environment} is locked: {current.describe()}",
                    hint="wait for it (`--wait SECONDS`), or if the holder is gone: "
                    f"`dockroll lock release --env {self.environment} --force`",
                )
            self._sleep(min(1.0, max(0.05, deadline - self._monotonic())))

    def _remove_stale_leases(self, keep_lock: str | None) -> None:
        """Remove leases of locks that no longer exist (a holder killed mid-renewal)."""
        for lease in self._leases():
            if lease.labels.get(LEASE_OF) != keep_lock:
                self.engine.remove(lease.id, grace=0)

    def renew(self) -> LockInfo:
        """Extend the lock this client holds by its TTL, counted from now (engine clock).

        Raises :class:`LockLost` when the lock is no longer ours (it expired and
        was taken over, or was released by force).
        """
        holding = self._holding
        if holding is None:
            raise LockLost(f"the {self.environment} lock is not held by this process")
        held = holding.info
        current = self.engine.container(self.name)
        if current is None or current.id != held.container_id:
            self._holding = None
            taken = "was released by force" if current is None else "was taken over"
            raise LockLost(
                f"the {self.environment} lock of {self.service} {taken} while "
                f"{held.holder} held it for {held.operation}",
                hint="`dockroll lock status` and `dockroll status` show who holds it and what "
                "runs; nothing more is changed by this command",
            )
        if held.ttl is None:
            holding.last_renewal = self._monotonic()
            return held
        previous = self._leases(held.container_id)
        holding.renewals += 1
        lease = self._reserve_lease(held.container_id, holding.renewals)
        if lease is None:
            # A lease of that number is left from an earlier holder: clear and retry once.
            self._remove_stale_leases(held.container_id)
            lease = self._reserve_lease(held.container_id, holding.renewals)
        if lease is None:
            # Keep the leases there are: removing them would shorten the lock, not renew it.
            _log.warning(
                "%s: lease %d could not be made; the lock was not renewed",
                self.name,
                holding.renewals,
            )
            return held
        for old in previous:
            self.engine.remove(old.id, grace=0)
        holding.last_renewal = self._monotonic()
        holding.info = replace(held, renewed=lease.created, observed=lease.created)
        _log.debug("%s renewed (lease %d)", self.name, holding.renewals)
        return holding.info

    def _reserve_lease(self, lock_id: str, number: int) -> ContainerInfo | None:
        return self.engine.reserve(
            f"{self.name}.lease-{number}",
            self.image,
            {**labels.selector(self.service, self.environment, LEASE_ROLE), LEASE_OF: lock_id},
        )

    def heartbeat(self) -> None:
        """Renew when a quarter of the TTL (at most a minute) passed since the last renewal.

        Cheap enough to call at every step and every tick of a pause; does nothing
        when this client holds no lock.
        """
        holding = self._holding
        if holding is None or holding.info.ttl is None:
            return
        every = min(60.0, holding.info.ttl / 4)
        if self._monotonic() - holding.last_renewal >= every:
            self.renew()

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
        self._drop(current.container_id)
        return current

    def _drop(self, container_id: str) -> None:
        self.engine.remove(container_id, grace=0)
        for lease in self._leases(container_id):
            self.engine.remove(lease.id, grace=0)
        if self._holding is not None and self._holding.info.container_id == container_id:
            self._holding = None

    @contextmanager
    def held(
        self,
        holder: str,
        *,
        reason: str = "",
        operation: str,
        ttl: float | None = DEFAULT_TTL,
        wait: float = 0.0,
    ) -> Iterator[LockInfo]:
        """Hold the lock for the duration of a block (released even when the block fails).

        Inside a block that already holds this lock (a promotion that deploys),
        a nested ``held`` uses the lock as it is and leaves it to the outer block.
        """
        outer = self._holding
        if outer is not None:
            current = self.engine.container(self.name)
            if current is not None and current.id == outer.info.container_id:
                yield outer.info
                return
            self._holding = None
        info = self.acquire(holder, reason=reason, operation=operation, ttl=ttl, wait=wait)
        try:
            yield info
        finally:
            current = self.engine.container(self.name)
            if current is not None and current.id == info.container_id:
                self._drop(info.container_id)
            else:
                self._holding = None
