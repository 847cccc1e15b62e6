"""Reservations and settlement batches racing from two instances (two Stores
on one database): no deadlock, no lost hold, balances exact."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from ccapi.storage.migrate import upgrade
from ccapi.storage.store import Settlement, Store

from .test_store import row

HOLD, COST = Decimal("0.01"), Decimal("0.0042")


async def test_reservations_and_settlements_from_two_instances_never_deadlock(database_url: str) -> None:
    """Spend-limited keys make `reserve` lock a key, then its account; a batch
    settles several keys and accounts. On PostgreSQL, opposite lock orders
    deadlock (and a reservation that loses is a 500 with no ledger row)."""
    await asyncio.to_thread(upgrade, database_url)
    instances = [Store(database_url), Store(database_url)]
    try:
        setup = instances[0]
        accounts = [await setup.create_account(f"a{i}", Decimal(100), None, None) for i in range(2)]
        keys = []
        for account in accounts:
            for _ in range(3):
                created = await setup.create_key(account.id, {"spend_limit": Decimal(50)})
                assert created is not None
                keys.append(created[0])
        rng = random.Random(7)

        async def worker(n: int) -> int:
            store, settled = instances[n % 2], 0
            for i in range(8):
                batch = [await store.reserve(k.account_id, k, HOLD, 60, None) for k in rng.sample(keys, len(keys))]
                rng.shuffle(batch)
                await store.record(
                    [Settlement(res, COST) for res in batch],
                    [row(f"w{n}-{i}-{j}", res.account_id, COST, res.key_id) for j, res in enumerate(batch)],
                )
                settled += len(batch)
            return settled

        settled = await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(6))), timeout=60)
        per_account = sum(settled) // len(accounts)
        for account in accounts:
            found = await setup.get_account(account.id)
            assert found is not None
            assert (found.balance, found.reserved) == (Decimal(100) - COST * per_account, Decimal(0))
        for key in keys:
            found_key = await setup.get_key(key.id)
            assert found_key is not None
            assert (found_key.spent, found_key.reserved) == (COST * (sum(settled) // len(keys)), Decimal(0))
        assert await setup.open_reservations() == 0
    finally:
        for store in instances:
            await store.close()
