"""A graceful stop drains in-flight requests and flushes the ledger."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx

from ccapi.storage.store import Store
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, drain_on_sigterm, gateway_env, sim_calls


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
        started = time.monotonic()
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        statuses = drain_on_sigterm(gw, sent, body)
        assert gw.proc.wait(15) == 0
        assert time.monotonic() - started < 10
    assert statuses == [200] * sent
    rows = (
        sqlite3.connect(db).execute("select request_id, status from usage where request_id like 'drain-%'").fetchall()
    )
    assert sorted(rows) == sorted((f"drain-{i}", 200) for i in range(sent))


# -- past the grace period, under load --------------------------------------------

SLOW_STREAM = "mistral/mistral-large-4"  # 40 events, 150 ms apart: outlives the grace period
SLOW_ANSWER = "together/moonshotai/Kimi-K3"  # answers after 6 s: outlives it too
SOON_ANSWER = "xai/grok-4.7"  # answers after 0.8 s: within it


@dataclass
class Outcome:
    request_id: str
    stream: bool
    status: int | None = None  # None: no response (refused, or reset before an answer)
    echoed_id: str | None = None
    body: bytes = b""
    transport_error: str | None = None
    cut_after_headers: bool = False


async def _call(client: httpx.AsyncClient, secret: str, model: str, stream: bool, request_id: str) -> Outcome:
    out = Outcome(request_id, stream)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 40}
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": request_id}
    try:
        async with client.stream("POST", "/chat/completions", json=body, headers=headers) as r:
            out.status, out.echoed_id = r.status_code, r.headers.get("x-request-id")
            try:
                out.body = await r.aread()
            except httpx.TransportError as exc:
                out.cut_after_headers, out.transport_error = True, repr(exc)
    except httpx.TransportError as exc:
        out.transport_error = repr(exc)
    return out


def _check_answer(out: Outcome) -> str | None:
    """What is wrong with what the client saw (None: a complete answer or a proper error)."""
    if out.status is None:
        return None  # never answered: must not have reached the gateway's routes (checked on the ledger)
    if out.cut_after_headers:
        return f"truncated without an error: {out.transport_error}"
    if out.echoed_id != out.request_id:
        return f"x-request-id {out.echoed_id!r}"
    if out.status != 200:
        error = json.loads(out.body)["error"]
        return None if out.status == 503 and error["code"] == "shutting_down" else f"{out.status} {error}"
    if not out.stream:
        return None if json.loads(out.body)["choices"][0]["message"]["content"] else "empty completion"
    events = [line.removeprefix("data: ") for line in out.body.decode().split("\n\n") if line]
    if events[-1] != "[DONE]":
        return f"stream does not end with [DONE]: {events[-1:]}"
    for event in events[:-2]:
        if "error" in json.loads(event):
            return "an error event before the last one"
    last = json.loads(events[-2])
    if "error" in last:
        return None if last["error"]["code"] == "shutting_down" else f"stream error {last}"
    return None if last["choices"][0].get("finish_reason") else "stream ended without a finish_reason"


def test_sigterm_under_load_ends_every_request_properly_and_bills_it_once(sim: ServerProcess, tmp_path: Path) -> None:
    """300 requests in flight (fast, slow-but-within-grace, and longer than the
    grace period; streams and not; master and account keys), SIGTERM, a 2 s
    grace period: every answer is complete or a proper error, every request
    that reached the gateway has exactly one ledger row, no credit stays
    reserved, and the process exits 0 in bounded time."""
    db = tmp_path / "ccapi.db"
    url = f"sqlite:///{db}"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        CCAPI_SHUTDOWN_GRACE="2",
        CCAPI_ATTEMPT_TIMEOUT="30",
        CCAPI_MISTRAL_BASE_URL=f"{sim.url}/_fault/chunk_delay_ms=150,tokens=40/v1",
        CCAPI_TOGETHER_BASE_URL=f"{sim.url}/_fault/latency_ms=6000/v1",
        CCAPI_XAI_BASE_URL=f"{sim.url}/_fault/latency_ms=800/v1",
    )
    models = ["openai/gpt-4o-mini", SOON_ANSWER, SLOW_STREAM, SLOW_ANSWER]
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as gw:
        account_id, secret = asyncio.run(_account_and_key(url))
        calls_before = sim_calls(sim)

        async def fire() -> tuple[list[Outcome], list[Outcome]]:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            async with httpx.AsyncClient(base_url=gw.url, timeout=30, limits=limits) as client:
                tasks = [
                    asyncio.create_task(
                        _call(client, secret if i % 2 else MASTER, models[i % 4], i % 3 != 0, f"load-{i}")
                    )
                    for i in range(300)
                ]
                # The signal once every request has reached the simulator (so the gateway).
                for _ in range(400):  # 20 s at most
                    stats = await client.get(f"{sim.url}/_sim/stats")
                    if stats.json()["requests"] - calls_before >= len(tasks):
                        break
                    await asyncio.sleep(0.05)
                gw.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                # After the signal: new connections are refused.
                async with httpx.AsyncClient(base_url=gw.url, timeout=5) as late_client:
                    late = await asyncio.gather(
                        *(_call(late_client, MASTER, models[0], False, f"late-{i}") for i in range(10))
                    )
                return list(await asyncio.gather(*tasks)), list(late)

        started = time.monotonic()
        outcomes, late = asyncio.run(fire())
        assert gw.proc.wait(30) == 0
        assert time.monotonic() - started < 60

    problems = {o.request_id: p for o in outcomes + late if (p := _check_answer(o))}
    assert not problems, problems
    assert all(o.status is None and "ConnectError" in (o.transport_error or "") for o in late)
    # Every kind of ending happened: complete answers, cut streams, 503s.
    answered = [o for o in outcomes if o.status is not None]
    assert len(answered) == 300, [o.transport_error for o in outcomes if o.status is None][:5]
    assert any(o.stream and b"shutting_down" in o.body for o in answered)
    assert any(o.status == 503 for o in answered)
    assert sum(o.status == 200 and b"shutting_down" not in o.body for o in answered) >= 150

    conn = sqlite3.connect(db)
    rows = dict(
        conn.execute("select request_id, count(*) from usage where request_id like 'load-%' group by 1").fetchall()
    )
    assert rows == {o.request_id: 1 for o in answered}
    statuses = dict(conn.execute("select request_id, status from usage where request_id like 'load-%'").fetchall())
    for o in answered:
        cut = b"shutting_down" in o.body
        assert statuses[o.request_id] == (503 if cut else 200), o.request_id
    assert conn.execute("select count(*) from reservations").fetchone() == (0,)
    assert conn.execute("select reserved from accounts where id = ?", (account_id,)).fetchone() == (0,)


async def _account_and_key(url: str) -> tuple[str, str]:
    store = Store(url)
    try:
        account = await store.create_account("load", Decimal("100"), None, None)
        created = await store.create_key(account.id, {})
        assert created is not None
        return account.id, created[1]
    finally:
        await store.close()
