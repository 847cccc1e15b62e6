"""The job runner: inside every gateway instance, it claims jobs from the
database, executes them, ends them (charge, ledger row, status in one
transaction) and delivers their webhooks.

Restart safety: a runner renews the lease of each job it holds; a gateway
that dies stops renewing, and once the lease lapses any runner (the
restarted gateway, or another instance) claims the job again. An upstream
task already submitted (submit-then-poll APIs) is resumed, not submitted
again (media/upstream_task.py). A gateway that stops on SIGTERM hands its
jobs back at once. Whatever happens, `JobStore.finish` lets only the current
claim end a job, so it is charged, ledgered and webhooked once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from ccapi.core.errors import CCAPIError, InternalError
from ccapi.core.ids import new_id
from ccapi.files.fetch import PublicOnlyResolver
from ccapi.jobs.model import Job, render_job
from ccapi.jobs.store import JobStore
from ccapi.media.image_service import Generated, ImageService
from ccapi.media.images import AttemptFailed
from ccapi.media.upstream_task import UPSTREAM_TASK, UpstreamTaskHooks

log = logging.getLogger("ccapi.jobs")

# Ledger status of a job its owner cancelled (nginx's "client closed request").
CANCELLED_STATUS = 499
WEBHOOK_TIMEOUT = 10.0
WEBHOOK_MAX_ATTEMPTS = 12
WEBHOOK_MAX_BACKOFF = 600.0
DEPTH_REFRESH_SECONDS = 5.0


def webhook_signature(secret: str, body: bytes) -> str:
    """The `x-ccapi-signature` header: `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_backoff(attempts: int) -> float:
    """Seconds before the next delivery after `attempts` failed ones: 2, 4, 8, ... up to 10 minutes."""
    return float(min(WEBHOOK_MAX_BACKOFF, 2**attempts))


def job_ledger_row(
    job: Job,
    status: int,
    error_type: str | None,
    cost: Decimal,
    attempts: list[dict[str, Any]],
    tokens: tuple[int, int] = (0, 0),
    input_cost: Decimal = Decimal(0),
) -> dict[str, Any]:
    """The job's one ledger row, under the submitting request's id and route."""
    return {
        "request_id": job.request_id,
        "created": job.created,
        "account_id": job.account_id,
        "key_id": job.key_id,
        "route": job.route,
        "requested_models": [job.request.get("model", job.model)],
        "model": job.model,
        "provider": job.provider,
        "attempts": attempts,
        "status": status,
        "error_type": error_type,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "input_cost": input_cost,
        "output_cost": cost - input_cost,
        "cost": cost,
        "latency_ms": (time.time() - job.created) * 1000,
        "ttft_ms": None,
        "stream": False,
    }


class JobRunner:
    def __init__(
        self,
        jobs: JobStore,
        images: ImageService,
        *,
        concurrency: int,
        lease: float,
        poll_interval: float,
        job_timeout: float,
        hold_ttl: float,
        webhook_secret: str | None,
        allow_private_urls: bool,
    ) -> None:
        self.jobs = jobs
        self.images = images
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.hold_ttl = hold_ttl
        self.webhook_secret = webhook_secret
        self.allow_private_urls = allow_private_urls
        self.owner = f"runner_{new_id()}"
        self._running: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = True
        # Jobs pending or running on every instance (the metrics' job queue
        # depth), refreshed every DEPTH_REFRESH_SECONDS.
        self.queue_depth = 0
        self._depth_at = 0.0

    def start(self) -> None:
        self.images.wake = self._wake.set
        self._loop = asyncio.create_task(self._main(), name="ccapi-job-runner")

    @property
    def running(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop claiming; hand the jobs in progress back (another runner, or this
        gateway restarted, takes them at once); let webhook deliveries finish."""
        self._stopping = True
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        held = list(self._running.values())
        for _, task in held:
            task.cancel()
        await asyncio.gather(*(task for _, task in held), return_exceptions=True)
        for job, _ in held:
            try:
                await self.jobs.release(job)
            except Exception:
                log.warning("could not hand job %s back; it is taken again when its lease ends", job.id)
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=WEBHOOK_TIMEOUT)

    async def cancel(self, job: Job) -> bool:
        """Cancel a pending or running job: its hold is released (nothing is
        charged), its ledger row written; False when it had already ended.
        A runner on another instance notices at its next heartbeat."""
        fields = {"status": "cancelled"}
        row = job_ledger_row(job, CANCELLED_STATUS, "cancelled", Decimal(0), job.attempts or [])
        if not await self.jobs.cancel(job, fields, row):
            return False
        found = self._running.get(job.id)
        if found is not None:
            found[1].cancel()
        return True

    async def _main(self) -> None:
        while True:
            try:
                free = self.concurrency - len(self._running)
                if free > 0:
                    for job in await self.jobs.claim(self.owner, free, self.lease, self.hold_ttl):
                        task = asyncio.create_task(self._run(job), name=f"ccapi-job-{job.id}")
                        self._running[job.id] = (job, task)
                if self.webhook_secret and len(self._deliveries) < self.concurrency:
                    for job in await self.jobs.due_webhooks(self.concurrency, WEBHOOK_TIMEOUT * 3):
                        delivery = asyncio.create_task(self._deliver(job), name=f"ccapi-webhook-{job.id}")
                        self._deliveries.add(delivery)
                        delivery.add_done_callback(self._deliveries.discard)
                if time.monotonic() - self._depth_at > DEPTH_REFRESH_SECONDS:
                    self.queue_depth = await self.jobs.depth()
                    self._depth_at = time.monotonic()
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except Exception:
                self.healthy = False
                log.warning("job runner: claiming failed; retrying", exc_info=True)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass

    # -- one job -----------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job, asyncio.current_task()))
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            if not self._stopping:
                log.info("job %s stopped: cancelled", job.id)
            raise
        except Exception:
            log.exception("job %s failed with a bug", job.id)
            await self._end_failed(job, 500, InternalError("The job failed (a bug).").to_dict()["error"], [])
        finally:
            heartbeat.cancel()
            self._running.pop(job.id, None)
            self._wake.set()

    async def _execute(self, job: Job) -> None:
        try:
            task, config = await self.images.job_task(job)
        except CCAPIError as exc:
            await self._end_failed(job, exc.status, exc.to_dict()["error"], [])
            return

        async def save(upstream: dict[str, Any]) -> None:
            await self.jobs.save_upstream(job, upstream)

        token = UPSTREAM_TASK.set(UpstreamTaskHooks(job.upstream, save))
        try:
            generated = await self.images.execute(task, config, self.job_timeout)
        except AttemptFailed as failed:
            error = self.images.attempt_error(task.info, failed, None)
            attempts = error.details.get("attempts", []) if error.details else []
            await self._end_failed(job, error.status, error.to_dict()["error"], attempts)
            return
        except CCAPIError as exc:
            await self._end_failed(job, exc.status, exc.to_dict()["error"], [])
            return
        finally:
            UPSTREAM_TASK.reset(token)
        await self._end_succeeded(job, generated)

    async def _end_succeeded(self, job: Job, generated: Generated) -> None:
        cost = generated.cost
        fields = {
            "status": "succeeded",
            "result": [image.as_result() for image in generated.images],
            "images": len(generated.images),
            "cost": cost.total,
            "attempts": generated.attempts,
        }
        row = job_ledger_row(
            job,
            200,
            None,
            cost.total,
            generated.attempts,
            (cost.prompt_tokens, cost.output_tokens),
            cost.input_cost,
        )
        if await self.jobs.finish(job, fields, cost.total, row):
            self.images.forget_estimate(job.model)  # one more data point
        else:
            log.info("job %s ended elsewhere (cancelled or taken over); result dropped", job.id)

    async def _end_failed(self, job: Job, status: int, error: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        fields = {"status": "failed", "error": error, "attempts": attempts}
        row = job_ledger_row(job, status, error.get("type"), Decimal(0), attempts)
        await self.jobs.finish(job, fields, Decimal(0), row)

    async def _heartbeat(self, job: Job, worker: asyncio.Task[Any] | None) -> None:
        """Renew the lease; stop the worker when the job is no longer ours
        (cancelled through another instance) or has run past its deadline."""
        deadline = time.monotonic() + self.job_timeout + self.lease
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                still_ours = await self.jobs.renew(job, self.lease)
            except Exception:
                log.warning("job %s: lease renewal failed", job.id, exc_info=True)
                continue
            if not still_ours or time.monotonic() > deadline:
                if worker is not None:
                    worker.cancel()
                return

    # -- webhooks ------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        """POST the final job object once (retried with backoff until a 2xx)."""
        assert self.webhook_secret is not None and job.webhook_url is not None
        body = orjson.dumps(await render_job(job, self.images.files, job.base_url))
        headers = {
            "content-type": "application/json",
            "x-ccapi-signature": webhook_signature(self.webhook_secret, body),
            "x-ccapi-job-id": job.id,
            "user-agent": "ccapi-webhooks",
        }
        connector = aiohttp.TCPConnector(resolver=None if self.allow_private_urls else PublicOnlyResolver())
        attempts = job.webhook_attempts + 1
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)
                ) as session,
                session.post(job.webhook_url, data=body, headers=headers, allow_redirects=False) as resp,
            ):
                delivered = 200 <= resp.status < 300
                reason = f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            delivered, reason = False, exc.__class__.__name__
        if delivered:
            await self.jobs.webhook_outcome(job, "delivered", attempts, None)
        elif attempts >= WEBHOOK_MAX_ATTEMPTS:
            log.warning("webhook of job %s abandoned after %d attempts (%s)", job.id, attempts, reason)
            await self.jobs.webhook_outcome(job, "failed", attempts, None)
        else:
            await self.jobs.webhook_outcome(job, "pending", attempts, time.time() + webhook_backoff(attempts))
