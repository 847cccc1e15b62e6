"""Requests-per-minute and tokens-per-minute limits over a sliding 60-second
window, per key and per account.

The window is kept as 60 one-second buckets: O(1) per request, exact to the
second (the granularity of `Retry-After`). This is the single-process
limiter; with CCAPI_REDIS_URL the same checks run in Redis so that a limit
holds across instances.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

WINDOW = 60


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # "key" | "account"
    id: str
    rpm: int | None
    tpm: int | None


@dataclass(slots=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    # Set when refused: what the 429's details say.
    scope: str | None = None
    limit_type: str | None = None
    limit: int | None = None
    reset_seconds: int = 0


class RateLimiter(Protocol):
    async def admit(self, limits: list[Limit], tokens: int, now: float | None = None) -> Verdict:
        """Count one request of `tokens` against every limit, or none if any is full."""
        ...

    async def peek(self, limits: list[Limit], now: float | None = None) -> Verdict:
        """The headers, without counting anything (catalog and admin calls)."""
        ...

    async def add_tokens(self, limits: list[Limit], tokens: int, at: float) -> None:
        """Correct the token count of a request admitted at `at` (estimate → actual)."""
        ...


def duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `0.5s`."""
    if seconds < 1:
        return f"{max(seconds, 0):.3g}s" if seconds > 0 else "0s"
    return _whole_duration(math.ceil(seconds))


@functools.lru_cache(maxsize=128)
def _whole_duration(whole: int) -> str:
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class _Window:
    """One limit's last 60 seconds: per-second buckets in time order, with
    running totals, so a check costs O(1) however busy the window is."""

    __slots__ = ("buckets", "requests", "tokens")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [second, requests, tokens], oldest first
        self.requests = 0
        self.tokens = 0

    def _expire(self, second: int) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= second - WINDOW:
            _, requests, tokens = buckets.popleft()
            self.requests -= requests
            self.tokens -= tokens

    def totals(self, second: int) -> tuple[int, int]:
        self._expire(second)
        return self.requests, self.tokens

    def _bucket(self, second: int) -> list[int]:
        buckets = self.buckets
        if buckets and buckets[-1][0] == second:
            return buckets[-1]
        if not buckets or buckets[-1][0] < second:
            buckets.append([second, 0, 0])
            return buckets[-1]
        for bucket in buckets:  # an earlier second (a token correction): rare
            if bucket[0] == second:
                return bucket
        bucket = [second, 0, 0]
        ordered = sorted([*buckets, bucket])
        buckets.clear()
        buckets.extend(ordered)
        return bucket

    def add(self, second: int, requests: int, tokens: int) -> None:
        self._expire(second)
        bucket = self._bucket(second)
        bucket[1] += requests
        self.requests += requests
        new_tokens = max(bucket[2] + tokens, 0)
        self.tokens += new_tokens - bucket[2]
        bucket[2] = new_tokens

    def set(self, second: int, kind: str, value: int) -> None:
        """A bucket's count as another store (Redis) has it."""
        bucket = self._bucket(second)
        index = 1 if kind == "requests" else 2
        if index == 1:
            self.requests += value - bucket[1]
        else:
            self.tokens += value - bucket[2]
        bucket[index] = value

    def reset_after(self, second: int, now: float, kind: str, need: int, limit: int) -> float:
        """Seconds until enough of the window has expired to admit `need` more."""
        self._expire(second)
        index = 1 if kind == "requests" else 2
        used = self.requests if index == 1 else self.tokens
        if used + need <= limit:
            return 0.0
        for bucket in self.buckets:
            used -= bucket[index]
            if used + need <= limit:
                return max(bucket[0] + WINDOW - now, 0.0)
        return float(WINDOW)

    def oldest_expiry(self, second: int, now: float, kind: str) -> float:
        """When the window next frees capacity (OpenAI: time until the limit resets)."""
        self._expire(second)
        index = 1 if kind == "requests" else 2
        for bucket in self.buckets:
            if bucket[index]:
                return max(bucket[0] + WINDOW - now, 0.0)
        return 0.0


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, limit: Limit) -> _Window:
        key = (limit.scope, limit.id)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        return window

    async def admit(self, limits: list[Limit], tokens: int, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        second = int(now)
        refused = self._first_refusal(limits, tokens, now, second)
        if refused is not None:
            return refused
        for limit in limits:
            self._window(limit).add(second, 1, tokens)
        return Verdict(True, self._headers(limits, now, second))

    async def peek(self, limits: list[Limit], now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        return Verdict(True, self._headers(limits, now, int(now)))

    async def add_tokens(self, limits: list[Limit], tokens: int, at: float) -> None:
        if time.time() - at >= WINDOW:
            return  # that second has left the window
        for limit in limits:
            if limit.tpm is not None:
                self._window(limit).add(int(at), 0, tokens)

    def _first_refusal(self, limits: list[Limit], tokens: int, now: float, second: int) -> Verdict | None:
        for limit in limits:
            window = self._window(limit)
            used_requests, used_tokens = window.totals(second)
            for kind, cap, used, need in (
                ("requests", limit.rpm, used_requests, 1),
                ("tokens", limit.tpm, used_tokens, tokens),
            ):
                if cap is None or used + need <= cap:
                    continue
                reset = window.reset_after(second, now, kind, need, cap) if need <= cap else float(WINDOW)
                return Verdict(
                    False,
                    self._headers(limits, now, second),
                    scope=limit.scope,
                    limit_type=kind,
                    limit=cap,
                    reset_seconds=max(1, math.ceil(reset)),
                )
        return None

    def _headers(self, limits: list[Limit], now: float, second: int) -> dict[str, str]:
        """The tighter of the key's and the account's limits, per kind. (On
        every answer to an account's key: kept lean.)"""
        headers: dict[str, str] = {}
        for kind, index, names in _KINDS:
            best_remaining = best_cap = -1
            best_window: _Window | None = None
            for limit in limits:
                cap = limit.rpm if index == 1 else limit.tpm
                if cap is None:
                    continue
                window = self._window(limit)
                window._expire(second)
                remaining = cap - (window.requests if index == 1 else window.tokens)
                if remaining < 0:
                    remaining = 0
                if best_window is None or remaining < best_remaining:
                    best_remaining, best_cap, best_window = remaining, cap, window
            if best_window is not None:
                reset = (
                    best_window.reset_after(second, now, kind, 1, best_cap)
                    if best_remaining == 0
                    else best_window.oldest_expiry(second, now, kind)
                )
                headers[names[0]] = str(best_cap)
                headers[names[1]] = str(best_remaining)
                headers[names[2]] = duration(reset)
        return headers


_KINDS = tuple(
    (kind, index, (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"))
    for kind, index in (("requests", 1), ("tokens", 2))
)
