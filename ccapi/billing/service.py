"""Admission and settlement of model calls: allowed models, rate limits,
reservations (402), and the ledger row every call leaves."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ccapi.api.deps import Principal
from ccapi.billing.credit import CreditLeases, Hold
from ccapi.billing.keys import KeyCache, model_allowed
from ccapi.billing.ledger import LedgerWriter
from ccapi.billing.ratelimit import Limit, RateLimiter, Verdict
from ccapi.catalog.catalog import ModelInfo
from ccapi.core.errors import BillingError, PermissionDeniedError, RateLimitError
from ccapi.core.tokens import estimate_prompt_tokens
from ccapi.core.types import RequestRecord
from ccapi.storage.errors import UNAVAILABLE, database_unavailable_error
from ccapi.storage.store import ReserveRefused, Store

# When neither the request nor the catalog bounds the output, reserve for this many tokens.
DEFAULT_MAX_OUTPUT = 4096


@dataclass(slots=True)
class Admission:
    limits: list[Limit]
    hold: Hold | None
    admitted_at: float
    estimated_tokens: int
    headers: dict[str, str] = field(default_factory=dict)


def period_start(period: str | None, now: float) -> float | None:
    """Start (UTC) of the key's current spend period; None for a lifetime limit."""
    if period is None:
        return None
    t = time.gmtime(now)
    day = t.tm_mday if period == "day" else 1
    return float(calendar.timegm((t.tm_year, t.tm_mon, day, 0, 0, 0, 0, 0, 0)))


def output_bound(body: dict[str, Any], info: ModelInfo) -> int:
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    model_max = info.entry.max_output_tokens or DEFAULT_MAX_OUTPUT
    return min(int(requested), model_max) if requested else model_max


class BillingService:
    def __init__(
        self,
        store: Store,
        keys: KeyCache,
        limiter: RateLimiter,
        ledger: LedgerWriter,
        reservation_ttl: float,
        lease_idle_release: float = 5.0,
    ) -> None:
        self.store = store
        self.keys = keys
        self.limiter = limiter
        self.ledger = ledger
        self.credit = CreditLeases(store, ledger.submit, reservation_ttl, lease_idle_release)

    def limits_for(self, principal: Principal) -> list[Limit]:
        key = principal.key
        if key is None or principal.account_id is None:
            return []
        limits = [Limit("key", key.id, key.rpm, key.tpm)] if key.rpm or key.tpm else []
        account = self.keys.account_limits(principal.account_id)
        if account is not None and (account[0] or account[1]):
            limits.append(Limit("account", principal.account_id, account[0], account[1]))
        return limits

    async def headers_for(self, principal: Principal) -> dict[str, str]:
        limits = self.limits_for(principal)
        return (await self.limiter.peek(limits)).headers if limits else {}

    def allowed(self, principal: Principal, candidates: list[ModelInfo]) -> list[ModelInfo]:
        """The candidates this key may call; 403 when none."""
        key = principal.key
        if key is None or not key.patterns:
            return candidates
        allowed = [c for c in candidates if model_allowed(key, c.id)]
        if not allowed:
            names = ", ".join(sorted({c.id for c in candidates}))
            raise PermissionDeniedError(
                f"This key may not call {names} (allowed: {', '.join(key.allowed_models or [])}).",
                code="model_not_allowed",
                param="model",
            )
        return allowed

    async def admit(self, principal: Principal, candidates: list[ModelInfo], body: dict[str, Any]) -> Admission:
        """Admit a chat completion: its reservation is the most it can cost."""
        prompt = estimate_prompt_tokens(body)
        requested_output = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)

        def most_it_can_cost() -> Decimal:
            return max(c.prices.max_cost(prompt, output_bound(body, c)) for c in candidates)

        return await self.admit_cost(principal, most_it_can_cost, prompt + requested_output)

    async def admit_limits(self, principal: Principal, estimated_tokens: int = 0) -> Admission:
        """Rate limits only (429 past them); the caller reserves on its own (a job)."""
        now = time.time()
        limits = self.limits_for(principal)
        admission = Admission(limits, None, now, estimated_tokens)
        if limits:
            verdict = await self.limiter.admit(limits, estimated_tokens, now)
            admission.headers = verdict.headers
            if not verdict.allowed:
                raise _rate_limit_error(verdict)
        return admission

    @staticmethod
    def refusal(refused: ReserveRefused, headers: dict[str, str]) -> BillingError:
        """The 402 for a reservation the balance or the key's spend limit did not cover."""
        return _billing_error(refused, headers)

    async def admit_cost(
        self, principal: Principal, needed: Callable[[], Decimal], estimated_tokens: int = 0
    ) -> Admission:
        """Rate limits, then a reservation of `needed()` USD (any model-calling
        route: chat, images, speech). The master key is counted, never charged."""
        admission = await self.admit_limits(principal, estimated_tokens)
        now = admission.admitted_at
        if principal.is_master or principal.account_id is None:
            return admission
        key = principal.key
        try:
            admission.hold = await self.credit.hold(
                principal.account_id, key, needed(), period_start(key.spend_limit_period, now) if key else None
            )
        except ReserveRefused as refused:
            raise _billing_error(refused, admission.headers) from None
        except UNAVAILABLE as exc:
            # No lease can grow without the database: refuse rather than serve unbacked.
            raise database_unavailable_error() from exc
        return admission

    def settle(self, admission: Admission | None, record: RequestRecord) -> None:
        """Charge what was delivered, release the rest, write the ledger row."""
        hold = admission.hold if admission else None
        settlement = self.credit.settle(hold, record.cost) if hold is not None else None
        self.ledger.submit(settlement, ledger_row(record))

    async def correct_tokens(self, admission: Admission, record: RequestRecord) -> None:
        if admission.limits:
            actual = record.prompt_tokens + record.completion_tokens
            await self.limiter.add_tokens(admission.limits, actual - admission.estimated_tokens, admission.admitted_at)


def _rate_limit_error(verdict: Verdict) -> RateLimitError:
    return RateLimitError(
        f"Rate limit reached for this {verdict.scope}: {verdict.limit} {verdict.limit_type} per minute. "
        f"Retry in {verdict.reset_seconds}s.",
        code=f"{verdict.limit_type}_per_minute",
        details={
            "scope": verdict.scope,
            "limit_type": verdict.limit_type,
            "limit": verdict.limit,
            "reset_seconds": verdict.reset_seconds,
        },
        headers={**verdict.headers, "retry-after": str(verdict.reset_seconds)},
    )


def _billing_error(refused: ReserveRefused, headers: dict[str, str]) -> BillingError:
    needed, available = refused.needed, max(refused.available, Decimal(0))
    details = {"needed": float(needed), "available": float(available)}
    if refused.scope == "key":
        return BillingError(
            f"This key's spend limit does not cover this request: it needs up to ${needed} "
            f"and ${available} of the limit is left.",
            code="key_spend_limit",
            details=details,
            headers=headers,
        )
    return BillingError(
        f"Insufficient credits: this request needs up to ${needed} and the account has ${available} available.",
        code="insufficient_credits",
        details=details,
        headers=headers,
    )


def ledger_row(record: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "created": record.created,
        "account_id": record.account_id,
        "key_id": record.key_id,
        "route": record.route,
        "requested_models": record.requested_models,
        "model": record.model,
        "provider": record.provider,
        "attempts": record.attempts,
        "status": record.status,
        "error_type": record.error_type,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "input_cost": record.input_cost,
        "output_cost": record.output_cost,
        "cost": record.cost,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "stream": record.stream,
    }
