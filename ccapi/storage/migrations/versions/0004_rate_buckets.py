"""Rate-limit counters in the database, for several worker processes without
Redis: one row per limit and second (requests and tokens counted in it), and
one anchor row per limit (second 0) that admissions lock first.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        # "<scope>:<id>": "key:key_..." or "account:acct_...".
        sa.Column("limit_key", sa.String(64), primary_key=True),
        sa.Column("second", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    # The periodic prune deletes by second across all limits.
    op.create_index("ix_rate_buckets_second", "rate_buckets", ["second"])


def downgrade() -> None:
    op.drop_table("rate_buckets")
