"""Hold an environment's requests at its router, release them, or serve the maintenance page.

None of these restarts or reloads anything: they flip flags in the running
router's state map (see :mod:`dockroll.router.hold`). The router must run a
config that knows them; an older one is told to reload first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dockroll.config import Config
from dockroll.errors import UsageError
from dockroll.ledger import Ledger
from dockroll.pipeline.engines import environment_engine
from dockroll.router.haproxy import HaproxyRouter

__all__ = ["HoldState", "hold_environment", "release_environment", "set_maintenance"]


@dataclass(frozen=True)
class HoldState:
    environment: str
    held: bool
    until: datetime | None
    maintenance: bool

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "held": self.held,
            "until": self.until.isoformat() if self.until else None,
            "maintenance": self.maintenance,
        }


def _router(config: Config, name: str) -> HaproxyRouter:
    engine = environment_engine(config, name)
    engine.ping()
    router = HaproxyRouter.for_environment(engine, config, name)
    described = router.describe()
    if not described.running:
        raise UsageError(
            f"the router of {config.service}/{name} does not run: {described.verdict}",
            hint=f"`dockroll deploy --env {name}` starts it",
        )
    if described.needs_upgrade or described.config != described.wanted_config:
        raise UsageError(
            f"the router of {config.service}/{name} runs a config that cannot hold requests",
            hint=f"`dockroll router status --env {name}` says how to bring it up to date",
        )
    return router


def _state(router: HaproxyRouter) -> HoldState:
    flags = router.flags()
    until = float(flags.get("hold_until", "0") or 0)
    held = flags.get("hold") == "on"
    return HoldState(
        environment=router.environment,
        held=held,
        until=datetime.fromtimestamp(until).astimezone() if held and until else None,
        maintenance=flags.get("maintenance") == "on",
    )


def hold_environment(config: Config, name: str, ledger: Ledger, *, max_seconds: float) -> HoldState:
    """New requests wait at the router until released; past ``max_seconds`` they get 503."""
    if max_seconds <= 0:
        raise UsageError(f"--max must be longer than 0s, not {max_seconds:g}s")
    router = _router(config, name)
    router.hold(router.engine.now() + timedelta(seconds=max_seconds))
    ledger.audit("hold", service=config.service, env=name, detail={"max_seconds": max_seconds})
    return _state(router)


def release_environment(config: Config, name: str, ledger: Ledger) -> HoldState:
    """Held requests, and every new one, flow again."""
    router = _router(config, name)
    router.release()
    ledger.audit("release", service=config.service, env=name)
    return _state(router)


def set_maintenance(config: Config, name: str, ledger: Ledger, *, on: bool) -> HoldState:
    """Every request gets the maintenance page (503, Retry-After), or traffic flows again."""
    router = _router(config, name)
    router.set_maintenance(on)
    ledger.audit("maintenance", service=config.service, env=name, detail={"on": on})
    return _state(router)
