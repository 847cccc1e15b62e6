"""Schema migrations (Alembic), applied at start; numbered files with names
that say what changes live in migrations/versions/."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).resolve().parent


def sync_url(database_url: str) -> str:
    """The synchronous driver URL Alembic runs on. PostgreSQL always goes
    through psycopg 3 (the one PostgreSQL driver we ship), named explicitly:
    a bare `postgresql://` would pick whatever SQLAlchemy's default is."""
    if database_url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + database_url.removeprefix("sqlite+aiosqlite://")
    if database_url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema."""
    if database_url.startswith("sqlite"):
        path = sync_url(database_url).removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


def upgrade_isolated(database_url: str) -> None:
    """`upgrade`, run in a forked child so that the serving process never loads
    Alembic (about 10 MB of resident memory it would keep for nothing)."""
    if sys.platform != "linux":
        upgrade(database_url)
        return
    child = multiprocessing.get_context("fork").Process(target=upgrade, args=(database_url,), name="ccapi-migrate")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"database migrations failed (exit code {child.exitcode}); see the error above")
