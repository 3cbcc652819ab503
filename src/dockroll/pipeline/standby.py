"""The previous blue-green slot that waits at weight 0 for an instant rollback.

Read by ``dockroll status`` and by rollbacks; apart from :mod:`dockroll.pipeline.deploy`
so that status needs none of the rollout machinery to report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dockroll.config import Config
from dockroll.ledger import DeploymentStatus, LedgerReads
from dockroll.rollout.plan import Observed

__all__ = ["Standby", "find_standby"]


@dataclass(frozen=True)
class Standby:
    """A previous blue-green slot, running at weight 0 for an instant switch back."""

    version: str
    digest: str
    names: tuple[str, ...]
    until: datetime | None
    """When its ``keep_previous`` window ends (ledger clock); None when the ledger has no
    record of the switch."""
    now: datetime
    """The ledger's clock when this was read."""

    @property
    def expired(self) -> bool:
        return self.until is not None and self.now >= self.until

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "digest": self.digest,
            "replicas": list(self.names),
            "until": self.until.isoformat() if self.until else None,
            "expired": self.expired,
        }

    def describe(self) -> str:
        if self.until is None:
            return f"{self.version} on standby (no recorded window)"
        when = f"{self.until:%Y-%m-%d %H:%M:%S} UTC"
        if self.expired:
            return (
                f"{self.version} on standby past its keep_previous window (ended {when}): "
                "the next deploy or rollback retires it, and a rollback redeploys"
            )
        return f"{self.version} on standby for an instant rollback until {when}"


def find_standby(
    config: Config, environment: str, ledger: LedgerReads, observed: Observed
) -> Standby | None:
    """The standby slot beside the serving one, with the end of its window.

    The window is ``blue_green.keep_previous`` from the end of the deployment that
    switched traffic away from it (the environment's newest finished one).
    """
    idle = [r for r in observed.replicas if r.weight == 0]
    if not idle or not observed.serving:
        return None
    switched = next(
        (
            d
            for d in ledger.deployments(config.service, environment)
            if d.status is DeploymentStatus.SUCCEEDED and d.finished_at is not None
        ),
        None,
    )
    keep = config.environment(environment).blue_green.keep_previous
    until = None
    if switched is not None and switched.finished_at is not None:
        until = switched.finished_at + timedelta(seconds=keep)
    first = idle[0]
    return Standby(
        version=first.version,
        digest=first.digest,
        names=tuple(r.name for r in idle),
        until=until,
        now=ledger.now(),
    )
