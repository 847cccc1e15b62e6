"""Accounts' keys through the real gateway: 402 before any upstream call, 429
with headers, 403 outside the key's models, and one exact ledger row per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ccapi.storage.store import Store
from tests.support import ServerProcess, run_ccapi

from .conftest import gateway_env, sim_calls

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


class Accounts:
    """Test-side access to the gateway's database (as an operator's CLI would)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, coro_fn: Any) -> Any:
        async def go() -> Any:
            store = Store(self.url)
            try:
                return await coro_fn(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def account(self, credits: str, rpm: int | None = None, tpm: int | None = None) -> str:
        return str(self.run(lambda s: s.create_account("t", Decimal(credits), rpm, tpm)).id)

    def key(self, account_id: str, **fields: Any) -> tuple[str, str]:
        key, secret = self.run(lambda s: s.create_key(account_id, fields))
        return key.id, secret

    def balance(self, account_id: str) -> tuple[Decimal, Decimal]:
        """(balance, reserved) once the account's leased credit is back (or 5 s)."""
        deadline = time.monotonic() + 5
        while True:
            account = self.run(lambda s: s.get_account(account_id))
            if account.reserved == 0 or time.monotonic() > deadline:
                return account.balance, account.reserved
            time.sleep(0.1)

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.run(lambda s: s.query_usage(filters, 1000, 0))[0])

    def revoke(self, key_id: str) -> None:
        self.run(lambda s: s.update_key(key_id, {"revoked_at": time.time()}))


@pytest.fixture(scope="module")
def billed(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("billed")
    url = f"sqlite:///{tmp}/ccapi.db"
    with run_ccapi(["serve"], env=gateway_env(sim.url, CCAPI_DATABASE_URL=url), tmp_path=tmp) as gw:
        yield gw, Accounts(url)


def wait_for_rows(accounts: Accounts, count: int, **filters: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = accounts.rows(**filters)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def post(gw: ServerProcess, secret: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", **(headers or {})}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_balance_equals_credits_minus_the_ledger_exactly(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("5")
    _, secret = accounts.key(account)
    costs = []
    for i in range(6):
        r = post(
            gw, secret, {**CHAT, "stream": i % 2 == 1, **({"stream_options": {"include_usage": True}} if i % 2 else {})}
        )
        assert r.status_code == 200, r.text
    rows = wait_for_rows(accounts, 6, account_id=account)
    assert len(rows) == 6 and all(r["status"] == 200 for r in rows)
    costs = [r["cost"] for r in rows]
    assert all(c > 0 for c in costs)
    assert {r["stream"] for r in rows} == {True, False}
    time.sleep(0.2)
    balance, reserved = accounts.balance(account)
    assert balance == Decimal("5") - sum(costs) and reserved == 0


def test_insufficient_credits_is_402_and_nothing_is_called(
    billed: tuple[ServerProcess, Accounts], sim: ServerProcess
) -> None:
    gw, accounts = billed
    account = accounts.account("0.000001")
    key_id, secret = accounts.key(account)
    before = sim_calls(sim)
    r = post(gw, secret, CHAT, headers={"x-request-id": f"poor-{time.time_ns()}"})
    assert r.status_code == 402
    error = r.json()["error"]
    assert error["type"] == "billing_error" and error["code"] == "insufficient_credits"
    assert error["details"]["available"] == pytest.approx(0.000001)
    assert error["details"]["needed"] > error["details"]["available"]
    assert sim_calls(sim) == before
    rows = wait_for_rows(accounts, 1, key_id=key_id)
    assert [(r["status"], r["error_type"], r["cost"]) for r in rows] == [(402, "billing_error", Decimal(0))]


def test_key_spend_limit_is_402_with_its_code(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("10")
    _, secret = accounts.key(account, spend_limit=Decimal("0.00001"))
    r = post(gw, secret, CHAT)
    assert r.status_code == 402 and r.json()["error"]["code"] == "key_spend_limit"


def test_rate_limit_is_429_with_retry_after_and_headers(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("10", rpm=100)
    key_id, secret = accounts.key(account, rpm=2)
    first = post(gw, secret, CHAT)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert post(gw, secret, CHAT).status_code == 200
    third = post(gw, secret, CHAT)
    assert third.status_code == 429
    assert 1 <= int(third.headers["retry-after"]) <= 60
    details = third.json()["error"]["details"]
    assert details["scope"] == "key" and details["limit_type"] == "requests" and details["limit"] == 2
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    catalog = httpx.get(f"{gw.url}/models?limit=1", headers={"Authorization": f"Bearer {secret}"})
    assert catalog.status_code == 200 and catalog.headers["x-ratelimit-remaining-requests"] == "0"
    rows = wait_for_rows(accounts, 3, key_id=key_id)
    assert sorted(r["status"] for r in rows) == [200, 200, 429]  # the catalog call left no row


def test_account_tokens_per_minute(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("10", tpm=100)
    _, secret = accounts.key(account)
    # The estimate (prompt + max_tokens) is counted at admission, then corrected
    # to the actual tokens once the answer is in.
    assert post(gw, secret, {**CHAT, "max_tokens": 90}).status_code == 200
    r = post(gw, secret, {**CHAT, "max_tokens": 90})
    assert r.status_code == 429
    assert r.json()["error"]["details"]["scope"] == "account"
    assert r.json()["error"]["details"]["limit_type"] == "tokens"


def test_models_outside_the_key_patterns_are_403(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("10")
    _, secret = accounts.key(account, allowed_models=["anthropic/*"])
    r = post(gw, secret, CHAT)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    ok = post(gw, secret, {**CHAT, "model": "anthropic/claude-haiku-4-5"})
    assert ok.status_code == 200
    mixed = post(gw, secret, {**CHAT, "models": ["anthropic/claude-haiku-4-5"]})
    assert mixed.status_code == 200 and mixed.json()["provider"] == "anthropic"


def test_revoked_and_expired_keys_are_401_within_two_seconds(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("10")
    key_id, secret = accounts.key(account)
    assert post(gw, secret, CHAT).status_code == 200
    accounts.revoke(key_id)
    time.sleep(2.0)
    r = post(gw, secret, CHAT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "key_revoked"
    _, expired = accounts.key(account, expires_at=time.time() - 1)
    r = post(gw, expired, CHAT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"


def test_a_stream_cut_by_the_client_pays_for_what_was_delivered(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("5")
    key_id, secret = accounts.key(account)
    body = {**CHAT, "model": "openai/gpt-4o-mini@tokens=400,chunk_delay_ms=10", "stream": True, "max_tokens": 500}
    body["model"] = "openai/gpt-4o-mini"
    with httpx.Client(headers={"Authorization": f"Bearer {secret}"}) as client:
        with client.stream("POST", f"{gw.url}/chat/completions", json={**body}) as r:
            assert r.status_code == 200
            for _ in r.iter_bytes():
                break
    rows = wait_for_rows(accounts, 1, key_id=key_id)
    assert len(rows) == 1 and rows[0]["stream"] is True
    time.sleep(0.2)
    balance, reserved = accounts.balance(account)
    assert reserved == 0 and balance == Decimal("5") - rows[0]["cost"]


def test_failed_requests_cost_nothing(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("1")
    key_id, secret = accounts.key(account)
    r = post(gw, secret, {**CHAT, "model": "mistral/mistral-large-4"})
    assert r.status_code == 502
    rows = wait_for_rows(accounts, 1, key_id=key_id)
    assert [(r["status"], r["cost"]) for r in rows] == [(502, Decimal(0))]
    assert rows[0]["attempts"][0]["provider"] == "mistral"
    time.sleep(0.2)
    assert accounts.balance(account) == (Decimal("1"), Decimal(0))


def test_master_key_calls_are_ledgered_not_charged(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    request_id = f"master-{time.time_ns()}"
    r = httpx.post(
        f"{gw.url}/chat/completions",
        json=CHAT,
        headers={"Authorization": "Bearer sk-test-master", "x-request-id": request_id},
    )
    assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
    deadline = time.monotonic() + 5
    while not [row for row in accounts.rows() if row["request_id"] == request_id]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = next(row for row in accounts.rows() if row["request_id"] == request_id)
    assert row["account_id"] is None and row["cost"] > 0


def test_a_repeated_request_id_still_gets_its_own_row_and_bill(billed: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = billed
    account = accounts.account("1")
    key_id, secret = accounts.key(account)
    for _ in range(2):
        assert post(gw, secret, CHAT, headers={"x-request-id": "same-id"}).status_code == 200
    rows = wait_for_rows(accounts, 2, key_id=key_id)
    assert [r["request_id"] for r in rows] == ["same-id", "same-id"]
    time.sleep(0.2)
    balance, reserved = accounts.balance(account)
    assert reserved == 0 and balance == Decimal("1") - sum(r["cost"] for r in rows)
