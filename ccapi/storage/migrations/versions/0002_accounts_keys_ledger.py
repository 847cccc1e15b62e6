"""Accounts, API keys, open reservations, credit entries and the usage ledger.

Money columns are BIGINT units of 1e-10 USD (exact on SQLite and PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def money(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        money("balance"),
        money("reserved"),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        money("spend_limit", nullable=True),
        sa.Column("spend_limit_period", sa.String(8)),
        money("spent"),
        sa.Column("period_start", sa.Float),
        money("reserved"),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("allowed_models", sa.JSON),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_index("ix_api_keys_account", "api_keys", ["account_id"])
    op.create_index("ix_api_keys_updated", "api_keys", ["updated"])
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40)),
        money("amount"),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_reservations_expires", "reservations", ["expires_at"])
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        money("amount"),
        money("balance_after"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_credit_entries_account", "credit_entries", ["account_id", "created"])
    op.create_table(
        "usage",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(140), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("account_id", sa.String(40)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("requested_models", sa.JSON, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("provider", sa.String(64)),
        sa.Column("attempts", sa.JSON, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        money("input_cost"),
        money("output_cost"),
        money("cost"),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("stream", sa.Boolean, nullable=False),
    )
    op.create_index("ix_usage_account_created", "usage", ["account_id", "created"])
    op.create_index("ix_usage_key_created", "usage", ["key_id", "created"])
    op.create_index("ix_usage_created", "usage", ["created"])
    op.create_index("ix_usage_request", "usage", ["request_id"])


def downgrade() -> None:
    for table in ("usage", "credit_entries", "reservations", "api_keys", "accounts"):
        op.drop_table(table)
