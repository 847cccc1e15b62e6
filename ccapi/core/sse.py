"""Server-sent events: an incremental decoder for upstream streams, and framing
for ours.

The decoder follows the WHATWG event-stream rules (fields `event`, `data`,
`id`, `retry`; comments; CRLF/LF; multi-line data; dispatch on a blank line).
It is written here rather than taken from a library because the maintained
SSE parsers are tied to a transport (httpx-sse to httpx, sseclient-py to
blocking iterators) and the gateway's upstream client is aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str
    id: str | None = None


class SSEDecoder:
    """Feed it lines (without the line ending); it returns complete events."""

    __slots__ = ("_data", "_event", "_id")

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # `retry` and unknown fields are ignored, as the spec says.
        return None

    def flush(self) -> SSEEvent | None:
        """End of stream: a final event without its blank line is dropped (spec)."""
        self._event, self._data = None, []
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = None
            return None
        event = SSEEvent(self._event, "\n".join(self._data), self._id)
        self._event, self._data = None, []
        return event


async def iter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from an async iterable of raw byte chunks, split anywhere."""
    decoder = SSEDecoder()
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            event = decoder.feed_line(raw.rstrip(b"\r").decode("utf-8", "replace"))
            if event is not None:
                yield event
    if buffer:
        event = decoder.feed_line(buffer.rstrip(b"\r").decode("utf-8", "replace"))
        if event is not None:
            yield event


DONE = b"data: [DONE]\n\n"


def encode_data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
