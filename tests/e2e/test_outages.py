"""PostgreSQL and Redis going down under a running gateway, and coming back.

Each test starts its own servers (tests/infra.py) so that it can stop them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ccapi.storage.store import Store
from tests.infra import postgres_server, redis_server
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def _until(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


async def _store_call(url: str, call: Callable[[Store], Any]) -> Any:
    store = Store(url)
    try:
        return await call(store)
    finally:
        await store.close()


def test_postgres_and_redis_outages_are_reported_refused_cleanly_and_recovered(
    sim: ServerProcess, tmp_path: Path
) -> None:
    with postgres_server() as pg, redis_server() as redis:
        url = pg.create_database("outage")
        env = gateway_env(sim.url, CCAPI_DATABASE_URL=url, CCAPI_REDIS_URL=redis.url, CCAPI_DATABASE_TIMEOUT="2")
        with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as gw, httpx.Client(base_url=gw.url, timeout=30) as http:
            account = asyncio.run(_store_call(url, lambda s: s.create_account("outage", Decimal("10"), None, None)))
            # With a rate limit, so that its requests go through Redis.
            _, secret = asyncio.run(_store_call(url, lambda s: s.create_key(account.id, {"rpm": 1000})))
            as_account = {"Authorization": f"Bearer {secret}"}
            as_master = {"Authorization": f"Bearer {MASTER}"}

            def ready() -> httpx.Response:
                return http.get("/health/ready")

            def chat(headers: dict[str, str], request_id: str, stream: bool = False) -> httpx.Response:
                body = {**CHAT, "stream": stream}
                return http.post("/v1/chat/completions", json=body, headers={**headers, "x-request-id": request_id})

            r = ready()
            assert r.status_code == 200
            assert r.json()["checks"] == {"catalog": "ok", "database": "ok", "redis": "ok", "job_runner": "ok"}
            assert chat(as_account, "before").status_code == 200
            time.sleep(1.5)  # the account's idle credit lease goes back to the database

            # -- PostgreSQL down ---------------------------------------------
            pg.stop()
            r, took = _timed(ready)
            assert r.status_code == 503 and took < 5
            error = r.json()["error"]
            assert error["type"] == "provider_unavailable" and error["code"] == "not_ready"
            assert error["details"]["checks"]["database"] == "down"
            assert error["details"]["checks"]["redis"] == "ok"

            # An account's request needs the database for its credit: a clear 503, quickly.
            r, took = _timed(lambda: chat(as_account, "down-account"))
            assert (r.status_code, r.json()["error"]["code"]) == (503, "database_unavailable") and took < 5
            assert r.headers["x-request-id"] == "down-account"
            # A key the gateway has not seen yet cannot be checked: 503 too, not 401 or 500.
            r, took = _timed(lambda: chat({"Authorization": "Bearer sk-never-seen"}, "down-unknown"))
            assert (r.status_code, r.json()["error"]["code"]) == (503, "database_unavailable") and took < 5
            # So is the admin API.
            r, took = _timed(lambda: http.get("/admin/accounts", headers=as_master))
            assert (r.status_code, r.json()["error"]["code"]) == (503, "database_unavailable") and took < 5
            # The master key is served; its rows wait for the database.
            served = [f"down-master-{i}" for i in range(6)]
            for i, request_id in enumerate(served):
                r, took = _timed(lambda: chat(as_master, request_id, stream=i % 2 == 1))  # noqa: B023
                assert r.status_code == 200 and took < 5
                assert r.text.rstrip().endswith("[DONE]") if i % 2 else r.json()["choices"]

            # -- PostgreSQL back -----------------------------------------------
            time.sleep(1)
            pg.start()
            assert _until(lambda: ready().status_code == 200, 15), ready().text
            assert chat(as_account, "after").status_code == 200

            def ledgered() -> dict[str, int]:
                rows, _ = asyncio.run(_store_call(url, lambda s: s.query_usage({}, 1000, 0)))
                return {row["request_id"]: row["status"] for row in rows}

            expected = {"before": 200, "down-account": 503, **dict.fromkeys(served, 200), "after": 200}
            assert _until(lambda: ledgered() == expected, 10), ledgered()

            def reserved() -> Decimal:
                found = asyncio.run(_store_call(url, lambda s: s.get_account(account.id)))
                return Decimal(found.reserved)

            assert _until(lambda: reserved() == 0, 10)

            # -- Redis down: reported; rate limits fail open, requests served ---
            redis.stop()
            r, took = _timed(ready)
            assert r.status_code == 503 and took < 5
            assert r.json()["error"]["details"]["checks"]["redis"] == "down"
            assert r.json()["error"]["details"]["checks"]["database"] == "ok"
            r = chat(as_account, "redis-down")
            assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
            redis.start()
            assert _until(lambda: ready().status_code == 200, 10), ready().text
