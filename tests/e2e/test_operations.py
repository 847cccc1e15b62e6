"""Operations through the real gateway and simulator: /metrics moves with the
requests it serves, only admin keys read it, and no secret ever reaches a log
line, an answer or the ledger."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, MASTER, gateway_env

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] = AUTH) -> Samples:
    r = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def served(provider: str, model: str) -> dict[str, str]:
    return {"route": "/chat/completions", "provider": provider, "model": model}


def test_metrics_move_with_plain_streamed_and_failed_over_requests(gateway: ServerProcess) -> None:
    before = scrape(gateway.url)
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=30) as c:
        assert c.post("/chat/completions", json=CHAT).status_code == 200
        stream = {**CHAT, "model": "anthropic/claude-haiku-4-5", "stream": True}
        with c.stream("POST", "/v1/chat/completions", json=stream) as r:
            assert r.status_code == 200
            assert "[DONE]" in r.read().decode()
        broken = {**CHAT, "model": "perplexity/sonar", "stream": True}
        with c.stream("POST", "/chat/completions", json=broken) as r:
            assert r.status_code == 200 and '"error"' in r.read().decode()  # cut after its first events
        failover = {**CHAT, "model": "mistral/mistral-large-4", "models": ["openai/gpt-4o-mini"]}
        r = c.post("/chat/completions", json=failover)
        assert r.status_code == 200 and r.headers["x-ccapi-attempts"] == "2"
    after = scrape(gateway.url)

    openai = served("openai", "openai/gpt-4o-mini")
    anthropic = served("anthropic", "anthropic/claude-haiku-4-5")
    assert delta(before, after, "ccapi_requests_total", status="200", **openai) == 2
    assert delta(before, after, "ccapi_requests_total", status="200", **anthropic) == 1
    for name in ("ccapi_request_duration_seconds", "ccapi_upstream_duration_seconds", "ccapi_gateway_overhead_seconds"):
        assert delta(before, after, f"{name}_count", **openai) == 2
        assert delta(before, after, f"{name}_count", **anthropic) == 1
    assert delta(before, after, "ccapi_time_to_first_token_seconds_count", **anthropic) == 1
    assert delta(before, after, "ccapi_time_to_first_token_seconds_count", **openai) == 0
    assert delta(before, after, "ccapi_tokens_total", direction="input", **openai) > 0
    assert delta(before, after, "ccapi_tokens_total", direction="output", **anthropic) > 0
    assert delta(before, after, "ccapi_cost_usd_total", **openai) > 0
    assert delta(before, after, "ccapi_upstream_errors_total", provider="mistral", kind="5xx") == 1
    assert delta(before, after, "ccapi_upstream_errors_total", provider="perplexity", kind="stream") == 1
    assert delta(before, after, "ccapi_requests_total", status="502", **served("perplexity", "perplexity/sonar")) == 1
    assert delta(before, after, "ccapi_upstream_attempts_total", provider="openai") == 2
    assert delta(before, after, "ccapi_upstream_attempts_total", provider="mistral") == 1
    assert (
        delta(before, after, "ccapi_http_requests_total", route="/chat/completions", method="POST", status="200") == 4
    )
    assert after[("ccapi_circuit_breaker_state", frozenset({("provider", "mistral")}))] == 0
    assert after[("ccapi_http_requests_in_flight", frozenset())] >= 1  # the scrape itself
    assert ("ccapi_ledger_queue_depth", frozenset()) in after
    assert after[("ccapi_job_queue_depth", frozenset())] == 0


def test_metrics_need_an_admin_key(client: httpx.Client, gateway: ServerProcess) -> None:
    r = httpx.get(f"{gateway.url}/metrics", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    account = client.post("/admin/accounts", json={"name": "ops"}).json()["id"]
    user = client.post("/admin/keys", json={"account_id": account}).json()["key"]
    r = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {user}"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"


def secret(kind: str) -> str:
    return f"sk-secret-{kind}-{secrets.token_hex(12)}"


@pytest.fixture()
def secret_gateway(sim: ServerProcess, tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    keys = {
        "master": secret("master"),
        "openai": secret("provider-openai"),
        "anthropic": secret("provider-anthropic"),
        "mistral": secret("provider-mistral"),
        "groq": secret("provider-groq"),
    }
    env = gateway_env(
        sim.url,
        CCAPI_MASTER_KEY=keys["master"],
        CCAPI_LOG_LEVEL="debug",
        CCAPI_DATABASE_URL=f"sqlite:///{tmp_path}/ccapi.db",
        OPENAI_API_KEY=keys["openai"],
        ANTHROPIC_API_KEY=keys["anthropic"],
        MISTRAL_API_KEY=keys["mistral"],
        GROQ_API_KEY=keys["groq"],
        # The upstream refuses our credential.
        CCAPI_GROQ_BASE_URL=f"{sim.url}/_fault/status=401/v1",
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="secret-gateway") as gw:
        yield gw, keys


def test_no_secret_reaches_the_logs_the_answers_or_the_ledger(
    secret_gateway: tuple[ServerProcess, dict[str, str]],
) -> None:
    gw, keys = secret_gateway
    master = {"Authorization": f"Bearer {keys['master']}"}
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        rich = c.post("/admin/accounts", json={"name": "rich", "credits": 10}, headers=master).json()["id"]
        poor = c.post("/admin/accounts", json={"name": "poor"}, headers=master).json()["id"]
        # The one answer meant to show a secret: the key's creation.
        keys["user"] = c.post("/admin/keys", json={"account_id": rich}, headers=master).json()["key"]
        keys["poor"] = c.post("/admin/keys", json={"account_id": poor}, headers=master).json()["key"]
        keys["bogus"] = secret("bogus")
        user = {"Authorization": f"Bearer {keys['user']}"}
        calls: list[tuple[dict[str, str], Any, int]] = [
            (user, CHAT, 200),
            ({"x-api-key": keys["user"]}, {**CHAT, "model": "anthropic/claude-haiku-4-5", "stream": True}, 200),
            (user, {**CHAT, "model": "mistral/mistral-large-4", "models": ["openai/gpt-4o-mini"]}, 200),
            (user, {**CHAT, "model": "mistral/mistral-large-4"}, 502),
            (user, {**CHAT, "model": "groq/openai/gpt-oss-120b"}, 502),
            (user, {**CHAT, "model": "no-such/model"}, 404),
            (user, {"model": "openai/gpt-4o-mini"}, 400),
            (user, b"{not json", 400),
            ({"Authorization": f"Bearer {keys['poor']}"}, CHAT, 402),
            ({"Authorization": f"Bearer {keys['bogus']}"}, CHAT, 401),
            (master, CHAT, 200),
            (master, {**CHAT, "model": "groq/openai/gpt-oss-120b", "stream": True}, 502),
        ]
        for headers, body, status in calls:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            r = c.post("/v1/chat/completions", content=content, headers={**headers, "content-type": "application/json"})
            assert r.status_code == status, r.text
            answers.append(r)
        answers.append(c.get("/metrics", headers=master))
        answers.append(c.get("/metrics", headers={"Authorization": f"Bearer {keys['bogus']}"}))
        answers.append(c.get("/admin/keys", headers=master))
        ledgered = 11  # every model call after authentication leaves a row
        deadline = time.monotonic() + 5
        while True:
            usage = c.get("/admin/usage", params={"limit": 100}, headers=master)
            if len(usage.json()["data"]) >= ledgered or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(usage.json()["data"]) == ledgered
        assert {row["status"] for row in usage.json()["data"]} == {200, 400, 402, 404, 502}
        csv = c.get("/admin/usage", params={"format": "csv", "limit": 100}, headers=master)
        assert csv.status_code == 200 and csv.text.count("\n") > ledgered
    gw.stop()
    logs = gw.output()
    access = [orjson.loads(line) for line in logs.splitlines() if '"logger":"ccapi.access"' in line]
    assert len(access) == ledgered
    failed = [line for line in map(orjson.loads, logs.splitlines()) if line["logger"] == "ccapi.failover"]
    assert {(line["level"], line["provider"]) for line in failed} == {("debug", "mistral"), ("debug", "groq")}

    places = {"logs": logs, "usage": usage.text, "usage.csv": csv.text}
    for i, r in enumerate(answers):
        places[f"answer {i} ({r.request.method} {r.request.url.path} {r.status_code})"] = r.text + str(r.headers)
    for name, value in keys.items():
        tail = value[-16:]  # a key may be shown by its prefix; never anything past it
        for place, text in places.items():
            assert tail not in text, f"the {name} key appears in {place}"


def test_logfmt_access_lines_and_metrics_from_several_processes(sim: ServerProcess, tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = gateway_env(sim.url, CCAPI_LOG_FORMAT="logfmt", PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="multiproc-gateway") as gw:
        r = httpx.post(f"{gw.url}/chat/completions", json=CHAT, headers=AUTH, timeout=30)
        assert r.status_code == 200
        after = scrape(gw.url)
        assert (
            after[
                (
                    "ccapi_requests_total",
                    frozenset({("status", "200"), *served("openai", "openai/gpt-4o-mini").items()}),
                )
            ]
            == 1
        )
        assert any(multiproc.glob("counter_*.db"))
    lines = [line for line in gw.output().splitlines() if "logger=ccapi.access" in line]
    assert len(lines) == 1
    assert " msg=request request_id=req_" in lines[0]
    assert " model=openai/gpt-4o-mini provider=openai attempts=1 tried=openai:200 status=200 " in lines[0]
    assert MASTER not in gw.output()
