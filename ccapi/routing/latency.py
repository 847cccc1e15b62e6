"""Latency protection beyond failover: a time-to-first-token deadline and hedging.

Pure: from the operator's settings, the request's headers and the planned
candidates to each candidate's limits. `FailoverRunner` applies them.

- TTFT deadline: an attempt whose first token (a stream's first event; for a
  whole answer, the upstream's first byte) has not arrived in time fails over.
- Hedge delay: when candidate i has not answered after its delay, candidate
  i+1 starts beside it; the first to answer wins and the other is cancelled.

Both come from `x-ccapi-ttft-timeout-ms` / `x-ccapi-hedge-ms` (which apply to
every candidate of the request), else from `latency` in the settings: a
default and overrides by model id or glob pattern (`openai/*`), the most
specific pattern that sets a value winning. 0 turns a limit off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.config import MAX_LATENCY_MS, LatencySettings, ModelLatencySettings
from ccapi.core.errors import InvalidRequestError

TTFT_HEADER = "x-ccapi-ttft-timeout-ms"
HEDGE_HEADER = "x-ccapi-hedge-ms"


@dataclass(frozen=True, slots=True)
class CandidateLatency:
    """One candidate's limits, in seconds; None: no limit."""

    ttft: float | None = None
    hedge: float | None = None
    # The TTFT deadline came from the client's header: missing it says nothing
    # about the provider's health (a client must not open a breaker for all).
    ttft_asked: bool = False


NO_LIMITS = CandidateLatency()


@dataclass(frozen=True, slots=True)
class RequestLatency:
    """What the request's headers ask for, in ms; None: not given (the
    settings decide), 0: off for this request."""

    ttft_ms: int | None = None
    hedge_ms: int | None = None


NOT_ASKED = RequestLatency()


def parse_header_ms(name: str, raw: str) -> int:
    text = raw.strip()
    # isascii: str.isdigit also takes digits such as '²' that int() refuses;
    # the length check keeps int() off a megabyte of digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) > MAX_LATENCY_MS:
        raise InvalidRequestError(
            f"Header '{name}' must be a whole number of milliseconds from 0 to {MAX_LATENCY_MS} "
            f"(0 turns it off); got {raw[:40]!r}.",
            code="invalid_header",
            param=name,
        )
    return int(text)


def request_latency(header: Callable[[str], str | None]) -> RequestLatency:
    """The request's latency headers (`header` looks one up by name); 400 on a bad value."""
    ttft, hedge = header(TTFT_HEADER), header(HEDGE_HEADER)
    if ttft is None and hedge is None:
        return NOT_ASKED
    return RequestLatency(
        ttft_ms=None if ttft is None else parse_header_ms(TTFT_HEADER, ttft),
        hedge_ms=None if hedge is None else parse_header_ms(HEDGE_HEADER, hedge),
    )


def _seconds(ms: int | None) -> float | None:
    return ms / 1000 if ms else None


def _specificity(pattern: str) -> tuple[bool, int]:
    # An exact id beats every pattern; then the pattern with more literal characters.
    wild = any(c in pattern for c in "*?[")
    return not wild, sum(c not in "*?[]" for c in pattern)


class LatencyTable:
    """The operator's limits per model id, resolved once per model and cached."""

    def __init__(self, settings: LatencySettings) -> None:
        self._default = settings
        # Most specific first, so the first match that sets a field wins.
        self._patterns: list[tuple[str, ModelLatencySettings]] = sorted(
            settings.models.items(), key=lambda item: _specificity(item[0]), reverse=True
        )
        self._cache: dict[str, CandidateLatency] = {}
        self.active = bool(settings.ttft_timeout_ms or settings.hedge_ms or settings.models)

    def for_model(self, model_id: str) -> CandidateLatency:
        found = self._cache.get(model_id)
        if found is None:
            found = self._cache[model_id] = self._resolve(model_id)
        return found

    def _resolve(self, model_id: str) -> CandidateLatency:
        matches = [limits for pattern, limits in self._patterns if fnmatchcase(model_id, pattern)]
        default = self._default
        ttft = next((m.ttft_timeout_ms for m in matches if m.ttft_timeout_ms is not None), default.ttft_timeout_ms)
        hedge = next((m.hedge_ms for m in matches if m.hedge_ms is not None), default.hedge_ms)
        return CandidateLatency(_seconds(ttft), _seconds(hedge))

    def plan(self, candidates: list[ModelInfo], asked: RequestLatency) -> list[CandidateLatency] | None:
        """Each candidate's limits; None when no limit applies to the request
        (the runner then takes its plain path: no timers, no tasks)."""
        if asked is NOT_ASKED and not self.active:
            return None
        limits = []
        for info in candidates:
            configured = self.for_model(info.id) if self.active else NO_LIMITS
            ttft = configured.ttft if asked.ttft_ms is None else _seconds(asked.ttft_ms)
            hedge = configured.hedge if asked.hedge_ms is None else _seconds(asked.hedge_ms)
            limits.append(CandidateLatency(ttft, hedge, ttft_asked=asked.ttft_ms is not None))
        if all(limit.ttft is None and limit.hedge is None for limit in limits):
            return None
        return limits


def latency_table(settings: LatencySettings, catalog: Catalog) -> LatencyTable:
    """The table for `create_app`; a pattern that matches no catalog model is
    a typo and stops the start (as an unknown setting does)."""
    for pattern in settings.models:
        if not any(fnmatchcase(model_id, pattern) for model_id in catalog.models):
            raise ValueError(f"latency.models: {pattern!r} matches no model in the catalog")
    return LatencyTable(settings)
