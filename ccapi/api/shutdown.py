"""The end of a graceful stop: the requests still running when the grace period is over.

On SIGTERM or SIGINT uvicorn closes the listening socket, lets the requests
in flight finish for `shutdown_grace` seconds (its `timeout_graceful_shutdown`),
then cancels the tasks of those still running. Cancelled bare, a stream would
stop mid-body (a client cannot tell that cut from a normal end) and a request
that had not answered would get uvicorn's plain-text 500. `StopGuard` catches
that cancellation and ends each request the way the contract ends a failure:
a 503 envelope when nothing was sent yet, else an SSE error event and
`data: [DONE]`. The route has settled the request's billing on its way out
(the cancellation runs through its `except`/`finally`); `InFlight` counts the
requests, so the gateway's stop waits for those endings before it flushes
the ledger and closes the database.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccapi.api.responses import json_response
from ccapi.core.errors import ProviderUnavailableError
from ccapi.core.sse import DONE, encode_data


def shutting_down_error() -> ProviderUnavailableError:
    return ProviderUnavailableError(
        "The gateway is shutting down and its grace period for requests in flight is over; retry the request.",
        code="shutting_down",
    )


class InFlight:
    """The tasks serving HTTP requests right now."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()

    def stopping(self) -> bool:
        """The server is cancelling its requests (the grace period is over).
        Uvicorn cancels every request task at once, and nothing else cancels
        one (a client that goes away cancels only a stream's inner task)."""
        return any(task.cancelling() for task in self.tasks)

    async def wait_idle(self, within: float) -> int:
        """Wait until no request is in flight (at most `within` seconds); how many are left."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=within)
        return len(self.tasks)


class StopGuard:
    """Pure ASGI layer (see module doc): counts requests and ends the ones the stop cancels."""

    def __init__(self, app: ASGIApp, inflight: InFlight) -> None:
        self.app = app
        self.inflight = inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        started = sse = ended = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, sse, ended
            if message["type"] == "http.response.start":
                started = True
                for name, value in message.get("headers", ()):
                    if name == b"content-type":
                        sse = value.startswith(b"text/event-stream")
            elif not message.get("more_body", False):
                ended = True
            await send(message)

        self.inflight.tasks.add(task)
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if ended or (started and not sse) or task.cancelling() == 0:
                raise  # nothing left to end, or a body that cannot carry an error
            task.uncancel()
            error = shutting_down_error()
            if started:
                await send({"type": "http.response.body", "body": encode_data(error.to_dict()), "more_body": True})
                await send({"type": "http.response.body", "body": DONE, "more_body": False})
            else:
                await json_response(error.to_dict(), status=error.status)(scope, receive, send)
        finally:
            self.inflight.tasks.discard(task)
