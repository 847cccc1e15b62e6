"""`ccapi serve --workers 2` against the simulator: both workers serve, a rate
limit holds across them (the database limiter: no Redis here), the credit
invariant holds, and SIGTERM drains every worker and exits 0."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, drain_on_sigterm, gateway_env
from .test_billing import Accounts

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 12}


def workers_of(parent: int) -> list[int]:
    """The pids of `parent`'s child processes (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fire(url: str, headers: dict[str, str], count: int, body: dict[str, Any] = BODY) -> list[httpx.Response]:
    """`count` concurrent chat calls, each on its own connection (so the kernel spreads them over the workers)."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            calls = [
                client.post("/v1/chat/completions", json=body, headers={**headers, "x-request-id": f"w-{uuid.uuid4()}"})
                for _ in range(count)
            ]
            return list(await asyncio.gather(*calls))

    return asyncio.run(run())


@pytest.fixture(scope="module")
def workers(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("workers")
    db = tmp / "ccapi.db"
    # Leased credit stays with a worker for 2 s after its last use: long enough
    # to see each worker's lease, short enough to see them all given back.
    env = gateway_env(sim.url, CCAPI_DATABASE_URL=f"sqlite:///{db}", CCAPI_CREDIT_IDLE_RELEASE="2")
    with run_ccapi(["serve", "--workers", "2"], env=env, tmp_path=tmp, name="workers") as gw:
        yield gw, db


def test_both_workers_serve(workers: tuple[ServerProcess, Path]) -> None:
    gw, db = workers
    assert len(workers_of(gw.proc.pid)) == 2
    accounts = Accounts(f"sqlite:///{db}")
    account = accounts.account("10")
    _, secret = accounts.key(account)
    responses = fire(gw.url, {"Authorization": f"Bearer {secret}"}, 30)
    assert [r.status_code for r in responses] == [200] * 30
    # Each worker is an instance of its own: each took its own credit lease for the key.
    leases = sqlite3.connect(db).execute("select count(*) from reservations where account_id = ?", (account,))
    assert leases.fetchone()[0] == 2


def test_a_rate_limit_holds_across_workers_and_the_credit_invariant_too(workers: tuple[ServerProcess, Path]) -> None:
    gw, db = workers
    accounts = Accounts(f"sqlite:///{db}")
    credits = Decimal("10")
    account = accounts.account(str(credits))
    _, secret = accounts.key(account, rpm=10)

    responses = fire(gw.url, {"Authorization": f"Bearer {secret}"}, 30)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 20  # not 20 successes: one limit, not one per worker
    for r in responses:
        if r.status_code == 429:
            error = r.json()["error"]
            assert (error["code"], error["details"]["scope"], error["details"]["limit"]) == (
                "requests_per_minute",
                "key",
                10,
            )
            assert int(r.headers["retry-after"]) >= 1
    deadline = time.monotonic() + 10
    while len(rows := accounts.rows(account_id=account)) < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(row["status"] for row in rows) == statuses  # one ledger row per request
    balance, reserved = accounts.balance(account)  # once every worker gave its lease back
    assert reserved == 0
    assert balance == credits - sum((row["cost"] for row in rows), Decimal(0))
    assert sum(1 for row in rows if row["cost"] > 0) == 10
    open_holds = sqlite3.connect(db).execute("select count(*) from reservations where account_id = ?", (account,))
    assert open_holds.fetchone()[0] == 0


def test_sigterm_drains_every_worker_and_exits_0(sim: ServerProcess, tmp_path: Path) -> None:
    db = tmp_path / "ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=f"sqlite:///{db}",
        # Slow upstream: requests are in flight on both workers when the signal comes.
        CCAPI_OPENAI_BASE_URL=f"{sim.url}/_fault/latency_ms=700/v1",
    )
    sent = 40
    with run_ccapi(["serve", "--workers", "2"], env=env, tmp_path=tmp_path) as gw:
        pids = workers_of(gw.proc.pid)
        assert len(pids) == 2

        started = time.monotonic()
        statuses = drain_on_sigterm(gw, sent, BODY)
        assert gw.proc.wait(15) == 0
        assert time.monotonic() - started < 10
    assert statuses == [200] * sent
    assert not any(alive(pid) for pid in pids)
    rows = sqlite3.connect(db).execute("select request_id, status from usage where request_id like 'drain-%'")
    assert sorted(rows.fetchall()) == sorted((f"drain-{i}", 200) for i in range(sent))
    assert "failed" not in gw.output()


def test_metrics_add_up_every_workers_requests(workers: tuple[ServerProcess, Path]) -> None:
    """Each scrape reaches one worker; prometheus-client's multiprocess files
    make it report every worker's counts."""
    gw, _ = workers

    def served() -> float:
        text = httpx.get(f"{gw.url}/metrics", headers=AUTH, timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "ccapi_requests"
            for sample in family.samples
            if sample.name == "ccapi_requests_total" and sample.labels.get("route") == "/chat/completions"
        )

    before = [served() for _ in range(6)]
    assert len(set(before)) == 1, before  # the same total whichever worker answers
    responses = fire(gw.url, AUTH, 24)
    assert all(r.status_code == 200 for r in responses)
    after = [served() for _ in range(6)]
    assert after == [before[0] + 24] * 6
