"""Every bad input gets the contract's envelope and status, never a 500 or a 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

USER = [{"role": "user", "content": "hi"}]
OK = {"model": "openai/gpt-4o-mini", "messages": USER}


def assert_envelope(body: dict[str, Any], type_: str, param: str | None, code: str | None = None) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param", "details"}
    assert error["type"] == type_ and error["message"]
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "openai/gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "openai/gpt-4o-mini"}, "messages"),
        ({"messages": USER}, "model"),
        ({**OK, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**OK, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({**OK, "messages": [{"content": "x"}]}, "messages[0].role"),
        ({**OK, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({**OK, "messages": [USER[0], {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         "messages[1].content[0].image_url.url"),
        ({**OK, "tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
        ({**OK, "tools": [{"type": "function", "function": {"name": "ok"}},
                          {"type": "function", "function": {"name": "bad name!"}}]}, "tools[1].function.name"),
        ({**OK, "temperature": "hot"}, "temperature"),
        ({**OK, "temperature": 2.5}, "temperature"),
        ({**OK, "max_tokens": 0}, "max_tokens"),
        ({**OK, "n": "two"}, "n"),
        ({**OK, "stream": "yes"}, "stream"),
        ({**OK, "stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({**OK, "stream": True, "stream_options": {"bogus": True}}, "stream_options.bogus"),
        ({**OK, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**OK, "response_format": {"type": "xml"}}, "response_format.type"),
        ({**OK, "tool_choice": "sometimes"}, "tool_choice"),
        ({**OK, "models": "openai/gpt-4o-mini"}, "models"),
        ({**OK, "models": ["openai/gpt-4o-mini"] * 11}, "models"),
        ({**OK, "model": 42}, "model"),
    ],
)  # fmt: skip
def test_invalid_fields_are_400_naming_the_field(client: TestClient, body: dict[str, Any], param: str) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert_envelope(r.json(), "invalid_request_error", param)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({**OK, "model": "openai/no-such-model"}, "model", "model_not_found"),
        ({**OK, "model": "nosuch/model"}, "model", "provider_not_found"),
        ({**OK, "models": ["openai/gpt-4o-mini", "openai/nope"]}, "models[1]", "model_not_found"),
        ({**OK, "model": "unheard-of-model"}, "model", "model_not_found"),
    ],
)
def test_unknown_models_are_404_before_any_call(
    client: TestClient, body: dict[str, Any], param: str, code: str
) -> None:
    r = client.post("/chat/completions", json=body)
    assert r.status_code == 404
    assert_envelope(r.json(), "not_found_error", param, code)


def test_unconfigured_provider_is_503_naming_the_variable(client: TestClient) -> None:
    r = client.post("/chat/completions", json=OK)
    assert r.status_code == 503
    assert_envelope(r.json(), "provider_unavailable", None)
    assert "OPENAI_API_KEY" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, None),
        (b'{"model": "x"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b"model=x", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b"{" + b" " * 5000 + b"}", {"content-type": "application/json"}, 413, "body_too_large"),
    ],
)
def test_malformed_bodies(client: TestClient, content: bytes, headers: dict[str, str], status: int, code: str) -> None:
    r = client.post("/chat/completions", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert_envelope(r.json(), "invalid_request_error", None, code)


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def body():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/chat/completions", content=body(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-5", "offset"),
        ("sort=price", "sort"),
        ("order=up", "order"),
        ("type=video-ish", "type"),
    ],
)
def test_bad_catalog_query_parameters_are_400_never_422(client: TestClient, query: str, param: str) -> None:
    r = client.get(f"/models?{query}")
    assert r.status_code == 400, r.text
    assert_envelope(r.json(), "invalid_request_error", param)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_api_key"), ({"Authorization": "Bearer nope"}, "invalid_api_key"),
     ({"Authorization": "Basic abc"}, "missing_api_key"), ({"x-api-key": "nope"}, "invalid_api_key")],
)  # fmt: skip
def test_bad_keys_are_401(client: TestClient, headers: dict[str, str], code: str) -> None:
    r = client.post("/chat/completions", json=OK, headers={"Authorization": "", **headers})
    assert r.status_code == 401
    assert_envelope(r.json(), "authentication_error", None, code)


def test_x_api_key_is_accepted(client: TestClient) -> None:
    r = client.get("/models?limit=1", headers={"Authorization": "", "x-api-key": "sk-test-master"})
    assert r.status_code == 200


def test_unknown_route_and_method_use_the_envelope(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert_envelope(r.json(), "not_found_error", None, "route_not_found")
    r = client.delete("/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["type"] == "invalid_request_error"
