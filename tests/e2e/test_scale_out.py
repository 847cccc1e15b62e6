"""Two gateway processes on one PostgreSQL database and one Redis: the money,
rate-limit, revocation and ledger guarantees hold across instances, shown with
real servers (tests/infra.py) and concurrent clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccapi.billing.service import output_bound
from ccapi.catalog.catalog import Catalog
from ccapi.core.tokens import estimate_prompt_tokens
from tests.infra import PostgresServer, pg_server, redis_url
from tests.support import ServerProcess, run_ccapi

from .conftest import gateway_env
from .test_billing import Accounts

__all__ = ["pg_server", "redis_url"]

MODEL = "openai/gpt-4o-mini"
# The simulator counts "hi" as 1 word + 4 per message and answers 12 words
# (max_tokens caps it): exactly the gateway's estimate, so each call costs
# exactly its reservation and the credit covers a known number of calls.
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 12}
AFFORDABLE = 20


@dataclass
class Cluster:
    gateways: list[ServerProcess]
    accounts: Accounts
    sent: dict[str, tuple[str, int]]  # x-request-id -> (account id, HTTP status)


@pytest.fixture(scope="module")
def cluster(
    sim: ServerProcess, pg_server: PostgresServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp: Path = tmp_path_factory.mktemp("scale-out")
    database = pg_server.create_database("ccapi_scale_out")
    env = gateway_env(sim.url, CCAPI_DATABASE_URL=database, CCAPI_REDIS_URL=redis_url)
    with (
        run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-a") as first,
        run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-b") as second,
    ):
        yield Cluster([first, second], Accounts(database), {})


def reservation() -> Decimal:
    """What the gateway reserves for BODY: prompt estimate + max_tokens at catalog prices."""
    info = Catalog.load().models[MODEL]
    return info.prices.max_cost(estimate_prompt_tokens(BODY), output_bound(BODY, info))


def fire(cluster: Cluster, account_id: str, secret: str, count: int) -> list[httpx.Response]:
    """`count` concurrent chat calls, alternating between the two gateways."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            calls = []
            for i in range(count):
                request_id = f"scale-{uuid.uuid4().hex}"
                gateway = cluster.gateways[i % 2]
                headers = {"Authorization": f"Bearer {secret}", "x-request-id": request_id}
                calls.append(client.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=headers))
            return list(await asyncio.gather(*calls))

    responses = asyncio.run(run())
    for r in responses:
        cluster.sent[r.headers["x-request-id"]] = (account_id, r.status_code)
    return responses


def wait_for_ledger(cluster: Cluster, account_id: str, timeout: float = 10) -> list[dict[str, Any]]:
    """The account's ledger rows, once every request sent for it has one (or the timeout)."""
    expected = sum(1 for acct, status in cluster.sent.values() if acct == account_id and status != 401)
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.accounts.rows(account_id=account_id)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def assert_one_row_per_request(cluster: Cluster, account_id: str) -> list[dict[str, Any]]:
    """Every request sent for the account, on either instance, has exactly one
    ledger row with the status its client saw (401s excepted: refused before
    the key is known, they belong to no account)."""
    rows = wait_for_ledger(cluster, account_id)
    by_id: dict[str, list[int]] = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append(row["status"])
    sent = {rid: status for rid, (acct, status) in cluster.sent.items() if acct == account_id}
    assert by_id == {rid: [status] for rid, status in sent.items() if status != 401}
    return rows


def test_both_instances_report_redis_ready(cluster: Cluster) -> None:
    for gateway in cluster.gateways:
        ready = httpx.get(f"{gateway.url}/health/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"] == "ok"
        assert ready.json()["checks"]["database"] == "ok"


def test_no_call_is_served_without_a_covered_reservation(cluster: Cluster) -> None:
    each = reservation()
    credits = each * AFFORDABLE
    accounts = cluster.accounts
    account = accounts.account(str(credits))
    _, secret = accounts.key(account, rpm=10_000, spend_limit=Decimal(1))  # limits that never bind here

    responses = fire(cluster, account, secret, 80)

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 402}, [r.text for r in responses if r.status_code not in (200, 402)][:3]
    served = statuses.count(200)
    assert 1 <= served <= AFFORDABLE
    for r in responses:
        if r.status_code == 402:
            error = r.json()["error"]
            assert (error["type"], error["code"]) == ("billing_error", "insufficient_credits")
            assert Decimal(str(error["details"]["needed"])) == each
    rows = assert_one_row_per_request(cluster, account)
    assert len(rows) == 80
    costs = [r["cost"] for r in rows]
    assert all(r["cost"] == each for r in rows if r["status"] == 200)
    assert all(r["cost"] == 0 for r in rows if r["status"] == 402)
    balance, reserved = accounts.balance(account)
    assert balance == credits - sum(costs, Decimal(0))
    assert balance >= 0 and reserved == 0
    assert served * each <= credits
    # Each instance gives its leased credit back once idle.
    deadline = time.monotonic() + 5
    while accounts.run(lambda s: s.open_reservations()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert accounts.run(lambda s: s.open_reservations()) == 0


def test_a_key_rpm_holds_across_both_instances(cluster: Cluster) -> None:
    rpm = 15
    accounts = cluster.accounts
    account = accounts.account("100")
    _, secret = accounts.key(account, rpm=rpm)

    responses = fire(cluster, account, secret, 2 * rpm)

    statuses = [r.status_code for r in responses]
    # Each instance received `rpm` requests: instances counting on their own
    # would have served all 2 * rpm.
    assert statuses.count(200) == rpm and statuses.count(429) == rpm, statuses
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == str(rpm)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            error = r.json()["error"]
            assert error["type"] == "rate_limit_error"
            assert (error["details"]["scope"], error["details"]["limit_type"]) == ("key", "requests")
            assert error["details"]["limit"] == rpm
    assert len(assert_one_row_per_request(cluster, account)) == 2 * rpm


def test_a_revoked_key_is_refused_by_both_instances_within_two_seconds(cluster: Cluster) -> None:
    accounts = cluster.accounts
    account = accounts.account("100")
    key_id, secret = accounts.key(account)
    assert [r.status_code for r in fire(cluster, account, secret, 2)] == [200, 200]

    accounts.revoke(key_id)
    revoked_at = time.monotonic()
    refused: dict[int, float] = {}
    while len(refused) < 2 and time.monotonic() - revoked_at < 5:
        for i, gateway in enumerate(cluster.gateways):
            if i in refused:
                continue
            r = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {secret}", "x-request-id": f"revoked-{uuid.uuid4().hex}"},
                timeout=10,
            )
            cluster.sent[r.headers["x-request-id"]] = (account, r.status_code)
            if r.status_code == 401:
                assert r.json()["error"]["code"] == "key_revoked"
                refused[i] = time.monotonic() - revoked_at
        time.sleep(0.05)
    assert sorted(refused) == [0, 1], "an instance still serves a revoked key after 5 s"
    assert max(refused.values()) <= 2.0, refused
    assert_one_row_per_request(cluster, account)  # the two 200s; no row for a 401
