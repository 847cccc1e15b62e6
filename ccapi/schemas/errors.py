"""ErrorObject / ErrorResponse: the contract's error envelope."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorObject(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None
    details: dict[str, Any] | None


class ErrorResponse(BaseModel):
    error: ErrorObject
