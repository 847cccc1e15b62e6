"""Anthropic Messages wire format for the simulator.

Shapes follow the public API (and what the official `anthropic` SDK parses):
- a `message` object with `content` blocks (`text`, `tool_use`), `stop_reason`
  (end_turn / max_tokens / tool_use), `stop_sequence`, `stop_details` and a
  `usage` carrying the cache fields the API always returns
  (`cache_creation_input_tokens`, `cache_read_input_tokens`, `cache_creation`
  with the 5m/1h split), `service_tier` and `inference_geo`;
- streams as named SSE events (`event: <type>` + `data: <json>`; the SDK
  ignores data without an event name): message_start (usage with
  output_tokens 1), content_block_start, ping, content_block_delta
  (`text_delta` / `input_json_delta`, the latter opened by an empty
  `partial_json`), content_block_stop, message_delta (stop_reason and the
  final usage), message_stop;
- errors `{"type": "error", "error": {"type", "message"}, "request_id"}`; an
  in-stream error is `event: error` with the same object.
Requests need `x-api-key` (or a bearer token) and `anthropic-version`.
"""

from __future__ import annotations

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

__all__ = ["AnthropicCall", "AnthropicDialect"]

# Simulated catalogue entries (ids are real model names; dates are placeholders).
MODELS: Final = (
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-01-01T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-01-01T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
)

# status -> (error.type, default message), as listed on the API's errors page.
_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
_STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(slots=True)
class AnthropicCall:
    model: str
    stream: bool
    sim: SimRequest


def _event(name: bytes, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_PING: Final = _event(b"ping", {"type": "ping"})
_MESSAGE_STOP: Final = _event(b"message_stop", {"type": "message_stop"})


def _block_texts(content: Any, out: list[str]) -> bool:
    """Collect countable text; True when the content holds a tool_result block."""
    if isinstance(content, str):
        out.append(content)
        return False
    has_result = False
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                out.append(block["text"])
            elif kind == "tool_result":
                has_result = True
                _block_texts(block.get("content"), out)
    return has_result


class AnthropicDialect:
    name: Final = "anthropic"
    json_content_type: Final = "application/json"
    tool_id_prefix: Final = "toolu_"

    # --- auth and errors --------------------------------------------------

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None:
        auth = headers.get("Authorization", "")
        if not headers.get("x-api-key") and not (auth[:7].lower() == "bearer " and auth[7:].strip()):
            return 401, "x-api-key header is required"
        if not headers.get("anthropic-version"):
            return 400, "anthropic-version: header is required"
        return None

    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes:
        kind, default = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Error."))
        return orjson.dumps(
            {"type": "error", "error": {"type": kind, "message": message or default}, "request_id": new_id("req_")}
        )

    def response_headers(self) -> dict[str, str]:
        return {"request-id": new_id("req_")}

    # --- requests ---------------------------------------------------------

    def parse(self, body: Any, model: Any, stream_hint: bool, query: Mapping[str, str]) -> AnthropicCall:
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object.")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise InvalidRequest("max_tokens: Field required")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages: Field required")

        texts: list[str] = []
        message_count = len(messages)
        system = body.get("system")
        if system:
            _block_texts(system, texts)
            message_count += 1  # the system prompt counts as a message
        last_has_result = False
        for message in messages:
            if not isinstance(message, Mapping):
                raise InvalidRequest("messages: Input should be a valid list of objects")
            last_has_result = _block_texts(message.get("content"), texts)
        role = messages[-1].get("role")
        last_role: LastRole = "other" if role != "user" else "tool" if last_has_result else "user"

        tools = []
        for item in body.get("tools") or ():
            # Server tools (web search, code execution, ...) have no input_schema
            # and are run by the API itself, so the simulator never calls them.
            if isinstance(item, Mapping) and isinstance(item.get("name"), str) and "input_schema" in item:
                schema = item.get("input_schema")
                tools.append(Tool(item["name"], schema if isinstance(schema, Mapping) else None))

        choice: ToolChoice = "auto"
        forced = None
        parallel_allowed = True
        tool_choice = body.get("tool_choice")
        if isinstance(tool_choice, Mapping):
            kind = tool_choice.get("type")
            if kind == "none":
                choice = "none"
            elif kind == "any":
                choice = "required"
            elif kind == "tool" and isinstance(tool_choice.get("name"), str):
                forced = tool_choice["name"]
            parallel_allowed = tool_choice.get("disable_parallel_tool_use") is not True

        # Structured outputs: GA `output_config.format`, and the older beta
        # top-level `output_format`; both are {"type": "json_schema", "schema"}.
        schema_out: Mapping[str, Any] | None = None
        json_mode = False
        output_config = body.get("output_config")
        ga_format = output_config.get("format") if isinstance(output_config, Mapping) else None
        for fmt in (ga_format, body.get("output_format")):
            if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
                raw = fmt.get("schema")
                schema_out = raw if isinstance(raw, Mapping) else {}
                json_mode = True
                break

        sim = SimRequest(
            prompt_tokens=prompt_tokens(texts, message_count),
            last_role=last_role,
            tools=tools,
            tool_choice=choice,
            forced_tool=forced,
            parallel_allowed=parallel_allowed,
            max_tokens=max_tokens,
            n=1,
            json_mode=json_mode,
            json_schema=schema_out,
        )
        return AnthropicCall(model=model, stream=body.get("stream") is True, sim=sim)

    # --- answers ----------------------------------------------------------

    @staticmethod
    def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
        # Anthropic's input_tokens exclude cache reads, which are reported apart.
        return {
            "input_tokens": reply.prompt_tokens - reply.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
            "inference_geo": "not_available",
        }

    @staticmethod
    def _blocks(choice: Choice) -> list[dict[str, Any]]:
        if choice.tool_calls:
            return [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in choice.tool_calls]
        return [{"type": "text", "text": choice.text or ""}]

    def _message(self, call: AnthropicCall, msg_id: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": call.model,
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
        }

    def render(self, call: AnthropicCall, reply: Reply) -> bytes:
        choice = reply.choices[0]
        message = self._message(call, new_id("msg_"), self._blocks(choice))
        message["stop_reason"] = _STOP_REASONS[choice.finish]
        message["usage"] = self._usage(reply, reply.completion_tokens)
        return orjson.dumps(message)

    def stream_events(self, call: AnthropicCall, reply: Reply) -> list[bytes]:
        choice = reply.choices[0]
        start = self._message(call, new_id("msg_"), [])
        start["usage"] = self._usage(reply, 1)
        events = [_event(b"message_start", {"type": "message_start", "message": start})]

        def delta(index: int, body: dict[str, Any]) -> bytes:
            return _event(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})

        if choice.tool_calls:
            for index, tc in enumerate(choice.tool_calls):
                block = {"type": "tool_use", "id": tc.id, "name": tc.name, "input": {}}
                events.append(
                    _event(
                        b"content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
                    )
                )
                if index == 0:
                    events.append(_PING)
                events.append(delta(index, {"type": "input_json_delta", "partial_json": ""}))
                events.extend(delta(index, {"type": "input_json_delta", "partial_json": p}) for p in tc.pieces)
                events.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": index}))
        else:
            block = {"type": "text", "text": ""}
            events.append(
                _event(b"content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
            )
            events.append(_PING)
            events.extend(delta(0, {"type": "text_delta", "text": p}) for p in choice.pieces)
            events.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": 0}))
        final_usage = {
            "input_tokens": reply.prompt_tokens - reply.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": reply.completion_tokens,
        }
        events.append(
            _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP_REASONS[choice.finish], "stop_sequence": None, "stop_details": None},
                    "usage": final_usage,
                },
            )
        )
        events.append(_MESSAGE_STOP)
        return events

    def stream_content_type(self, call: AnthropicCall) -> str:
        return "text/event-stream; charset=utf-8"

    def stream_error_event(self, call: AnthropicCall, position: int) -> bytes:
        return _event(b"error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    def malformed_event(self, call: AnthropicCall) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": \n\n'

    def models(self) -> bytes:
        data = [
            {
                "type": "model",
                "id": model_id,
                "display_name": display,
                "created_at": created,
                "lifecycle": "active",
                "max_input_tokens": 200_000,
                "max_tokens": 64_000,
            }
            for model_id, display, created in MODELS
        ]
        return orjson.dumps({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})

    def count_tokens(self, body: Any, model: Any) -> bytes:
        """`POST /v1/messages/count_tokens`: same counting rule, no max_tokens needed."""
        if isinstance(body, Mapping):
            body = {**body, "max_tokens": 1}
        call = self.parse(body, model, False, {})
        return orjson.dumps({"input_tokens": call.sim.prompt_tokens})
