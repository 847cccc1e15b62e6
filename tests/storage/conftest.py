"""Storage tests run against every database the gateway supports."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ccapi.db"
