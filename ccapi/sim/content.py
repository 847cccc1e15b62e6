"""Deterministic answers of the upstream simulator, independent of wire format.

Each provider module turns its request into a `SimRequest` (prompt token count,
tools, limits) and renders the `Reply` computed here into its own JSON. Keeping
the decision logic in one place is what makes the three formats agree: the same
conversation yields the same text, the same tool call and the same token counts
whether it is asked through OpenAI, Anthropic or Gemini, streaming or not.

Rules (documented in docs/simulator.md):
- reply text: words of `WORDS`, cycled, 1 word = 1 token, `DEFAULT_TOKENS`
  words unless the fault key `tokens=N` says otherwise; choice i starts at word
  `5 * i` so that `n` choices differ;
- capped by the request's max tokens -> finish "length";
- prompt tokens: whitespace-separated words of every text in the request plus
  `TOKENS_PER_MESSAGE` per message (the system prompt counts as a message);
- JSON output and tool arguments are synthesized from the JSON schema
  (`synthesize`) and cost one token per `JSON_PIECE_CHARS` characters.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal

import orjson

__all__ = [
    "DEFAULT_TOKENS",
    "JSON_PIECE_CHARS",
    "TOKENS_PER_MESSAGE",
    "WORDS",
    "Choice",
    "InvalidRequest",
    "LastRole",
    "Reply",
    "SimRequest",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "count_words",
    "generate",
    "new_id",
    "prompt_tokens",
    "reply_words",
    "synthesize",
]

WORDS: Final[tuple[str, ...]] = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog",
    "while", "seven", "silver", "clocks", "count", "every", "quiet", "hour",
    "and", "bright", "rivers", "carry", "small", "paper", "boats", "toward",
    "distant", "green", "hills", "under", "open", "blue", "skies",
)  # fmt: skip
DEFAULT_TOKENS: Final = 12
TOKENS_PER_MESSAGE: Final = 4
JSON_PIECE_CHARS: Final = 4
CHOICE_WORD_OFFSET: Final = 5
# Keeps a mistaken `tokens=` from making one answer allocate gigabytes (a
# streamed token is a few hundred bytes on the wire).
MAX_TOKENS_PER_REPLY: Final = 100_000
# Replies up to this length are memoized; longer ones are rare (load tests) and
# would pin large tuples in the cache.
_CACHED_REPLY_TOKENS: Final = 1024

Finish = Literal["stop", "length", "tool_calls"]
LastRole = Literal["user", "tool", "other"]
"""Who spoke last: the user, a tool result, or anything else (assistant prefill)."""
ToolChoice = Literal["auto", "none", "required"]

# Unique ids without per-request syscalls: a random per-process prefix plus a
# counter. Real ids are opaque; uniqueness is what clients rely on.
_ID_PREFIX: Final = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


class InvalidRequest(ValueError):
    """A request that cannot be answered; the server replies with the provider's 400.

    `param` names the offending request field where the wire format has a place
    for it (OpenAI's `error.param`).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def new_id(prefix: str) -> str:
    """`prefix` + 24 opaque characters, unique within this process."""
    return f"{prefix}sim{_ID_PREFIX}{next(_ID_COUNTER):013d}"


@dataclass(slots=True)
class Tool:
    name: str
    parameters: Mapping[str, Any] | None


@dataclass(slots=True)
class SimRequest:
    """What the content rules need to know about a request, in neutral terms."""

    prompt_tokens: int
    last_role: LastRole = "user"
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    forced_tool: str | None = None
    parallel_allowed: bool = True
    max_tokens: int | None = None
    n: int = 1
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Any
    arguments_json: str
    pieces: tuple[str, ...]
    """`arguments_json` cut into the fragments a stream sends."""


@dataclass(slots=True)
class Choice:
    index: int
    text: str | None
    pieces: tuple[str, ...]
    """Fragments of `text` as streamed; `"".join(pieces) == text`."""
    tool_calls: list[ToolCall]
    completion_tokens: int
    finish: Finish


@dataclass(slots=True)
class Reply:
    choices: list[Choice]
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(texts: Iterable[str], messages: int) -> int:
    """The documented prompt-token rule: words of all texts + 4 per message."""
    return sum(len(t.split()) for t in texts) + TOKENS_PER_MESSAGE * messages


def reply_words(count: int, offset: int = 0) -> tuple[str, tuple[str, ...]]:
    """The reply text of `count` words starting at word `offset`, and its pieces.

    Almost every request asks for the default length, so short replies come
    from a cache instead of being joined word by word each time.
    """
    if count <= _CACHED_REPLY_TOKENS:
        return _cached_reply_words(count, offset)
    return _build_reply_words(count, offset)


def _build_reply_words(count: int, offset: int) -> tuple[str, tuple[str, ...]]:
    n = len(WORDS)
    pieces = tuple(WORDS[(offset + i) % n] if i == 0 else " " + WORDS[(offset + i) % n] for i in range(count))
    return "".join(pieces), pieces


_cached_reply_words = lru_cache(maxsize=256)(_build_reply_words)


def _json_pieces(text: str) -> tuple[str, ...]:
    return tuple(text[i : i + JSON_PIECE_CHARS] for i in range(0, len(text), JSON_PIECE_CHARS))


def _cap(pieces: tuple[str, ...], max_tokens: int | None, finish: Finish) -> tuple[tuple[str, ...], Finish]:
    if max_tokens is not None and len(pieces) > max_tokens:
        return pieces[: max(max_tokens, 0)], "length"
    return pieces, finish


def _choose_tools(req: SimRequest, parallel: bool) -> list[Tool]:
    """Which tools to call, or [] to answer with text (rules in the module doc)."""
    if not req.tools or req.tool_choice == "none":
        return []
    forced = req.tool_choice == "required" or req.forced_tool is not None
    if not forced and req.last_role != "user":
        # After a tool result (or an assistant prefill) the model answers in text.
        return []
    if req.forced_tool is not None:
        for tool in req.tools:
            if tool.name == req.forced_tool:
                return [tool]
        return [req.tools[0]]
    if parallel and req.parallel_allowed and len(req.tools) >= 2:
        return req.tools[:2]
    return [req.tools[0]]


def generate(
    req: SimRequest,
    *,
    tokens: int | None = None,
    parallel: bool = False,
    cached_tokens: int = 0,
    tool_id_prefix: str = "call_",
) -> Reply:
    """Compute the deterministic reply for `req` (see module doc for the rules)."""
    word_count = DEFAULT_TOKENS if tokens is None else min(tokens, MAX_TOKENS_PER_REPLY)
    tools = _choose_tools(req, parallel)
    choices: list[Choice] = []
    for index in range(max(req.n, 1)):
        if tools:
            calls = []
            call_tokens = 0
            for tool in tools:
                args = synthesize(tool.parameters) if tool.parameters else {}
                args_json = orjson.dumps(args).decode()
                pieces = _json_pieces(args_json)
                call_tokens += len(pieces) + 1  # +1: the function name
                calls.append(ToolCall(new_id(tool_id_prefix), tool.name, args, args_json, pieces))
            choices.append(Choice(index, None, (), calls, call_tokens, "tool_calls"))
            continue
        if req.json_mode or req.json_schema is not None:
            body = synthesize(req.json_schema) if req.json_schema is not None else {"result": "sample"}
            pieces, finish = _cap(_json_pieces(orjson.dumps(body).decode()), req.max_tokens, "stop")
        else:
            _, all_pieces = reply_words(word_count, CHOICE_WORD_OFFSET * index)
            pieces, finish = _cap(all_pieces, req.max_tokens, "stop")
        choices.append(Choice(index, "".join(pieces), pieces, [], len(pieces), finish))
    completion = sum(c.completion_tokens for c in choices)
    return Reply(choices, req.prompt_tokens, min(cached_tokens, req.prompt_tokens), completion)


# --- JSON schema synthesis -------------------------------------------------

_MAX_DEPTH: Final = 16
_MAX_ARRAY_ITEMS: Final = 8


def synthesize(schema: Mapping[str, Any] | None) -> Any:
    """A value that satisfies `schema` under the simulator's fixed rules.

    strings "sample", numbers and integers 1, booleans true, null None, enums
    and consts their first/only value, arrays max(1, minItems) items (at most
    8), objects their required properties (all properties when none are
    required), `$ref` to `#/$defs/...` or `#/definitions/...` resolved,
    anyOf/oneOf take the first non-null branch, allOf is merged. Type names are
    matched case-insensitively because Gemini's OpenAPI-style schemas say
    "OBJECT", "STRING", ...
    """
    if schema is None:
        return {}
    return _synth(schema, schema, 0)


def _resolve_ref(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        return {}
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _synth(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return _synth(_resolve_ref(str(schema["$ref"]), root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            chosen = next((b for b in branches if not _is_null_schema(b)), branches[0])
            return _synth(chosen, root, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {}
        for part in all_of:
            if isinstance(part, Mapping):
                part = _resolve_ref(str(part["$ref"]), root) if "$ref" in part else part
                _merge_schema(merged, part)
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        _merge_schema(merged, rest)
        return _synth(merged, root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        required = schema.get("required")
        names = [k for k in props if k in required] if isinstance(required, list) and required else list(props)
        return {name: _synth(props[name], root, depth + 1) for name in names}
    if kind == "array":
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [_synth(p, root, depth + 1) for p in prefix]
        min_items = schema.get("minItems")
        count = min(max(1, min_items if isinstance(min_items, int) else 1), _MAX_ARRAY_ITEMS)
        item = _synth(schema.get("items", {}), root, depth + 1)
        return [item for _ in range(count)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "sample"


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and str(schema.get("type", "")).lower() == "null"


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _merge_schema(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if key == "properties" and isinstance(value, Mapping):
            into.setdefault("properties", {}).update(value)
        elif key == "required" and isinstance(value, list):
            into.setdefault("required", [])
            into["required"] = [*into["required"], *[v for v in value if v not in into["required"]]]
        else:
            into.setdefault(key, value)
