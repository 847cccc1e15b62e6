"""create_app(settings) -> the ASGI app. No module-level state: everything the
request path needs is built here once and hung on `app.state.gateway`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp

from ccapi import __version__
from ccapi.api import admin as admin_routes
from ccapi.api import catalog as catalog_routes
from ccapi.api import chat as chat_routes
from ccapi.api import edits as edit_routes
from ccapi.api import files as file_routes
from ccapi.api import health as health_routes
from ccapi.api import images as image_routes
from ccapi.api import jobs as job_routes
from ccapi.api import multimodal as multimodal_routes
from ccapi.api import speech as speech_routes
from ccapi.api.errors import install_error_handlers
from ccapi.api.middleware import FastPath, RequestIdMiddleware
from ccapi.api.openapi import install_openapi
from ccapi.api.shutdown import InFlight, StopGuard
from ccapi.billing.keys import KeyAuthenticator, KeyCache
from ccapi.billing.ledger import LedgerWriter
from ccapi.billing.ratelimit import MemoryRateLimiter, RateLimiter
from ccapi.billing.service import BillingService
from ccapi.catalog.catalog import Catalog
from ccapi.config import Settings
from ccapi.core.recorder import AccessLogRecorder, Recorders
from ccapi.files.store import FileStore, file_backend, new_signing_key
from ccapi.jobs.runner import JobRunner
from ccapi.jobs.store import JobStore
from ccapi.media.image_service import ImageService
from ccapi.observability.metrics import HttpMetrics, Metrics, MetricsRecorder
from ccapi.providers.registry import ProviderConfig, ProviderRegistry, resolve_providers
from ccapi.routing.chat import ChatService
from ccapi.routing.failover import FailoverRunner
from ccapi.routing.health import HealthBook
from ccapi.routing.latency import latency_table
from ccapi.storage.migrate import upgrade_isolated
from ccapi.storage.store import Store

if TYPE_CHECKING:
    from ccapi.billing.ratelimit_redis import RedisRateLimiter

log = logging.getLogger("ccapi")

DESCRIPTION = """\
One OpenAI-compatible API in front of many AI providers, with failover.
Every route is also served under `/v1` (for OpenAI SDKs: `base_url=http://host:port/v1`).
Errors always use the `ErrorResponse` envelope.
"""


@dataclass
class Gateway:
    settings: Settings
    catalog: Catalog
    providers: dict[str, ProviderConfig]
    registry: ProviderRegistry
    health: HealthBook
    store: Store
    keys: KeyCache
    ledger: LedgerWriter
    billing: BillingService
    authenticator: KeyAuthenticator
    chat: ChatService
    files: FileStore
    jobs: JobStore
    images: ImageService
    runner: JobRunner
    metrics: Metrics
    # Set when CCAPI_REDIS_URL is: the rate limiter shared by all instances.
    redis: RedisRateLimiter | None = None
    inflight: InFlight = field(default_factory=InFlight)

    async def readiness(self) -> dict[str, str]:
        checks = {"catalog": "ok" if self.catalog.models else "empty"}
        try:
            await asyncio.wait_for(self.store.ping(), timeout=2)
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "down"
        if self.redis is not None:
            try:
                await asyncio.wait_for(self.redis.ping(), timeout=2)
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "down"
        checks["job_runner"] = "ok" if self.runner.healthy else "down"
        return checks

    async def start(self) -> None:
        configured = self.settings.file_signing_key
        signing_key = (
            configured.get_secret_value()
            if configured
            else await self.store.meta_value("file_signing_key", new_signing_key())
        )
        self.files.use_key(signing_key.encode())
        await self.registry.start()
        await self.store.release_expired()
        await self.keys.start()
        self.ledger.start()
        self.metrics.start()
        self.billing.credit.start()
        self.runner.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="ccapi-reservation-sweeper")

    async def stop(self) -> None:
        # Uvicorn has cancelled the requests still running past the grace
        # period; let them end (error event, billing settled) before the
        # ledger is flushed (see api/shutdown.py).
        left = await self.inflight.wait_idle(STOP_SETTLE_SECONDS)
        if left:
            log.error("%d request(s) still running at shutdown; their ledger rows may be missing", left)
        self._sweeper.cancel()
        await self.runner.stop()
        await self.billing.credit.close()
        await self.ledger.close()
        await self.metrics.stop()
        await self.keys.stop()
        await self.registry.close()
        await self.store.close()
        if self.redis is not None:
            await self.redis.close()

    async def _sweep(self) -> None:
        """Release reservations of requests that died with their instance."""
        while True:
            await asyncio.sleep(RESERVATION_SWEEP_SECONDS)
            try:
                await self.store.release_expired()
            except Exception:
                log.warning("reservation sweep failed", exc_info=True)


RESERVATION_SWEEP_SECONDS = 30.0
# How long a stop waits for the requests it cancelled to end.
STOP_SETTLE_SECONDS = 5.0
# A reservation outlives its request's deadline by this much before the sweeper
# treats the request as dead (its instance crashed).
RESERVATION_GRACE_SECONDS = 60.0


def _redis_limiter(url: str) -> RedisRateLimiter:
    # Imported only when configured: redis-py costs 6 MB of resident memory.
    from ccapi.billing.ratelimit_redis import RedisRateLimiter

    return RedisRateLimiter(url)


def rate_limiter(settings: Settings, store: Store, redis: RedisRateLimiter | None) -> RateLimiter:
    """Redis when configured (shared by every instance); else, with several
    worker processes, the database (per-process memory would multiply every
    limit by the number of workers); else this process's memory (fastest)."""
    if redis is not None:
        return redis
    if settings.workers > 1:
        # Imported only then: it loads SQLAlchemy's PostgreSQL dialect (memory a single process never needs).
        from ccapi.billing.ratelimit_db import DatabaseRateLimiter

        return DatabaseRateLimiter(store)
    return MemoryRateLimiter()


def build_gateway(settings: Settings) -> Gateway:
    catalog = Catalog.load(settings.catalog_files, settings.aliases)
    providers = resolve_providers(catalog, settings)
    registry = ProviderRegistry(providers, settings.upstream_pool_size)
    health = HealthBook(settings.breaker.failure_threshold, settings.breaker.reset_seconds)
    runner = FailoverRunner(registry.adapters, health, settings.attempt_timeout)
    master = settings.master_key.get_secret_value() if settings.master_key else None
    store = Store(settings.database_url, settings.database_timeout)
    keys = KeyCache(store)
    ledger = LedgerWriter(store)
    metrics = Metrics(catalog.models, providers)
    metrics.watch(health, ledger)
    inflight = InFlight()
    redis = _redis_limiter(settings.redis_url) if settings.redis_url else None
    limiter = rate_limiter(settings, store, redis)
    billing = BillingService(
        store,
        keys,
        limiter,
        ledger,
        settings.request_timeout + RESERVATION_GRACE_SECONDS,
        settings.credit_idle_release,
    )
    chat = ChatService(
        catalog=catalog,
        configured={name: p.configured for name, p in providers.items()},
        how_to_configure={name: p.how_to_configure() for name, p in providers.items()},
        runner=runner,
        health=health,
        recorder=Recorders([AccessLogRecorder(), MetricsRecorder(metrics)]),
        request_timeout=settings.request_timeout,
        max_models=settings.max_models,
        billing=billing,
        latency=latency_table(settings.latency, catalog),
        stopping=inflight.stopping,
    )
    files = FileStore(file_backend(settings), settings.file_url_ttl)
    jobs = JobStore(store)
    webhook_secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    # A job's hold outlives its longest run by the same grace as a request's.
    job_hold_ttl = settings.jobs.timeout + settings.jobs.lease_seconds + RESERVATION_GRACE_SECONDS
    images = ImageService(
        catalog=catalog,
        providers=providers,
        health=health,
        billing=billing,
        files=files,
        jobs=jobs,
        recorder=chat.recorder,
        attempt_timeout=settings.attempt_timeout,
        request_timeout=settings.request_timeout,
        job_hold_ttl=job_hold_ttl,
        allow_private_urls=settings.allow_private_urls,
        webhook_secret=webhook_secret,
    )
    job_runner = JobRunner(
        jobs,
        images,
        concurrency=settings.jobs.concurrency,
        lease=settings.jobs.lease_seconds,
        poll_interval=settings.jobs.poll_interval,
        job_timeout=settings.jobs.timeout,
        hold_ttl=job_hold_ttl,
        webhook_secret=webhook_secret,
        allow_private_urls=settings.allow_private_urls,
    )
    metrics.watch_job_queue(lambda: job_runner.queue_depth)
    return Gateway(
        settings,
        catalog,
        providers,
        registry,
        health,
        store,
        keys,
        ledger,
        billing,
        KeyAuthenticator(master, keys),
        chat,
        files,
        jobs,
        images,
        job_runner,
        metrics,
        redis=redis,
        inflight=inflight,
    )


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    gateway = build_gateway(settings)
    if migrate:
        upgrade_isolated(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPIOffline(
        title="CCAPI",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.gateway = gateway
    for router in (
        chat_routes.router,
        catalog_routes.router,
        health_routes.router,
        admin_routes.router,
        file_routes.router,
        image_routes.router,
        multimodal_routes.router,
        edit_routes.router,
        job_routes.router,
        speech_routes.router,
    ):
        app.include_router(router)
        app.include_router(router, prefix="/v1", include_in_schema=False)
    install_error_handlers(app)
    install_openapi(app)
    _install_outer_layers(app)
    return app


def _install_outer_layers(app: FastAPI) -> None:
    """Request ids around everything, then the stop guard (api/shutdown.py),
    then the HTTP metrics, then the fast path for model calls, then FastAPI's
    own stack (see FastPath for the measurement behind it)."""
    build_stack = app.build_middleware_stack
    fast_paths = ("/chat/completions", "/v1/chat/completions")
    routes = {("POST", path): chat_routes.chat_endpoint for path in fast_paths}
    metrics: Metrics = app.state.gateway.metrics

    def build() -> ASGIApp:
        inflight = app.state.gateway.inflight
        fast = FastPath(build_stack(), app, routes)
        return RequestIdMiddleware(StopGuard(HttpMetrics(fast, metrics, fast_paths), inflight))

    app.build_middleware_stack = build  # type: ignore[method-assign]
