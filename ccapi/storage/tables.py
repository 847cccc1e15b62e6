"""The schema, as SQLAlchemy Core tables (one definition for SQLite and PostgreSQL).

Money is stored as integer units of 1e-10 USD (`Money`): exact on every
database (SQLite has no decimal type and would round-trip through float),
and the contract's 10-decimal precision. Migrations (migrations/versions/)
create these tables; this module is how the code addresses them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

UNITS_PER_USD = Decimal(10) ** 10


class Money(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else int((Decimal(value) * UNITS_PER_USD).to_integral_value())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(int(value)) / UNITS_PER_USD

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # `money_column + Decimal(...)` must bind the Decimal as Money (units),
        # never as a bare integer or float.
        return self


def usd(amount: Decimal) -> Any:
    """A Decimal as a bound Money parameter, for SQL arithmetic and comparisons."""
    return literal(amount, Money)


metadata = MetaData()

instance_meta = Table(
    "instance_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Times are unix seconds (float): one representation on every database, cheap to compare.
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("balance", Money, nullable=False),
    Column("reserved", Money, nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200)),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("spend_limit", Money),
    Column("spend_limit_period", String(8)),  # None (lifetime), "day", "month"
    Column("spent", Money, nullable=False),  # in the current period
    Column("period_start", Float),
    Column("reserved", Money, nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("allowed_models", JSON),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Index("ix_api_keys_account", "account_id"),
    Index("ix_api_keys_updated", "updated"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), nullable=False),
    Column("key_id", String(40)),
    Column("amount", Money, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_reservations_expires", "expires_at"),
)

credit_entries = Table(
    "credit_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_credit_entries_account", "account_id", "created"),
)

usage = Table(
    "usage",
    metadata,
    # Our own key: a client may send the same x-request-id twice.
    Column("id", String(40), primary_key=True),
    Column("request_id", String(140), nullable=False),
    Column("created", Float, nullable=False),
    Column("account_id", String(40)),
    Column("key_id", String(40)),
    Column("route", String(64), nullable=False),
    Column("requested_models", JSON, nullable=False),
    Column("model", String(200)),
    Column("provider", String(64)),
    Column("attempts", JSON, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_type", String(64)),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("input_cost", Money, nullable=False),
    Column("output_cost", Money, nullable=False),
    Column("cost", Money, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("stream", Boolean, nullable=False),
    Index("ix_usage_account_created", "account_id", "created"),
    Index("ix_usage_key_created", "key_id", "created"),
    Index("ix_usage_created", "created"),
    Index("ix_usage_request", "request_id"),
)


jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(140), nullable=False),
    Column("account_id", String(40)),
    Column("key_id", String(40)),
    Column("route", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("request", JSON, nullable=False),
    Column("inputs", JSON),
    Column("base_url", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reservation_id", String(40)),
    Column("reserved", Money, nullable=False),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("finished", Float),
    Column("claim", Integer, nullable=False),
    Column("owner", String(64)),
    Column("lease_until", Float),
    Column("runs", Integer, nullable=False),
    Column("upstream", JSON),
    Column("result", JSON),
    Column("images", Integer, nullable=False),
    Column("cost", Money, nullable=False),
    Column("error", JSON),
    Column("attempts", JSON),
    Column("webhook_url", Text),
    Column("webhook_state", String(16)),
    Column("webhook_attempts", Integer, nullable=False),
    Column("webhook_next_at", Float),
    Index("ix_jobs_status_lease", "status", "lease_until"),
    Index("ix_jobs_webhook", "webhook_state", "webhook_next_at"),
    Index("ix_jobs_model_finished", "model", "status", "finished"),
)

# The database rate limiter's sliding windows (billing/ratelimit_db.py).
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("limit_key", String(64), primary_key=True),
    Column("second", BigInteger, primary_key=True, autoincrement=False),
    Column("requests", Integer, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Index("ix_rate_buckets_second", "second"),
)
