"""Migrations: they reach head on every database, PostgreSQL goes through
psycopg 3, and instances starting together migrate exactly once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from ccapi.storage.migrate import alembic_config, sync_url, upgrade
from ccapi.storage.tables import metadata
from tests.infra import PostgresServer


def head(url: str) -> str:
    found = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert found is not None
    return found


def versions(url: str) -> list[str]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite+aiosqlite:///x/ccapi.db", "sqlite:///x/ccapi.db"),
        ("sqlite:///x/ccapi.db", "sqlite:///x/ccapi.db"),
    ],
)
def test_sync_url_names_the_psycopg_driver_for_postgresql(given: str, expected: str) -> None:
    assert sync_url(given) == expected


def test_migrations_create_every_table_and_stop_at_head(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # a restart: nothing to do, nothing fails
    assert versions(database_url) == [head(database_url)]
    engine = create_engine(sync_url(database_url))
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables


def test_instances_starting_together_migrate_an_empty_postgresql_once(pg_server: PostgresServer) -> None:
    url = pg_server.create_database("ccapi_concurrent_migrate")
    # Every process waits for the same instant, so the upgrades really race.
    start_at = time.time() + 2.0
    code = (
        "import logging, sys, time\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s')\n"
        "from ccapi.storage.migrate import upgrade\n"
        f"time.sleep(max(0.0, {start_at!r} - time.time()))\n"
        f"upgrade({url!r})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(3)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        outputs.append(out.decode(errors="replace"))
        assert proc.returncode == 0, outputs[-1]
    assert versions(url) == [head(url)]
    # Alembic logs each migration it applies: exactly one process applied them.
    applied = [out.count("Running upgrade") for out in outputs]
    assert sorted(applied) == [0, 0, len(list(ScriptDirectory.from_config(alembic_config(url)).walk_revisions()))], (
        outputs
    )
