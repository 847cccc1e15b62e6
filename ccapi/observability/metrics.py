"""Prometheus metrics: what `GET /metrics` shows (docs/operations.md lists them).

Two sources feed them, both O(1) per request:

- `HttpMetrics` (pure ASGI, around every route): requests by route template,
  method and status, their duration, and the requests in flight.
- `MetricsRecorder` (a `Recorder`): every finished model call's
  `RequestRecord` — by route, status, provider and served model — with the
  whole latency, its upstream part, the gateway's own overhead (whole minus
  upstream), time to first token, tokens, cost, and each attempt's outcome.

Label values are bounded: route templates, status codes, provider names and
model ids from the catalog (anything else is "unknown"; nothing served is
"none"). Never key ids, account ids or request ids. The labelled children are
bound once per label combination and kept in a dict, so a request costs a
dict lookup and a few increments.

Gauges that describe state (breakers, the ledger queue, the job queue) are
read from callbacks when scraped, never on the request path.

Several worker processes: set PROMETHEUS_MULTIPROC_DIR (see
`prepare_multiprocess`) before the workers start; every process then writes
its values to memory-mapped files there and the scrape aggregates them
(https://prometheus.github.io/client_python/multiprocess/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client import values as prom_values
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccapi.core.types import RequestRecord

if TYPE_CHECKING:
    from ccapi.billing.ledger import LedgerWriter
    from ccapi.routing.health import HealthBook

log = logging.getLogger("ccapi.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Whole requests and upstream calls: from a cached answer to a long stream.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# The gateway's own share of a request: sub-millisecond when all is well.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

NONE = "none"  # nothing served (the request failed before or at every provider)
UNKNOWN = "unknown"  # a value outside the bounded set (never passed through)
UNMATCHED = "unmatched"  # an HTTP path no route matched
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# Breaker state as a number, so that a graph can show it and `max` makes sense.
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# How often each worker refreshes its state gauges in multiprocess mode (the
# scrape reaches one worker only, so the others write theirs ahead of time).
MULTIPROC_REFRESH_SECONDS = 5.0


def multiprocess_enabled() -> bool:
    """True when this process writes its metrics to PROMETHEUS_MULTIPROC_DIR.

    prometheus_client chooses its value storage when it is first imported, so
    the variable must be in the environment before that (set by the parent
    that spawns the workers; see `prepare_multiprocess`)."""
    return bool(getattr(prom_values.ValueClass, "_multiprocess", False))


def adopt_multiprocess_env() -> None:
    """In a worker forked after PROMETHEUS_MULTIPROC_DIR was set: metrics
    created from now on write to the shared files, even though
    prometheus_client was imported (by the parent) before the variable was set."""
    if os.environ.get(MULTIPROC_ENV) and not multiprocess_enabled():
        prom_values.ValueClass = prom_values.get_value_class()  # type: ignore[no-untyped-call]


def prepare_multiprocess(directory: str | Path) -> Path:
    """Switch worker processes started after this call to multiprocess metrics.

    Call it in the parent before it spawns `--workers N` processes: it empties
    the directory (stale files from a previous run would be summed in) and
    exports PROMETHEUS_MULTIPROC_DIR, which the workers inherit."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def worker_exited(pid: int) -> None:
    """Tell the multiprocess files that a worker is gone (its live gauges are dropped)."""
    if os.environ.get(MULTIPROC_ENV):
        prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def attempt_error_kind(status: Any, kind: str | None) -> str:
    """The bounded label for a failed attempt: timeout, connect, malformed,
    stream, 429, 5xx, 4xx, or other. `kind` is AttemptError.kind when known."""
    if kind not in (None, "http"):
        return kind if kind in ("timeout", "connect", "malformed", "stream") else "other"
    if isinstance(status, int):
        if status == 429:
            return "429"
        if status >= 500:
            return "5xx"
        if status >= 400:
            return "4xx"
    return "other"


class Metrics:
    """The gateway's metrics, in a registry of their own (tests build many apps)."""

    def __init__(self, models: Iterable[str], providers: Iterable[str]) -> None:
        self.models = frozenset(models)
        self.providers = frozenset(providers)
        self.multiprocess = multiprocess_enabled()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        call = ("route", "provider", "model")
        self.http_requests = Counter(
            "ccapi_http_requests", "HTTP requests by route template, method and status.",
            ("route", "method", "status"), registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "ccapi_http_request_duration_seconds", "HTTP request duration (to the end of the body), "
            "routes other than model calls (see ccapi_request_duration_seconds).",
            ("route",), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "ccapi_http_requests_in_flight", "Requests being served.", registry=r, multiprocess_mode="livesum"
        )
        # Counted as a plain int on the request path, copied to the gauge when scraped.
        self.in_flight_now = 0
        self.requests = Counter(
            "ccapi_requests", "Model-calling requests by route, status, provider and served model.",
            ("route", "status", "provider", "model"), registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "ccapi_request_duration_seconds", "Model-calling request duration, whole.",
            call, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream = Histogram(
            "ccapi_upstream_duration_seconds", "The upstream part of a request (all attempts; a stream to its end).",
            call, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.overhead = Histogram(
            "ccapi_gateway_overhead_seconds", "The gateway's own part of a request (whole minus upstream).",
            call, buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "ccapi_time_to_first_token_seconds", "Streams: from the served attempt's start to its first event "
            "(the ledger's ttft_ms).",
            call, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "ccapi_tokens", "Tokens billed, by direction (input, output).", (*call, "direction"), registry=r
        )
        self.cost = Counter("ccapi_cost_usd", "Cost of requests in USD (as billed).", call, registry=r)
        self.attempts = Counter("ccapi_upstream_attempts", "Provider attempts, by provider.", ("provider",), registry=r)
        self.upstream_errors = Counter(
            "ccapi_upstream_errors", "Failed provider attempts by provider and kind "
            "(timeout, connect, malformed, stream, 429, 5xx, 4xx, other).",
            ("provider", "kind"), registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "ccapi_circuit_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            ("provider",), registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.ledger_depth = Gauge(
            "ccapi_ledger_queue_depth", "Ledger entries waiting to be written.", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.ledger_lag = Gauge(
            "ccapi_ledger_lag_seconds", "Age of the oldest ledger entry not yet written (0 when none).",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.ledger_dropped = Gauge(
            "ccapi_ledger_dropped_rows", "Ledger rows dropped after repeated write failures since start.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.job_queue_depth = Gauge(
            "ccapi_job_queue_depth", "Jobs waiting to run (0 until a job runner registers).",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self._job_sources: list[Callable[[], int]] = []
        self._health: HealthBook | None = None
        self._ledger: LedgerWriter | None = None
        self._refresher: asyncio.Task[None] | None = None
        for provider in sorted(self.providers):
            self.breaker_state.labels(provider).set(0)

    # -- label values ---------------------------------------------------------

    def model_label(self, model: str | None) -> str:
        if model is None:
            return NONE
        return model if model in self.models else UNKNOWN

    def provider_label(self, provider: str | None) -> str:
        if provider is None:
            return NONE
        return provider if provider in self.providers else UNKNOWN

    # -- state gauges ---------------------------------------------------------

    def watch(self, health: HealthBook, ledger: LedgerWriter) -> None:
        self._health, self._ledger = health, ledger

    def watch_job_queue(self, depth: Callable[[], int]) -> None:
        """A job runner registers how many jobs wait; several sources are summed."""
        self._job_sources.append(depth)

    def refresh(self) -> None:
        """Read the state gauges from their sources (at scrape time)."""
        self.in_flight.set(self.in_flight_now)
        if self._health is not None:
            for provider, state in self._health.states().items():
                if provider in self.providers:
                    self.breaker_state.labels(provider).set(BREAKER_STATE_VALUES[state])
        if self._ledger is not None:
            self.ledger_depth.set(self._ledger.pending)
            self.ledger_lag.set(self._ledger.lag())
            self.ledger_dropped.set(self._ledger.dropped)
        depth = 0
        for source in self._job_sources:
            try:
                depth += source()
            except Exception:
                log.warning("job queue depth source failed", exc_info=True)
        self.job_queue_depth.set(depth)

    def start(self) -> None:
        if self.multiprocess:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="ccapi-metrics-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    async def _refresh_forever(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(MULTIPROC_REFRESH_SECONDS)

    def render(self) -> bytes:
        """The text exposition format: this process's registry, or every
        worker's files in multiprocess mode."""
        self.refresh()
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class _CallChildren:
    """The bound children for one (route, status, provider, model)."""

    __slots__ = ("cost", "duration", "overhead", "requests", "tokens_in", "tokens_out", "ttft", "upstream")

    def __init__(self, m: Metrics, route: str, status: str, provider: str, model: str) -> None:
        self.requests = m.requests.labels(route, status, provider, model)
        self.duration = m.duration.labels(route, provider, model)
        self.upstream = m.upstream.labels(route, provider, model)
        self.overhead = m.overhead.labels(route, provider, model)
        self.ttft = m.ttft.labels(route, provider, model)
        self.tokens_in = m.tokens.labels(route, provider, model, "input")
        self.tokens_out = m.tokens.labels(route, provider, model, "output")
        self.cost = m.cost.labels(route, provider, model)


class MetricsRecorder:
    """Feeds every finished model call's record into the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._calls: dict[tuple[str, int, str | None, str | None], _CallChildren] = {}
        self._attempts: dict[str, Any] = {}
        self._errors: dict[tuple[str, str], Any] = {}

    def record(self, rec: RequestRecord) -> None:
        # Keyed by the raw values; a value outside the bounded sets is mapped
        # before it becomes a key, so the dict cannot grow without bound.
        m = self.metrics
        model = rec.model if rec.model is None or rec.model in m.models else UNKNOWN
        provider = rec.provider if rec.provider is None or rec.provider in m.providers else UNKNOWN
        key = (rec.route, rec.status, provider, model)
        children = self._calls.get(key)
        if children is None:
            children = self._calls[key] = _CallChildren(m, rec.route, str(rec.status), provider or NONE, model or NONE)
        children.requests.inc()
        whole = rec.latency_ms / 1000
        children.duration.observe(whole)
        if rec.attempts:
            upstream = rec.upstream_latency_ms / 1000
            children.upstream.observe(upstream)
            children.overhead.observe(max(whole - upstream, 0.0))
        if rec.ttft_ms is not None:
            children.ttft.observe(rec.ttft_ms / 1000)
        if rec.prompt_tokens:
            children.tokens_in.inc(rec.prompt_tokens)
        if rec.completion_tokens:
            children.tokens_out.inc(rec.completion_tokens)
        cost = rec.cost
        if cost:
            children.cost.inc(float(cost))
        kinds = rec.attempt_kinds
        for i, attempt in enumerate(rec.attempts):
            self._attempt(attempt, kinds[i] if i < len(kinds) else None)

    def _attempt(self, attempt: dict[str, Any], kind: str | None) -> None:
        name = attempt.get("provider")
        provider = name if isinstance(name, str) and name in self.metrics.providers else UNKNOWN
        child = self._attempts.get(provider)
        if child is None:
            child = self._attempts[provider] = self.metrics.attempts.labels(provider)
        child.inc()
        status = attempt.get("status")
        ok = kind is None and attempt.get("error") is None and isinstance(status, int) and status < 400
        if ok:
            return
        key = (provider, attempt_error_kind(status, kind))
        error = self._errors.get(key)
        if error is None:
            error = self._errors[key] = self.metrics.upstream_errors.labels(*key)
        error.inc()


class HttpMetrics:
    """Pure ASGI: every HTTP request's route template and status, the
    duration of those FastAPI serves, and the requests in flight.

    The fast path's model calls (`fast_routes`) are only counted here: their
    duration is `ccapi_request_duration_seconds`, from their record, so the
    hot path does not pay for a second histogram."""

    def __init__(self, app: ASGIApp, metrics: Metrics, fast_routes: Iterable[str] = ()) -> None:
        self.app = app
        self.metrics = metrics
        # Paths the fast path serves before the router (no `scope["route"]`).
        self.fast_routes = {path: _template(path) for path in fast_routes}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # a bug that sent nothing
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        metrics.in_flight_now += 1
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_flight_now -= 1
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        path = scope.get("path", "")
        template = self.fast_routes.get(path)
        fast = template is not None
        if template is None:
            route = scope.get("route")
            # path_format: `/models/{provider}/{model}`, without `:path` converters.
            raw = getattr(route, "path_format", None)
            template = UNMATCHED if not isinstance(raw, str) else raw
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "OTHER"
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            label = _template(template) if template != UNMATCHED else UNMATCHED
            children = self._children[key] = (
                self.metrics.http_requests.labels(label, method, str(status)),
                None if fast else self.metrics.http_duration.labels(label),
            )
        children[0].inc()
        if children[1] is not None:
            children[1].observe(time.perf_counter() - started)


def _template(path: str) -> str:
    """`/v1/models/{provider}/{model}` and `/models/{provider}/{model}` are one route."""
    return path[3:] if path.startswith("/v1/") else path
