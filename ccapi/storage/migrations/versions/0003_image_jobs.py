"""Asynchronous image jobs: the request, its state, its claim by one runner,
its result and its webhook delivery.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(140), nullable=False),
        sa.Column("account_id", sa.String(40)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        # The validated request body and, for multimodal contents, the input
        # parts with their images stored as files.
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reservation_id", sa.String(40)),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float),
        sa.Column("finished", sa.Float),
        # The runner holding the job: a claim number (bumped by every claim),
        # the instance, and until when its lease holds without a heartbeat.
        sa.Column("claim", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("upstream", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("images", sa.Integer, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("error", sa.JSON),
        sa.Column("attempts", sa.JSON),
        sa.Column("webhook_url", sa.Text),
        sa.Column("webhook_state", sa.String(16)),
        sa.Column("webhook_attempts", sa.Integer, nullable=False),
        sa.Column("webhook_next_at", sa.Float),
    )
    op.create_index("ix_jobs_status_lease", "jobs", ["status", "lease_until"])
    op.create_index("ix_jobs_webhook", "jobs", ["webhook_state", "webhook_next_at"])
    op.create_index("ix_jobs_model_finished", "jobs", ["model", "status", "finished"])


def downgrade() -> None:
    op.drop_table("jobs")
