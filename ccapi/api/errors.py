"""Every error leaves as the contract's envelope; the one place that renders it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ccapi.api.responses import json_response
from ccapi.api.validation import param_path
from ccapi.core.errors import CCAPIError, InternalError, InvalidRequestError, NotFoundError
from ccapi.storage.errors import DATABASE_DOWN, database_unavailable_error

log = logging.getLogger("ccapi.errors")


def error_response(exc: CCAPIError) -> Response:
    return json_response(exc.to_dict(), status=exc.status, headers=exc.headers)


async def _ccapi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CCAPIError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    # Query and path parameters (bodies are validated by the routes themselves).
    assert isinstance(exc, RequestValidationError)
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    param = str(loc[-1]) if len(loc) > 1 else param_path(loc, None) or None
    message = f"Invalid '{param}': {err.get('msg', 'invalid value')}" if param else str(err.get("msg"))
    return error_response(InvalidRequestError(message, code="invalid_value", param=param))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError(f"No route {request.url.path}.", code="route_not_found"))
    if exc.status_code == 405:
        error = InvalidRequestError(f"Method {request.method} is not allowed here.", code="method_not_allowed")
        error.status = 405
        return error_response(error)
    error = InvalidRequestError(str(exc.detail), code="http_error")
    error.status = exc.status_code
    return error_response(error)


def unexpected_error(exc: Exception, method: str, path: str) -> CCAPIError:
    """An exception no route turned into an error: the database being down
    is a 503 (the request can be retried); anything else is a bug."""
    if isinstance(exc, DATABASE_DOWN):
        log.warning("%s %s: the database is unavailable (%s)", method, path, exc.__class__.__name__)
        return database_unavailable_error()
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return InternalError("Internal error; it has been logged.", code="internal_error")


async def _database_down(request: Request, exc: Exception) -> Response:
    # A handler of its own: Starlette re-raises what reaches the catch-all
    # `Exception` handler after answering, and uvicorn then drops the connection.
    return error_response(unexpected_error(exc, request.method, request.url.path))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return error_response(unexpected_error(exc, request.method, request.url.path))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CCAPIError, _ccapi_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_down in DATABASE_DOWN:
        app.add_exception_handler(database_down, _database_down)
    app.add_exception_handler(Exception, _unexpected)
