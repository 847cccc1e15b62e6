"""The real gateway process in front of the real simulator process, on free ports.

Each provider's base URL points at the simulator, some through a fault
prefix, so that one simulator gives every failure the contract names.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ServerProcess, run_ccapi

MASTER = "sk-test-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with run_ccapi(["sim"], tmp_path=tmp_path_factory.mktemp("sim"), name="sim") as server:
        yield server


def gateway_env(sim_url: str, **extra: str) -> dict[str, str]:
    env = {
        "CCAPI_MASTER_KEY": MASTER,
        "CCAPI_BREAKER__FAILURE_THRESHOLD": "1000",
        "CCAPI_ATTEMPT_TIMEOUT": "2",
        # Leased credit goes back quickly, so tests can see `reserved` return to 0.
        "CCAPI_CREDIT_IDLE_RELEASE": "0.3",
        # Healthy providers, one per wire format.
        "OPENAI_API_KEY": "sk-sim-openai",
        "CCAPI_OPENAI_BASE_URL": f"{sim_url}/v1",
        "ANTHROPIC_API_KEY": "sk-sim-anthropic",
        "CCAPI_ANTHROPIC_BASE_URL": sim_url,
        "GEMINI_API_KEY": "sim-gemini",
        "CCAPI_GOOGLE_BASE_URL": sim_url,
        # Faulty providers: each stands for one way an upstream fails.
        "MISTRAL_API_KEY": "k",
        "CCAPI_MISTRAL_BASE_URL": f"{sim_url}/_fault/status=503/v1",
        "GROQ_API_KEY": "k",
        "CCAPI_GROQ_BASE_URL": f"{sim_url}/_fault/status=400/v1",
        "DEEPSEEK_API_KEY": "k",
        "CCAPI_DEEPSEEK_BASE_URL": f"{sim_url}/_fault/cut_after=3/v1",
        "XAI_API_KEY": "k",
        "CCAPI_XAI_BASE_URL": f"{sim_url}/_fault/malformed=1/v1",
        "TOGETHER_API_KEY": "k",
        "CCAPI_TOGETHER_BASE_URL": f"{sim_url}/_fault/latency_ms=5000/v1",
        "CEREBRAS_API_KEY": "k",
        "CCAPI_CEREBRAS_BASE_URL": f"{sim_url}/_fault/reset=1/v1",
        "FIREWORKS_API_KEY": "k",
        "CCAPI_FIREWORKS_BASE_URL": f"{sim_url}/_fault/status=429,retry_after=1/v1",
        "OPENROUTER_API_KEY": "k",
        "CCAPI_OPENROUTER_BASE_URL": f"{sim_url}/_fault/content_type=text%2Fhtml/v1",
        "PERPLEXITY_API_KEY": "k",
        "CCAPI_PERPLEXITY_BASE_URL": f"{sim_url}/_fault/stream_error_after=2/v1",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def gateway(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    with run_ccapi(["serve"], env=gateway_env(sim.url), tmp_path=tmp, name="gateway") as server:
        yield server


@pytest.fixture()
def client(gateway: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=30) as c:
        yield c


def sim_calls(sim: ServerProcess) -> int:
    return int(httpx.get(f"{sim.url}/_sim/stats").json()["requests"])


def tmp_config(tmp: Path, text: str) -> Path:
    path = tmp / "ccapi.yaml"
    path.write_text(text)
    return path


def drain_on_sigterm(gw: ServerProcess, sent: int, body: dict[str, Any], after: float = 0.3) -> list[int]:
    """Send `sent` chat requests at once (every other one streamed; request ids
    `drain-<i>`), SIGTERM the gateway `after` seconds later; their statuses."""

    async def fire() -> list[int]:
        limits = httpx.Limits(max_connections=sent, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30, limits=limits) as client:
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
            await asyncio.sleep(after)
            gw.proc.send_signal(signal.SIGTERM)
            return [r.status_code for r in await asyncio.gather(*tasks)]

    return asyncio.run(fire())
