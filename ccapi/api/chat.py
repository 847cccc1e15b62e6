"""POST /chat/completions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, json_body, start_record
from ccapi.api.openapi import request_body
from ccapi.api.validation import validate_body
from ccapi.config import MAX_LATENCY_MS
from ccapi.routing.latency import HEDGE_HEADER, TTFT_HEADER, request_latency
from ccapi.schemas.chat import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from ccapi.schemas.errors import ErrorResponse

router = APIRouter(tags=["Chat"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 404, 413, 415, 429, 500, 502, 503, 504)
}

# One server-sent event (OpenAPI 3.2's `itemSchema`): its `data` is a chunk,
# a mid-stream error in the envelope, or the final `[DONE]`.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/ChatCompletionChunk"},
                            {"$ref": "#/components/schemas/ErrorResponse"},
                        ]
                    },
                },
            ]
        }
    },
}


@router.post(
    "/chat/completions",
    summary="Create chat completion",
    description="OpenAI-compatible chat completions; `models` lists failover candidates. "
    "SSE stream of `chat.completion.chunk` when `stream` is true.",
    responses={
        200: {
            "model": ChatCompletionResponse,
            "content": {"text/event-stream": {"itemSchema": _SSE_EVENT}},
        },
        **_ERRORS,
    },
    openapi_extra={
        **request_body(ChatCompletionRequest, ChatCompletionChunk),
        "parameters": [
            {
                "name": TTFT_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LATENCY_MS},
                "description": "Time-to-first-token deadline per attempt (ms); a miss fails over. 0: off.",
            },
            {
                "name": HEDGE_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LATENCY_MS},
                "description": "Start the next candidate beside a slow one after this many ms; "
                "the first answer wins. 0: off.",
            },
        ],
    },
)
async def create_chat_completion(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    return await complete_chat(request, principal)


async def chat_endpoint(request: Request) -> Response:
    """The route as the fast path serves it (see api/middleware.FastPath)."""
    return await complete_chat(request, await caller(request))


async def complete_chat(request: Request, principal: Principal) -> Response:
    record = start_record(request, principal, "/chat/completions")
    chat = gateway_of(request).chat
    try:
        asked = request_latency(request.headers.get)
        body = await json_body(request)
        req = validate_body(ChatCompletionRequest, body)
    except Exception as exc:
        await chat.record_rejected(record, exc)
        raise
    return await chat.handle(req, body, record, principal, asked)
