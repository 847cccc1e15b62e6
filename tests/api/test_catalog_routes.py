"""GET /models, /models/{provider}/{model}, /providers, /providers/{name}, docs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

SEED_MODEL_KEYS = {"id", "object", "created", "owned_by", "provider", "ccapi"}
SEED_CCAPI_KEYS = {
    "display_name", "type", "input_modalities", "output_modalities", "capabilities", "pricing",
    "supported_sizes", "max_duration",
}  # fmt: skip
SEED_CAPABILITIES = {"context_length", "max_output_tokens", "streaming", "function_calling", "system_messages"}
SEED_PRICING = {"input_cost_per_million", "output_cost_per_million", "per_image_cost", "per_second_cost", "currency"}


def test_model_list_has_the_seed_shape(client: TestClient) -> None:
    body = client.get("/models").json()
    assert set(body) == {"object", "data", "total", "limit", "offset", "has_more"}
    assert body["object"] == "list" and body["limit"] == 100 and body["offset"] == 0
    assert body["total"] > 100 and body["has_more"] is True and len(body["data"]) == 100
    for model in body["data"]:
        assert SEED_MODEL_KEYS <= set(model)
        assert set(model["provider"]) == {"name", "display_name", "is_fundamental"}
        assert SEED_CCAPI_KEYS <= set(model["ccapi"])
        assert set(model["ccapi"]["capabilities"]) == SEED_CAPABILITIES
        assert SEED_PRICING <= set(model["ccapi"]["pricing"])
        assert model["ccapi"]["pricing"]["currency"] == "USD"
        assert model["ccapi"]["pricing"]["source"].startswith("http")
    ids = [m["id"] for m in body["data"]]
    assert ids == sorted(ids)


def test_catalog_is_large_and_real(client: TestClient) -> None:
    providers = client.get("/providers").json()
    assert providers["total"] >= 12
    chat = client.get("/models?type=chat&limit=1000").json()
    assert chat["total"] >= 80
    assert {m["provider"]["name"] for m in chat["data"]} >= {
        "openai", "anthropic", "google", "mistral", "groq", "deepseek", "xai", "together", "fireworks",
        "openrouter", "perplexity", "cerebras", "ollama", "vllm",
    }  # fmt: skip
    assert client.get("/models?type=image").json()["total"] > 0
    assert client.get("/models?type=tts").json()["total"] > 0


def test_media_models_say_their_sizes_durations_prices_and_async_mode(client: TestClient) -> None:
    images = client.get("/models?type=image&limit=1000").json()["data"]
    # Every image model lists its sizes (or aspect ratios), except those whose output follows the input image.
    follows_input = {"bfl/flux-pro-1.0-fill", "stability/stable-image-inpaint"}
    assert images and all(m["ccapi"]["supported_sizes"] for m in images if m["id"] not in follows_input)
    assert all(
        m["ccapi"]["pricing"]["per_image_cost"] is not None
        or m["ccapi"]["pricing"].get("image_prices")
        or m["ccapi"]["pricing"]["output_cost_per_million"] is not None
        for m in images
    )
    assert {m["id"] for m in images if m["ccapi"].get("is_async")} >= {"bfl/flux-pro-1.1"}
    speech = client.get("/models?type=tts&limit=1000").json()["data"]
    # 4096 characters (OpenAI's input limit) at 5 characters per second, the slowest rate reserved for.
    durations = {m["id"]: m["ccapi"]["max_duration"] for m in speech}
    assert durations["openai/tts-1"] == 820 and all(isinstance(d, int) and d > 0 for d in durations.values())


def test_pagination_walks_the_whole_list(client: TestClient) -> None:
    total = client.get("/models?limit=1").json()["total"]
    seen: list[str] = []
    offset = 0
    while True:
        page = client.get(f"/models?limit=40&offset={offset}").json()
        seen += [m["id"] for m in page["data"]]
        if not page["has_more"]:
            break
        offset += 40
    assert len(seen) == len(set(seen)) == total


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("provider=anthropic", lambda m: m["provider"]["name"] == "anthropic"),
        ("type=tts", lambda m: m["ccapi"]["type"] == "tts"),
        ("input_modality=image", lambda m: "image" in m["ccapi"]["input_modalities"]),
        ("output_modality=audio", lambda m: "audio" in m["ccapi"]["output_modalities"]),
        ("q=GPT-4O", lambda m: "gpt-4o" in m["id"].lower() or "gpt-4o" in m["ccapi"]["display_name"].lower()),
    ],
)
def test_filters(client: TestClient, query: str, check) -> None:  # type: ignore[no-untyped-def]
    data = client.get(f"/models?{query}&limit=1000").json()["data"]
    assert data and all(check(m) for m in data)


def test_sort_by_price_descending(client: TestClient) -> None:
    data = client.get("/models?type=chat&sort=input_price&order=desc&limit=1000").json()["data"]
    prices = [m["ccapi"]["pricing"]["input_cost_per_million"] for m in data]
    priced = [p for p in prices if p is not None]
    assert priced == sorted(priced, reverse=True)
    assert prices[: len(priced)] == priced  # models without a price come last


def test_one_model(client: TestClient) -> None:
    model = client.get("/v1/models/openai/gpt-4o-mini").json()
    assert model["id"] == "openai/gpt-4o-mini" and model["object"] == "model"
    assert model["provider"] == {"name": "openai", "display_name": "OpenAI", "is_fundamental": True}
    nested = client.get("/models/fireworks/accounts/fireworks/models/kimi-k2p6")
    assert nested.status_code == 200 and nested.json()["provider"]["is_fundamental"] is False
    missing = client.get("/models/openai/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_providers(client: TestClient) -> None:
    body = client.get("/providers").json()
    assert set(body) == {"object", "data", "total", "limit", "offset", "has_more"}
    by_name = {p["name"]: p for p in body["data"]}
    assert set(by_name["openai"]) == {"name", "display_name", "is_fundamental", "model_count", "status"}
    assert by_name["openai"]["status"] == "unconfigured"  # no key in this app
    assert by_name["ollama"]["status"] == "configured"  # keyless local server
    assert by_name["openrouter"]["is_fundamental"] is False and by_name["anthropic"]["is_fundamental"] is True
    detail = client.get("/providers/anthropic").json()
    assert {"website", "base_url", "supported_types", "models", "success_rate", "p50_latency_ms"} <= set(detail)
    assert detail["model_count"] == len(detail["models"]) > 0
    assert detail["base_url"] == "https://api.anthropic.com"
    assert client.get("/providers/nope").status_code == 404


def test_openapi_documents_the_routes_and_shapes(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers={"Authorization": ""}).json()
    paths = doc["paths"]
    assert {"/chat/completions", "/models", "/models/{provider}/{model}", "/providers", "/providers/{name}",
            "/health", "/health/ready"} <= set(paths)  # fmt: skip
    schemas = doc["components"]["schemas"]
    for name in ("ChatCompletionRequest", "ChatCompletionResponse", "ModelListResponse", "ErrorResponse",
                 "ProviderDetailResponse", "ModelSummary"):  # fmt: skip
        assert name in schemas, name
    body_ref = paths["/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/ChatCompletionRequest"


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs", headers={"Authorization": ""})
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    asset = client.get("/static-offline-docs/swagger-ui-bundle.js", headers={"Authorization": ""})
    assert asset.status_code == 200 and len(asset.content) > 100_000


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/health", headers={"Authorization": ""}).json() == {"status": "ok"}
    ready = client.get("/health/ready", headers={"Authorization": ""}).json()
    assert ready == {"status": "ok", "checks": {"catalog": "ok", "database": "ok", "job_runner": "ok"}}
