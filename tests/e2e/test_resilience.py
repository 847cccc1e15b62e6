"""Circuit breakers, deadlines and one attempt per candidate, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, gateway_env, sim_calls

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture()
def breaker_gateway(sim: ServerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    env = gateway_env(
        sim.url,
        CCAPI_BREAKER__FAILURE_THRESHOLD="2",
        CCAPI_BREAKER__RESET_SECONDS="1",
        # Fails three times, then heals.
        CCAPI_MISTRAL_BASE_URL=f"{sim.url}/_fault/status=503,fail_times=3,id=breaker-{time.time_ns()}/v1",
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as server:
        yield server


def provider_status(gw: ServerProcess, name: str) -> str:
    return str(httpx.get(f"{gw.url}/providers/{name}", headers=AUTH).json()["status"])


def test_breaker_skips_a_failing_provider_and_probes_it_again(
    breaker_gateway: ServerProcess, sim: ServerProcess
) -> None:
    gw = breaker_gateway
    request = {**CHAT, "model": "mistral/mistral-large-4", "models": ["openai/gpt-4o-mini"]}

    def send() -> httpx.Response:
        return httpx.post(f"{gw.url}/chat/completions", headers=AUTH, json=request)

    assert [send().headers["x-ccapi-attempts"] for _ in range(2)] == ["2", "2"]  # mistral fails twice: open
    assert provider_status(gw, "mistral") == "down"
    before = sim_calls(sim)
    r = send()
    assert r.headers["x-ccapi-attempts"] == "1" and r.json()["provider"] == "openai"  # skipped, not called
    assert sim_calls(sim) - before == 1
    time.sleep(1.1)
    r = send()  # the probe: mistral's third failure, open again
    assert r.headers["x-ccapi-attempts"] == "2" and r.json()["provider"] == "openai"
    assert send().headers["x-ccapi-attempts"] == "1"
    time.sleep(1.1)
    r = send()  # the probe succeeds: closed
    assert r.json()["provider"] == "mistral" and r.headers["x-ccapi-attempts"] == "1"
    assert provider_status(gw, "mistral") in ("configured", "degraded")
    detail = httpx.get(f"{gw.url}/providers/mistral", headers=AUTH).json()
    assert 0 < detail["success_rate"] < 1 and detail["p50_latency_ms"] > 0


def test_only_providers_down_is_503(breaker_gateway: ServerProcess) -> None:
    gw = breaker_gateway
    request = {**CHAT, "model": "mistral/mistral-large-4"}
    for _ in range(2):
        assert httpx.post(f"{gw.url}/chat/completions", headers=AUTH, json=request).status_code == 502
    r = httpx.post(f"{gw.url}/chat/completions", headers=AUTH, json=request)
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "provider_unavailable"


def test_one_attempt_per_candidate_and_a_model_listed_twice_is_retried(
    client: httpx.Client, sim: ServerProcess
) -> None:
    before = sim_calls(sim)
    r = client.post("/chat/completions", json={**CHAT, "model": "mistral/mistral-large-4"})
    assert r.status_code == 502 and r.headers["x-ccapi-attempts"] == "1"
    assert len(r.json()["error"]["details"]["attempts"]) == 1
    assert sim_calls(sim) - before == 1
    r = client.post(
        "/chat/completions", json={**CHAT, "model": "mistral/mistral-large-4", "models": ["mistral/mistral-large-4"]}
    )
    assert len(r.json()["error"]["details"]["attempts"]) == 2


def test_overall_deadline_is_504(sim: ServerProcess, tmp_path: Path) -> None:
    env = gateway_env(sim.url, CCAPI_REQUEST_TIMEOUT="1.5", CCAPI_ATTEMPT_TIMEOUT="1")
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path) as gw:
        started = time.monotonic()
        r = httpx.post(
            f"{gw.url}/chat/completions",
            headers=AUTH,
            json={**CHAT, "model": "together/moonshotai/Kimi-K3", "models": ["together/moonshotai/Kimi-K3"] * 3},
            timeout=10,
        )
        elapsed = time.monotonic() - started
    assert r.status_code == 504, r.text
    assert r.json()["error"]["type"] == "timeout_error"
    assert 1.4 < elapsed < 3
    attempts = r.json()["error"]["details"]["attempts"]
    assert len(attempts) >= 2 and all("did not answer within" in a["error"] for a in attempts)


def test_the_client_disconnecting_mid_stream_does_not_hurt_the_gateway(client: httpx.Client) -> None:
    with client.stream("POST", "/chat/completions", json={**CHAT, "model": "openai/gpt-4o-mini", "stream": True}) as r:
        assert r.status_code == 200
        next(r.iter_bytes())
    assert client.post("/chat/completions", json={**CHAT, "model": "openai/gpt-4o-mini"}).status_code == 200
