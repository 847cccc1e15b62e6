"""The adapter protocol every provider speaks, and how an attempt fails.

Translation modules (anthropic.py, gemini.py) are pure: functions from our
OpenAI-shaped request dict to the provider's body and back, and a stream
translator fed one upstream SSE event at a time. The adapters around them
do the I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ccapi.core.types import ChatResult, Usage


class AttemptError(Exception):
    """One provider attempt failed.

    `failover` says whether the router may try the next candidate (connection
    error, timeout, 408/409/429/5xx, 401/403, 404 for the model, garbage from
    the upstream). When False the request itself is at fault (an upstream 400)
    and the error goes straight back to the client as `client_status`.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        failover: bool = True,
        client_status: int = 400,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind  # "connect", "timeout", "ttft", "http", "malformed", "stream"
        self.status = status
        self.message = message
        self.failover = failover
        self.client_status = client_status
        self.param = param


class StreamTranslator(Protocol):
    """Turns one provider's stream events into OpenAI chunk fragments.

    `feed` takes one parsed SSE event (its `event:` name or None, and its
    JSON data) and returns zero or more chunk fragments: dicts with OpenAI's
    `choices` list (each `{"index", "delta", "finish_reason"}`); the caller
    adds `id`, `object`, `created`, `model` and `provider`. After the last
    event, `usage` holds the stream's token counts.
    """

    usage: Usage

    def feed(self, event: str | None, data: Any) -> list[dict[str, Any]]: ...


class ProviderAdapter(Protocol):
    """The router's one view of any provider."""

    async def complete(self, call: UpstreamCall) -> ChatResult: ...

    async def open_stream(self, call: UpstreamCall) -> ChatStream: ...


@dataclass(slots=True)
class UpstreamCall:
    """One attempt: the client's validated request body and where it goes."""

    body: dict[str, Any]
    upstream_model: str
    # Seconds for a whole answer, or for a stream's first event.
    timeout: float
    # Seconds a started stream may stay silent before it counts as failed.
    idle_timeout: float
    max_output_tokens: int | None = None
    # Seconds to the first byte of a whole answer (a stream's first event),
    # shorter than `timeout`; None: no such deadline.
    first_byte_timeout: float | None = None


def ttft_missed(provider: str, seconds: float) -> AttemptError:
    """The attempt's time-to-first-token deadline passed: it fails over."""
    return AttemptError("ttft", f"{provider} missed the time-to-first-token deadline of {seconds * 1000:.0f} ms")


class StreamError(Exception):
    """The upstream reported an error inside a stream it had already started."""


class Dialect(Protocol):
    """How one wire format is spoken: everything but the I/O."""

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str: ...

    def headers(self, api_key: str | None) -> dict[str, str]: ...

    def body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]: ...

    def parse(self, data: Any) -> ChatResult: ...

    def translator(self, call: UpstreamCall) -> StreamTranslator: ...

    def error_message(self, status: int, data: Any) -> str: ...


class ChatStream(Protocol):
    """An opened upstream stream: iterate chunk fragments; `usage` when done."""

    finished: bool

    @property
    def usage(self) -> Usage: ...

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...
