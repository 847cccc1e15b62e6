"""The database seam: every read and write the gateway does, behind one class.

SQLite (the default, WAL mode) and PostgreSQL run the same statements. Money
invariants are kept by single conditional UPDATEs (`... WHERE balance -
reserved >= :amount`), which are atomic on both, so no request starts
without a reservation its balance covered, whatever the concurrency and
however many instances share the database.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, delete, event, func, insert, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ccapi.billing.types import Account, ApiKey
from ccapi.core import ids
from ccapi.storage.tables import (
    Money,
    accounts,
    api_keys,
    credit_entries,
    instance_meta,
    reservations,
    usage,
    usd,
)

ZERO = Decimal(0)


def async_url(database_url: str) -> str:
    if database_url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + database_url.removeprefix("sqlite:")
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


def new_id(prefix: str) -> str:
    return f"{prefix}_{ids.new_id()}"


@dataclass(slots=True)
class Reservation:
    id: str
    account_id: str
    key_id: str | None
    amount: Decimal


@dataclass(slots=True)
class Settlement:
    reservation: Reservation
    cost: Decimal
    # A charge against a lease that stays open (its hold shrinks by `cost`);
    # otherwise the reservation ends and what is left of it is released.
    partial: bool = False


class ReserveRefused(Exception):
    def __init__(self, scope: str, needed: Decimal, available: Decimal) -> None:
        super().__init__(scope)
        self.scope = scope  # "account" or "key"
        self.needed = needed
        self.available = available


class Store:
    def __init__(self, database_url: str, timeout: float = 5.0) -> None:
        self.url = async_url(database_url)
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {}
        if not self.is_sqlite:
            # `timeout` bounds the wait for a connection (libpq's connect_timeout
            # takes whole seconds, at least 2) and for a free one from the pool,
            # so a dead database fails requests quickly instead of hanging them.
            options.update(
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=timeout,
                connect_args={"connect_timeout": max(2, math.ceil(timeout))},
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # SQLite has one writer; queueing writers here is cheaper than letting
        # them collide on SQLITE_BUSY.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # -- instance metadata --------------------------------------------------

    async def meta_value(self, key: str, default: str) -> str:
        """The stored value of `key`, storing `default` first if there is none
        (several instances starting at once all end up with the same value)."""
        query = select(instance_meta.c.value).where(instance_meta.c.key == key)
        try:
            async with self.write() as conn:
                found = (await conn.execute(query)).first()
                if found is None:
                    await conn.execute(insert(instance_meta).values(key=key, value=default, updated_at=func.now()))
                    return default
                return str(found.value)
        except IntegrityError:  # another instance (a worker) stored its value between our read and write
            async with self.engine.connect() as conn:
                return str((await conn.execute(query)).scalar_one())

    # -- accounts ---------------------------------------------------------

    async def create_account(self, name: str, credits: Decimal, rpm: int | None, tpm: int | None) -> Account:
        now = time.time()
        account_id = new_id("acct")
        async with self.write() as conn:
            await conn.execute(
                insert(accounts).values(
                    id=account_id, name=name, balance=ZERO, reserved=ZERO, rpm=rpm, tpm=tpm, created=now, updated=now
                )
            )
            if credits:
                await self._credit(conn, account_id, credits, "initial credits", now)
        found = await self.get_account(account_id)
        assert found is not None
        return found

    async def get_account(self, account_id: str) -> Account | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
        return _account(row) if row else None

    async def list_accounts(self, limit: int, offset: int) -> tuple[list[Account], int]:
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(accounts))).scalar_one()
            rows = await conn.execute(
                select(accounts).order_by(accounts.c.created, accounts.c.id).limit(limit).offset(offset)
            )
        return [_account(r) for r in rows], int(total)

    async def update_account(self, account_id: str, fields: dict[str, Any]) -> Account | None:
        if fields:
            async with self.write() as conn:
                result = await conn.execute(
                    update(accounts).where(accounts.c.id == account_id).values(**fields, updated=time.time())
                )
                if result.rowcount == 0:
                    return None
        return await self.get_account(account_id)

    async def add_credits(self, account_id: str, amount: Decimal, reason: str) -> dict[str, Any] | None:
        """A top-up or adjustment; None if the account does not exist.
        Raises ValueError when it would take the balance below zero."""
        async with self.write() as conn:
            exists = (await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))).first()
            if exists is None:
                return None
            return await self._credit(conn, account_id, amount, reason, time.time())

    async def _credit(
        self, conn: AsyncConnection, account_id: str, amount: Decimal, reason: str, now: float
    ) -> dict[str, Any]:
        result = await conn.execute(
            update(accounts)
            # A negative adjustment may not take back credit that open
            # reservations hold: the balance never goes below zero.
            .where(
                accounts.c.id == account_id,
                (accounts.c.balance + usd(amount) >= 0)
                if amount >= 0
                else (accounts.c.balance - accounts.c.reserved + usd(amount) >= 0),
            )
            .values(balance=accounts.c.balance + usd(amount), updated=now)
            .returning(accounts.c.balance)
        )
        row = result.first()
        if row is None:
            raise ValueError("the adjustment would take the balance below zero")
        entry = {
            "id": new_id("cred"),
            "account_id": account_id,
            "amount": amount,
            "balance_after": row.balance,
            "reason": reason,
            "created": now,
        }
        await conn.execute(insert(credit_entries).values(**entry))
        return entry

    async def list_credits(self, account_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        where = credit_entries.c.account_id == account_id
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(credit_entries).where(where))).scalar_one()
            rows = await conn.execute(
                select(credit_entries)
                .where(where)
                .order_by(credit_entries.c.created.desc(), credit_entries.c.id)
                .limit(limit)
                .offset(offset)
            )
        return [dict(r._mapping) for r in rows], int(total)

    # -- keys --------------------------------------------------------------

    async def create_key(self, account_id: str, fields: dict[str, Any]) -> tuple[ApiKey, str] | None:
        from ccapi.billing.keys import hash_key

        secret = "sk-ccapi-" + secrets.token_urlsafe(32)
        now = time.time()
        key_id = new_id("key")
        async with self.write() as conn:
            exists = (await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))).first()
            if exists is None:
                return None
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    account_id=account_id,
                    key_hash=hash_key(secret),
                    prefix=secret[:16],
                    spent=ZERO,
                    reserved=ZERO,
                    created=now,
                    updated=now,
                    **{"admin": False, **fields},
                )
            )
        key = await self.get_key(key_id)
        assert key is not None
        return key, secret

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key(row) if row else None

    async def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
        return _key(row) if row else None

    async def list_keys(self, account_id: str | None, limit: int, offset: int) -> tuple[list[ApiKey], int]:
        where = api_keys.c.account_id == account_id if account_id else api_keys.c.id.isnot(None)
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(api_keys).where(where))).scalar_one()
            rows = await conn.execute(
                select(api_keys).where(where).order_by(api_keys.c.created, api_keys.c.id).limit(limit).offset(offset)
            )
        return [_key(r) for r in rows], int(total)

    async def update_key(self, key_id: str, fields: dict[str, Any]) -> ApiKey | None:
        async with self.write() as conn:
            result = await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(**fields, updated=time.time())
            )
            if result.rowcount == 0:
                return None
        return await self.get_key(key_id)

    async def keys_changed_since(self, since: float) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(api_keys).where(api_keys.c.updated >= since))
        return [_key(r) for r in rows]

    async def account_limits_changed_since(self, since: float) -> list[tuple[str, int | None, int | None]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(accounts.c.id, accounts.c.rpm, accounts.c.tpm).where(accounts.c.updated >= since)
            )
        return [(r.id, r.rpm, r.tpm) for r in rows]

    # -- billing -------------------------------------------------------------

    async def reserve(
        self, account_id: str, key: ApiKey | None, amount: Decimal, ttl: float, period_start: float | None
    ) -> Reservation:
        """Hold `amount` against the account (and the key's spend limit), or
        raise ReserveRefused. One transaction; conditional updates only."""
        now = time.time()
        reservation = Reservation(new_id("res"), account_id, key.id if key else None, amount)
        async with self.write() as conn:
            await self._hold(conn, account_id, key, amount, period_start)
            await conn.execute(
                insert(reservations).values(
                    id=reservation.id,
                    account_id=account_id,
                    key_id=reservation.key_id,
                    amount=amount,
                    created=now,
                    expires_at=now + ttl,
                )
            )
        return reservation

    async def _hold(
        self, conn: AsyncConnection, account_id: str, key: ApiKey | None, amount: Decimal, period_start: float | None
    ) -> None:
        """Add `amount` to the key's and the account's holds if both cover it;
        else raise ReserveRefused (the transaction is rolled back)."""
        if key is not None and key.spend_limit is not None:
            spent = _period_spent(period_start)
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id, spent + api_keys.c.reserved + usd(amount) <= api_keys.c.spend_limit)
                .values(spent=spent, period_start=period_start, reserved=api_keys.c.reserved + usd(amount))
            )
            if result.rowcount == 0:
                row = (
                    await conn.execute(
                        select(
                            type_coerce(api_keys.c.spend_limit - spent - api_keys.c.reserved, Money).label("left")
                        ).where(api_keys.c.id == key.id)
                    )
                ).first()
                raise ReserveRefused("key", amount, row.left if row else ZERO)
        result = await conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.balance - accounts.c.reserved >= usd(amount))
            .values(reserved=accounts.c.reserved + usd(amount))
        )
        if result.rowcount == 0:
            row = (
                await conn.execute(
                    select(type_coerce(accounts.c.balance - accounts.c.reserved, Money).label("left")).where(
                        accounts.c.id == account_id
                    )
                )
            ).first()
            raise ReserveRefused("account", amount, row.left if row else ZERO)

    async def extend_lease(
        self,
        lease_id: str,
        account_id: str,
        key: ApiKey | None,
        amount: Decimal,
        ttl: float,
        period_start: float | None,
    ) -> None:
        """Grow a lease (an instance's standing reservation) by `amount`, or open
        it; the same conditional updates as `reserve`. Raises ReserveRefused."""
        now = time.time()
        async with self.write() as conn:
            # The lease row first: every transaction locks reservations, then
            # keys, then accounts (see _settle); a refusal rolls all of it back.
            grown = await conn.execute(
                update(reservations)
                .where(reservations.c.id == lease_id)
                .values(amount=reservations.c.amount + usd(amount), expires_at=now + ttl)
            )
            await self._hold(conn, account_id, key, amount, period_start)
            if grown.rowcount == 0:
                await conn.execute(
                    insert(reservations).values(
                        id=lease_id,
                        account_id=account_id,
                        key_id=key.id if key else None,
                        amount=amount,
                        created=now,
                        expires_at=now + ttl,
                    )
                )

    async def renew_leases(self, lease_ids: Sequence[str], ttl: float) -> None:
        if lease_ids:
            async with self.write() as conn:
                await conn.execute(
                    update(reservations).where(reservations.c.id.in_(lease_ids)).values(expires_at=time.time() + ttl)
                )

    async def record(self, settlements: Sequence[Settlement], rows: Sequence[dict[str, Any]]) -> None:
        """Settle reservations and write ledger rows, in one transaction."""
        async with self.write() as conn:
            await settle_holds(conn, settlements)
            if rows:
                await conn.execute(insert(usage), [{"id": new_id("use"), **r} for r in rows])

    async def release_expired(self, now: float | None = None) -> int:
        """Give back reservations whose request died with its instance."""
        now = time.time() if now is None else now
        async with self.write() as conn:
            expired = (await conn.execute(select(reservations).where(reservations.c.expires_at < now))).all()
            items = [Settlement(Reservation(r.id, r.account_id, r.key_id, r.amount), ZERO) for r in expired]
            return await settle_holds(conn, items)

    async def open_reservations(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(reservations))).scalar_one())

    # -- ledger queries -----------------------------------------------------------

    async def query_usage(self, filters: dict[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        where = _usage_where(filters)
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(usage).where(where))).scalar_one()
            rows = await conn.execute(
                select(usage)
                .where(where)
                .order_by(usage.c.created.desc(), usage.c.request_id)
                .limit(limit)
                .offset(offset)
            )
        return [dict(r._mapping) for r in rows], int(total)

    async def usage_summary(self, group_by: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
        column = {
            "model": usage.c.model,
            "provider": usage.c.provider,
            "key": usage.c.key_id,
            "account": usage.c.account_id,
            # Whole UTC days, as unix seconds of the day's start: the same SQL on both databases.
            "day": (func.floor(usage.c.created / 86400) * 86400),
        }[group_by]
        query = (
            select(
                column.label("group"),
                func.count().label("requests"),
                func.sum(usage.c.prompt_tokens).label("prompt_tokens"),
                func.sum(usage.c.completion_tokens).label("completion_tokens"),
                type_coerce(func.sum(usage.c.cost), Money).label("cost"),
            )
            .where(_usage_where(filters))
            .group_by(column)
            .order_by(column)
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
        return [
            {
                "group": r.group,
                "requests": int(r.requests),
                "prompt_tokens": int(r.prompt_tokens or 0),
                "completion_tokens": int(r.completion_tokens or 0),
                "cost": r.cost or ZERO,
            }
            for r in rows
        ]


async def settle_holds(conn: AsyncConnection, items: Sequence[Settlement]) -> int:
    """Charge each cost and release each hold; returns the holds released. A
    reservation row is deleted first: if it is already gone (released as
    expired), its hold was already given back.

    Row locks are taken in one order in every transaction: reservations, then
    keys, then accounts, each by id (as `reserve`: key, then account). In
    opposite orders a settlement batch and a reservation, or two instances'
    batches, deadlock on PostgreSQL and one of them fails."""
    # (reservation, cost, hold to release; None when it was already released)
    released: list[tuple[Reservation, Decimal, Decimal | None]] = []
    for item in sorted(_merge_charges(items), key=lambda i: i.reservation.id):
        res = item.reservation
        if item.partial:
            result = await conn.execute(
                update(reservations)
                .where(reservations.c.id == res.id)
                .values(amount=reservations.c.amount - usd(item.cost))
            )
            released.append((res, item.cost, item.cost if result.rowcount else None))
            continue
        row = (
            await conn.execute(delete(reservations).where(reservations.c.id == res.id).returning(reservations.c.amount))
        ).first()
        released.append((res, item.cost, row.amount if row else None))
    for res, cost, release in sorted(released, key=lambda r: r[0].key_id or ""):
        if res.key_id is not None:
            back = release or ZERO
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == res.key_id)
                .values(
                    spent=api_keys.c.spent + usd(cost),
                    reserved=case(
                        (api_keys.c.reserved >= usd(back), api_keys.c.reserved - usd(back)), else_=api_keys.c.reserved
                    ),
                )
            )
    for res, cost, release in sorted(released, key=lambda r: r[0].account_id):
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == res.account_id)
            .values(balance=accounts.c.balance - usd(cost), reserved=accounts.c.reserved - usd(release or ZERO))
        )
    return sum(1 for _, _, release in released if release is not None)


def _merge_charges(items: Sequence[Settlement]) -> list[Settlement]:
    """Charges against the same lease in one batch become one charge: a busy
    lease takes three UPDATEs per batch, not three per request."""
    merged: dict[str, Settlement] = {}
    out: list[Settlement] = []
    for item in items:
        if not item.partial:
            out.append(item)
            continue
        res = item.reservation
        found = merged.get(res.id)
        if found is None:
            merged[res.id] = Settlement(Reservation(res.id, res.account_id, res.key_id, item.cost), item.cost, True)
        else:
            found.cost += item.cost
            found.reservation.amount += item.cost
    # A lease's release is queued after all its charges; charges go first.
    return [*merged.values(), *out]


def _period_spent(period_start: float | None) -> Any:
    """What the key has spent in the current period: a new period starts at zero."""
    if period_start is None:
        return api_keys.c.spent
    return case(
        (and_(api_keys.c.period_start.isnot(None), api_keys.c.period_start >= period_start), api_keys.c.spent),
        else_=0,
    )


def _usage_where(filters: dict[str, Any]) -> Any:
    clauses = [usage.c.request_id.isnot(None)]
    for name in ("account_id", "key_id", "model", "provider", "status"):
        if filters.get(name) is not None:
            clauses.append(usage.c[name] == filters[name])
    if filters.get("since") is not None:
        clauses.append(usage.c.created >= filters["since"])
    if filters.get("until") is not None:
        clauses.append(usage.c.created < filters["until"])
    return and_(*clauses)


def _account(row: Any) -> Account:
    return Account(row.id, row.name, row.balance, row.reserved, row.rpm, row.tpm, row.created)


def _key(row: Any) -> ApiKey:
    from ccapi.billing.keys import compile_patterns

    fields = dict(row._mapping)
    key = ApiKey(**fields)
    key.patterns = compile_patterns(key.allowed_models)
    return key


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a committed transaction survives a process crash; only an
    # OS crash can lose the last moments (SQLite's documented trade-off).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
