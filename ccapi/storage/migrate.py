"""Schema migrations (Alembic), applied at start; numbered files with names
that say what changes live in migrations/versions/."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_HERE = Path(__file__).resolve().parent


def sync_url(database_url: str) -> str:
    """The synchronous driver URL Alembic runs on."""
    if database_url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + database_url.removeprefix("sqlite+aiosqlite://")
    if database_url.startswith(("postgresql+asyncpg://", "postgres://")):
        return "postgresql://" + database_url.split("://", 1)[1]
    return database_url


def alembic_config(database_url: str) -> Config:
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
    command.upgrade(alembic_config(database_url), "head")
