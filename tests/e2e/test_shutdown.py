"""A graceful stop drains in-flight requests and flushes the ledger."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, gateway_env


def test_sigterm_drains_requests_and_writes_every_ledger_row(sim: ServerProcess, tmp_path: Path) -> None:
    db = tmp_path / "ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=f"sqlite:///{db}",
        # Slow upstream: requests are still in flight when the signal comes.
        CCAPI_OPENAI_BASE_URL=f"{sim.url}/_fault/latency_ms=700/v1",
    )
    sent = 40
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as gw:

        async def fire() -> list[int]:
            async with httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
                body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                tasks = [
                    asyncio.create_task(
                        client.post(
                            "/chat/completions",
                            json={**body, "stream": i % 2 == 0},
                            headers={"x-request-id": f"drain-{i}"},
                        )
                    )
                    for i in range(sent)
                ]
                await asyncio.sleep(0.3)
                gw.proc.send_signal(signal.SIGTERM)
                responses = await asyncio.gather(*tasks)
                return [r.status_code for r in responses]

        started = time.monotonic()
        statuses = asyncio.run(fire())
        assert gw.proc.wait(15) == 0
        assert time.monotonic() - started < 10
    assert statuses == [200] * sent
    rows = (
        sqlite3.connect(db).execute("select request_id, status from usage where request_id like 'drain-%'").fetchall()
    )
    assert sorted(rows) == sorted((f"drain-{i}", 200) for i in range(sent))
