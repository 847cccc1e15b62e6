"""Inputs the OpenAPI fuzzer (tests/e2e/test_fuzz_openapi.py) found, each
pinned down here: no 500, and the answer the document promises."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .test_bad_input import assert_envelope

HUGE = 3091416192043839219709247488  # past any 64-bit column


@pytest.mark.parametrize(
    "path", ["/models", "/providers", "/admin/accounts", "/admin/keys", "/admin/usage", "/v1/providers"]
)
def test_an_offset_past_64_bits_is_400_not_500(client: TestClient, path: str) -> None:
    r = client.get(f"{path}?offset={HUGE}&limit=28")
    assert r.status_code == 400, r.text
    assert_envelope(r.json(), "invalid_request_error", "offset")


def test_the_largest_offset_is_an_empty_page(client: TestClient) -> None:
    body = client.get(f"/providers?offset={2**53 - 1}").json()
    assert body["data"] == [] and body["offset"] == 2**53 - 1 and body["has_more"] is False


def test_the_document_promises_the_envelope_never_422(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}"
            for status, response in responses.items():
                if not status.startswith("2"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, f"{method} {path} {status}"


def test_the_chat_stream_is_documented_event_by_event(client: TestClient) -> None:
    # Each event's `data` is a chunk, an error envelope or `[DONE]`: the chunk
    # schema alone described the SSE event object (`{"data": …}`), not its data.
    doc = client.get("/openapi.json").json()
    sse = doc["paths"]["/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    data = sse["itemSchema"]["properties"]["data"]["anyOf"]
    assert data[0] == {"const": "[DONE]"}
    refs = {branch["$ref"].rsplit("/", 1)[1] for branch in data[1]["contentSchema"]["anyOf"]}
    assert refs == {"ChatCompletionChunk", "ErrorResponse"}
    assert "ChatCompletionChunk" in doc["components"]["schemas"]
