"""Credit leases: requests' holds come from an instance's lease; the balance
still covers every hold, and the books balance once leases are given back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from ccapi.billing.credit import CreditLeases
from ccapi.storage.migrate import upgrade
from ccapi.storage.store import ReserveRefused, Settlement, Store


@pytest.fixture()
async def store(database_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, database_url)
    s = Store(database_url)
    yield s
    await s.close()


class Ledger:
    """Writes what the leases submit, in order, as the LedgerWriter would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue: list[Settlement] = []

    def submit(self, settlement: Settlement | None, row: Any) -> None:
        if settlement is not None:
            self.queue.append(settlement)

    async def flush(self) -> None:
        batch, self.queue = self.queue, []
        await self.store.record(batch, [])


async def test_holds_within_a_lease_never_exceed_the_balance(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    ledger = Ledger(store)
    leases = CreditLeases(store, ledger.submit, ttl=60, idle_release=0.1)
    holds = []
    with pytest.raises(ReserveRefused) as refused:
        for _ in range(100):
            holds.append(await leases.hold(account.id, None, Decimal("0.07"), None))
    assert len(holds) == 14  # floor(1 / 0.07): the lease grew in chunks, then by the shortfall
    assert refused.value.needed == Decimal("0.07") and refused.value.available == Decimal("0.02")
    found = await store.get_account(account.id)
    assert found is not None and found.reserved <= found.balance


async def test_charges_and_release_leave_exact_books(store: Store) -> None:
    account = await store.create_account("a", Decimal("2"), None, None)
    ledger = Ledger(store)
    leases = CreditLeases(store, ledger.submit, ttl=60, idle_release=0.1)
    costs = [Decimal("0.0123456789"), Decimal("0"), Decimal("0.05")]
    for cost in costs:
        hold = await leases.hold(account.id, None, Decimal("0.1"), None)
        ledger.submit(leases.settle(hold, cost), None)
    await ledger.flush()
    mid = await store.get_account(account.id)
    assert mid is not None and mid.balance == Decimal("2") - sum(costs) and mid.reserved > 0
    await leases.close()  # gives the unused lease back
    await ledger.flush()
    end = await store.get_account(account.id)
    assert end is not None and (end.balance, end.reserved) == (Decimal("2") - sum(costs), Decimal(0))
    assert await store.open_reservations() == 0


async def test_a_key_spend_limit_caps_its_lease(store: Store) -> None:
    account = await store.create_account("a", Decimal("10"), None, None)
    created = await store.create_key(account.id, {"spend_limit": Decimal("0.3")})
    assert created is not None
    key = created[0]
    leases = CreditLeases(store, Ledger(store).submit, ttl=60)
    for _ in range(3):
        await leases.hold(account.id, key, Decimal("0.1"), None)
    with pytest.raises(ReserveRefused) as refused:
        await leases.hold(account.id, key, Decimal("0.1"), None)
    assert refused.value.scope == "key"


async def test_two_instances_share_one_balance_safely(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    first = CreditLeases(store, Ledger(store).submit, ttl=60)
    second = CreditLeases(store, Ledger(store).submit, ttl=60)

    async def take(leases: CreditLeases) -> int:
        taken = 0
        for _ in range(20):
            try:
                await leases.hold(account.id, None, Decimal("0.05"), None)
                taken += 1
            except ReserveRefused:
                pass
        return taken

    counts = await asyncio.gather(take(first), take(second))
    assert sum(counts) <= 20 and sum(counts) >= 10
    found = await store.get_account(account.id)
    assert found is not None and found.reserved <= Decimal("1")
