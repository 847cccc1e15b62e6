"""Chat completions through the real gateway process against the simulator."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest

from ccapi.catalog.catalog import Catalog
from tests.support import ServerProcess

from .conftest import sim_calls

SEED_REQUEST = {
    "model": "openai/gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a precise assistant."},
        {"role": "user", "content": "Outline a launch plan for CCAPI."},
    ],
    "stream": False,
}
HEALTHY = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"]
CATALOG = Catalog.load()


def sse_events(text: str) -> list[object]:
    events: list[object] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def expected_costs(model: str, usage: dict[str, int]) -> tuple[float, float]:
    prices = CATALOG.models[model].prices
    from ccapi.core.types import Usage

    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")  # type: ignore[attr-defined]
    cost = prices.cost(Usage(usage["prompt_tokens"], usage["completion_tokens"], cached_tokens=cached))
    return float(cost[0]), float(cost[1])


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_seed_example_gets_the_seed_shape_word_for_word(client: httpx.Client, prefix: str) -> None:
    r = client.post(f"{prefix}/chat/completions", json=SEED_REQUEST)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"id", "object", "created", "model", "provider", "choices", "usage"}
    assert body["object"] == "chat.completion"
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["provider"] == "openai"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    usage = body["usage"]
    assert set(usage) >= {"prompt_tokens", "completion_tokens", "total_tokens", "input_cost", "output_cost"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (usage["input_cost"], usage["output_cost"]) == expected_costs("openai/gpt-4o-mini", usage)
    assert r.headers["x-ccapi-provider"] == "openai"
    assert r.headers["x-ccapi-model"] == "openai/gpt-4o-mini"
    assert r.headers["x-ccapi-attempts"] == "1"
    assert r.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("model", HEALTHY)
def test_each_wire_format_answers_in_openai_shape_with_costs(client: httpx.Client, model: str) -> None:
    r = client.post("/chat/completions", json={**SEED_REQUEST, "model": model, "max_tokens": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model and body["provider"] == model.split("/")[0]
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    costs = expected_costs(model, body["usage"])
    assert (body["usage"]["input_cost"], body["usage"]["output_cost"]) == costs
    assert Decimal(str(costs[0])) > 0


@pytest.mark.parametrize("model", HEALTHY)
@pytest.mark.parametrize("include_usage", [True, False])
def test_streams_in_openai_chunks_and_usage_only_when_asked(
    client: httpx.Client, model: str, include_usage: bool
) -> None:
    request = {**SEED_REQUEST, "model": model, "stream": True}
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    r = client.post("/chat/completions", json=request)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-ccapi-provider"] == model.split("/")[0]
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    assert all(c["provider"] == model.split("/")[0] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.get("usage")]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
        usage = usage_chunks[0]["usage"]
        assert (usage["input_cost"], usage["output_cost"]) == expected_costs(model, usage)
    else:
        assert usage_chunks == [] and all("usage" not in c for c in chunks)


def test_stream_text_equals_the_non_streaming_text(client: httpx.Client) -> None:
    plain = client.post("/chat/completions", json=SEED_REQUEST).json()["choices"][0]["message"]["content"]
    streamed = sse_events(client.post("/chat/completions", json={**SEED_REQUEST, "stream": True}).text)
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in streamed if isinstance(c, dict) and c["choices"]
    )
    assert text == plain


@pytest.mark.parametrize(
    "failing",
    [
        "mistral/mistral-large-4",  # 503
        "xai/grok-4.7",  # malformed JSON body
        "together/moonshotai/Kimi-K3",  # slower than the attempt timeout
        "cerebras/gpt-oss-120b",  # connection reset
        "fireworks/accounts/fireworks/models/kimi-k2p6",  # 429
    ],
)
def test_fails_over_to_the_next_candidate(client: httpx.Client, failing: str) -> None:
    r = client.post("/chat/completions", json={**SEED_REQUEST, "model": failing, "models": ["openai/gpt-4o-mini"]})
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "openai"
    assert r.headers["x-ccapi-attempts"] == "2"
    assert r.headers["x-ccapi-model"] == "openai/gpt-4o-mini"


def test_model_may_be_omitted_when_models_is_given(client: httpx.Client) -> None:
    r = client.post(
        "/chat/completions", json={"messages": SEED_REQUEST["messages"], "models": ["google/gemini-2.5-flash"]}
    )
    assert r.status_code == 200 and r.json()["model"] == "google/gemini-2.5-flash"


def test_a_request_error_upstream_is_returned_at_once(client: httpx.Client, sim: ServerProcess) -> None:
    before = sim_calls(sim)
    r = client.post(
        "/chat/completions",
        json={**SEED_REQUEST, "model": "groq/openai/gpt-oss-120b", "models": ["openai/gpt-4o-mini"]},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "groq answered HTTP 400" in error["message"]
    assert [a["provider"] for a in error["details"]["attempts"]] == ["groq"]
    assert sim_calls(sim) - before == 1


def test_every_candidate_failing_is_502_listing_the_attempts(client: httpx.Client) -> None:
    r = client.post(
        "/chat/completions", json={**SEED_REQUEST, "model": "mistral/mistral-large-4", "models": ["xai/grok-4.7"]}
    )
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["type"] == "upstream_error"
    attempts = error["details"]["attempts"]
    assert [(a["provider"], a["status"]) for a in attempts] == [("mistral", 503), ("xai", 200)]
    assert all(set(a) == {"provider", "model", "status", "error", "latency_ms"} for a in attempts)
    assert "mistral" in error["message"] and "xai" in error["message"]


@pytest.mark.parametrize(
    "failing",
    ["mistral/mistral-large-4", "openrouter/anthropic/claude-sonnet-4.5", "cerebras/gpt-oss-120b"],
)
def test_stream_fails_over_before_the_first_byte(client: httpx.Client, failing: str) -> None:
    r = client.post(
        "/chat/completions",
        json={**SEED_REQUEST, "model": failing, "models": ["anthropic/claude-haiku-4-5"], "stream": True},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-ccapi-provider"] == "anthropic"
    assert r.headers["x-ccapi-attempts"] == "2"
    assert sse_events(r.text)[-1] == "[DONE]"


@pytest.mark.parametrize("model", ["deepseek/deepseek-flash", "perplexity/sonar"])
def test_a_mid_stream_failure_ends_with_an_error_event_then_done(client: httpx.Client, model: str) -> None:
    r = client.post(
        "/chat/completions",
        json={**SEED_REQUEST, "model": model, "models": ["openai/gpt-4o-mini"], "stream": True},
    )
    assert r.status_code == 200
    assert r.headers["x-ccapi-provider"] == model.split("/")[0]  # no failover after the first byte
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    error = events[-2]
    assert isinstance(error, dict) and set(error) == {"error"}
    assert error["error"]["type"] == "upstream_error" and error["error"]["code"] == "stream_interrupted"
    assert any(isinstance(e, dict) and e.get("choices") for e in events[:-2])


def test_request_id_is_echoed(client: httpx.Client) -> None:
    r = client.post("/chat/completions", json=SEED_REQUEST, headers={"x-request-id": "my-trace-42"})
    assert r.headers["x-request-id"] == "my-trace-42"
    r = client.get("/models?limit=1", headers={"x-request-id": "catalog-1"})
    assert r.headers["x-request-id"] == "catalog-1"


def test_tools_round_trip_through_each_wire_format(client: httpx.Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    for model in HEALTHY:
        messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
        r = client.post("/chat/completions", json={"model": model, "messages": messages, "tools": tools})
        assert r.status_code == 200, (model, r.text)
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls", model
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert orjson.loads(call["function"]["arguments"]) == {"city": "sample"}
        messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"}]
        r = client.post("/chat/completions", json={"model": model, "messages": messages, "tools": tools})
        assert r.status_code == 200, (model, r.text)
        assert r.json()["choices"][0]["finish_reason"] == "stop"
        assert r.json()["choices"][0]["message"]["content"]
