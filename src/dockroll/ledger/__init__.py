"""The ledger: history and intent of releases, promotions, approvals and deployments.

What runs is read from the engine's container labels; the ledger records how
it got there and who did it, so it can always be rebuilt from labels. It lives
in SQLite (``<state dir>/ledger.db``) or any database URL in
``$DOCKROLL_LEDGER_URL`` (PostgreSQL: ``postgresql+psycopg://…``) and migrates
its own schema on first use::

    with open_ledger() as ledger:
        release = ledger.record_release(service="web", version="1.4.0", digest=digest, ...)
        ledger.record_promotion(release, from_env="dev", to_env="staging", tags=["staging"])
        ledger.history("web", env="staging")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dockroll.ledger._actor import ACTOR_ENV, who
from dockroll.ledger._records import (
    AnalysisSample,
    Approval,
    AuditEvent,
    Deployment,
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    DeploymentStep,
    HistoryEntry,
    HistoryKind,
    Outcome,
    Promotion,
    PromotionStatus,
    Release,
    ReleaseId,
    StepStatus,
)
from dockroll.ledger._schema import LEDGER_URL_ENV, ledger_url
from dockroll.ledger._sqlite_reads import LedgerReads, open_ledger_reads
from dockroll.ledger._sqlite_writes import open_quick_ledger

if TYPE_CHECKING:
    from dockroll.ledger._database import (
        create_ledger_engine,
        head_revision,
        migrate,
        schema_revision,
    )
    from dockroll.ledger._ledger import Ledger, open_ledger

# SQLAlchemy loads with the first of these a caller asks for: `status` reads a SQLite
# ledger without it (open_ledger_reads).
_SQLALCHEMY_BACKED = {
    "Ledger": "_ledger",
    "open_ledger": "_ledger",
    "create_ledger_engine": "_database",
    "head_revision": "_database",
    "migrate": "_database",
    "schema_revision": "_database",
}


def __getattr__(name: str) -> Any:
    module = _SQLALCHEMY_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTOR_ENV",
    "LEDGER_URL_ENV",
    "AnalysisSample",
    "Approval",
    "AuditEvent",
    "Deployment",
    "DeploymentId",
    "DeploymentKind",
    "DeploymentStatus",
    "DeploymentStep",
    "HistoryEntry",
    "HistoryKind",
    "Ledger",
    "LedgerReads",
    "Outcome",
    "Promotion",
    "PromotionStatus",
    "Release",
    "ReleaseId",
    "StepStatus",
    "create_ledger_engine",
    "head_revision",
    "ledger_url",
    "migrate",
    "open_ledger",
    "open_ledger_reads",
    "open_quick_ledger",
    "schema_revision",
    "who",
]
