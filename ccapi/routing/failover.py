"""Run a plan: one attempt per candidate, in order, within the deadline.

A stream is peeked before it is committed: its first fragment is read here,
so that a failure before anything reached the client can still fail over.
With latency limits (routing/latency.py) an attempt also fails over when its
first token misses the TTFT deadline, and a hedge delay starts the next
candidate beside a slow one; without them no timer or task is added.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from ccapi.catalog.catalog import ModelInfo
from ccapi.core.errors import (
    CCAPIError,
    GatewayTimeoutError,
    InvalidRequestError,
    PayloadTooLargeError,
    UpstreamError,
)
from ccapi.core.types import ChatResult
from ccapi.providers.base import AttemptError, ChatStream, ProviderAdapter, UpstreamCall, ttft_missed
from ccapi.routing.health import HealthBook
from ccapi.routing.latency import NO_LIMITS, CandidateLatency

log = logging.getLogger("ccapi.failover")


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    status: int | None
    error: str | None
    latency_ms: float
    # USD this attempt delivered (set by the chat service for the ledger);
    # None where it is not priced per attempt.
    cost: Decimal | None = None
    # How it failed (AttemptError.kind: connect, timeout, http, malformed,
    # stream, ttft); None when it succeeded. Not in the contract's attempt
    # object: it reaches the metrics through RequestRecord.attempt_kinds.
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.cost is not None:
            out["cost"] = float(self.cost)
        return out


@dataclass(slots=True)
class Served:
    model: ModelInfo
    attempts: list[Attempt]


@dataclass(slots=True)
class Peeked:
    """A stream whose first fragment has been read (not yet sent)."""

    stream: ChatStream
    iterator: Any  # the stream's async iterator, already advanced by one
    first: dict[str, Any] | None  # None: the stream ended without any fragment


@dataclass(slots=True)
class StreamServed(Served):
    stream: ChatStream
    iterator: Any  # the stream's async iterator, already advanced by one
    first: dict[str, Any] | None  # None: the stream ended without any fragment
    ttft_ms: float


T = TypeVar("T")


@dataclass(slots=True)
class _Won(Generic[T]):
    model: ModelInfo
    attempts: list[Attempt]
    value: T
    started: float


# One attempt: call the adapter and return what wins the race (a whole
# answer, or a peeked stream); raise AttemptError / InvalidRequestError.
_AttemptFn = Callable[[ProviderAdapter, ModelInfo, UpstreamCall], Coroutine[Any, Any, T]]


@dataclass(slots=True)
class _Running:
    info: ModelInfo
    started: float
    limits: CandidateLatency


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

    def _call(
        self, info: ModelInfo, body: dict[str, Any], deadline: Deadline, limits: CandidateLatency
    ) -> UpstreamCall:
        timeout = min(self.attempt_timeout, deadline.remaining())
        return UpstreamCall(
            body=body,
            upstream_model=info.upstream_model,
            timeout=timeout,
            idle_timeout=self.attempt_timeout,
            max_output_tokens=info.entry.max_output_tokens,
            first_byte_timeout=limits.ttft if limits.ttft is not None and limits.ttft < timeout else None,
        )

    async def complete(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        limits: list[CandidateLatency] | None = None,
        attempts: list[Attempt] | None = None,
    ) -> tuple[Served, ChatResult]:
        """`attempts`, when given, is filled in as attempts are made (the caller
        sees them even when this raises)."""
        won = await self._run(candidates, body, deadline, limits, _complete, _discard_result, attempts)
        return Served(won.model, won.attempts), won.value

    async def open_stream(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        limits: list[CandidateLatency] | None = None,
        attempts: list[Attempt] | None = None,
    ) -> StreamServed:
        won = await self._run(candidates, body, deadline, limits, _peek, _discard_stream, attempts)
        ttft = (time.monotonic() - won.started) * 1000
        peeked = won.value
        return StreamServed(won.model, won.attempts, peeked.stream, peeked.iterator, peeked.first, ttft)

    async def _run(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        limits: list[CandidateLatency] | None,
        attempt: _AttemptFn[T],
        discard: Callable[[ModelInfo, T], Awaitable[Decimal]],
        attempts: list[Attempt] | None = None,
    ) -> _Won[T]:
        """One candidate after another; with a hedge delay, see `_race`."""
        attempts = [] if attempts is None else attempts
        if limits is not None and any(limit.hedge is not None for limit in limits[:-1]):
            return await self._race(candidates, body, deadline, limits, attempt, discard, attempts)
        refusals: list[InvalidRequestError] = []
        for i, info in enumerate(candidates):
            started = self._start(info, deadline, attempts)
            if started is None:
                continue
            adapter, breaker_now = started
            limit = NO_LIMITS if limits is None else limits[i]
            try:
                value = await attempt(adapter, info, self._call(info, body, deadline, limit))
            except AttemptError as exc:
                self._failed(info, exc, breaker_now, attempts, limit)
                continue
            except InvalidRequestError as exc:
                self._refused(info, exc, refusals)
                continue
            self._succeeded(info, 200, breaker_now, attempts)
            return _Won(info, attempts, value, breaker_now)
        raise self._exhausted(attempts, deadline, refusals)

    async def _race(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        limits: list[CandidateLatency],
        attempt: _AttemptFn[T],
        discard: Callable[[ModelInfo, T], Awaitable[Decimal]],
        attempts: list[Attempt],
    ) -> _Won[T]:
        """Hedged: when the latest attempt has not answered within its hedge
        delay, the next candidate starts beside it; a failed attempt is
        replaced at once. The first to answer wins; the others are cancelled
        (their connections closed)."""
        refusals: list[InvalidRequestError] = []
        running: dict[asyncio.Task[T], _Running] = {}
        waiting = iter(range(len(candidates)))
        hedge_at: float | None = None

        def launch() -> None:
            nonlocal hedge_at
            hedge_at = None
            for i in waiting:
                info = candidates[i]
                started = self._start(info, deadline, attempts)
                if started is None:
                    continue
                adapter, breaker_now = started
                call = self._call(info, body, deadline, limits[i])
                running[asyncio.create_task(attempt(adapter, info, call))] = _Running(info, breaker_now, limits[i])
                hedge = limits[i].hedge
                if hedge is not None:
                    hedge_at = breaker_now + hedge
                return

        try:
            launch()
            while running:
                wait = deadline.remaining()
                if hedge_at is not None:
                    wait = min(wait, hedge_at - time.monotonic())
                done, _ = await asyncio.wait(running, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    if deadline.remaining() <= 0:
                        await self._cancel(running, attempts, discard, "cancelled: the request's deadline passed")
                        raise self._timeout(attempts, deadline)
                    launch()  # the hedge delay passed
                    continue
                failed = 0
                for task in [t for t in running if t in done]:  # in launch order
                    run = running.pop(task)
                    try:
                        value = task.result()
                    except AttemptError as exc:
                        if not exc.failover:  # the request's fault: no other attempt will do better
                            await self._cancel(running, attempts, discard, "cancelled: the request was refused")
                        self._failed(run.info, exc, run.started, attempts, run.limits)
                        failed += 1
                        continue
                    except InvalidRequestError as exc:
                        self._refused(run.info, exc, refusals)
                        failed += 1
                        continue
                    self._succeeded(run.info, 200, run.started, attempts)
                    won = _Won(run.info, attempts, value, run.started)
                    await self._cancel(running, attempts, discard, f"cancelled: {run.info.id} answered first")
                    return won
                for _ in range(failed):
                    launch()
            raise self._exhausted(attempts, deadline, refusals)
        finally:
            # Our own task was cancelled (the client left), or a bug: leave nothing behind.
            await self._cancel(running, attempts, discard, "cancelled")

    async def _cancel(
        self,
        running: dict[asyncio.Task[T], _Running],
        attempts: list[Attempt],
        discard: Callable[[ModelInfo, T], Awaitable[Decimal]],
        reason: str,
    ) -> None:
        """Stop the attempts still running: each is recorded with what it cost
        (nothing unless it had already answered) and says nothing of its
        provider's health."""
        if not running:
            return
        for task in running:
            task.cancel()
        now = time.monotonic()
        # wait, not gather: it raises nothing of theirs, only our own cancellation.
        await asyncio.wait(running)
        for task, run in running.items():
            cost = Decimal(0)
            if not task.cancelled() and task.exception() is None:  # it had answered
                cost = await discard(run.info, task.result())
            self.health.breaker(run.info.provider.name).release()
            latency = (now - run.started) * 1000
            attempts.append(Attempt(run.info.provider.name, run.info.id, None, reason, latency, cost))
        running.clear()

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

    def _failed(
        self, info: ModelInfo, exc: AttemptError, started: float, attempts: list[Attempt], limits: CandidateLatency
    ) -> None:
        now = time.monotonic()
        latency = (now - started) * 1000
        breaker = self.health.breaker(info.provider.name)
        attempts.append(Attempt(info.provider.name, info.id, exc.status, exc.message, latency, kind=exc.kind))
        if log.isEnabledFor(logging.DEBUG):
            fields = {"provider": info.provider.name, "model": info.id, "kind": exc.kind, "status": exc.status}
            log.debug("attempt failed: %s", exc.message, extra={"fields": {**fields, "latency_ms": round(latency, 1)}})
        if not exc.failover:
            breaker.release()
            raise _client_error(exc, attempts)
        if exc.kind == "ttft" and limits.ttft_asked:
            breaker.release()  # the client's own deadline is no verdict on the provider
            return
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


async def _complete(adapter: ProviderAdapter, info: ModelInfo, call: UpstreamCall) -> ChatResult:
    return await adapter.complete(call)


async def _discard_result(info: ModelInfo, result: ChatResult) -> Decimal:
    """A whole answer that lost the race still came, and costs what it used."""
    input_cost, output_cost = info.prices.cost(result.usage)
    return input_cost + output_cost


async def _peek(adapter: ProviderAdapter, info: ModelInfo, call: UpstreamCall) -> Peeked:
    """Open the stream and read its first fragment, within the attempt's
    timeout and the TTFT deadline."""
    ttft = call.first_byte_timeout
    limit = call.timeout if ttft is None else ttft
    stream: ChatStream | None = None
    try:
        async with asyncio.timeout(limit):
            stream = await adapter.open_stream(call)
            iterator = aiter(stream)
            first: dict[str, Any] | None = await anext(iterator, None)
    except TimeoutError:
        if stream is not None:
            await stream.aclose()
        if ttft is not None:
            raise ttft_missed(info.provider.name, ttft) from None
        raise AttemptError("timeout", f"{info.provider.name} sent no stream event within {limit:g}s") from None
    except BaseException:  # a failure, or the attempt lost a hedged race
        if stream is not None:
            await stream.aclose()
        raise
    if first is None and not stream.finished:
        await stream.aclose()
        raise AttemptError("malformed", f"{info.provider.name} ended the stream without any event")
    return Peeked(stream, iterator, first)


async def _discard_stream(info: ModelInfo, peeked: Peeked) -> Decimal:
    """A stream that lost the race is closed; nothing of it reached the client."""
    await peeked.stream.aclose()
    return Decimal(0)


def _client_error(exc: AttemptError, attempts: list[Attempt]) -> CCAPIError:
    cls = PayloadTooLargeError if exc.client_status == 413 else InvalidRequestError
    return cls(
        exc.message,
        code="upstream_rejected_request",
        param=exc.param,
        details={"attempts": [a.to_dict() for a in attempts]},
    )
