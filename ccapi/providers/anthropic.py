"""OpenAI chat completions <-> Anthropic Messages API, as pure translation.

No I/O here: the adapter sends `build_request(...)` to `POST /v1/messages`
with the header `anthropic-version: ANTHROPIC_VERSION`, and feeds what comes
back to `parse_response`, or event by event to an `AnthropicStreamTranslator`.
The output is only valid for that API version: 2026-10-21 removed
`temperature`, `top_p` and `top_k` (any value, even the default, is a 400).

Request mapping (OpenAI -> Anthropic)

    model                         -> model (the catalog's upstream name)
    system / developer messages   -> top-level `system`: ALL of them, wherever
                                     they sit, joined with a blank line in order
                                     (see "System messages" below)
    user / assistant messages     -> messages; consecutive same-role turns merged
    tool messages                 -> user turn of `tool_result` blocks; tool
                                     results first in a merged user turn
    content text parts            -> text blocks (empty ones skipped)
    image_url https://...         -> image block, source {type: url}
    image_url data:...;base64,... -> image block, source {type: base64, media_type}
    assistant tool_calls          -> tool_use blocks (arguments parsed to `input`)
    tools[].function              -> tools[] {name, description, input_schema, strict}
    tool_choice auto/none/required/named -> {type: auto}/{type: none}/{type: any}/
                                     {type: tool, name}
    parallel_tool_calls=false     -> tool_choice.disable_parallel_tool_use=true
    max_completion_tokens, else max_tokens, else default -> max_tokens
    stop (str or list)            -> stop_sequences (empty strings skipped)
    safety_identifier, else user  -> metadata.user_id
    stream=true                   -> stream=true
    response_format json_schema   -> output_config.format {type: json_schema, schema}
    response_format json_object, or json_schema without a schema
                                  -> forced tool JSON_TOOL_NAME (see below)
    response_format text          -> nothing

Dropped without error (dropping does not change what the client asked for):

    temperature, top_p   removed by API 2026-10-21 (400 at any value); even on
                         2023-06-01 Claude >= 4.7 took only the defaults. They
                         tune sampling randomness, not what is asked
    seed                 OpenAI itself only promises best-effort determinism
    presence_penalty, frequency_penalty   soft sampling nudges, no equivalent
    stream_options       the gateway decides usage reporting itself
    service_tier, store, metadata, prediction, prompt_cache_key, verbosity,
    reasoning_effort     OpenAI-side features; Anthropic's `effort`/`thinking`
                         are model-dependent and 400 on models without them
    n=1, logprobs=false, top_logprobs=0, logit_bias={}   the no-op values
    image_url.detail, message `name`   no Anthropic field
    any other unknown field

Refused with InvalidRequestError (400, `param` names the field):

    n > 1                 Anthropic returns exactly one answer per request
    logprobs=true         Anthropic returns no log probabilities
    top_logprobs > 0      same
    logit_bias non-empty  no token biasing; OpenAI token ids mean nothing to Claude
    modalities != [text], audio    Claude answers in text only
    web_search_options    dropping it would silently answer without searching
    functions, function_call       legacy API, not translated; use tools
    tools[i].type != function      only function tools translate
    tools[i] named JSON_TOOL_NAME  reserved for JSON mode
    content part types other than text/image_url, unusable image URLs,
    tool_call arguments that are not a JSON object, a conversation with no
    user/assistant message (Anthropic needs at least one)

System messages: Anthropic has a top-level `system`; `role: "system"` inside
`messages` exists only from Claude Opus 4.8 on and only right after a user
turn (older models 400 with "role 'system' is not supported on this model").
The translator cannot know the model's generation, so every system/developer
message is hoisted, in order. A mid-conversation instruction thus applies from
the start, which is what most OpenAI clients expect anyway.

JSON mode: Anthropic structured outputs (`output_config.format`) require
`additionalProperties: false` on every object, so "any JSON object"
(`json_object`) cannot be expressed natively. It becomes a tool named
JSON_TOOL_NAME whose `input_schema` is `{"type": "object"}`, forced with
tool_choice (or `any` over it plus the client's tools when the client allowed
`auto`); `parse_response` and the stream translator turn that tool's input back
into message content and finish_reason `stop`. `json_schema` goes native and
its schema is sent unchanged: a schema outside Anthropic's supported subset is
answered by Anthropic's own 400. With `tool_choice` required/named the client
wants a tool call, so no JSON tool is added.

Response mapping (Anthropic -> OpenAI), one choice:

    text blocks        -> content, joined ("" when empty, None with tool calls)
    tool_use           -> tool_calls (arguments = compact JSON)
    JSON_TOOL_NAME use -> content (compact JSON); text blocks then dropped
    thinking / redacted_thinking / server-tool blocks -> ignored (OpenAI chat
                          has no field for them; the count is reasoning_tokens)
    stop_details.explanation (refusal) -> message.refusal
    no `content` list  -> AttemptError("malformed") (failover-able garbage)

    stop_reason end_turn, stop_sequence, pause_turn -> stop
                max_tokens, model_context_window_exceeded -> length
                tool_use -> tool_calls (stop when only the JSON tool was used)
                refusal -> content_filter
                anything else / missing -> stop

    usage: prompt_tokens = input_tokens + cache_read_input_tokens
           + cache_creation_input_tokens; completion_tokens = output_tokens;
           cached_tokens = cache_read_input_tokens; cache_creation_tokens =
           cache_creation_input_tokens; reasoning_tokens =
           output_tokens_details.thinking_tokens

Sources: anthropic-sdk-python 2.14.0 types (message_create_params, stop_reason,
usage, message_delta_usage, tool_choice_*_param, output_config_param,
raw_*_event); platform.claude.com/docs/en/api/migration-2026-10-21;
.../build-with-claude/structured-outputs; .../mid-conversation-system-messages;
the SDK's lib/_parse/_transform.py (schema subset).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ccapi.core.errors import InvalidRequestError
from ccapi.core.types import ChatResult, Usage
from ccapi.providers.base import AttemptError
from ccapi.providers.base import StreamError as BaseStreamError

ANTHROPIC_VERSION = "2026-10-21"
"""The `anthropic-version` header the adapter must send with build_request's body."""

JSON_TOOL_NAME = "ccapi_json_response"
"""Reserved tool name carrying the answer in JSON mode (`json_object`)."""


def _json_tool() -> dict[str, Any]:
    # Not strict: strict tools, like output_config.format, need additionalProperties: false.
    return {
        "name": JSON_TOOL_NAME,
        "description": "Give your complete answer as a JSON object: the input of this tool is the answer.",
        "input_schema": {"type": "object"},
    }


# Anthropic's base64 image source accepts exactly these (Base64ImageSourceParam).
_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

_FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # pause_turn: a long server-tool turn paused; the text so far is a normal answer.
    "pause_turn": "stop",
    "max_tokens": "length",
    # The output was cut because the context window filled: a length stop.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# --------------------------------------------------------------------------- request


def _above_one(value: Any) -> bool:
    return isinstance(value, int) and value > 1


def _truthy(value: Any) -> bool:
    return bool(value)


def _present(value: Any) -> bool:
    return value is not None


def _not_text_only(value: Any) -> bool:
    return isinstance(value, list) and any(m != "text" for m in value)


# (param, predicate on its value, why Anthropic cannot honour it)
_REFUSED: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("n", _above_one, "Anthropic returns exactly one choice per request; n must be 1"),
    ("logprobs", _truthy, "Anthropic does not return log probabilities"),
    ("top_logprobs", _truthy, "Anthropic does not return log probabilities"),
    ("logit_bias", _truthy, "Anthropic has no token biasing"),
    ("modalities", _not_text_only, "Anthropic models answer in text only"),
    ("audio", _present, "Anthropic models answer in text only"),
    ("web_search_options", _present, "web search is not translated for Anthropic"),
    ("functions", _present, "the legacy functions API is not translated; use tools"),
    (
        "function_call",
        _present,
        "the legacy functions API is not translated; use tool_choice",
    ),
)


def build_request(body: dict[str, Any], upstream_model: str, *, default_max_tokens: int) -> dict[str, Any]:
    """The Anthropic Messages body for the client's OpenAI chat request."""
    _refuse_unsupported(body)
    system, messages = _convert_messages(body.get("messages") or [])
    request: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if system:
        request["system"] = system
    _add_tools(request, body)
    output_format = _output_format(body)
    if output_format is not None:
        request["output_config"] = {"format": output_format}
    stop_sequences = _stop_sequences(body.get("stop"))
    if stop_sequences:
        request["stop_sequences"] = stop_sequences
    user_id = body.get("safety_identifier") or body.get("user")
    if isinstance(user_id, str) and user_id:
        request["metadata"] = {"user_id": user_id}
    if body.get("stream"):
        request["stream"] = True
    return request


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for param, applies, why in _REFUSED:
        if applies(body.get(param)):
            raise InvalidRequestError(f"`{param}` is not supported for Anthropic models: {why}.", param=param)


def _max_tokens(body: dict[str, Any], default: int) -> int:
    # max_completion_tokens is OpenAI's current name; max_tokens the deprecated one.
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def _stop_sequences(stop: Any) -> list[str]:
    items = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    return [s for s in items if isinstance(s, str) and s]


# --- messages


def _convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            text = _joined_text(message.get("content"), f"{where}.content")
            if text:
                system_parts.append(text)
        elif role == "user":
            _append_turn(turns, "user", _user_blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result_block(message, where)])
        else:
            raise InvalidRequestError(
                f"Message role {role!r} cannot be sent to Anthropic.",
                param=f"{where}.role",
            )
    _trim_final_assistant(turns)
    if not turns:
        raise InvalidRequestError(
            "Anthropic needs at least one user or assistant message besides the system prompt.",
            param="messages",
        )
    return "\n\n".join(system_parts), turns


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # Anthropic rejects empty content ("text content blocks must be non-empty").
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})
    if role == "user":
        # Anthropic wants tool_result blocks first in a user turn, any text after them.
        turns[-1]["content"].sort(key=lambda block: block.get("type") != "tool_result")


def _trim_final_assistant(turns: list[dict[str, Any]]) -> None:
    # A trailing assistant turn is a prefill, and Anthropic 400s with "final
    # assistant content cannot end with trailing whitespace".
    if not turns or turns[-1]["role"] != "assistant":
        return
    blocks = turns[-1]["content"]
    if blocks[-1].get("type") == "text":
        blocks[-1]["text"] = blocks[-1]["text"].rstrip()
        if not blocks[-1]["text"]:
            blocks.pop()
    if not blocks:
        turns.pop()


def _text_block(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def _joined_text(content: Any, where: str) -> str:
    """A system/tool/assistant content (string or text parts) as one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        # Refusal parts (an assistant's earlier refusal) carry no answer text: skipped.
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind != "refusal":
            raise InvalidRequestError(
                f"Content part type {kind!r} is not allowed here.",
                param=f"{where}[{j}].type",
            )
    return "".join(texts)


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _text_block(content or "")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            blocks += _text_block(part.get("text") or "")
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{where}[{j}].image_url.url"))
        else:
            raise InvalidRequestError(
                f"Content part type {kind!r} cannot be sent to Anthropic.",
                param=f"{where}[{j}].type",
            )
    return blocks


def _image_block(image_url: Any, where: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequestError("image_url.url must be a string.", param=where)
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        return {"type": "image", "source": _base64_source(url, where)}
    raise InvalidRequestError("Image URLs must be http(s) URLs or base64 data: URLs.", param=where)


def _base64_source(url: str, where: str) -> dict[str, Any]:
    header, _, data = url[len("data:") :].partition(",")
    media_type, *params = header.split(";")
    media_type = media_type.strip().lower()
    if media_type == "image/jpg":  # common misspelling; the bytes are JPEG
        media_type = "image/jpeg"
    if "base64" not in params or not data:
        raise InvalidRequestError("Image data: URLs must be base64-encoded.", param=where)
    if media_type not in _IMAGE_MEDIA_TYPES:
        raise InvalidRequestError(
            f"Anthropic accepts images as {', '.join(sorted(_IMAGE_MEDIA_TYPES))}, not {media_type or 'untyped'}.",
            param=where,
        )
    return {"type": "base64", "media_type": media_type, "data": data}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _text_block(_joined_text(message.get("content"), f"{where}.content"))
    for k, call in enumerate(message.get("tool_calls") or []):
        blocks.append(_tool_use_block(call, f"{where}.tool_calls[{k}]"))
    return blocks


def _tool_use_block(call: dict[str, Any], where: str) -> dict[str, Any]:
    if call.get("type", "function") != "function":
        raise InvalidRequestError("Only function tool calls translate to Anthropic.", param=f"{where}.type")
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": _arguments_object(function.get("arguments"), f"{where}.function.arguments"),
    }


def _arguments_object(arguments: Any, where: str) -> dict[str, Any]:
    # Anthropic's tool_use.input is an object, OpenAI's arguments a JSON string.
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # some clients send "" for a call without arguments
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object to send them to Anthropic.",
            param=where,
        )
    return parsed


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id"),
    }
    text = _joined_text(message.get("content"), f"{where}.content")
    # content is optional on tool_result; an empty text block would be rejected.
    if text:
        block["content"] = text
    return block


# --- tools and JSON mode


def _add_tools(request: dict[str, Any], body: dict[str, Any]) -> None:
    tools = _convert_tools(body.get("tools") or [])
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if _wants_json_tool(body):
        request["tools"] = [*tools, _json_tool()]
        request["tool_choice"] = _json_tool_choice(bool(tools) and choice != "none", parallel)
    elif tools:
        request["tools"] = tools
        tool_choice = _tool_choice(choice, parallel)
        if tool_choice is not None:
            request["tool_choice"] = tool_choice


def _convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for k, tool in enumerate(tools):
        if tool.get("type", "function") != "function":
            raise InvalidRequestError("Only function tools translate to Anthropic.", param=f"tools[{k}].type")
        function = tool.get("function") or {}
        if function.get("name") == JSON_TOOL_NAME:
            raise InvalidRequestError(
                f"The tool name {JSON_TOOL_NAME} is reserved.",
                param=f"tools[{k}].function.name",
            )
        # Anthropic's input_schema must be an object schema; OpenAI allows omitting it.
        schema = dict(function.get("parameters") or {"properties": {}})
        schema.setdefault("type", "object")
        out: dict[str, Any] = {"name": function.get("name"), "input_schema": schema}
        if function.get("description"):
            out["description"] = function["description"]
        if function.get("strict"):
            out["strict"] = True
        converted.append(out)
    return converted


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice == "none":
        # ToolChoiceNoneParam has no disable_parallel_tool_use field.
        return {"type": "none"}
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise InvalidRequestError(
            "tool_choice must be none, auto, required or a function.",
            param="tool_choice",
        )
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # Anthropic's default is auto: send nothing
    return out


def _wants_json_tool(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema") or _output_format(body) is not None:
        return False
    # With tool_choice required/named the client wants a tool call, not JSON content.
    return not body.get("tools") or body.get("tool_choice") in (None, "auto", "none")


def _json_tool_choice(client_tools_allowed: bool, parallel: Any) -> dict[str, Any]:
    if not client_tools_allowed:
        return {
            "type": "tool",
            "name": JSON_TOOL_NAME,
            "disable_parallel_tool_use": True,
        }
    # "Call one of your tools or answer in JSON": any tool, the JSON tool being the answer.
    out: dict[str, Any] = {"type": "any"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind not in (None, "text", "json_object", "json_schema"):
        raise InvalidRequestError(
            f"response_format type {kind!r} is not supported.",
            param="response_format.type",
        )
    schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
    if not isinstance(schema, dict):
        return None
    return {"type": "json_schema", "schema": schema}


# --------------------------------------------------------------------------- response


def parse_response(data: dict[str, Any]) -> ChatResult:
    """One OpenAI choice from an Anthropic `message` object."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise AttemptError("malformed", "Anthropic answer has no content list")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    json_answer: str | None = None
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            json_answer = _compact_json(block.get("input"))
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block))
        # thinking, redacted_thinking and server-tool blocks have no OpenAI field.
    message: dict[str, Any] = {
        "role": "assistant",
        "content": _content(texts, tool_calls, json_answer),
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    stop_reason = data.get("stop_reason")
    details = data.get("stop_details")
    explanation = details.get("explanation") if isinstance(details, dict) else None
    if stop_reason == "refusal" and isinstance(explanation, str) and explanation:
        message["refusal"] = explanation
    usage = Usage()
    _apply_usage(usage, data.get("usage"))
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": _finish_reason(stop_reason, bool(tool_calls)),
        "logprobs": None,
    }
    return ChatResult(choices=[choice], usage=usage)


def _content(texts: list[str], tool_calls: list[dict[str, Any]], json_answer: str | None) -> str | None:
    if json_answer is not None:
        return json_answer  # any text beside it would make the content invalid JSON
    text = "".join(texts)
    return None if not text and tool_calls else text


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": _compact_json(block.get("input")),
        },
    }


def _compact_json(value: Any) -> str:
    return json.dumps(value if value is not None else {}, separators=(",", ":"), ensure_ascii=False)


def _finish_reason(stop_reason: Any, has_tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not has_tool_calls:
        return "stop"  # only the JSON tool was used: a plain answer
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _apply_usage(usage: Usage, raw: Any) -> None:
    """Fold an Anthropic usage object into `usage`; absent fields keep their value.

    Stream `message_delta` usage is cumulative and may carry only output_tokens,
    so prompt_tokens is recomputed from its parts rather than overwritten.
    """
    if not isinstance(raw, dict):
        return
    uncached = usage.prompt_tokens - (usage.cached_tokens or 0) - (usage.cache_creation_tokens or 0)
    input_tokens = _int(raw.get("input_tokens"))
    if input_tokens is not None:
        uncached = input_tokens
    cache_read = _int(raw.get("cache_read_input_tokens"))
    if cache_read is not None:
        usage.cached_tokens = cache_read
    cache_write = _int(raw.get("cache_creation_input_tokens"))
    if cache_write is not None:
        usage.cache_creation_tokens = cache_write
    # Anthropic: "total input tokens is the sum of input_tokens, cache_creation_input_tokens
    # and cache_read_input_tokens"; OpenAI's prompt_tokens includes cached tokens.
    usage.prompt_tokens = uncached + (usage.cached_tokens or 0) + (usage.cache_creation_tokens or 0)
    output_tokens = _int(raw.get("output_tokens"))
    if output_tokens is not None:
        usage.completion_tokens = output_tokens
    details = raw.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else None
    if thinking is not None:
        usage.reasoning_tokens = thinking


# --------------------------------------------------------------------------- stream


class StreamError(BaseStreamError):
    """Anthropic sent an `error` event mid-stream (e.g. overloaded_error)."""

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def _fragment(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


class AnthropicStreamTranslator:
    """Anthropic SSE events -> OpenAI chat.completion.chunk fragments.

    Tool calls are numbered from 0 in the order they start (OpenAI's
    `tool_calls[].index`), independent of Anthropic's content-block index,
    which also counts text and thinking blocks. The JSON-mode tool's input is
    streamed as content. Unknown event and block types are ignored: Anthropic
    may add streaming event types within an API version (versioning docs).
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self._started = False
        # Anthropic block index -> "text", "json" or the OpenAI tool-call index.
        self._blocks: dict[int, str | int] = {}
        self._tool_calls = 0

    def feed(self, event: str | None, data: Any) -> list[dict[str, Any]]:
        payload: dict[str, Any] = data if isinstance(data, dict) else {}
        kind = payload.get("type") or event
        if kind == "message_start":
            _apply_usage(self.usage, (payload.get("message") or {}).get("usage"))
            return self._start()
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "error":
            raise _stream_error(payload)
        return []  # ping, content_block_stop, message_stop, and anything new

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [_fragment({"role": "assistant", "content": ""})]

    def _emit(self, delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [*self._start(), _fragment(delta, finish_reason)]

    def _block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index = _int(payload.get("index"))
        block = payload.get("content_block") or {}
        kind = block.get("type")
        if index is None:
            return []
        if kind == "text":
            self._blocks[index] = "text"
            return self._emit({"content": block["text"]}) if block.get("text") else []
        if kind == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            self._blocks[index] = "json"
            return []
        if kind == "tool_use":
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = position
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._emit({"tool_calls": [call]})
        return []  # thinking, redacted_thinking, server tools

    def _block_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index = _int(payload.get("index"))
        delta = payload.get("delta") or {}
        target = self._blocks.get(index) if index is not None else None
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._emit({"content": delta["text"]})
        if kind != "input_json_delta" or not delta.get("partial_json"):
            return []  # thinking_delta, signature_delta, citations_delta, empty parts
        if target == "json":
            return self._emit({"content": delta["partial_json"]})
        if isinstance(target, int):
            return self._emit(
                {
                    "tool_calls": [
                        {
                            "index": target,
                            "function": {"arguments": delta["partial_json"]},
                        }
                    ]
                }
            )
        return []

    def _message_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        _apply_usage(self.usage, payload.get("usage"))
        stop_reason = (payload.get("delta") or {}).get("stop_reason")
        if stop_reason is None:
            return []
        return self._emit({}, _finish_reason(stop_reason, self._tool_calls > 0))


def stream_translator_for(body: dict[str, Any]) -> AnthropicStreamTranslator:
    """A fresh translator for one streamed request built by build_request(body).

    The JSON-mode tool has a reserved name, so the translator needs nothing from
    the body today; adapters call this so that per-request state can be added
    without changing them.
    """
    del body
    return AnthropicStreamTranslator()


def _stream_error(payload: dict[str, Any]) -> StreamError:
    error = payload.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    message = _error_text(payload) or "Anthropic sent an error event without details"
    return StreamError(message, error_type=error_type if isinstance(error_type, str) else None)


# --------------------------------------------------------------------------- errors


def error_message(status: int, data: Any) -> str:
    """A human message from an Anthropic error body: {"type": "error", "error": {"type", "message"}}.

    `data` may be the parsed body, raw text or bytes (a proxy's HTML page, say).
    """
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return " ".join(data.split())[:300] or f"Anthropic returned HTTP {status}"
    return _error_text(data) or f"Anthropic returned HTTP {status}"


def _error_text(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str):
        return error.strip() or None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    error_type = error.get("type")
    text = message.strip() if isinstance(message, str) and message.strip() else None
    kind = error_type if isinstance(error_type, str) and error_type else None
    result = f"{kind}: {text}" if kind and text else text or kind
    request_id = data.get("request_id")  # worth quoting to Anthropic support
    if result and isinstance(request_id, str) and request_id:
        return f"{result} (request_id {request_id})"
    return result
