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

from dockroll.ledger._actor import ACTOR_ENV, who
from dockroll.ledger._database import (
    LEDGER_URL_ENV,
    create_ledger_engine,
    head_revision,
    ledger_url,
    migrate,
    schema_revision,
)
from dockroll.ledger._ledger import Ledger, open_ledger
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
    "schema_revision",
    "who",
]
