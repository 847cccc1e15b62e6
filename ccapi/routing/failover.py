"""Run a plan: one attempt per candidate, in order, within the deadline.

A stream is peeked before it is committed: its first fragment is read here,
so that a failure before anything reached the client can still fail over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ccapi.catalog.catalog import ModelInfo
from ccapi.core.errors import (
    CCAPIError,
    GatewayTimeoutError,
    InvalidRequestError,
    PayloadTooLargeError,
    UpstreamError,
)
from ccapi.core.types import ChatResult
from ccapi.providers.base import AttemptError, ChatStream, ProviderAdapter, UpstreamCall
from ccapi.routing.health import HealthBook

log = logging.getLogger("ccapi.failover")


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    status: int | None
    error: str | None
    latency_ms: float
    # How it failed (AttemptError.kind: connect, timeout, http, malformed,
    # stream); None when it succeeded. Not in the contract's attempt object:
    # it reaches the metrics through RequestRecord.attempt_kinds.
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 1),
        }


@dataclass(slots=True)
class Served:
    model: ModelInfo
    attempts: list[Attempt]


@dataclass(slots=True)
class StreamServed(Served):
    stream: ChatStream
    iterator: Any  # the stream's async iterator, already advanced by one
    first: dict[str, Any] | None  # None: the stream ended without any fragment
    ttft_ms: float


_MIN_ATTEMPT_SECONDS = 0.01


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


class FailoverRunner:
    def __init__(
        self,
        adapters: Mapping[str, ProviderAdapter],
        health: HealthBook,
        attempt_timeout: float,
    ) -> None:
        self.adapters = adapters
        self.health = health
        self.attempt_timeout = attempt_timeout

    def _call(self, info: ModelInfo, body: dict[str, Any], deadline: Deadline) -> UpstreamCall:
        timeout = min(self.attempt_timeout, deadline.remaining())
        return UpstreamCall(
            body=body,
            upstream_model=info.upstream_model,
            timeout=timeout,
            idle_timeout=self.attempt_timeout,
            max_output_tokens=info.entry.max_output_tokens,
        )

    async def complete(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        attempts: list[Attempt] | None = None,
    ) -> tuple[Served, ChatResult]:
        """`attempts`, when given, is filled in as attempts are made (the caller
        sees them even when this raises)."""
        attempts = [] if attempts is None else attempts
        refusals: list[InvalidRequestError] = []
        for info in candidates:
            started = self._start(info, deadline, attempts)
            if started is None:
                continue
            adapter, breaker_now = started
            try:
                result = await adapter.complete(self._call(info, body, deadline))
            except AttemptError as exc:
                self._failed(info, exc, breaker_now, attempts)
                continue
            except InvalidRequestError as exc:
                self._refused(info, exc, refusals)
                continue
            self._succeeded(info, 200, breaker_now, attempts)
            return Served(info, attempts), result
        raise self._exhausted(attempts, deadline, refusals)

    async def open_stream(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        attempts: list[Attempt] | None = None,
    ) -> StreamServed:
        attempts = [] if attempts is None else attempts
        refusals: list[InvalidRequestError] = []
        for info in candidates:
            started = self._start(info, deadline, attempts)
            if started is None:
                continue
            adapter, breaker_now = started
            call = self._call(info, body, deadline)
            stream: ChatStream | None = None
            try:
                async with asyncio.timeout(call.timeout):
                    stream = await adapter.open_stream(call)
                    iterator = aiter(stream)
                    first: dict[str, Any] | None = await anext(iterator, None)
            except (AttemptError, TimeoutError) as exc:
                if stream is not None:
                    await stream.aclose()
                error = exc if isinstance(exc, AttemptError) else _first_byte_timeout(info, call.timeout)
                self._failed(info, error, breaker_now, attempts)
                continue
            except InvalidRequestError as exc:
                self._refused(info, exc, refusals)
                continue
            if first is None and not stream.finished:
                await stream.aclose()
                error = AttemptError("malformed", f"{info.provider.name} ended the stream without any event")
                self._failed(info, error, breaker_now, attempts)
                continue
            self._succeeded(info, 200, breaker_now, attempts)
            ttft = (time.monotonic() - breaker_now) * 1000
            return StreamServed(info, attempts, stream, iterator, first, ttft)
        raise self._exhausted(attempts, deadline, refusals)

    def _start(
        self, info: ModelInfo, deadline: Deadline, attempts: list[Attempt]
    ) -> tuple[ProviderAdapter, float] | None:
        # An attempt with only a few milliseconds left cannot succeed; it would
        # only add a doomed upstream call.
        if deadline.remaining() <= _MIN_ATTEMPT_SECONDS:
            raise self._timeout(attempts, deadline)
        adapter = self.adapters.get(info.provider.name)
        now = time.monotonic()
        if adapter is None or not self.health.breaker(info.provider.name).acquire(now):
            return None  # unconfigured, or its breaker is open: skipped, not an attempt
        return adapter, now

    def _succeeded(self, info: ModelInfo, status: int, started: float, attempts: list[Attempt]) -> None:
        now = time.monotonic()
        latency = (now - started) * 1000
        self.health.breaker(info.provider.name).record(True, latency, now)
        attempts.append(Attempt(info.provider.name, info.id, status, None, latency))

    def _failed(self, info: ModelInfo, exc: AttemptError, started: float, attempts: list[Attempt]) -> None:
        now = time.monotonic()
        latency = (now - started) * 1000
        breaker = self.health.breaker(info.provider.name)
        attempts.append(Attempt(info.provider.name, info.id, exc.status, exc.message, latency, exc.kind))
        if log.isEnabledFor(logging.DEBUG):
            fields = {"provider": info.provider.name, "model": info.id, "kind": exc.kind, "status": exc.status}
            log.debug("attempt failed: %s", exc.message, extra={"fields": {**fields, "latency_ms": round(latency, 1)}})
        if not exc.failover:
            breaker.release()
            raise _client_error(exc, attempts)
        breaker.record(False, latency, now)

    def _refused(self, info: ModelInfo, exc: InvalidRequestError, refusals: list[InvalidRequestError]) -> None:
        """The translator cannot express the request for this provider: nothing was
        called, so it is not an attempt; another candidate may take it."""
        self.health.breaker(info.provider.name).release()
        refusals.append(exc)

    def _exhausted(
        self, attempts: list[Attempt], deadline: Deadline, refusals: list[InvalidRequestError]
    ) -> CCAPIError:
        if deadline.remaining() <= 0:
            return self._timeout(attempts, deadline)
        if not attempts and refusals:
            return refusals[0]
        if not attempts:
            # Every candidate was skipped between planning and calling
            # (a half-open breaker already probing): nothing was called.
            return UpstreamError(
                "No candidate provider could be called right now; retry shortly.",
                code="all_providers_busy",
                details={"attempts": []},
            )
        summary = "; ".join(f"{a.model}: {a.error}" for a in attempts)
        return UpstreamError(
            f"Every candidate provider failed ({len(attempts)} attempts): {summary}",
            code="upstream_failed",
            details={"attempts": [a.to_dict() for a in attempts]},
        )

    def _timeout(self, attempts: list[Attempt], deadline: Deadline) -> GatewayTimeoutError:
        return GatewayTimeoutError(
            f"The request's deadline of {deadline.seconds:g}s passed after {len(attempts)} attempts.",
            code="request_timeout",
            details={"attempts": [a.to_dict() for a in attempts]},
        )


def _first_byte_timeout(info: ModelInfo, seconds: float) -> AttemptError:
    return AttemptError("timeout", f"{info.provider.name} sent no stream event within {seconds:g}s")


def _client_error(exc: AttemptError, attempts: list[Attempt]) -> CCAPIError:
    cls = PayloadTooLargeError if exc.client_status == 413 else InvalidRequestError
    return cls(
        exc.message,
        code="upstream_rejected_request",
        param=exc.param,
        details={"attempts": [a.to_dict() for a in attempts]},
    )
