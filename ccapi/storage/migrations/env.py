"""Alembic environment: online migrations only, one lock for all instances."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

# Several instances may start at once on an empty database: on PostgreSQL an
# advisory lock makes exactly one apply the migrations; SQLite's write lock
# (BEGIN IMMEDIATE) does the same for one file.
_LOCK_ID = 0x43434150  # "CCAP"


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            connection.commit()
        try:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                connection.commit()
    engine.dispose()


run()
