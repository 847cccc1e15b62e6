"""The error tree: one class per row of the contract's error table.

    CCAPIError                      base; renders the ErrorResponse envelope
    ├── InvalidRequestError         400 invalid_request_error
    │   ├── ConflictError           409 invalid_request_error
    │   ├── PayloadTooLargeError    413 invalid_request_error
    │   └── UnsupportedMediaTypeError 415 invalid_request_error
    ├── AuthenticationError         401 authentication_error
    ├── BillingError                402 billing_error
    ├── PermissionDeniedError       403 permission_error
    ├── NotFoundError               404 not_found_error
    ├── RateLimitError              429 rate_limit_error
    ├── InternalError               500 internal_error
    ├── UpstreamError               502 upstream_error
    ├── ProviderUnavailableError    503 provider_unavailable
    └── GatewayTimeoutError         504 timeout_error

Nothing becomes a 500 except a bug: handlers catch CCAPIError and render it;
anything else is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

from typing import Any


class CCAPIError(Exception):
    status: int = 500
    type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.details = details
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
                "details": self.details,
            }
        }


class InvalidRequestError(CCAPIError):
    status = 400
    type = "invalid_request_error"


class ConflictError(InvalidRequestError):
    status = 409


class PayloadTooLargeError(InvalidRequestError):
    status = 413


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415


class AuthenticationError(CCAPIError):
    status = 401
    type = "authentication_error"


class BillingError(CCAPIError):
    status = 402
    type = "billing_error"


class PermissionDeniedError(CCAPIError):
    status = 403
    type = "permission_error"


class NotFoundError(CCAPIError):
    status = 404
    type = "not_found_error"


class RateLimitError(CCAPIError):
    status = 429
    type = "rate_limit_error"


class InternalError(CCAPIError):
    status = 500
    type = "internal_error"


class UpstreamError(CCAPIError):
    status = 502
    type = "upstream_error"


class ProviderUnavailableError(CCAPIError):
    status = 503
    type = "provider_unavailable"


class GatewayTimeoutError(CCAPIError):
    status = 504
    type = "timeout_error"
