"""The operator CLI, run as a user runs it: `python -m ccapi.cli ...` in a
subprocess, against a temporary SQLite database, asserting what it prints."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ccapi.storage.store import Store
from tests.support import run_ccapi

DAY = 1795773600.0  # 2026-11-27T10:00:00Z


class Operator:
    """Runs `ccapi ...` with the database in `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.database_url = f"sqlite:///{tmp}/ccapi.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCAPI_")}
        self.env["CCAPI_DATABASE_URL"] = self.database_url

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ccapi.cli", *args],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            env=self.env,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def create_account(self, *args: str) -> str:
        out = self.ok("accounts", "create", "--name", "acme", *args)
        match = re.search(r"Created account (acct_\w+)", out)
        assert match, out
        return match.group(1)

    def create_key(self, account: str, *args: str) -> tuple[str, str]:
        out = self.ok("keys", "create", "--account", account, *args)
        key_id = re.search(r"Created key (key_\w+)", out)
        secret = re.search(r"^(sk-ccapi-\S+)$", out, re.MULTILINE)
        assert key_id and secret, out
        return key_id.group(1), secret.group(1)


@pytest.fixture()
def operator(tmp_path: Path) -> Operator:
    return Operator(tmp_path)


def test_accounts_create_list_and_top_up(operator: Operator) -> None:
    assert "(no accounts)" in operator.ok("accounts", "list")
    account = operator.create_account("--credits", "10", "--rpm", "60")

    assert "balance now 10.10 USD" in operator.ok("accounts", "topup", account, "0.1")
    out = operator.ok("accounts", "topup", account, "0.2", "--reason", "promo")
    assert f"Added 0.20 USD to {account}: balance now 10.30 USD" in out
    assert "balance now 10.25 USD" in operator.ok("accounts", "topup", account, "-0.05")

    refused = operator.run("accounts", "topup", account, "-100")
    assert refused.returncode == 2
    assert "below zero" in refused.stderr and refused.stdout == ""

    listing = operator.ok("accounts", "list").splitlines()
    assert listing[0].split() == ["ID", "NAME", "BALANCE", "RESERVED", "RPM", "TPM", "CREATED"]
    assert listing[1].split()[:7] == [account, "acme", "10.25", "USD", "0.00", "USD", "60"]
    assert listing[-1] == "(1-1 of 1 accounts)"
    listed = json.loads(operator.ok("accounts", "list", "--json"))
    assert listed["total"] == 1 and listed["data"][0]["balance"] == 10.25


def test_keys_create_list_and_revoke(operator: Operator) -> None:
    account = operator.create_account()
    key_id, secret = operator.create_key(
        account,
        "--name", "ci", "--spend-limit", "5", "--period", "day", "--rpm", "30",
        "--allow", "openai/*", "anthropic/claude-*", "--expires", "2030-01-01T00:00:00Z",
    )  # fmt: skip
    assert secret.startswith("sk-ccapi-") and len(secret) > 40

    listing = operator.ok("keys", "list", "--account", account)
    assert secret not in listing
    row = next(line for line in listing.splitlines() if line.startswith(key_id))
    for shown in (account, "ci", secret[:16] + "…", "5.00 USD/day", "openai/*,anthropic/claude-*",
                  "2030-01-01T00:00:00Z", "active"):  # fmt: skip
        assert shown in row

    out = operator.ok("keys", "revoke", key_id)
    assert f"Revoked key {key_id}" in out
    assert "revoked" in next(line for line in operator.ok("keys", "list").splitlines() if line.startswith(key_id))
    assert "already revoked" in operator.ok("keys", "revoke", key_id)


def test_bad_input_is_refused_naming_the_option(operator: Operator) -> None:
    account = operator.create_account()
    cases = [
        (("accounts", "create", "--name", "x", "--rpm", "0"), 2, "invalid --rpm"),
        (("accounts", "create", "--name", "x", "--credits", "-1"), 2, "invalid --credits"),
        (("accounts", "topup", account, "0.00000000001"), 2, "10 decimal places"),
        (("accounts", "topup", "acct_nope", "1"), 1, "No account 'acct_nope'"),
        (("keys", "create", "--account", "acct_nope"), 1, "No account 'acct_nope'"),
        (("keys", "create", "--account", account, "--allow", "opnai/*"), 2, "--allow"),
        (("keys", "create", "--account", account, "--expires", "2020-01-01"), 2, "invalid --expires"),
        (("keys", "create", "--account", account, "--period", "day"), 2, "--period"),
        (("keys", "revoke", "key_nope"), 1, "No API key 'key_nope'"),
        (("usage", "--since", "last week"), 2, "invalid --since"),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: operator.run(*case[0]), cases))
    for (args, code, message), done in zip(cases, results, strict=True):
        assert (done.returncode, done.stdout) == (code, ""), args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert operator.run("keys", "create").returncode == 2  # argparse: --account is required


def ledger_rows() -> list[dict[str, object]]:
    rows = []
    for i, (model, cost) in enumerate([("openai/gpt-4o-mini", "0.0000135"), ("anthropic/claude-sonnet-4-5", "0.3")]):
        provider = model.split("/")[0]
        rows.append(
            {
                "request_id": f"req_{i + 1}",
                "created": DAY + i * 60,
                "account_id": "acct_a" if i == 0 else "acct_b",
                "key_id": "key_a",
                "route": "/chat/completions",
                "requested_models": [model],
                "model": model,
                "provider": provider,
                "attempts": [{"provider": provider, "model": model, "status": 200, "error": None, "latency_ms": 80.0}],
                "status": 200,
                "error_type": None,
                "prompt_tokens": 10 + i,
                "completion_tokens": 20 + i,
                "input_cost": Decimal(0),
                "output_cost": Decimal(cost),
                "cost": Decimal(cost),
                "latency_ms": 95.0,
                "ttft_ms": None,
                "stream": False,
            }
        )
    return rows


def write_ledger(operator: Operator) -> None:
    """Rows as the gateway's ledger writer records them (the database is migrated by the CLI)."""
    operator.ok("accounts", "list")

    async def write() -> None:
        store = Store(operator.database_url)
        try:
            await store.record([], ledger_rows())
        finally:
            await store.close()

    asyncio.run(write())


def test_usage_as_a_table_and_as_csv(operator: Operator) -> None:
    assert "(no requests)" in operator.ok("usage")
    write_ledger(operator)

    lines = operator.ok("usage").splitlines()
    assert lines[0].split()[:4] == ["TIME", "(UTC)", "REQUEST", "ID"]
    assert [line.split()[1] for line in lines[1:3]] == ["req_2", "req_1"]  # newest first
    assert lines[1].split()[:8] == [
        "2026-11-27T10:01:00Z", "req_2", "anthropic/claude-sonnet-4-5", "200", "11", "21", "0.30", "USD"
    ]  # fmt: skip
    assert "0.0000135 USD" in lines[2]
    assert lines[-1] == "(1-2 of 2 requests)"
    only_b = operator.ok("usage", "--account", "acct_b").splitlines()
    assert [line.split()[1] for line in only_b[1:-1]] == ["req_2"]
    assert "(1-1 of 2 requests; --offset 1 for more)" in operator.ok("usage", "--limit", "1")

    rows = list(csv.DictReader(io.StringIO(operator.ok("usage", "--csv"))))
    assert [r["request_id"] for r in rows] == ["req_2", "req_1"]
    assert list(rows[0])[:3] == ["request_id", "created", "account_id"]
    assert (rows[1]["created"], rows[1]["cost"], rows[1]["stream"]) == (str(int(DAY)), "0.0000135", "false")
    assert json.loads(rows[0]["attempts"])[0]["provider"] == "anthropic"
    assert json.loads(rows[0]["requested_models"]) == ["anthropic/claude-sonnet-4-5"]
    since = list(csv.DictReader(io.StringIO(operator.ok("usage", "--csv", "--since", "2026-11-27T10:00:30Z"))))
    assert [r["request_id"] for r in since] == ["req_2"]


def test_serve_on_a_fresh_database_says_how_to_begin_and_cli_keys_work_at_once(operator: Operator) -> None:
    env = {"CCAPI_DATABASE_URL": operator.database_url, "CCAPI_MASTER_KEY": "sk-test-master"}
    with run_ccapi(["serve"], env=env, tmp_path=operator.tmp, name="gateway") as gateway:
        assert "No accounts yet" in gateway.output()
        assert "ccapi accounts create --name NAME" in gateway.output()

        account = operator.create_account("--credits", "1")
        key_id, secret = operator.create_key(account)
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{gateway.url}/v1/models", headers=auth).status_code == 200

        operator.ok("keys", "revoke", key_id)
        deadline = time.monotonic() + 2.5
        while httpx.get(f"{gateway.url}/v1/models", headers=auth).status_code == 200:
            assert time.monotonic() < deadline, "the revocation did not reach the gateway within 2 seconds"
            time.sleep(0.1)
        refused = httpx.get(f"{gateway.url}/v1/models", headers=auth)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"
