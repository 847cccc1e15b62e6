"""The rate limiter kept in the database, for several worker processes
(`ccapi serve --workers N`) when there is no Redis: the same sliding 60-second
window of one-second buckets as `MemoryRateLimiter`, as rows of
`rate_buckets` (one per limit and second), so that the workers together
never admit more than a limit, on SQLite as on PostgreSQL.

An admission is one short write transaction:

1. One multi-row upsert counts the request in the current second's bucket of
   every limit, after touching each limit's anchor row (second 0). Rows are
   written in (limit, second) order, the same order in every transaction, so
   two admissions never deadlock. On PostgreSQL the anchor's row lock
   serialises the admissions of one limit (READ COMMITTED: the statements
   after the lock see everything its previous holder committed); on SQLite
   the first write takes the database's write lock, which serialises them all.
2. One SELECT reads the limits' live buckets, this request included.
3. The decision, the 429's details and the headers are computed by the
   in-memory limiter's own code from those buckets (as the Redis limiter
   does), so the three limiters answer identically to the same history. A
   refusal rolls the transaction back: a refused request counts nowhere.

Buckets that left the window are deleted every PRUNE_SECONDS by whichever
worker admits a request then; a limit's anchor row stays (one row per key or
account that ever had a limit). Time is the caller's clock, as for Redis.

When the database cannot be reached the limiter fails open, like the Redis
one (limits protect capacity, not money; the reservations that guard money
fail on their own). Every admission under a limit is a database write: with
SQLite's single writer this bounds the throughput of limited keys; Redis
(CCAPI_REDIS_URL) is the faster shared path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import and_, case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from ccapi.billing.ratelimit import WINDOW, Limit, MemoryRateLimiter, Verdict
from ccapi.storage.store import Store
from ccapi.storage.tables import rate_buckets

log = logging.getLogger("ccapi.ratelimit")

ANCHOR = 0  # the `second` of a limit's anchor row
PRUNE_SECONDS = 30.0
# Seconds between two "database unreachable" warnings.
_WARN_EVERY = 10.0


class _Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__("refused")
        self.verdict = verdict


class DatabaseRateLimiter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._insert = sqlite_insert if store.is_sqlite else pg_insert
        self._pruned_at = time.monotonic()
        self._warned_at = 0.0

    async def admit(self, limits: list[Limit], tokens: int, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        second = int(now)
        names = _names(limits)
        rows: list[dict[str, Any]] = []
        for name in sorted(names):
            rows.append({"limit_key": name, "second": ANCHOR, "requests": 0, "tokens": 0})
            rows.append({"limit_key": name, "second": second, "requests": 1, "tokens": tokens})
        statement = self._insert(rate_buckets).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[rate_buckets.c.limit_key, rate_buckets.c.second],
            set_={
                "requests": rate_buckets.c.requests + statement.excluded.requests,
                "tokens": rate_buckets.c.tokens + statement.excluded.tokens,
            },
        )
        try:
            async with self.store.write() as conn:
                await conn.execute(statement)
                found = (await conn.execute(_live(names, second))).all()
                snapshot = _snapshot(limits, names, found, second)
                # The buckets as they were before this request: would it fit?
                for limit in limits:
                    snapshot._window(limit).add(second, -1, -tokens)
                refused = snapshot._first_refusal(limits, tokens, now, second)
                if refused is not None:
                    raise _Refused(refused)  # rolls the count back
        except _Refused as exc:
            return exc.verdict
        except (DBAPIError, OSError) as exc:
            self._warn(exc)
            return Verdict(True, {})
        for limit in limits:
            snapshot._window(limit).add(second, 1, tokens)
        await self._maybe_prune(second)
        return Verdict(True, snapshot._headers(limits, now, second))

    async def peek(self, limits: list[Limit], now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        second = int(now)
        names = _names(limits)
        try:
            async with self.store.engine.connect() as conn:
                found = (await conn.execute(_live(names, second))).all()
        except (DBAPIError, OSError) as exc:
            self._warn(exc)
            return Verdict(True, {})
        return Verdict(True, _snapshot(limits, names, found, second)._headers(limits, now, second))

    async def add_tokens(self, limits: list[Limit], tokens: int, at: float) -> None:
        if time.time() - at >= WINDOW or not tokens:
            return  # that second has left the window (or there is nothing to correct)
        names = sorted(_name(limit) for limit in limits if limit.tpm is not None)
        if not names:
            return
        rows = [{"limit_key": name, "second": int(at), "requests": 0, "tokens": max(tokens, 0)} for name in names]
        statement = self._insert(rate_buckets).values(rows)
        corrected = rate_buckets.c.tokens + tokens
        statement = statement.on_conflict_do_update(
            index_elements=[rate_buckets.c.limit_key, rate_buckets.c.second],
            set_={"tokens": case((corrected < 0, 0), else_=corrected)},  # never below zero in a bucket
        )
        try:
            async with self.store.write() as conn:
                await conn.execute(statement)
        except (DBAPIError, OSError) as exc:
            self._warn(exc)

    async def _maybe_prune(self, second: int) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = time.monotonic()
        try:
            async with self.store.write() as conn:
                await conn.execute(
                    delete(rate_buckets).where(rate_buckets.c.second > ANCHOR, rate_buckets.c.second <= second - WINDOW)
                )
        except (DBAPIError, OSError) as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("database rate limiter unreachable (%s); admitting without limits", exc)


def _name(limit: Limit) -> str:
    return f"{limit.scope}:{limit.id}"


def _names(limits: list[Limit]) -> dict[str, Limit]:
    return {_name(limit): limit for limit in limits}


def _live(names: dict[str, Limit], second: int) -> Any:
    """The buckets of these limits still in the window at `second` (none from
    an instance whose clock is ahead)."""
    c = rate_buckets.c
    return (
        select(c.limit_key, c.second, c.requests, c.tokens)
        .where(and_(c.limit_key.in_(list(names)), c.second > max(second - WINDOW, ANCHOR), c.second <= second))
        .order_by(c.second)
    )


def _snapshot(limits: list[Limit], names: dict[str, Limit], rows: Any, second: int) -> MemoryRateLimiter:
    """An in-memory limiter holding these buckets (to decide and compute headers with)."""
    snapshot = MemoryRateLimiter()
    for limit in limits:
        snapshot._window(limit)  # a limit with no bucket yet still has a window
    for row in rows:
        window = snapshot._window(names[row.limit_key])
        window.set(int(row.second), "requests", int(row.requests))
        window.set(int(row.second), "tokens", int(row.tokens))
    return snapshot
