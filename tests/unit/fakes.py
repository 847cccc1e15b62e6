"""Scripted provider adapters for routing tests (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ccapi.core.types import ChatResult, Usage
from ccapi.providers.base import AttemptError, UpstreamCall


def text_result(text: str = "hi") -> ChatResult:
    return ChatResult(
        choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        usage=Usage(10, 2),
    )


class FakeStream:
    def __init__(self, fragments: list[dict[str, Any]], fail_after: int | None = None) -> None:
        self.fragments = fragments
        self.fail_after = fail_after
        self.usage = Usage(10, len(fragments))
        self.finished = False
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for i, fragment in enumerate(self.fragments):
            if self.fail_after is not None and i >= self.fail_after:
                raise AttemptError("connect", "stream broke")
            yield fragment
        self.finished = True

    async def aclose(self) -> None:
        self.closed = True


class Delayed:
    """An outcome that arrives after `seconds`."""

    def __init__(self, seconds: float, outcome: Any) -> None:
        self.seconds = seconds
        self.outcome = outcome


class FakeAdapter:
    """Each call pops the next outcome: a ChatResult/FakeStream, an exception,
    a Delayed one, or a float (seconds to hang)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[UpstreamCall] = []
        self.cancelled = 0

    async def _next(self, call: UpstreamCall) -> Any:
        self.calls.append(call)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        try:
            if isinstance(outcome, Delayed):
                await asyncio.sleep(outcome.seconds)
                outcome = outcome.outcome
            if isinstance(outcome, float):
                await asyncio.sleep(outcome)
                raise AttemptError("timeout", "should have been cut by the timeout")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def complete(self, call: UpstreamCall) -> ChatResult:
        result: ChatResult = await self._next(call)
        return result

    async def open_stream(self, call: UpstreamCall) -> FakeStream:
        stream: FakeStream = await self._next(call)
        return stream
