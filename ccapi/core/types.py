"""Types shared by every layer: usage, chat results, attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token counts as a provider reported them, in OpenAI's terms.

    `prompt_tokens` includes cached tokens (OpenAI's convention); providers that
    report cache reads separately (Anthropic) are summed into it by their
    translator. `cached_tokens` and `reasoning_tokens` are None when the
    provider does not say.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatResult:
    """A provider's complete (non-streaming) answer, already in OpenAI shape.

    `choices` is the OpenAI `choices` list: dicts with `index`, `message`
    (`role`, `content`, optional `tool_calls`, optional `refusal`),
    `finish_reason` (one of stop, length, tool_calls, content_filter), and
    `logprobs` (None unless given).
    """

    choices: list[dict[str, Any]]
    usage: Usage
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level fields of the upstream answer worth keeping (system_fingerprint, ...)."""


# finish_reason values that OpenAI defines; translators map onto these only.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")


@dataclass(slots=True)
class RequestRecord:
    """One model-calling request, as the ledger (and the access log) see it."""

    request_id: str
    route: str
    created: float
    key_id: str | None
    account_id: str | None
    requested_models: list[str]
    model: str | None
    provider: str | None
    attempts: list[dict[str, Any]]
    status: int
    error_type: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    input_cost: Decimal = Decimal(0)
    output_cost: Decimal = Decimal(0)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: bool = False
    # The upstream's share of latency_ms when it is not just the attempts'
    # (a stream: its attempts to the first event, then the relay to its end).
    upstream_ms: float | None = None
    # How each failed attempt failed (connect, timeout, http, ...; None for a
    # success), in the order of `attempts`, for the metrics. Kept apart
    # because `attempts` has the contract's shape. Empty when not known.
    attempt_kinds: list[str | None] = field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        return self.input_cost + self.output_cost

    @property
    def upstream_latency_ms(self) -> float:
        """The time spent waiting on providers: `upstream_ms` when set, else the attempts' sum."""
        if self.upstream_ms is not None:
            return self.upstream_ms
        return float(sum(a.get("latency_ms") or 0.0 for a in self.attempts))
