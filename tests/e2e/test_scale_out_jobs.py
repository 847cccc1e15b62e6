"""Two gateway processes on one PostgreSQL database share the image jobs:
each job is run by exactly one instance, once, and ends with one ledger row."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import httpx

from ccapi.jobs.store import JobStore
from tests.infra import PostgresServer, pg_server
from tests.support import ServerProcess, run_ccapi

from .conftest import gateway_env
from .test_billing import Accounts

__all__ = ["pg_server"]

JOBS = 16
BODY = {
    "model": "stability/stable-diffusion-xl-1024-v1-0",
    "prompt": "a wind farm",
    "size": "1024x1024",
    "async": True,
}  # $0.002 per image


def test_each_job_is_run_by_exactly_one_of_two_instances(
    sim: ServerProcess, pg_server: PostgresServer, tmp_path: Path
) -> None:
    database = pg_server.create_database("ccapi_scale_out_jobs")
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=database,
        CCAPI_FILES_DIR=str(tmp_path / "files"),  # shared, as a bucket would be
        STABILITY_API_KEY="sk-sim-stability",
        CCAPI_STABILITY_BASE_URL=f"{sim.url}/_fault/latency_ms=400",
        CCAPI_JOBS__CONCURRENCY="2",
        CCAPI_JOBS__POLL_INTERVAL="0.1",
    )
    accounts = Accounts(database)
    with (
        run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-jobs-a") as first,
        run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-jobs-b") as second,
    ):
        account = accounts.account("1.00")
        _, key = accounts.key(account)
        headers = {"Authorization": f"Bearer {key}"}

        async def submit_all() -> list[str]:
            async with httpx.AsyncClient(timeout=30, headers=headers) as client:
                calls = [client.post(f"{first.url}/images/generations", json=BODY) for _ in range(JOBS)]
                answers = await asyncio.gather(*calls)
            assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
            return [a.json()["id"] for a in answers]

        ids = asyncio.run(submit_all())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = [
                httpx.get(f"{second.url}/images/jobs/{job_id}", headers=headers).json()["status"] for job_id in ids
            ]
            if all(s in ("succeeded", "failed") for s in statuses):
                break
            time.sleep(0.2)
        assert statuses == ["succeeded"] * JOBS

        stored = [accounts.run(lambda s, i=job_id: JobStore(s).get(i)) for job_id in ids]
        assert all(job.runs == 1 and job.claim == 1 for job in stored)  # nobody ran a job twice
        owners = {job.owner for job in stored}
        assert len(owners) == 2, owners  # both instances took jobs (each runs at most 2 at once)
        rows = accounts.rows(account_id=account)
        assert sorted(r["request_id"] for r in rows) == sorted(job.request_id for job in stored)
        assert sum(r["cost"] for r in rows) == Decimal("0.002") * JOBS
        assert accounts.balance(account) == (Decimal("1.00") - Decimal("0.002") * JOBS, 0)
