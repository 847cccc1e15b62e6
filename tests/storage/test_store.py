"""The Store's money invariants, on every supported database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from ccapi.storage.migrate import upgrade
from ccapi.storage.store import ReserveRefused, Settlement, Store


@pytest.fixture()
async def store(database_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, database_url)
    s = Store(database_url)
    yield s
    await s.close()


def row(request_id: str, account_id: str, cost: Decimal, key_id: str | None = None) -> dict[str, object]:
    return {
        "request_id": request_id, "created": time.time(), "account_id": account_id, "key_id": key_id,
        "route": "/chat/completions", "requested_models": ["openai/gpt-4o-mini"], "model": "openai/gpt-4o-mini",
        "provider": "openai", "attempts": [], "status": 200, "error_type": None, "prompt_tokens": 1,
        "completion_tokens": 1, "input_cost": cost, "output_cost": Decimal(0), "cost": cost, "latency_ms": 1.0,
        "ttft_ms": None, "stream": False,
    }  # fmt: skip


async def test_money_is_exact_to_ten_places(store: Store) -> None:
    account = await store.create_account("a", Decimal("0.1"), None, None)
    await store.add_credits(account.id, Decimal("0.2"), "top-up")
    await store.add_credits(account.id, Decimal("0.0000000001"), "tiny")
    found = await store.get_account(account.id)
    assert found is not None and found.balance == Decimal("0.3000000001")
    credits, total = await store.list_credits(account.id, 10, 0)
    assert total == 3 and credits[0]["balance_after"] == Decimal("0.3000000001")


async def test_an_adjustment_never_takes_the_balance_below_zero(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    with pytest.raises(ValueError):
        await store.add_credits(account.id, Decimal("-1.5"), "too much")
    found = await store.get_account(account.id)
    assert found is not None and found.balance == Decimal("1")
    assert (await store.list_credits(account.id, 10, 0))[1] == 1  # nothing half-written


async def test_reservations_never_exceed_the_balance_under_concurrency(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    amount = Decimal("0.07")

    async def attempt() -> bool:
        try:
            await store.reserve(account.id, None, amount, 60, None)
            return True
        except ReserveRefused:
            return False

    results = await asyncio.gather(*(attempt() for _ in range(40)))
    assert sum(results) == 14  # floor(1 / 0.07)
    found = await store.get_account(account.id)
    assert found is not None and found.reserved == amount * 14 and found.available == Decimal("0.02")
    assert await store.open_reservations() == 14


async def test_a_refusal_reports_needed_and_available(store: Store) -> None:
    account = await store.create_account("a", Decimal("0.05"), None, None)
    with pytest.raises(ReserveRefused) as refused:
        await store.reserve(account.id, None, Decimal("0.06"), 60, None)
    assert (refused.value.scope, refused.value.needed, refused.value.available) == (
        "account",
        Decimal("0.06"),
        Decimal("0.05"),
    )


async def test_settlement_charges_the_cost_and_releases_the_rest(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    reservations = [await store.reserve(account.id, None, Decimal("0.1"), 60, None) for _ in range(3)]
    costs = [Decimal("0.0123456789"), Decimal("0"), Decimal("0.1")]
    await store.record(
        [Settlement(r, c) for r, c in zip(reservations, costs, strict=True)],
        [row(f"req-{i}", account.id, c) for i, c in enumerate(costs)],
    )
    found = await store.get_account(account.id)
    assert found is not None
    assert found.balance == Decimal("1") - sum(costs) and found.reserved == 0
    assert await store.open_reservations() == 0
    rows, total = await store.query_usage({"account_id": account.id}, 10, 0)
    assert total == 3 and sum(r["cost"] for r in rows) == sum(costs)


async def test_key_spend_limit_is_enforced_and_reported(store: Store) -> None:
    account = await store.create_account("a", Decimal("10"), None, None)
    created = await store.create_key(account.id, {"spend_limit": Decimal("0.25")})
    assert created is not None
    key, secret = created
    assert secret.startswith("sk-ccapi-") and key.prefix == secret[:16]
    first = await store.reserve(account.id, key, Decimal("0.2"), 60, None)
    with pytest.raises(ReserveRefused) as refused:
        await store.reserve(account.id, key, Decimal("0.1"), 60, None)
    assert refused.value.scope == "key" and refused.value.available == Decimal("0.05")
    await store.record([Settlement(first, Decimal("0.2"))], [row("r1", account.id, Decimal("0.2"), key.id)])
    refreshed = await store.get_key(key.id)
    assert refreshed is not None and refreshed.spent == Decimal("0.2") and refreshed.reserved == 0
    found = await store.get_account(account.id)
    assert found is not None and found.reserved == 0  # the refused key reservation held nothing


async def test_a_periodic_spend_limit_starts_again_each_period(store: Store) -> None:
    account = await store.create_account("a", Decimal("10"), None, None)
    created = await store.create_key(account.id, {"spend_limit": Decimal("0.1"), "spend_limit_period": "day"})
    assert created is not None
    key = created[0]
    yesterday, today = 1_700_000_000.0, 1_700_086_400.0
    res = await store.reserve(account.id, key, Decimal("0.1"), 60, yesterday)
    await store.record([Settlement(res, Decimal("0.1"))], [row("r1", account.id, Decimal("0.1"), key.id)])
    with pytest.raises(ReserveRefused):
        await store.reserve(account.id, key, Decimal("0.05"), 60, yesterday)
    assert await store.reserve(account.id, key, Decimal("0.1"), 60, today)


async def test_expired_reservations_are_released_once(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    res = await store.reserve(account.id, None, Decimal("0.4"), 0.01, None)
    assert await store.release_expired(time.time() + 1) == 1
    found = await store.get_account(account.id)
    assert found is not None and found.reserved == 0
    # A late settlement of the released reservation charges but does not release twice.
    await store.record([Settlement(res, Decimal("0.1"))], [row("late", account.id, Decimal("0.1"))])
    found = await store.get_account(account.id)
    assert found is not None and (found.balance, found.reserved) == (Decimal("0.9"), Decimal(0))


async def test_usage_summary_groups(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    await store.record([], [row(f"r{i}", account.id, Decimal("0.001")) for i in range(5)])
    by_model = await store.usage_summary("model", {"account_id": account.id})
    assert by_model == [
        {"group": "openai/gpt-4o-mini", "requests": 5, "prompt_tokens": 5, "completion_tokens": 5,
         "cost": Decimal("0.005")}
    ]  # fmt: skip
    by_day = await store.usage_summary("day", {})
    assert sum(g["requests"] for g in by_day) == 5


async def test_a_negative_adjustment_cannot_take_back_reserved_credit(store: Store) -> None:
    account = await store.create_account("a", Decimal("1"), None, None)
    await store.reserve(account.id, None, Decimal("0.8"), 60, None)
    with pytest.raises(ValueError):
        await store.add_credits(account.id, Decimal("-0.5"), "too much while 0.8 is held")
    entry = await store.add_credits(account.id, Decimal("-0.2"), "fits beside the hold")
    assert entry is not None and entry["balance_after"] == Decimal("0.8")


async def test_instances_starting_together_agree_on_a_stored_value(database_url: str) -> None:
    """Workers starting at once each offer a new file-signing key: one is stored, all get it."""
    upgrade(database_url)
    stores = [Store(database_url) for _ in range(4)]
    try:
        for _ in range(3):
            name = f"k{time.monotonic_ns()}"
            values = await asyncio.gather(*(s.meta_value(name, f"offer-{i}") for i, s in enumerate(stores)))
            assert len(set(values)) == 1 and values[0].startswith("offer-")
    finally:
        for s in stores:
            await s.close()
