"""The jobs table on SQLite and PostgreSQL: runners of several instances (one
Store each) racing for the same jobs each take a job exactly once; a runner
whose claim is stale can no longer end a job; the end of a job charges its
hold and writes its ledger row once; a cancelled job releases its hold."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from ccapi.jobs.model import Job
from ccapi.jobs.runner import job_ledger_row
from ccapi.jobs.store import JobHold, JobStore
from ccapi.storage.migrate import upgrade
from ccapi.storage.store import ReserveRefused, Store

HOLD = Decimal("0.04")


def new_job(n: int, account_id: str | None, reserved: Decimal = HOLD) -> Job:
    return Job(
        id=f"imgjob_{n:024d}",
        request_id=f"req_{n}",
        account_id=account_id,
        key_id=None,
        route="/images/generations",
        model="openai/gpt-image-1",
        provider="openai",
        operation="text-to-image",
        request={"model": "openai/gpt-image-1", "prompt": "x"},
        inputs=None,
        base_url="http://gw.test",
        status="pending",
        reservation_id=f"res_{n:024d}" if account_id else None,
        reserved=reserved if account_id else Decimal(0),
        created=time.time() + n * 1e-3,
    )


async def _setup(database_url: str, credits: Decimal) -> tuple[Store, str]:
    await asyncio.to_thread(upgrade, database_url)
    store = Store(database_url)
    account = await store.create_account("jobs", credits, None, None)
    return store, account.id


async def test_runners_of_two_instances_take_each_job_exactly_once(database_url: str) -> None:
    store, account = await _setup(database_url, Decimal(100))
    others = [Store(database_url) for _ in range(2)]
    try:
        submitted = JobStore(store)
        for n in range(40):
            await submitted.create(new_job(n, account), JobHold(account, None, HOLD, None, 600))
        runners = [JobStore(s) for s in (store, *others)]

        async def runner(jobs: JobStore, name: str) -> list[str]:
            taken: list[str] = []
            while claimed := await jobs.claim(name, 3, 30, 600):
                taken += [job.id for job in claimed]
                await asyncio.sleep(0.01)  # "running" them: the others claim meanwhile
            return taken

        results = await asyncio.gather(*(runner(j, f"r{i}") for i, j in enumerate(runners)))
        every = [job_id for taken in results for job_id in taken]
        assert sorted(every) == sorted(f"imgjob_{n:024d}" for n in range(40))  # each exactly once
        assert sum(1 for taken in results if taken) >= 2  # the work was shared
        for job_id in every:
            job = await submitted.get(job_id)
            assert job is not None and job.status == "running" and job.runs == 1 and job.claim == 1
    finally:
        for s in (store, *others):
            await s.close()


async def test_a_lapsed_lease_is_taken_over_and_the_stale_runner_cannot_end_the_job(database_url: str) -> None:
    store, account = await _setup(database_url, Decimal(1))
    try:
        jobs = JobStore(store)
        await jobs.create(new_job(1, account), JobHold(account, None, HOLD, None, 600))
        [first] = await jobs.claim("dead-instance", 1, 0.2, 600)
        assert await jobs.claim("other", 1, 30, 600) == []  # its lease still holds
        await asyncio.sleep(0.3)
        [second] = await jobs.claim("restarted", 1, 30, 600)
        assert (second.claim, second.runs, second.owner) == (2, 2, "restarted")

        cost = Decimal("0.011")
        stale_row = job_ledger_row(first, 200, None, cost, [])
        assert not await jobs.finish(first, {"status": "succeeded"}, cost, stale_row)
        assert not await jobs.renew(first, 30)
        row = job_ledger_row(second, 200, None, cost, [])
        assert await jobs.finish(second, {"status": "succeeded", "images": 1, "cost": cost}, cost, row)
        assert not await jobs.finish(second, {"status": "succeeded"}, cost, row)  # ends once

        rows, total = await store.query_usage({}, 10, 0)
        assert total == 1 and rows[0]["cost"] == cost and rows[0]["request_id"] == "req_1"
        found = await store.get_account(account)
        assert found is not None and (found.balance, found.reserved) == (Decimal(1) - cost, 0)
        assert await store.open_reservations() == 0
    finally:
        await store.close()


async def test_cancel_releases_the_hold_once_and_a_finished_job_cannot_be_cancelled(database_url: str) -> None:
    store, account = await _setup(database_url, Decimal(1))
    try:
        jobs = JobStore(store)
        pending, running = new_job(1, account), new_job(2, account)
        for job in (pending, running):
            await jobs.create(job, JobHold(account, None, HOLD, None, 600))
        found = await store.get_account(account)
        assert found is not None and found.reserved == 2 * HOLD
        [claimed] = await jobs.claim("r", 1, 30, 600)  # the oldest: job 1
        assert claimed.id == pending.id
        for job in (claimed, running):
            assert await jobs.cancel(job, {"status": "cancelled"}, job_ledger_row(job, 499, "cancelled", 0, []))
            assert not await jobs.cancel(job, {"status": "cancelled"}, job_ledger_row(job, 499, "cancelled", 0, []))
        # The runner that held job 1 finds it is no longer its own.
        assert not await jobs.renew(claimed, 30)
        assert not await jobs.finish(claimed, {"status": "succeeded"}, HOLD, job_ledger_row(claimed, 200, None, 0, []))
        found = await store.get_account(account)
        assert found is not None and (found.balance, found.reserved) == (Decimal(1), 0)
        rows, total = await store.query_usage({}, 10, 0)
        assert total == 2 and {r["status"] for r in rows} == {499}
    finally:
        await store.close()


async def test_a_job_the_balance_cannot_cover_is_not_written(database_url: str) -> None:
    store, account = await _setup(database_url, Decimal("0.05"))
    try:
        jobs = JobStore(store)
        await jobs.create(new_job(1, account), JobHold(account, None, HOLD, None, 600))
        try:
            await jobs.create(new_job(2, account), JobHold(account, None, HOLD, None, 600))
        except ReserveRefused as refused:
            assert refused.scope == "account" and refused.needed == HOLD
        else:
            raise AssertionError("the second job should not fit the balance")
        assert await jobs.get(new_job(2, account).id) is None
        assert await jobs.depth() == 1
    finally:
        await store.close()


async def test_webhooks_are_taken_by_one_runner_and_retried_later(database_url: str) -> None:
    store, account = await _setup(database_url, Decimal(1))
    other = Store(database_url)
    try:
        jobs = JobStore(store)
        job = new_job(1, account)
        job.webhook_url = "http://hooks.test/x"
        await jobs.create(job, JobHold(account, None, HOLD, None, 600))
        [claimed] = await jobs.claim("r", 1, 30, 600)
        assert await jobs.finish(claimed, {"status": "failed"}, Decimal(0), job_ledger_row(claimed, 502, "x", 0, []))
        taken = await asyncio.gather(jobs.due_webhooks(5, 30), JobStore(other).due_webhooks(5, 30))
        assert sorted(len(t) for t in taken) == [0, 1]
        [delivering] = next(t for t in taken if t)
        await jobs.webhook_outcome(delivering, "pending", 1, time.time() - 1)  # failed: due again
        [again] = await jobs.due_webhooks(5, 30)
        await jobs.webhook_outcome(again, "delivered", 2, None)
        assert await jobs.due_webhooks(5, 30) == []
        final = await jobs.get(job.id)
        assert final is not None and (final.webhook_state, final.webhook_attempts) == ("delivered", 2)
    finally:
        await store.close()
        await other.close()
