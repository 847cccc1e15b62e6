"""The real app, in process (no upstream calls): for input handling and the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ccapi.app import create_app
from ccapi.config import load_settings

MASTER = "sk-test-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def make_client(tmp_path: Path, **overrides: object) -> TestClient:
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/ccapi.db", master_key=MASTER, **overrides)
    return TestClient(create_app(settings), headers=AUTH)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("api"), max_body_bytes=4096) as c:
        yield c
