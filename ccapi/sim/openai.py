"""OpenAI Chat Completions wire format for the simulator.

Shapes follow the public API (and what the official `openai` SDK parses):
- `chat.completion` objects with `usage.prompt_tokens_details` and
  `completion_tokens_details`, `service_tier`, `system_fingerprint`;
- streams of `chat.completion.chunk` objects as `data: <json>\\n\\n` lines ending
  with `data: [DONE]`; the first delta of a choice carries the role, a tool
  call's first delta carries id/type/name with empty `arguments`, later deltas
  only argument fragments; with `stream_options.include_usage` every chunk has
  `"usage": null` and a final chunk with `"choices": []` carries the usage;
  `obfuscation` padding is on by default (`stream_options.include_obfuscation`);
- errors `{"error": {"message", "type", "param", "code"}}`; an in-stream error
  is a `data:` line holding such an object (the SDK raises APIError on it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ccapi.sim.content import (
    Choice,
    InvalidRequest,
    LastRole,
    Reply,
    SimRequest,
    Tool,
    ToolChoice,
    new_id,
    prompt_tokens,
)

__all__ = ["OpenAICall", "OpenAIDialect"]

SYSTEM_FINGERPRINT: Final = "fp_c0ffee5157"
MODELS: Final = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-5-mini", "o4-mini")
_DONE: Final = b"data: [DONE]\n\n"

# (type, code, default message) per status. Messages paraphrase the real ones;
# clients branch on status and `type`/`code`, not on wording.
_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("request_forbidden", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}


@dataclass(slots=True)
class OpenAICall:
    model: str
    stream: bool
    sim: SimRequest
    include_usage: bool
    obfuscation: bool


def _texts(content: Any, out: list[str]) -> None:
    """Collect the countable text of a message `content` (string or parts)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)


def _tools(raw: Any) -> list[Tool]:
    tools: list[Tool] = []
    if not isinstance(raw, list):
        return tools
    for item in raw:
        # Only function tools can be answered with a synthesized call; custom
        # (free-text) tools are ignored.
        if not isinstance(item, Mapping) or item.get("type", "function") != "function":
            continue
        fn = item.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            tools.append(Tool(fn["name"], params if isinstance(params, Mapping) else None))
    return tools


class OpenAIDialect:
    name: Final = "openai"
    json_content_type: Final = "application/json"
    tool_id_prefix: Final = "call_"

    # --- auth and errors --------------------------------------------------

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None:
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return None
        if headers.get("x-api-key") or headers.get("api-key"):
            return None
        return 401, (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )

    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes:
        kind, code, default = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        body = {"error": {"message": message or default, "type": kind, "param": param, "code": code}}
        return orjson.dumps(body)

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_")}

    # --- requests ---------------------------------------------------------

    def parse(self, body: Any, model: Any, stream_hint: bool, query: Mapping[str, str]) -> OpenAICall:
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object.")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("Missing required parameter: 'messages'.", "messages")
        texts: list[str] = []
        for message in messages:
            if not isinstance(message, Mapping):
                raise InvalidRequest("Invalid type for 'messages': expected an array of objects.", "messages")
            _texts(message.get("content"), texts)
        last = messages[-1]
        role = last.get("role")
        last_role: LastRole = "user" if role == "user" else "tool" if role in ("tool", "function") else "other"

        tool_choice = body.get("tool_choice", "auto")
        choice: ToolChoice = "auto"
        forced: str | None = None
        if tool_choice in ("none", "required"):
            choice = tool_choice
        elif isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
            fn = tool_choice.get("function")
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                forced = fn["name"]

        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise InvalidRequest("Invalid 'max_tokens': integer below minimum value.", "max_tokens")
        n = body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 128:
            raise InvalidRequest("Invalid 'n': must be between 1 and 128.", "n")

        json_mode = False
        schema: Mapping[str, Any] | None = None
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping):
            if fmt.get("type") == "json_object":
                json_mode = True
            elif fmt.get("type") == "json_schema":
                spec = fmt.get("json_schema")
                raw_schema = spec.get("schema") if isinstance(spec, Mapping) else None
                schema = raw_schema if isinstance(raw_schema, Mapping) else {}
                json_mode = True

        options = body.get("stream_options")
        options = options if isinstance(options, Mapping) else {}
        sim = SimRequest(
            prompt_tokens=prompt_tokens(texts, len(messages)),
            last_role=last_role,
            tools=_tools(body.get("tools")),
            tool_choice=choice,
            forced_tool=forced,
            parallel_allowed=body.get("parallel_tool_calls", True) is not False,
            max_tokens=max_tokens,
            n=n,
            json_mode=json_mode,
            json_schema=schema,
        )
        return OpenAICall(
            model=model,
            stream=body.get("stream") is True,
            sim=sim,
            include_usage=options.get("include_usage") is True,
            obfuscation=options.get("include_obfuscation", True) is not False,
        )

    # --- answers ----------------------------------------------------------

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _message(choice: Choice) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []}
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                for c in choice.tool_calls
            ]
        return message

    def render(self, call: OpenAICall, reply: Reply) -> bytes:
        return orjson.dumps(
            {
                "id": new_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [
                    {
                        "index": c.index,
                        "message": self._message(c),
                        "logprobs": None,
                        "finish_reason": c.finish,
                    }
                    for c in reply.choices
                ],
                "usage": self._usage(reply),
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        )

    def stream_events(self, call: OpenAICall, reply: Reply) -> list[bytes]:
        head = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if call.include_usage:
            head["usage"] = None
        obfuscate = call.obfuscation
        dumps = orjson.dumps
        events: list[bytes] = []

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
            data = dict(head)
            data["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if obfuscate:
                # Real padding is random; a deterministic filler keeps the
                # simulator reproducible while exercising the field.
                data["obfuscation"] = "x" * (1 + len(delta.get("content") or "") % 7)
            events.append(b"data: " + dumps(data) + b"\n\n")

        for c in reply.choices:
            if c.tool_calls:
                for k, tc in enumerate(c.tool_calls):
                    first: dict[str, Any] = {
                        "index": k,
                        "id": tc.id,
                        "type": "function",
                        "function": {"name": tc.name, "arguments": ""},
                    }
                    if k == 0:
                        chunk(c.index, {"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
                    else:
                        chunk(c.index, {"tool_calls": [first]})
                    for piece in tc.pieces:
                        chunk(c.index, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
            else:
                chunk(c.index, {"role": "assistant", "content": "", "refusal": None})
                for piece in c.pieces:
                    chunk(c.index, {"content": piece})
            chunk(c.index, {}, c.finish)
        if call.include_usage:
            data = dict(head)
            data["choices"] = []
            data["usage"] = self._usage(reply)
            events.append(b"data: " + dumps(data) + b"\n\n")
        events.append(_DONE)
        return events

    def stream_content_type(self, call: OpenAICall) -> str:
        return "text/event-stream; charset=utf-8"

    def stream_error_event(self, call: OpenAICall, position: int) -> bytes:
        return b"data: " + self.error(500) + b"\n\n"

    def malformed_event(self, call: OpenAICall) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": \n\n'

    def models(self) -> bytes:
        return orjson.dumps(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"} for m in MODELS],
            }
        )
