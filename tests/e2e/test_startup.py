"""`ccapi serve`: config file, environment, migrations and start-up refusals."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, gateway_env

BAD_ENTRY = """
provider: {name: acme, display_name: Acme, is_fundamental: true, website: https://a.test, api: openai,
           base_url: http://127.0.0.1:1/v1, key_env: ACME_API_KEY}
models:
  - id: acme-1
    display_name: Acme 1
    type: chat
    input_modalities: [text]
    output_modalities: [text]
    pricing: {input_cost_per_million: lots, source: https://a.test, checked: 2026-11-01}
"""


def serve_once(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccapi.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=30,
    )


def test_a_bad_catalog_entry_stops_the_start_naming_entry_and_field(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(BAD_ENTRY)
    (tmp_path / "ccapi.yaml").write_text("catalog_files: [acme.yaml]\n")
    result = serve_once(tmp_path, "--config", "ccapi.yaml")
    assert result.returncode == 2
    assert "acme.yaml" in result.stderr and "models[acme-1].pricing.input_cost_per_million" in result.stderr


def test_a_typo_in_the_config_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "ccapi.yaml").write_text("atempt_timeout: 5\n")
    result = serve_once(tmp_path, "--config", "ccapi.yaml")
    assert result.returncode == 2 and "atempt_timeout" in result.stderr


def test_a_missing_config_file_stops_the_start(tmp_path: Path) -> None:
    result = serve_once(tmp_path, "--config", "nope.yaml")
    assert result.returncode == 2 and "nope.yaml" in result.stderr


def test_config_file_and_environment_are_both_read(sim: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "ccapi.yaml").write_text(
        "aliases:\n  house-model: google/gemini-2.5-flash\n"
        "providers:\n  google:\n    api_key: from-config\n"
        f"database_url: sqlite:///{tmp_path}/data/gw.db\n"
    )
    env = gateway_env(sim.url)
    del env["GEMINI_API_KEY"]
    started = time.monotonic()
    with run_ccapi(["serve", "--config", "ccapi.yaml"], env=env, tmp_path=tmp_path) as gw:
        r = httpx.post(
            f"{gw.url}/chat/completions",
            headers=AUTH,
            json={"model": "house-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        elapsed = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "google/gemini-2.5-flash"
    assert elapsed < 10
    tables = {row[0] for row in sqlite3.connect(tmp_path / "data" / "gw.db").execute("select name from sqlite_master")}
    assert {"alembic_version", "instance_meta"} <= tables
