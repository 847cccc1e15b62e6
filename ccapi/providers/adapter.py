"""The one HTTP adapter: a Dialect (what to say) over a pooled aiohttp session.

Upstream failures are mapped onto AttemptError here, in one place, by status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ccapi.core.redact import redact_secrets
from ccapi.core.sse import iter_events
from ccapi.core.types import ChatResult, Usage
from ccapi.providers.base import AttemptError, Dialect, StreamError, StreamTranslator, UpstreamCall, ttft_missed

# Statuses that mean "this request is wrong", not "this provider is unwell":
# the client gets them back at once instead of a failover.
_CLIENT_FAULT = {400: 400, 413: 413, 422: 400}


def http_error(provider: str, status: int, message: str) -> AttemptError:
    text = f"{provider} answered HTTP {status}" + (f": {message}" if message else "")
    if status in _CLIENT_FAULT:
        return AttemptError("http", text, status=status, failover=False, client_status=_CLIENT_FAULT[status])
    return AttemptError("http", text, status=status)


class HTTPAdapter:
    def __init__(
        self,
        provider: str,
        base_url: str,
        api_key: str | None,
        dialect: Dialect,
        session: aiohttp.ClientSession,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.dialect = dialect
        self.session = session
        self._headers = dialect.headers(api_key)

    async def complete(self, call: UpstreamCall) -> ChatResult:
        url = self.dialect.url(self.base_url, call.upstream_model, False)
        payload = orjson.dumps(self.dialect.body(call, False))
        request = self.session.post(url, data=payload, headers=self._headers)
        try:
            async with asyncio.timeout(call.timeout):
                if call.first_byte_timeout is None:
                    resp = await request
                else:
                    resp = await self._first_byte(request, call.first_byte_timeout)
                async with resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise http_error(self.provider, resp.status, self._message(resp.status, raw))
                    try:
                        return self.dialect.parse(orjson.loads(raw))
                    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                        raise AttemptError(
                            "malformed", f"{self.provider} sent an answer that is not valid: {exc}", status=resp.status
                        ) from None
        except TimeoutError:
            raise AttemptError("timeout", f"{self.provider} did not answer within {call.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise AttemptError("connect", f"{self.provider} connection failed: {_describe(exc)}") from None

    async def _first_byte(self, request: Any, seconds: float) -> aiohttp.ClientResponse:
        # The answer's head is its first byte: awaiting the request returns at its status line.
        try:
            async with asyncio.timeout(seconds):
                resp: aiohttp.ClientResponse = await request
        except TimeoutError:
            raise ttft_missed(self.provider, seconds) from None
        return resp

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream:
        """Send the request and check the answer's head; reading starts later."""
        url = self.dialect.url(self.base_url, call.upstream_model, True)
        payload = orjson.dumps(self.dialect.body(call, True))
        try:
            resp = await self.session.post(
                url,
                data=payload,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=call.idle_timeout),
            )
        except aiohttp.ClientError as exc:
            raise AttemptError("connect", f"{self.provider} connection failed: {_describe(exc)}") from None
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except aiohttp.ClientError:
                raw = b""
            resp.release()
            raise http_error(self.provider, resp.status, self._message(resp.status, raw))
        if resp.content_type != "text/event-stream":
            resp.close()
            raise AttemptError(
                "malformed",
                f"{self.provider} answered a stream with content type {resp.content_type!r}",
                status=resp.status,
            )
        return UpstreamStream(self.provider, resp, self.dialect.translator(call))

    def _message(self, status: int, raw: bytes) -> str:
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return redact_secrets(raw[:200].decode("utf-8", "replace").strip())
        try:
            return redact_secrets(self.dialect.error_message(status, data))
        except Exception:  # a garbage error body must not hide the status
            return ""


class UpstreamStream:
    """Fragments from an upstream SSE stream, translated to OpenAI's chunks."""

    def __init__(self, provider: str, resp: aiohttp.ClientResponse, translator: StreamTranslator) -> None:
        self.provider = provider
        self._resp = resp
        self._translator = translator
        self.finished = False

    @property
    def usage(self) -> Usage:
        return self._translator.usage

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in iter_events(self._resp.content.iter_any()):
                if event.data == "[DONE]":
                    self.finished = True
                    return
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    raise AttemptError("malformed", f"{self.provider} sent a stream event that is not JSON") from None
                try:
                    fragments = self._translator.feed(event.event, data)
                except StreamError as exc:
                    raise AttemptError("stream", f"{self.provider} reported an error mid-stream: {exc}") from None
                except (ValueError, KeyError, TypeError) as exc:
                    raise AttemptError("malformed", f"{self.provider} sent an invalid stream event: {exc}") from None
                for fragment in fragments:
                    if any(c.get("finish_reason") for c in fragment.get("choices", ())):
                        self.finished = True
                    yield fragment
        except TimeoutError:
            raise AttemptError("timeout", f"{self.provider} stream stalled") from None
        except aiohttp.ClientError as exc:
            raise AttemptError("connect", f"{self.provider} stream broke: {_describe(exc)}") from None

    async def aclose(self) -> None:
        if self.finished:
            self._resp.release()
        else:
            # An unfinished stream's connection cannot be reused.
            self._resp.close()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
