"""The deployment lock's timing, renewal and manual holds, on the in-memory engine."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from dockroll import labels
from dockroll.errors import LockHeld, LockLost
from dockroll.lock import (
    HOLDER,
    HOST,
    LEASE_ROLE,
    OPERATION,
    SINCE,
    TTL,
    EnvironmentLock,
    lock_name,
)
from tests.unit.rollout.fakes import FakeEngine


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lock(engine: FakeEngine, ticks: Ticks | None = None) -> EnvironmentLock:
    return EnvironmentLock(
        engine, "shop", "prod", image="lock:1", sleep=lambda _s: None, monotonic=ticks or Ticks()
    )


def _leases(engine: FakeEngine) -> list[str]:
    return sorted(
        c.name
        for c in engine.containers({"dev.dockroll.role": LEASE_ROLE})
        if c.labels.get("dev.dockroll.service") == "shop"
    )


def test_expiry_is_judged_by_the_engines_clock_not_this_machines() -> None:
    engine = FakeEngine()
    holder = _lock(engine)
    holder.acquire("ada", operation="deploy", ttl=60)

    # This machine's clock says seconds passed; the engine's says two minutes did.
    engine.clock_skew = 120
    status = _lock(engine).status()
    assert status is not None
    assert status.expired()
    taken = _lock(engine).acquire("bob", operation="deploy")
    assert taken.holder == "bob"


def test_a_holder_whose_clock_runs_behind_is_not_judged_expired() -> None:
    engine = FakeEngine()
    # Taken by a machine whose clock is two hours behind: its own "since" says so.
    behind = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    engine.reserve(
        lock_name("shop", "prod"),
        "lock:1",
        {
            **labels.selector("shop", "prod", "lock"),
            HOLDER: "ada",
            OPERATION: "deploy",
            HOST: "elsewhere:42",
            SINCE: behind,
            TTL: "60",
        },
    )
    status = _lock(engine).status()
    assert status is not None
    assert not status.expired()
    with pytest.raises(LockHeld, match="ada"):
        _lock(engine).acquire("bob", operation="deploy")


def test_renewal_keeps_the_lock_past_its_ttl() -> None:
    engine = FakeEngine()
    ticks = Ticks()
    holder = _lock(engine, ticks)
    holder.acquire("ada", operation="deploy", ttl=60)

    for _ in range(5):  # five minutes of a long canary pause, renewed as it goes
        engine.clock_skew += 30
        ticks.now += 30
        holder.heartbeat()
    status = _lock(engine).status()
    assert status is not None
    assert status.renewed is not None
    assert not status.expired()
    assert status.expires is not None
    assert status.expires - status.since > timedelta(seconds=200)
    with pytest.raises(LockHeld, match="renewed"):
        _lock(engine).acquire("bob", operation="deploy")
    # One lease at a time: each renewal replaces the one before.
    assert len(_leases(engine)) == 1


def test_heartbeat_renews_only_once_a_quarter_of_the_ttl_passed() -> None:
    engine = FakeEngine()
    ticks = Ticks()
    holder = _lock(engine, ticks)
    holder.acquire("ada", operation="deploy", ttl=40)
    ticks.now += 9
    holder.heartbeat()
    assert _leases(engine) == []
    ticks.now += 1
    holder.heartbeat()
    assert _leases(engine) == ["dockroll-lock-shop-prod.lease-1"]


def test_without_renewal_the_lock_expires_and_its_old_holder_learns_it_was_lost() -> None:
    engine = FakeEngine()
    ticks = Ticks()
    holder = _lock(engine, ticks)
    holder.acquire("ada", operation="deploy", ttl=60)
    engine.clock_skew = 61  # the holder stalled for longer than the TTL
    _lock(engine).acquire("bob", operation="deploy")

    ticks.now += 60
    with pytest.raises(LockLost, match="taken over") as lost:
        holder.heartbeat()
    assert lost.value.exit_code == 12
    status = _lock(engine).status()
    assert status is not None
    assert status.holder == "bob"


def test_releasing_removes_the_leases_and_a_new_holder_starts_clean() -> None:
    engine = FakeEngine()
    ticks = Ticks()
    holder = _lock(engine, ticks)
    with holder.held("ada", operation="deploy", ttl=60):
        ticks.now += 20
        holder.heartbeat()
        assert len(_leases(engine)) == 1
    assert _leases(engine) == []
    assert holder.status() is None


def test_a_nested_hold_uses_the_lock_already_held() -> None:
    engine = FakeEngine()
    lock = _lock(engine)
    with lock.held("ada", operation="promote") as outer:
        with lock.held("ada", operation="deploy") as inner:
            assert inner.container_id == outer.container_id
        # The inner block leaves the lock to the outer one.
        assert lock.status() is not None
    assert lock.status() is None


def test_a_lock_taken_by_hand_holds_until_released() -> None:
    engine = FakeEngine()
    manual = _lock(engine).acquire("ada", reason="freeze", operation="manual", ttl=None)
    assert manual.manual
    assert manual.expires is None
    # It names the host but no process: a deploy from this host cannot judge it gone.
    assert manual.host == socket.gethostname()
    assert not manual.holder_gone()

    engine.clock_skew = 10 * 86400
    with pytest.raises(LockHeld, match="until released"):
        _lock(engine).acquire("bob", operation="deploy")
    assert _lock(engine).release("ada") is not None
    assert _lock(engine).acquire("bob", operation="deploy").holder == "bob"


def test_a_deploy_lock_names_its_process() -> None:
    info = _lock(FakeEngine()).acquire("ada", operation="deploy")
    assert not info.manual
    assert info.host.rpartition(":")[2].isdigit()


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        _lock(FakeEngine()).acquire("ada", operation="deploy", ttl=0)


def test_a_lease_that_cannot_be_made_leaves_the_last_one_in_place() -> None:
    engine = FakeEngine()
    ticks = Ticks()
    holder = _lock(engine, ticks)
    holder.acquire("ada", operation="deploy", ttl=60)
    first = holder.renew()
    assert first.renewed is not None

    reserve = engine.reserve
    engine.reserve = lambda name, image, found: (
        None
        if ".lease-" in name
        else reserve(  # type: ignore[method-assign]
            name, image, found
        )
    )
    holder.renew()
    # The lock is no shorter than after the renewal that worked.
    assert _leases(engine) == ["dockroll-lock-shop-prod.lease-1"]
    status = _lock(engine).status()
    assert status is not None
    assert status.renewed == first.renewed
