"""Credit leases: each instance holds a standing reservation per (account, key)
and serves requests' holds from it in memory.

A request must not start unless the balance covers its most expensive
outcome. Checking that in the database on every request costs a write
transaction per request (measured: an account key ran at 9 % of the master
key's throughput on SQLite). Instead an instance reserves credit in chunks
("leases", rows in `reservations`, taken with the same conditional UPDATEs),
and a request's hold is taken from its instance's lease without I/O. The
guarantee holds: every request's hold is part of a lease the balance
covered. Charges shrink the lease through the batched ledger; an idle lease
is given back after a few seconds; a crashed instance's leases expire and
are swept.

The price: credit leased to one instance is not available to another until
it is released (at most the chunk, and only for IDLE_RELEASE_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from ccapi.billing.types import ApiKey
from ccapi.storage.store import Reservation, ReserveRefused, Settlement, Store, new_id

log = logging.getLogger("ccapi.credit")

ZERO = Decimal(0)
# A lease grows by enough for this many more requests like the one that asked...
CHUNK_REQUESTS = 1000
# ...but by no more than this (so an instance does not sit on much of a small balance).
MAX_CHUNK = Decimal("1")
# An unused lease is given back after this long.
IDLE_RELEASE_SECONDS = 5.0
TICK_SECONDS = 1.0


@dataclass(slots=True)
class Lease:
    reservation: Reservation  # `amount` is what the lease holds in the database now
    used: Decimal = ZERO  # held by requests in flight
    last_used: float = 0.0
    renewed: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def free(self) -> Decimal:
        return self.reservation.amount - self.used


@dataclass(slots=True)
class Hold:
    lease: Lease
    amount: Decimal


class CreditLeases:
    def __init__(self, store: Store, submit: object, ttl: float, idle_release: float = IDLE_RELEASE_SECONDS) -> None:
        self.store = store
        self._submit = submit  # LedgerWriter.submit: releases go through the same queue as charges
        self.ttl = ttl
        self.idle_release = idle_release
        self._leases: dict[tuple[str, str | None], Lease] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tend(), name="ccapi-credit-leases")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for key in list(self._leases):
            self._release(key)

    async def hold(self, account_id: str, key: ApiKey | None, needed: Decimal, period_start: float | None) -> Hold:
        """Take `needed` from this instance's lease, growing it first if short.
        Raises ReserveRefused when the balance (or the key's limit) cannot cover it."""
        slot = (account_id, key.id if key else None)
        lease = self._leases.get(slot)
        if lease is None:
            lease = self._leases[slot] = Lease(Reservation(new_id("lease"), account_id, slot[1], ZERO))
        if lease.free < needed:
            async with lease.lock:
                if lease.free < needed:
                    await self._grow(lease, key, needed, period_start)
        lease.used += needed
        lease.last_used = time.monotonic()
        return Hold(lease, needed)

    def settle(self, hold: Hold, cost: Decimal) -> Settlement:
        """The request is over: its hold returns to the lease, its cost is
        charged (the lease shrinks by it, in memory now and in the database
        when the ledger writes the returned settlement)."""
        lease = hold.lease
        lease.used -= hold.amount
        lease.reservation.amount -= cost
        res = lease.reservation
        return Settlement(Reservation(res.id, res.account_id, res.key_id, cost), cost, partial=True)

    async def _grow(self, lease: Lease, key: ApiKey | None, needed: Decimal, period_start: float | None) -> None:
        shortfall = needed - lease.free
        chunk = max(shortfall, min(needed * CHUNK_REQUESTS, MAX_CHUNK))
        refused: ReserveRefused | None = None
        for amount in dict.fromkeys((chunk, shortfall)):  # the chunk, else just what is missing
            try:
                await self.store.extend_lease(
                    lease.reservation.id, lease.reservation.account_id, key, amount, self.ttl, period_start
                )
            except ReserveRefused as exc:
                refused = exc
                continue
            lease.reservation.amount += amount
            lease.renewed = time.monotonic()
            return
        assert refused is not None
        raise ReserveRefused(refused.scope, needed, refused.available + max(lease.free, ZERO))

    def _release(self, slot: tuple[str, str | None]) -> None:
        lease = self._leases.pop(slot)
        # After every charge of this lease in the ledger queue: ends the row and
        # gives back whatever it still holds.
        self._submit(Settlement(lease.reservation, ZERO), None)  # type: ignore[operator]

    async def _tend(self) -> None:
        while True:
            await asyncio.sleep(min(TICK_SECONDS, self.idle_release / 2))
            now = time.monotonic()
            renew = []
            for slot, lease in list(self._leases.items()):
                if lease.used == 0 and now - lease.last_used > self.idle_release and not lease.lock.locked():
                    self._release(slot)
                elif now - lease.renewed > self.ttl / 3:
                    renew.append(lease)
            if renew:
                try:
                    await self.store.renew_leases([lease.reservation.id for lease in renew], self.ttl)
                    for lease in renew:
                        lease.renewed = now
                except Exception:
                    log.warning("lease renewal failed; retrying next tick", exc_info=True)
