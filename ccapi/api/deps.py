"""What every route may depend on: the caller's identity and its JSON body.

The auth seam: routes depend on `authenticated` (or `admin`), which asks the
app's `Authenticator` who the bearer is. Accounts and keys plug in by
providing another Authenticator; routes do not change.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from fastapi import Request
from fastapi.security import HTTPBearer

from ccapi.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)
from ccapi.core.types import RequestRecord

if TYPE_CHECKING:
    from ccapi.app import Gateway
    from ccapi.billing.types import ApiKey


def gateway_of(request: Request) -> Gateway:
    """The app's services (typed view of `app.state.gateway`)."""
    return cast("Gateway", request.app.state.gateway)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the master key, or (later) an account's key."""

    key_id: str | None
    account_id: str | None
    is_admin: bool
    is_master: bool = False
    key: ApiKey | None = None


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Principal:
        """The key's principal; raises AuthenticationError for an unknown key."""
        ...


class MasterKeyAuthenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None

    async def authenticate(self, token: str) -> Principal:
        if self._master is not None and hmac.compare_digest(token.encode(), self._master):
            return Principal(key_id=None, account_id=None, is_admin=True, is_master=True)
        raise AuthenticationError("Invalid API key.", code="invalid_api_key")


# Only for the OpenAPI document (the security scheme); the check is ours.
bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` or `x-api-key: <key>`")


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("x-api-key") or None


async def caller(request: Request) -> Principal:
    """The key's principal, for model calls (whose admission sets the rate-limit headers)."""
    token = token_of(request)
    if token is None:
        raise AuthenticationError("Missing API key: send `Authorization: Bearer <key>`.", code="missing_api_key")
    principal = await gateway_of(request).authenticator.authenticate(token)
    request.state.principal = principal
    return principal


async def authenticated(request: Request) -> Principal:
    """The key's principal; answers to an account's key show its rate limits."""
    principal = await caller(request)
    if principal.key is not None:
        request.scope["state"]["ratelimit_headers"] = await gateway_of(request).billing.headers_for(principal)
    return principal


async def admin(request: Request) -> Principal:
    principal = await authenticated(request)
    if not principal.is_admin:
        raise PermissionDeniedError("This route needs an admin key.", code="admin_required")
    return principal


def start_record(request: Request, principal: Principal, route: str) -> RequestRecord:
    """The ledger record every model-calling request fills in as it goes."""
    return RequestRecord(
        request_id=request.scope["state"]["request_id"],
        route=route,
        created=time.time(),
        key_id=principal.key_id,
        account_id=principal.account_id,
        requested_models=[],
        model=None,
        provider=None,
        attempts=[],
        status=0,
        error_type=None,
    )


def public_base_url(request: Request) -> str:
    """Base of the gateway's own links: CCAPI_PUBLIC_URL, else the request's scheme and Host."""
    configured = gateway_of(request).settings.public_url
    return configured or f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


async def json_body(request: Request) -> Any:
    """The request's JSON, with the contract's 413 / 415 / 400 checks."""
    limit = gateway_of(request).settings.max_body_bytes
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaTypeError(
            f"Content type {content_type!r} is not supported: send application/json.",
            code="unsupported_media_type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequestError("The request body is empty: send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body exceeds the limit of {limit} bytes.", code="body_too_large")
