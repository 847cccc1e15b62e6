"""Storage tests run against every database the gateway supports: SQLite (a
file in tmp_path) and PostgreSQL (a throwaway cluster, tests/infra.py).

Each test gets a new, empty database on both: creating one on the throwaway
cluster takes ~50 ms, so tests need not share state (request ids, totals).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.infra import PostgresServer, pg_server, redis_url

__all__ = ["database_url", "pg_server", "redis_url"]

_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ccapi.db"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"ccapi_test_{next(_databases)}")
