"""Circuit breakers and recent health, per provider (per process).

closed --N consecutive failures--> open --reset_seconds--> half-open
half-open lets one probe through: success closes, failure opens again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import median


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Window for the success rate and latency shown by GET /providers/{name}.
HEALTH_WINDOW_SECONDS = 300.0


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int
    reset_seconds: float
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    samples: deque[tuple[float, bool, float]] = field(default_factory=lambda: deque(maxlen=1024))

    def is_open(self, now: float) -> bool:
        """True while calls are refused (the plan skips the provider)."""
        if self.state is BreakerState.OPEN:
            return now - self.opened_at < self.reset_seconds
        if self.state is BreakerState.HALF_OPEN:
            return self.probing
        return False

    def acquire(self, now: float) -> bool:
        """Claim the right to call now; in half-open only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.reset_seconds:
                return False
            self.state = BreakerState.HALF_OPEN
        if self.probing:
            return False
        self.probing = True
        return True

    def record(self, ok: bool, latency_ms: float, now: float) -> None:
        self.samples.append((now, ok, latency_ms))
        if ok:
            self.state, self.failures, self.probing = BreakerState.CLOSED, 0, False
            return
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state, self.opened_at, self.probing = BreakerState.OPEN, now, False

    def release(self) -> None:
        """An attempt ended without a verdict on the provider (client's fault)."""
        self.probing = False

    def recent(self, now: float) -> tuple[float | None, float | None, int]:
        """(success rate, p50 latency ms, sample count) over the health window."""
        window = [(ok, ms) for t, ok, ms in self.samples if now - t <= HEALTH_WINDOW_SECONDS]
        if not window:
            return None, None, 0
        rate = sum(ok for ok, _ in window) / len(window)
        return rate, median(ms for _, ms in window), len(window)


class HealthBook:
    def __init__(self, failure_threshold: int, reset_seconds: float) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, provider: str) -> CircuitBreaker:
        found = self._breakers.get(provider)
        if found is None:
            found = self._breakers[provider] = CircuitBreaker(self._threshold, self._reset)
        return found

    def states(self) -> dict[str, BreakerState]:
        """Each provider's breaker state (providers never called have none yet)."""
        return {name: b.state for name, b in self._breakers.items()}

    def open_providers(self, now: float | None = None) -> frozenset[str]:
        now = time.monotonic() if now is None else now
        return frozenset(name for name, b in self._breakers.items() if b.is_open(now))

    def status(self, provider: str, configured: bool, now: float | None = None) -> str:
        """The contract's ProviderSummary.status."""
        if not configured:
            return "unconfigured"
        now = time.monotonic() if now is None else now
        breaker = self._breakers.get(provider)
        if breaker is None:
            return "configured"
        if breaker.state is BreakerState.OPEN and breaker.is_open(now):
            return "down"
        rate, _, count = breaker.recent(now)
        if breaker.state is not BreakerState.CLOSED or (count and rate is not None and rate < 0.9):
            return "degraded"
        return "configured"
