"""Token estimates, for when an upstream does not say (a cut stream) and for
reservations. Deliberately rough: about four characters per token, OpenAI's
rule of thumb for English text, plus OpenAI's per-message overhead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHARS_PER_TOKEN = 4
PER_MESSAGE_OVERHEAD = 4


def estimate_text_tokens(chars: int) -> int:
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    chars = 0
    messages = body.get("messages") or ()
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            chars += len(str(call.get("function", {}).get("arguments", "")))
    for tool in body.get("tools") or ():
        chars += len(str(tool))
    return estimate_text_tokens(chars) + PER_MESSAGE_OVERHEAD * len(messages)
