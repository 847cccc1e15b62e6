"""The jobs table: every state change is one conditional UPDATE, so that any
number of runners on any number of instances agree on who runs a job and
that it ends once.

- A claim takes a pending job, or a running one whose runner stopped
  renewing its lease (it died), and bumps `claim`; the runner's later writes
  (heartbeats, the upstream task, the end) name that claim number, so a
  runner that lost its job can no longer touch it.
- The end of a job (success, failure or cancellation) settles its
  reservation and writes its one ledger row in the same transaction as the
  status change: a job is charged and ledgered exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from ccapi.billing.types import ApiKey
from ccapi.jobs.model import ACTIVE, Job
from ccapi.storage.store import Reservation, Settlement, Store, new_id, settle_holds
from ccapi.storage.tables import jobs, reservations, usage

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class JobHold:
    """The credit a job holds from its submission to its end."""

    account_id: str
    key: ApiKey | None
    amount: Decimal
    period_start: float | None
    ttl: float


def _job(row: Any) -> Job:
    return Job(**row._mapping)


def _claimable(now: float) -> Any:
    return or_(jobs.c.status == "pending", and_(jobs.c.status == "running", jobs.c.lease_until < now))


class JobStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, job: Job, hold: JobHold | None) -> None:
        """Insert the job with its reservation, in one transaction; raises
        ReserveRefused (nothing written) when the balance does not cover it."""
        values = {name: getattr(job, name) for name in Job.__slots__}  # type: ignore[attr-defined]
        async with self.store.write() as conn:
            if hold is not None:
                await self.store._hold(conn, hold.account_id, hold.key, hold.amount, hold.period_start)
                await conn.execute(
                    insert(reservations).values(
                        id=job.reservation_id,
                        account_id=hold.account_id,
                        key_id=hold.key.id if hold.key else None,
                        amount=hold.amount,
                        created=job.created,
                        expires_at=job.created + hold.ttl,
                    )
                )
            await conn.execute(insert(jobs).values(**values))

    async def get(self, job_id: str) -> Job | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return _job(row) if row else None

    async def claim(self, owner: str, limit: int, lease: float, hold_ttl: float) -> list[Job]:
        """Take up to `limit` runnable jobs, oldest first. Two runners racing
        for a job: the conditional UPDATE lets exactly one of them have it."""
        now = time.time()
        async with self.store.engine.connect() as conn:
            candidates = (
                await conn.execute(select(jobs.c.id).where(_claimable(now)).order_by(jobs.c.created).limit(limit * 2))
            ).all()
        claimed: list[Job] = []
        for (job_id,) in candidates:
            if len(claimed) >= limit:
                break
            async with self.store.write() as conn:
                row = (
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, _claimable(now))
                        .values(
                            status="running",
                            owner=owner,
                            claim=jobs.c.claim + 1,
                            lease_until=now + lease,
                            runs=jobs.c.runs + 1,
                            started=func.coalesce(jobs.c.started, now),
                        )
                        .returning(*jobs.c)
                    )
                ).first()
                if row is None:
                    continue
                job = _job(row)
                if job.reservation_id is not None:
                    # The hold lives as long as the job runs, however long it waited.
                    await conn.execute(
                        update(reservations)
                        .where(reservations.c.id == job.reservation_id)
                        .values(expires_at=now + hold_ttl)
                    )
            claimed.append(job)
        return claimed

    async def renew(self, job: Job, lease: float) -> bool:
        """Extend the runner's lease; False when the job is no longer its (cancelled, or taken over)."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.claim == job.claim, jobs.c.status == "running")
                .values(lease_until=time.time() + lease)
            )
        return bool(result.rowcount)

    async def save_upstream(self, job: Job, upstream: dict[str, Any]) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.claim == job.claim, jobs.c.status == "running")
                .values(upstream=upstream)
            )
        job.upstream = upstream
        return bool(result.rowcount)

    async def release(self, job: Job) -> bool:
        """Give a running job back (its gateway is stopping): another runner takes it at once."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.claim == job.claim, jobs.c.status == "running")
                .values(status="pending", owner=None, lease_until=None)
            )
        return bool(result.rowcount)

    async def finish(self, job: Job, fields: dict[str, Any], cost: Decimal, ledger_row: dict[str, Any]) -> bool:
        """End a running job held under `job.claim`: the new state, the charge
        (or release) of its hold and its ledger row, all or nothing."""
        where = (jobs.c.id == job.id, jobs.c.claim == job.claim, jobs.c.status == "running")
        return await self._end(job, where, fields, cost, ledger_row)

    async def cancel(self, job: Job, fields: dict[str, Any], ledger_row: dict[str, Any]) -> bool:
        """Cancel a pending or running job; False when it has already ended."""
        where = (jobs.c.id == job.id, jobs.c.status.in_(ACTIVE))
        return await self._end(job, where, fields, ZERO, ledger_row)

    async def _end(
        self, job: Job, where: tuple[Any, ...], fields: dict[str, Any], cost: Decimal, ledger_row: dict[str, Any]
    ) -> bool:
        now = time.time()
        values = {**fields, "finished": now, "lease_until": None}
        if job.webhook_url is not None:
            values.update(webhook_state="pending", webhook_next_at=now)
        async with self.store.write() as conn:
            result = await conn.execute(update(jobs).where(*where).values(**values))
            if not result.rowcount:
                return False
            if job.reservation_id is not None and job.account_id is not None:
                held = Reservation(job.reservation_id, job.account_id, job.key_id, job.reserved)
                await settle_holds(conn, [Settlement(held, cost)])
            await conn.execute(insert(usage).values(id=new_id("use"), **ledger_row))
        for name, value in values.items():
            setattr(job, name, value)
        return True

    async def due_webhooks(self, limit: int, lease: float) -> list[Job]:
        """Take up to `limit` ended jobs whose webhook is due; each is held for
        `lease` seconds (the delivery's time) before another runner may retry it."""
        now = time.time()
        due = and_(jobs.c.webhook_state == "pending", jobs.c.webhook_next_at <= now)
        async with self.store.engine.connect() as conn:
            candidates = (
                await conn.execute(select(jobs.c.id).where(due).order_by(jobs.c.webhook_next_at).limit(limit))
            ).all()
        taken: list[Job] = []
        for (job_id,) in candidates:
            async with self.store.write() as conn:
                row = (
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, due)
                        .values(webhook_next_at=now + lease)
                        .returning(*jobs.c)
                    )
                ).first()
            if row is not None:
                taken.append(_job(row))
        return taken

    async def webhook_outcome(self, job: Job, state: str, attempts: int, next_at: float | None) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.webhook_state == "pending")
                .values(webhook_state=state, webhook_attempts=attempts, webhook_next_at=next_at)
            )

    async def recent_durations(self, model: str, limit: int = 20) -> list[float]:
        """Seconds from submission to success of the model's latest jobs."""
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(jobs.c.finished - jobs.c.created)
                    .where(jobs.c.model == model, jobs.c.status == "succeeded")
                    .order_by(jobs.c.finished.desc())
                    .limit(limit)
                )
            ).all()
        return [float(r[0]) for r in rows if r[0] is not None]

    async def depth(self) -> int:
        """Jobs waiting or running (all instances)."""
        async with self.store.engine.connect() as conn:
            count = await conn.execute(select(func.count()).select_from(jobs).where(jobs.c.status.in_(ACTIVE)))
            return int(count.scalar_one())
