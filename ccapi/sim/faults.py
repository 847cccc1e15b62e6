"""Fault spec grammar of the upstream simulator: parsing and layering only.

A spec is a comma-separated list of `key=value` pairs, e.g.
`status=503,retry_after=2,fail_times=3,id=cb1`. The same grammar is accepted
from four sources (config default, `/_fault/<spec>/` path prefix, the
`x-sim-fault` header, and a `model@<spec>` suffix); `merge_layers` applies them
in that order so later sources override earlier keys.

This module is pure (no I/O, no clock, no shared state) so that the parser can
be unit-tested exhaustively and reused by the gateway's tests to build specs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FAULT_KEYS",
    "NO_FAULTS",
    "FaultSpec",
    "FaultSpecError",
    "build_spec",
    "canonical",
    "merge_layers",
    "parse_pairs",
    "parse_spec",
    "split_model_suffix",
]


class FaultSpecError(ValueError):
    """A spec that does not follow the grammar; the message names the culprit."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# Value converters. Each takes the raw text and returns the typed value or
# raises FaultSpecError; they are looked up by key, never compiled per request.


def _non_negative_int(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise FaultSpecError(f"fault key '{key}' needs a non-negative integer, got '{raw}'", key) from None
    if value < 0:
        raise FaultSpecError(f"fault key '{key}' needs a non-negative integer, got '{raw}'", key)
    return value


def _status(key: str, raw: str) -> int:
    value = _non_negative_int(key, raw)
    if not 100 <= value <= 599:
        raise FaultSpecError(f"fault key '{key}' needs an HTTP status 100-599, got '{raw}'", key)
    return value


def _seconds(key: str, raw: str) -> str:
    # Kept as text: it is echoed verbatim into the retry-after header, and the
    # real APIs send integers there, but fractional values are accepted.
    try:
        value = float(raw)
    except ValueError:
        raise FaultSpecError(f"fault key '{key}' needs a number of seconds, got '{raw}'", key) from None
    if value < 0 or value != value:  # NaN check without importing math
        raise FaultSpecError(f"fault key '{key}' needs a non-negative number, got '{raw}'", key)
    return raw


def _flag(key: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise FaultSpecError(f"fault key '{key}' needs 1 or 0, got '{raw}'", key)


def _text(key: str, raw: str) -> str:
    if not raw:
        raise FaultSpecError(f"fault key '{key}' needs a value", key)
    return raw


def _any_text(key: str, raw: str) -> str:
    return raw


# key -> (converter, FaultSpec field name). `ttfb_ms` is an alias of
# `latency_ms`: both delay the response headers.
_CONVERTERS: Final[dict[str, tuple[Callable[[str, str], object], str]]] = {
    "status": (_status, "status"),
    "retry_after": (_seconds, "retry_after"),
    "latency_ms": (_non_negative_int, "latency_ms"),
    "ttfb_ms": (_non_negative_int, "latency_ms"),
    "chunk_delay_ms": (_non_negative_int, "chunk_delay_ms"),
    "reset": (_flag, "reset"),
    "cut_after": (_non_negative_int, "cut_after"),
    "malformed": (_flag, "malformed"),
    "content_type": (_text, "content_type"),
    "stream_error_after": (_non_negative_int, "stream_error_after"),
    "tokens": (_non_negative_int, "tokens"),
    "parallel": (_flag, "parallel"),
    "cached_tokens": (_non_negative_int, "cached_tokens"),
    "fail_times": (_non_negative_int, "fail_times"),
    "id": (_any_text, "id"),
    # Submit-then-poll jobs (Black Forest Labs): how long a task stays Pending, and the
    # status it ends in instead of Ready ("Error", "Content Moderated", ...).
    "pending_ms": (_non_negative_int, "pending_ms"),
    "job_status": (_text, "job_status"),
}

FAULT_KEYS: Final[frozenset[str]] = frozenset(_CONVERTERS)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """The effective faults for one request (all sources merged)."""

    status: int | None = None
    retry_after: str | None = None
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    reset: bool = False
    cut_after: int | None = None
    malformed: bool = False
    content_type: str | None = None
    stream_error_after: int | None = None
    tokens: int | None = None
    parallel: bool = False
    cached_tokens: int = 0
    fail_times: int | None = None
    id: str | None = None
    pending_ms: int = 0
    job_status: str | None = None
    key: str = ""
    """Canonical text of the merged spec: the `fail_times` counter key."""

    @property
    def breaks_stream(self) -> bool:
        """True when streaming must be written event by event (not in one write)."""
        return bool(
            self.chunk_delay_ms or self.cut_after is not None or self.stream_error_after is not None or self.malformed
        )

    def without_failures(self) -> FaultSpec:
        """The spec once `fail_times` is used up.

        Every failure field (status, retry_after, latency, chunk delay, reset,
        cut_after, malformed, content_type, stream_error_after) is dropped; the
        content controls (tokens, parallel, cached_tokens) keep applying since
        they shape the successful answer rather than break it.
        """
        return FaultSpec(
            tokens=self.tokens,
            parallel=self.parallel,
            cached_tokens=self.cached_tokens,
            fail_times=self.fail_times,
            id=self.id,
            key=self.key,
        )


NO_FAULTS: Final[FaultSpec] = FaultSpec()


def parse_pairs(text: str) -> dict[str, str]:
    """Split `k=v,k=v` into raw pairs; checks key names and syntax, not values.

    Whitespace around keys and values is ignored and empty items (`a=1,,b=2`,
    a trailing comma) are skipped, so hand-written specs are forgiving. A key
    given twice in one spec keeps its last value.
    """
    pairs: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise FaultSpecError(f"fault spec item '{item}' is not key=value", key or None)
        if key not in _CONVERTERS:
            raise FaultSpecError(f"unknown fault key '{key}'", key)
        pairs[key] = value.strip()
    return pairs


def parse_spec(text: str) -> dict[str, object]:
    """Parse one source's spec into typed values keyed by FaultSpec field.

    Raises FaultSpecError naming the offending key for unknown keys or bad
    values. The result is one layer for `merge_layers`.
    """
    layer: dict[str, object] = {}
    for key, raw in parse_pairs(text).items():
        convert, field = _CONVERTERS[key]
        layer[field] = convert(key, raw)
    return layer


def canonical(layer: Mapping[str, object]) -> str:
    """A stable text for a merged layer: sorted `field=value` pairs.

    Two requests whose effective faults are equal share this text and therefore
    one `fail_times` counter, whichever sources the keys came from.
    """
    parts = []
    for field in sorted(layer):
        value = layer[field]
        if isinstance(value, bool):
            value = int(value)
        parts.append(f"{field}={value}")
    return ",".join(parts)


def merge_layers(*layers: Mapping[str, object]) -> dict[str, object]:
    """Later layers override earlier ones key by key."""
    merged: dict[str, object] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def build_spec(merged: Mapping[str, object]) -> FaultSpec:
    """Turn a merged layer into the immutable FaultSpec (with its counter key)."""
    if not merged:
        return NO_FAULTS
    # Values were typed by parse_spec; the dict keys are FaultSpec field names.
    return FaultSpec(key=canonical(merged), **merged)  # type: ignore[arg-type]


def split_model_suffix(model: str) -> tuple[str, str]:
    """`gpt-4o-mini@status=500` -> (`gpt-4o-mini`, `status=500`).

    The split is on the first `@` so that the spec may itself contain `@` (in
    an `id`, say). A model without `@` returns an empty spec.
    """
    name, sep, spec = model.partition("@")
    if not sep:
        return model, ""
    return name, spec
