"""Gemini API (generativelanguage v1beta) wire format for the simulator.

Shapes follow the public API (and what the official `google-genai` SDK parses):
- `GenerateContentResponse`: `candidates[].content.parts[]` (`text` or
  `functionCall {name, args}`), `finishReason` (STOP, MAX_TOKENS; a function
  call also ends with STOP), `usageMetadata` (`promptTokenCount`,
  `candidatesTokenCount`, `totalTokenCount`, per-modality details,
  `cachedContentTokenCount` when there is a cache hit), `modelVersion`,
  `responseId`;
- `:streamGenerateContent?alt=sse`: one `data: <GenerateContentResponse>` per
  event, separated by CRLF CRLF as the real server does, no terminator; the
  intermediate chunks carry only prompt counts in usageMetadata, the last one
  carries finishReason and the totals. Without `alt=sse` the same objects are
  sent as one JSON array (`[obj` `,\\r\\nobj` ... `]`), as the real API does;
- errors `{"error": {"code", "message", "status"}}` (429 adds a RetryInfo
  detail when a retry delay is known); an in-stream error is such an object in
  place of a chunk (the SDK raises on a chunk starting with `{"error":`).
Auth is an API key in `x-goog-api-key` or `?key=` (a bearer token is accepted
too); without one the real API answers 403 PERMISSION_DENIED, and so does this.
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

__all__ = ["GeminiCall", "GeminiDialect"]

MODELS: Final = (
    ("gemini-2.5-flash", "Gemini 2.5 Flash"),
    ("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite"),
)

# HTTP status -> google.rpc status name (canonical mapping of the Google APIs).
_STATUS: Final[dict[int, str]] = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES: Final[dict[int, str]] = {
    403: (
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."
    ),
    404: "models/unknown is not found for API version v1beta.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_FINISH: Final = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_SSE_END: Final = b"\r\n\r\n"


@dataclass(slots=True)
class GeminiCall:
    model: str
    stream: bool
    sim: SimRequest
    sse: bool


def _pick(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    """The REST API accepts both proto JSON spellings; the SDK sends camelCase."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def _parts_texts(content: Any, out: list[str]) -> bool:
    """Collect countable text of a Content; True when it holds a functionResponse."""
    has_response = False
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if isinstance(parts, list):
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            text = part.get("text")
            if isinstance(text, str):
                out.append(text)
            response = _pick(part, "functionResponse", "function_response")
            if isinstance(response, Mapping):
                has_response = True
                _strings(response.get("response"), out)
    return has_response


class GeminiDialect:
    name: Final = "gemini"
    json_content_type: Final = "application/json; charset=UTF-8"
    tool_id_prefix: Final = ""

    # --- auth and errors --------------------------------------------------

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None:
        if headers.get("x-goog-api-key") or query.get("key"):
            return None
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return None
        return 403, _MESSAGES[403]

    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes:
        name = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        error: dict[str, Any] = {"code": status, "message": message or _MESSAGES.get(status, name), "status": name}
        if status == 429 and retry_after is not None:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]
        return orjson.dumps({"error": error})

    def response_headers(self) -> dict[str, str]:
        return {}

    # --- requests ---------------------------------------------------------

    def parse(self, body: Any, model: Any, stream_hint: bool, query: Mapping[str, str]) -> GeminiCall:
        if not isinstance(body, Mapping):
            raise InvalidRequest("Invalid JSON payload received. Expected an object.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
        texts: list[str] = []
        message_count = len(contents)
        system = _pick(body, "systemInstruction", "system_instruction")
        if system:
            _parts_texts(system, texts)
            message_count += 1  # the system prompt counts as a message
        last_has_response = False
        for content in contents:
            if not isinstance(content, Mapping):
                raise InvalidRequest("Invalid value at 'contents': expected an object.")
            last_has_response = _parts_texts(content, texts)
        role = contents[-1].get("role", "user")
        last_role: LastRole = (
            "tool" if last_has_response or role == "function" else "user" if role == "user" else "other"
        )

        tools: list[Tool] = []
        for entry in body.get("tools") or ():
            decls = (
                _pick(entry, "functionDeclarations", "function_declarations") if isinstance(entry, Mapping) else None
            )
            for decl in decls or ():
                if isinstance(decl, Mapping) and isinstance(decl.get("name"), str):
                    params = _pick(decl, "parametersJsonSchema", "parameters_json_schema") or decl.get("parameters")
                    tools.append(Tool(decl["name"], params if isinstance(params, Mapping) else None))

        choice: ToolChoice = "auto"
        forced = None
        tool_config = _pick(body, "toolConfig", "tool_config")
        fc_config = (
            _pick(tool_config, "functionCallingConfig", "function_calling_config")
            if isinstance(tool_config, Mapping)
            else None
        )
        if isinstance(fc_config, Mapping):
            mode = str(fc_config.get("mode", "AUTO")).upper()
            if mode == "NONE":
                choice = "none"
            elif mode == "ANY":
                choice = "required"
                allowed = _pick(fc_config, "allowedFunctionNames", "allowed_function_names")
                if isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
                    forced = allowed[0]

        config = _pick(body, "generationConfig", "generation_config") or {}
        if not isinstance(config, Mapping):
            raise InvalidRequest("Invalid value at 'generation_config': expected an object.")
        max_tokens = _pick(config, "maxOutputTokens", "max_output_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise InvalidRequest("max_output_tokens must be positive.")
        n = _pick(config, "candidateCount", "candidate_count") or 1
        if not isinstance(n, int) or not 1 <= n <= 8:
            raise InvalidRequest("candidate_count must be between 1 and 8.")
        json_mode = _pick(config, "responseMimeType", "response_mime_type") == "application/json"
        schema = _pick(config, "responseJsonSchema", "response_json_schema") or _pick(
            config, "responseSchema", "response_schema"
        )
        sim = SimRequest(
            prompt_tokens=prompt_tokens(texts, message_count),
            last_role=last_role,
            tools=tools,
            tool_choice=choice,
            forced_tool=forced,
            parallel_allowed=True,
            max_tokens=max_tokens,
            n=n,
            json_mode=json_mode,
            json_schema=schema if json_mode and isinstance(schema, Mapping) else None,
        )
        return GeminiCall(model=model or "", stream=stream_hint, sim=sim, sse=query.get("alt") == "sse")

    # --- answers ----------------------------------------------------------

    @staticmethod
    def _usage(reply: Reply, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens}
        if final:
            usage["candidatesTokenCount"] = reply.completion_tokens
            usage["totalTokenCount"] = reply.total_tokens
        else:
            usage["totalTokenCount"] = reply.prompt_tokens
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        if final:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.completion_tokens}]
        return usage

    @staticmethod
    def _parts(choice: Choice) -> list[dict[str, Any]]:
        if choice.tool_calls:
            return [{"functionCall": {"name": c.name, "args": c.arguments}} for c in choice.tool_calls]
        return [{"text": choice.text or ""}]

    def render(self, call: GeminiCall, reply: Reply) -> bytes:
        candidates = [
            {
                "content": {"parts": self._parts(c), "role": "model"},
                "finishReason": _FINISH[c.finish],
                "index": c.index,
            }
            for c in reply.choices
        ]
        return orjson.dumps(
            {
                "candidates": candidates,
                "usageMetadata": self._usage(reply, True),
                "modelVersion": call.model,
                "responseId": new_id(""),
            }
        )

    def stream_content_type(self, call: GeminiCall) -> str:
        return "text/event-stream" if call.sse else self.json_content_type

    def _frame(self, call: GeminiCall, data: bytes, first: bool) -> bytes:
        if call.sse:
            return b"data: " + data + _SSE_END
        return (b"[" if first else b",\r\n") + data

    def stream_events(self, call: GeminiCall, reply: Reply) -> list[bytes]:
        response_id = new_id("")
        multi = len(reply.choices) > 1
        objects: list[dict[str, Any]] = []
        partial_usage = self._usage(reply, False)
        for c in reply.choices:
            # A function call arrives whole in one chunk; text arrives piece by
            # piece, the last piece carrying the finishReason.
            pieces: list[list[dict[str, Any]]]
            if c.tool_calls:
                pieces = [self._parts(c)]
            else:
                pieces = [[{"text": p}] for p in c.pieces] or [[{"text": ""}]]
            for i, parts in enumerate(pieces):
                candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
                if i == len(pieces) - 1:
                    candidate["finishReason"] = _FINISH[c.finish]
                if multi:
                    candidate["index"] = c.index
                objects.append({"candidates": [candidate], "usageMetadata": partial_usage})
        objects[-1]["usageMetadata"] = self._usage(reply, True)
        events = []
        for i, obj in enumerate(objects):
            obj["modelVersion"] = call.model
            obj["responseId"] = response_id
            events.append(self._frame(call, orjson.dumps(obj), i == 0))
        if not call.sse:
            events.append(b"]")
        return events

    def stream_error_event(self, call: GeminiCall, position: int) -> bytes:
        data = self.error(503)
        if call.sse:
            return b"data: " + data + _SSE_END
        return (b"[" if position == 0 else b",\r\n") + data + b"]"

    def malformed_event(self, call: GeminiCall) -> bytes:
        garbage = b'{"candidates": [{"content": {"parts": [{"text": '
        return b"data: " + garbage + _SSE_END if call.sse else b",\r\n" + garbage

    def models(self) -> bytes:
        return orjson.dumps(
            {
                "models": [
                    {
                        "name": f"models/{model_id}",
                        "version": "001",
                        "displayName": display,
                        "description": f"Simulated {display}",
                        "inputTokenLimit": 1_048_576,
                        "outputTokenLimit": 65_536,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                        "temperature": 1,
                        "topP": 0.95,
                        "topK": 64,
                        "maxTemperature": 2,
                        "thinking": True,
                    }
                    for model_id, display in MODELS
                ]
            }
        )

    def count_tokens(self, body: Any, model: Any) -> bytes:
        """`:countTokens`: the same prompt rule as generateContent."""
        if isinstance(body, Mapping) and "generateContentRequest" in body:
            body = body["generateContentRequest"]
        call = self.parse(body, model, False, {})
        return orjson.dumps({"totalTokens": call.sim.prompt_tokens})
