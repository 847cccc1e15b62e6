"""TTFT deadline and hedging through the real gateway and simulator: one
provider (mistral) answers after 2 s, another (openai) at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, gateway_env
from .test_billing import Accounts, wait_for_rows

SLOW_S = 2.0
SLOW, FAST = "mistral/mistral-small-2506", "openai/gpt-4o-mini"
CHAT: dict[str, Any] = {
    "model": SLOW,
    "models": [FAST],
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 20,
}
Gateway = tuple[ServerProcess, Accounts]


@pytest.fixture(scope="module")
def slow_gateway(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("latency")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        CCAPI_ATTEMPT_TIMEOUT="10",
        CCAPI_MISTRAL_BASE_URL=f"{sim.url}/_fault/latency_ms={int(SLOW_S * 1000)}/v1",
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp) as gw:
        yield gw, Accounts(url)


def row_of(accounts: Accounts, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = [r for r in accounts.rows() if r["request_id"] == request_id]
        if rows or time.monotonic() > deadline:
            assert rows, request_id
            return rows[0]
        time.sleep(0.05)


def events(text: str) -> list[Any]:
    lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    return [orjson.loads(line) for line in lines if line != "[DONE]"]


def test_a_stream_whose_first_token_is_late_fails_over(slow_gateway: Gateway) -> None:
    gw, accounts = slow_gateway
    request_id = f"ttft-{time.time_ns()}"
    headers = {**AUTH, "x-ccapi-ttft-timeout-ms": "400", "x-request-id": request_id}
    began = time.monotonic()
    r = httpx.post(f"{gw.url}/chat/completions", json={**CHAT, "stream": True}, headers=headers, timeout=30)
    assert r.status_code == 200 and time.monotonic() - began < SLOW_S
    assert r.headers["x-ccapi-provider"] == "openai" and r.headers["x-ccapi-attempts"] == "2"
    chunks = events(r.text)
    assert chunks and {c["provider"] for c in chunks} == {"openai"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    row = row_of(accounts, request_id)
    assert row["status"] == 200 and row["provider"] == "openai" and row["stream"] is True
    late, served = row["attempts"]
    assert (late["provider"], late["status"], late["cost"]) == ("mistral", None, 0)
    assert "time-to-first-token deadline of 400 ms" in late["error"]
    assert (served["provider"], served["status"]) == ("openai", 200) and served["cost"] == float(row["cost"])


def test_a_whole_answer_whose_first_byte_is_late_fails_over(slow_gateway: Gateway) -> None:
    gw, _ = slow_gateway
    headers = {**AUTH, "x-ccapi-ttft-timeout-ms": "400"}
    r = httpx.post(f"{gw.url}/chat/completions", json=CHAT, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["provider"] == "openai"
    assert r.headers["x-ccapi-attempts"] == "2"


def test_every_candidate_missing_the_ttft_deadline_is_502(slow_gateway: Gateway) -> None:
    gw, _ = slow_gateway
    headers = {**AUTH, "x-ccapi-ttft-timeout-ms": "300"}
    r = httpx.post(f"{gw.url}/chat/completions", json={**CHAT, "models": [SLOW]}, headers=headers, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
    attempts = r.json()["error"]["details"]["attempts"]
    assert [(a["provider"], a["status"]) for a in attempts] == [("mistral", None), ("mistral", None)]
    assert all("time-to-first-token" in a["error"] for a in attempts)


@pytest.mark.parametrize("header", ["x-ccapi-hedge-ms", "x-ccapi-ttft-timeout-ms"])
@pytest.mark.parametrize("value", ["-1", "soon", "99999999999"])
def test_a_bad_latency_header_is_400_naming_it(slow_gateway: Gateway, header: str, value: str) -> None:
    gw, _ = slow_gateway
    r = httpx.post(f"{gw.url}/chat/completions", json=CHAT, headers={**AUTH, header: value}, timeout=30)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == header and header in error["message"]


Timed = list[tuple[httpx.Response, float]]


def timed_batch(gw: ServerProcess, secret: str, count: int, headers: dict[str, str]) -> Timed:
    """`count` requests, ten at a time (a realistic load on a shared 2-core
    machine), each with its latency in seconds."""

    headers = {"Authorization": f"Bearer {secret}", **headers}

    async def run() -> Timed:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:

            async def one() -> tuple[httpx.Response, float]:
                start = time.monotonic()
                r = await client.post("/chat/completions", json=CHAT, headers=headers)
                return r, time.monotonic() - start

            out: Timed = []
            for done in range(0, count, 10):
                out += await asyncio.gather(*(one() for _ in range(min(10, count - done))))
            return out

    return asyncio.run(run())


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_hedging_cuts_the_tail_and_the_caller_pays_only_the_winner(slow_gateway: Gateway) -> None:
    gw, accounts = slow_gateway
    account = accounts.account("5")
    key_id, secret = accounts.key(account)
    # The winner's cost on its own: the same request straight to the fast provider.
    alone = httpx.post(f"{gw.url}/chat/completions", json={**CHAT, "model": FAST, "models": None}, headers=AUTH)
    usage = alone.json()["usage"]
    winner_cost = Decimal(str(usage["input_cost"])) + Decimal(str(usage["output_cost"]))

    plain = timed_batch(gw, secret, 10, {})
    assert all(r.status_code == 200 and r.json()["provider"] == "mistral" for r, _ in plain)
    assert p99([s for _, s in plain]) >= SLOW_S  # without hedging the tail is the slow provider's

    count, hedge_ms = 40, 200
    hedged = timed_batch(gw, secret, count, {"x-ccapi-hedge-ms": str(hedge_ms)})
    assert all(r.status_code == 200 for r, _ in hedged), [r.text for r, _ in hedged if r.status_code != 200]
    assert all(r.json()["provider"] == "openai" and r.headers["x-ccapi-attempts"] == "2" for r, _ in hedged)
    latencies = sorted(s for _, s in hedged)
    assert latencies[0] >= hedge_ms / 1000  # the fast provider only started after the hedge delay
    assert p99(latencies) < hedge_ms / 1000 + 0.8, latencies[-5:]  # hedge delay + fast answer + margin

    rows = wait_for_rows(accounts, 10 + count, key_id=key_id)
    hedged_rows = [r for r in rows if r["provider"] == "openai"]
    assert len(hedged_rows) == count
    for row in hedged_rows:
        served, cancelled = row["attempts"]
        assert (served["provider"], served["status"]) == ("openai", 200)
        assert (cancelled["provider"], cancelled["status"], cancelled["cost"]) == ("mistral", None, 0)
        assert cancelled["error"] == f"cancelled: {FAST} answered first"
        assert row["cost"] == winner_cost and Decimal(str(served["cost"])) == winner_cost
    time.sleep(0.2)
    balance, reserved = accounts.balance(account)
    assert reserved == 0 and balance == Decimal("5") - sum((r["cost"] for r in rows), Decimal(0))


def test_a_hedged_stream_serves_the_fast_provider(slow_gateway: Gateway) -> None:
    gw, _ = slow_gateway
    began = time.monotonic()
    r = httpx.post(
        f"{gw.url}/chat/completions",
        json={**CHAT, "stream": True},
        headers={**AUTH, "x-ccapi-hedge-ms": "100"},
        timeout=30,
    )
    assert r.status_code == 200 and time.monotonic() - began < 1.5
    assert r.headers["x-ccapi-attempts"] == "2" and {c["provider"] for c in events(r.text)} == {"openai"}


def test_hedging_and_ttft_from_the_config_file(sim: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "ccapi.yaml"
    config.write_text("latency:\n  ttft_timeout_ms: 300\n  models:\n    'openai/*': {ttft_timeout_ms: 0}\n")
    env = gateway_env(
        sim.url, CCAPI_CONFIG_FILE=str(config), CCAPI_MISTRAL_BASE_URL=f"{sim.url}/_fault/latency_ms=1500/v1"
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as gw:
        r = httpx.post(f"{gw.url}/chat/completions", json=CHAT, headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["provider"] == "openai" and r.headers["x-ccapi-attempts"] == "2"
        # The request's header turns the configured deadline off.
        r = httpx.post(f"{gw.url}/chat/completions", json=CHAT, headers={**AUTH, "x-ccapi-ttft-timeout-ms": "0"})
        assert r.status_code == 200 and r.json()["provider"] == "mistral"
