"""Accounts and keys as the billing code sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class Account:
    id: str
    name: str
    balance: Decimal
    reserved: Decimal
    rpm: int | None
    tpm: int | None
    created: float

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "account",
            "name": self.name,
            "balance": float(self.balance),
            "reserved": float(self.reserved),
            "available": float(self.available),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "created": int(self.created),
        }


@dataclass(slots=True)
class ApiKey:
    id: str
    account_id: str
    name: str | None
    key_hash: str
    prefix: str
    admin: bool
    spend_limit: Decimal | None
    spend_limit_period: str | None
    spent: Decimal
    period_start: float | None
    reserved: Decimal
    rpm: int | None
    tpm: int | None
    allowed_models: list[str] | None
    expires_at: float | None
    revoked_at: float | None
    created: float
    updated: float
    patterns: tuple[Any, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "api_key",
            "account_id": self.account_id,
            "name": self.name,
            "prefix": self.prefix,
            "admin": self.admin,
            "spend_limit": float(self.spend_limit) if self.spend_limit is not None else None,
            "spend_limit_period": self.spend_limit_period,
            "spent": float(self.spent),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "allowed_models": self.allowed_models,
            "expires_at": int(self.expires_at) if self.expires_at is not None else None,
            "revoked": self.revoked_at is not None,
            "revoked_at": int(self.revoked_at) if self.revoked_at is not None else None,
            "created": int(self.created),
        }
