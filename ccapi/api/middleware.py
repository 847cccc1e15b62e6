"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccapi.api.errors import error_response, unexpected_error
from ccapi.core.errors import CCAPIError
from ccapi.core.ids import new_id

_MAX_ID = 128


def new_request_id() -> str:
    return "req_" + new_id()


class RequestIdMiddleware:
    """Echo the client's `x-request-id` (or make one) on every response; the
    id is in `scope["state"]["request_id"]` for the logs and the ledger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1").strip()
                if 0 < len(candidate) <= _MAX_ID and candidate.isprintable():
                    request_id = candidate
                break
        if request_id is None:
            request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append(header)
                limits = state.get("ratelimit_headers")
                if limits:
                    present = {name for name, _ in headers}
                    headers += [(k.encode(), v.encode()) for k, v in limits.items() if k.encode() not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


Endpoint = Callable[[Request], Awaitable[Response]]


class FastPath:
    """Serves the hot model-calling routes before FastAPI's router.

    FastAPI's per-request machinery (its middleware layers, routing, request
    wrapper and dependency solving) measured at about a third of the gateway's
    CPU on a proxied chat completion, more than the route's own work. These
    routes parse their own bodies and authenticate themselves anyway, so they
    are dispatched here; FastAPI still documents them (its routes stay
    registered for the OpenAPI document) and serves everything else.
    """

    def __init__(self, app: ASGIApp, fastapi_app: Any, routes: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.fastapi_app
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except CCAPIError as exc:
            response = error_response(exc)
        except Exception as exc:
            response = error_response(unexpected_error(exc, scope["method"], scope["path"]))
        await response(scope, receive, send)
