"""Analysis samples of every rollout, the cost of a rolled-back release, commit times.

- ``analysis_samples``: one row per analysis tick of a deployment's observed step
  (request counts, errors and latency of canary and baseline, traffic weights,
  the decision and its reason), so a rollout's timeline outlives it and its
  judges can be replayed with other settings.
- ``deployments.served_requests``, ``failed_requests``, ``traffic_seconds``: what
  the new release served before it was rolled back or aborted.
- ``releases.committed_at``: the commit time of the release's source, for the
  lead time of changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "analysis_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("elapsed", sa.Float(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("canary_weight", sa.Integer(), nullable=False),
        sa.Column("baseline_weight", sa.Integer(), nullable=False),
        sa.Column("canary_requests", sa.Float(), nullable=True),
        sa.Column("canary_errors", sa.Float(), nullable=True),
        sa.Column("canary_latency_ms", sa.Float(), nullable=True),
        sa.Column("baseline_requests", sa.Float(), nullable=True),
        sa.Column("baseline_errors", sa.Float(), nullable=True),
        sa.Column("baseline_latency_ms", sa.Float(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_analysis_samples_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_samples")),
        sa.UniqueConstraint(
            "deployment_id",
            "step_index",
            "tick",
            name=op.f("uq_analysis_samples_deployment_id_step_index_tick"),
        ),
    )
    op.add_column("deployments", sa.Column("served_requests", sa.Integer(), nullable=True))
    op.add_column("deployments", sa.Column("failed_requests", sa.Integer(), nullable=True))
    op.add_column("deployments", sa.Column("traffic_seconds", sa.Float(), nullable=True))
    op.add_column("releases", sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True))
    # Every report and page lists deployments of an environment by start time across
    # services; the (service, env, started_at) index does not serve that.
    op.create_index(op.f("ix_deployments_env_started_at"), "deployments", ["env", "started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deployments_env_started_at"), table_name="deployments")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("committed_at")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("traffic_seconds")
        batch.drop_column("failed_requests")
        batch.drop_column("served_requests")
    op.drop_table("analysis_samples")
