"""Both image routes, synchronous or as a job: check the request against the
model's rules, reserve, call the provider, re-host every image in the
FileStore, settle, render.

A request becomes an `ImageTask` (the model, the operation, the most it can
cost, and how to call the upstream and price its answer): the synchronous
path executes it at once; a job stores the request and its runner
(jobs/runner.py) rebuilds the same task from it and executes it later.
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp

from ccapi.api.deps import Principal
from ccapi.billing.service import Admission, BillingService, period_start
from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import CCAPIError, InternalError, InvalidRequestError, ProviderUnavailableError, UpstreamError
from ccapi.core.ids import new_id
from ccapi.core.recorder import Recorder
from ccapi.core.types import RequestRecord
from ccapi.files.fetch import check_target, fetch
from ccapi.files.image_types import sniff_image_type
from ccapi.files.store import FileStore
from ccapi.jobs.model import Job, poll_path, render_job
from ccapi.jobs.store import JobHold, JobStore
from ccapi.media.images import (
    MAX_FETCHED_IMAGE_BYTES,
    AttemptFailed,
    BadUpstreamAnswer,
    ImageCost,
    RawImage,
    UpstreamImages,
    actual_cost,
    attempt_entry,
    call_images,
    check_params,
    reservation,
)
from ccapi.media.multimodal import (
    MULTIMODAL_WIRES,
    InputImage,
    Part,
    check_contents,
    check_model,
    decode_inline,
    operation_of,
)
from ccapi.providers.registry import ProviderConfig
from ccapi.routing.health import HealthBook
from ccapi.schemas.images import LegacyImageGenerationRequest
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest, MultimodalImageSource
from ccapi.storage.store import ReserveRefused

LEGACY_ROUTE = "/images/generations"
MULTIMODAL_ROUTE = "/images/generate"
FETCH_TIME_LIMIT = 20.0
# How long `estimated_time` trusts the recent jobs it was computed from.
ESTIMATE_CACHE_SECONDS = 30.0

ImageRequest = LegacyImageGenerationRequest | MultimodalImageGenerationRequest


@dataclass(slots=True)
class ImageTask:
    """One generation, ready to execute (now, or later by a job's runner)."""

    route: str
    info: ModelInfo
    operation: str
    response_format: str
    needed: Decimal  # the reservation: the most it can cost
    call: Callable[[aiohttp.ClientSession, ProviderConfig], Awaitable[UpstreamImages]]
    price: Callable[[int, UpstreamImages], ImageCost]
    # The input parts of a multimodal request (stored with a job).
    parts: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class StoredImage:
    file_id: str
    content_type: str
    data: bytes
    revised_prompt: str | None
    seed: int | None

    def as_result(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "content_type": self.content_type,
            "revised_prompt": self.revised_prompt,
            "seed": self.seed,
        }


@dataclass(slots=True)
class Generated:
    images: list[StoredImage]
    cost: ImageCost
    attempts: list[dict[str, Any]]


STORED_IMAGE = "ccapi-file:"


def stored_contents(contents: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A job's `contents` as stored: each input image (inline or by URL) stands
    for the file it was stored as, so the job row stays small and the run uses
    the very bytes checked at submission. `inputs` are the stored parts in
    order (text, image, mask of each element)."""
    files = iter(item["file_id"] for item in inputs if "file_id" in item)
    stored = []
    for content in contents:
        element = dict(content)
        for role in ("image", "mask"):
            if role in element:
                element[role] = {"url": STORED_IMAGE + next(files)}
        stored.append(element)
    return stored


class ImageService:
    """One per gateway; every call takes the request's own state as arguments."""

    def __init__(
        self,
        catalog: Catalog,
        providers: dict[str, ProviderConfig],
        health: HealthBook,
        billing: BillingService,
        files: FileStore,
        jobs: JobStore,
        recorder: Recorder,
        attempt_timeout: float,
        request_timeout: float,
        job_hold_ttl: float,
        allow_private_urls: bool = False,
        webhook_secret: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.providers = providers
        self.health = health
        self.billing = billing
        self.files = files
        self.jobs = jobs
        self.recorder = recorder
        self.attempt_timeout = attempt_timeout
        self.request_timeout = request_timeout
        self.job_hold_ttl = job_hold_ttl
        self.allow_private_urls = allow_private_urls
        self.webhook_secret = webhook_secret
        # Set by the job runner: wakes it when a job is submitted here.
        self.wake: Callable[[], None] = lambda: None
        self._estimates: dict[str, tuple[float, float | None]] = {}

    # -- tasks ------------------------------------------------------------------

    def model(self, name: str) -> ModelInfo:
        return self.catalog.models[self.catalog.resolve(name)[0]]

    def legacy_task(self, info: ModelInfo, req: LegacyImageGenerationRequest) -> ImageTask:
        params = check_params(req, info)

        async def call(session: aiohttp.ClientSession, config: ProviderConfig) -> UpstreamImages:
            return await call_images(session, config, info, params)

        return ImageTask(
            LEGACY_ROUTE,
            info,
            "text-to-image",
            params.response_format,
            reservation(info, params),
            call,
            lambda delivered, upstream: actual_cost(info, params, delivered, upstream),
        )

    def multimodal_task(self, info: ModelInfo, req: MultimodalImageGenerationRequest, parts: list[Part]) -> ImageTask:
        check_model(info)
        check_contents(req)
        wire = MULTIMODAL_WIRES[info.provider.api]
        wire.check(req)

        async def call(session: aiohttp.ClientSession, config: ProviderConfig) -> UpstreamImages:
            return await wire.call(session, config, info, req, parts)

        return ImageTask(
            MULTIMODAL_ROUTE,
            info,
            operation_of(req),
            req.parameters.response_format or "url",
            wire.reserve(info, req),
            call,
            lambda delivered, upstream: wire.cost(info, delivered, upstream),
            parts,
        )

    async def input_parts(self, req: MultimodalImageGenerationRequest) -> list[Part]:
        """The user turn's parts, in order; every input image checked (fetched when given by URL)."""
        parts: list[Part] = []
        for i, content in enumerate(req.contents):
            if content.text is not None:
                parts.append(Part(text=content.text))
            if content.image is not None:
                parts.append(Part(image=await self._input_image(content.image, f"contents[{i}].image")))
            if content.mask is not None:
                parts.append(Part(image=await self._input_image(content.mask, f"contents[{i}].mask"), mask=True))
        return parts

    async def _input_image(self, source: MultimodalImageSource, param: str) -> InputImage:
        if source.url is None:
            return decode_inline(source, param)
        fetched = await fetch(
            source.url,
            param=f"{param}.url",
            allow_private=self.allow_private_urls,
            max_bytes=MAX_FETCHED_IMAGE_BYTES,
            time_limit=FETCH_TIME_LIMIT,
        )
        sniffed = sniff_image_type(fetched.data)
        if sniffed is None:
            raise InvalidRequestError(
                f"'{param}.url' is not a PNG, JPEG or WebP image.", code="invalid_image", param=f"{param}.url"
            )
        return InputImage(fetched.data, sniffed)

    def configured(self, info: ModelInfo) -> ProviderConfig:
        config = self.providers[info.provider.name]
        if not config.configured:
            raise ProviderUnavailableError(
                f"No candidate's provider is configured: {config.how_to_configure()}.",
                code="provider_not_configured",
            )
        return config

    # -- the routes ---------------------------------------------------------------

    async def handle(
        self, req: ImageRequest, record: RequestRecord, principal: Principal, base_url: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, body and headers of either image route; `record` is filled in
        and, unless the request became a job, settled."""
        admission: Admission | None = None
        record.requested_models = [req.model]
        try:
            info = self.model(req.model)
            record.model, record.provider = info.id, info.provider.name
            if isinstance(req, LegacyImageGenerationRequest):
                task = self.legacy_task(info, req)
                as_job = req.async_
            else:
                check_model(info)
                check_contents(req)
                wire = MULTIMODAL_WIRES[info.provider.api]
                wire.check(req)
                wire.reserve(info, req)  # the model's own 400s, before any input image is fetched
                task = self.multimodal_task(info, req, await self.input_parts(req))
                as_job = req.async_ or info.entry.is_async
            config = self.configured(info)
            self.billing.allowed(principal, [info])
            if req.webhook_url is not None:
                await self._check_webhook(req.webhook_url, as_job)
            if as_job:
                return await self._submit(task, req, record, principal, base_url)
            admission = await self.billing.admit_cost(principal, lambda: task.needed, 0)
            try:
                # A submit-then-poll upstream (an async model) may take as long as the request may.
                timeout = self.request_timeout if info.entry.is_async else self.attempt_timeout
                generated = await self.execute(task, config, timeout)
            except AttemptFailed as failed:
                raise self.attempt_error(info, failed, record) from None
            record.attempts = generated.attempts
            cost = generated.cost
            record.prompt_tokens, record.completion_tokens = cost.prompt_tokens, cost.output_tokens
            record.input_cost, record.output_cost = cost.input_cost, cost.output_cost
            record.status = 200
            self._settle(record, admission)
        except CCAPIError as exc:
            if admission is not None:
                exc.headers = {**admission.headers, **exc.headers}
            self.finish_failed(record, exc, admission)
            raise
        except BaseException:
            # A bug, or the task cancelled (the client left, a stop past its
            # grace): the hold still goes back and the request leaves its row.
            self.finish_failed(record, InternalError("Internal error; it has been logged."), admission)
            raise
        if task.route == LEGACY_ROUTE:
            payload = self._render_legacy(task, generated, base_url)
        else:
            payload = self._render_multimodal(task, generated, base_url)
        return 200, payload, self._served_headers(info, admission)

    async def _check_webhook(self, url: str, as_job: bool) -> None:
        if not as_job:
            raise InvalidRequestError(
                "'webhook_url' is for jobs: set \"async\": true (or use an asynchronous model).",
                param="webhook_url",
            )
        if not self.webhook_secret:
            raise InvalidRequestError(
                "'webhook_url' needs the operator to set CCAPI_WEBHOOK_SECRET (deliveries are signed with it).",
                code="webhooks_not_configured",
                param="webhook_url",
            )
        await check_target(url, param="webhook_url", allow_private=self.allow_private_urls)

    @staticmethod
    def _served_headers(info: ModelInfo, admission: Admission | None) -> dict[str, str]:
        """The headers of every proxied answer, with the caller's rate limits."""
        headers = {"x-ccapi-provider": info.provider.name, "x-ccapi-model": info.id, "x-ccapi-attempts": "1"}
        if admission is not None:
            headers.update(admission.headers)
        return headers

    # -- one generation -------------------------------------------------------------

    async def execute(self, task: ImageTask, config: ProviderConfig, timeout: float) -> Generated:  # noqa: ASYNC109
        """Call the upstream, re-host its images; AttemptFailed when it fails."""
        info = task.info
        breaker = self.health.breaker(info.provider.name)
        started = time.monotonic()
        if not breaker.acquire(started):
            raise ProviderUnavailableError(
                f"{info.provider.name} is failing (circuit breaker open); retry later.", code="provider_unhealthy"
            )

        def failed(status: int | None, message: str) -> AttemptFailed:
            breaker.record(False, (time.monotonic() - started) * 1000, time.monotonic())
            return AttemptFailed(status, message, started=started)

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                upstream = await task.call(session, config)
                raw = [await self._image_bytes(session, image) for image in upstream.images]
        except AttemptFailed as refused:
            refused.started = started
            if refused.client_error:
                breaker.release()  # the request's fault, not the provider's
                raise
            raise failed(refused.status, refused.message) from None
        except TimeoutError:
            raise failed(None, f"no answer within {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise failed(None, f"connection failed: {exc.__class__.__name__}") from None
        except BadUpstreamAnswer as exc:
            raise failed(200, f"unreadable answer: {exc}") from None
        except BaseException:
            breaker.release()
            raise
        if not raw:
            raise failed(200, "the answer holds no image")
        breaker.record(True, (time.monotonic() - started) * 1000, time.monotonic())
        attempts = [attempt_entry(info, 200, None, started)]
        images = []
        for image, (data, content_type) in zip(upstream.images, raw, strict=True):
            file_id = await self.files.put(data, content_type)
            images.append(StoredImage(file_id, content_type, data, image.revised_prompt, image.seed))
        return Generated(images, task.price(len(images), upstream), attempts)

    async def _image_bytes(self, session: aiohttp.ClientSession, raw: RawImage) -> tuple[bytes, str]:
        data = raw.data
        if data is None and raw.url is not None:
            # The provider's own (expiring) link: fetched now and re-hosted.
            async with session.get(raw.url) as resp:
                if resp.status != 200:
                    raise AttemptFailed(resp.status, f"fetching the image link failed with HTTP {resp.status}")
                data = await resp.content.read(MAX_FETCHED_IMAGE_BYTES + 1)
                if len(data) > MAX_FETCHED_IMAGE_BYTES:
                    raise AttemptFailed(200, "the image behind the link is too large")
        content_type = sniff_image_type(data or b"")
        if data is None or content_type is None:
            raise BadUpstreamAnswer("an image is not PNG, JPEG or WebP")
        return data, content_type

    def attempt_error(self, info: ModelInfo, failed: AttemptFailed, record: RequestRecord | None) -> CCAPIError:
        attempt = attempt_entry(info, failed.status, failed.message, failed.started or time.monotonic())
        if record is not None:
            record.attempts = [attempt]
        if failed.client_error:
            return InvalidRequestError(f"{info.provider.name} refused the request: {failed.message}")
        return UpstreamError(
            f"Every candidate failed: {info.id}: {failed.message}.",
            code="upstream_failed",
            details={"attempts": [attempt]},
            headers={"x-ccapi-provider": info.provider.name, "x-ccapi-model": info.id, "x-ccapi-attempts": "1"},
        )

    # -- rendering ------------------------------------------------------------------

    def _datum(self, image: StoredImage, as_b64: bool, base_url: str) -> dict[str, Any]:
        return {
            "url": None if as_b64 else self.files.signed_url(image.file_id, base_url),
            "b64_json": base64.b64encode(image.data).decode() if as_b64 else None,
            "revised_prompt": image.revised_prompt,
            "seed": image.seed,
        }

    def _render_legacy(self, task: ImageTask, generated: Generated, base_url: str) -> dict[str, Any]:
        data = [self._datum(image, task.response_format == "b64_json", base_url) for image in generated.images]
        return {
            "id": f"img_{new_id()}",
            "created": int(time.time()),
            "model": task.info.id,
            "provider": task.info.provider.name,
            "data": data,
            "revised_prompt": data[0]["revised_prompt"] if data else None,
            "usage": {"images": len(data), "cost": float(generated.cost.total)},
        }

    def _render_multimodal(self, task: ImageTask, generated: Generated, base_url: str) -> dict[str, Any]:
        data = [self._datum(image, task.response_format == "b64_json", base_url) for image in generated.images]
        return {
            "id": f"imgjob_{new_id()}",
            "created": int(time.time()),
            "model": task.info.id,
            "status": "succeeded",
            "execution": {"mode": "sync", "operation": task.operation, "provider": task.info.provider.name},
            "data": data,
            "poll_url": None,
            "estimated_time": None,
            "error": None,
            "usage": {"images": len(data), "cost": float(generated.cost.total)},
        }

    # -- jobs -------------------------------------------------------------------------

    async def _submit(
        self, task: ImageTask, req: ImageRequest, record: RequestRecord, principal: Principal, base_url: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Store the job with its reservation and answer 202; the ledger row comes when it ends."""
        admission = await self.billing.admit_limits(principal)
        job_id = f"imgjob_{new_id()}"
        request = req.model_dump(mode="json", by_alias=True, exclude_none=True)
        inputs = None
        if task.route == MULTIMODAL_ROUTE:
            inputs = await self._store_inputs(task.parts)
            request["contents"] = stored_contents(request["contents"], inputs)
        hold = None
        if not principal.is_master and principal.account_id is not None:
            key = principal.key
            spend_period = period_start(key.spend_limit_period, time.time()) if key else None
            hold = JobHold(principal.account_id, key, task.needed, spend_period, self.job_hold_ttl)
        job = Job(
            id=job_id,
            request_id=record.request_id,
            account_id=principal.account_id,
            key_id=principal.key_id,
            route=task.route,
            model=task.info.id,
            provider=task.info.provider.name,
            operation=task.operation,
            request=request,
            inputs=inputs,
            base_url=base_url,
            status="pending",
            reservation_id=f"res_{new_id()}" if hold is not None else None,
            reserved=task.needed if hold is not None else Decimal(0),
            created=record.created,
            webhook_url=req.webhook_url,
        )
        try:
            await self.jobs.create(job, hold)
        except ReserveRefused as refused:
            raise self.billing.refusal(refused, admission.headers) from None
        self.wake()
        payload = await render_job(job, self.files, base_url, await self.estimated_time(task.info.id))
        headers = {**self._served_headers(task.info, admission), "location": poll_path(job_id)}
        headers.pop("x-ccapi-attempts")
        return 202, payload, headers

    async def _store_inputs(self, parts: list[Part]) -> list[dict[str, Any]]:
        """The input parts with their images kept as files (the job row stays small)."""
        stored: list[dict[str, Any]] = []
        for part in parts:
            if part.image is None:
                stored.append({"text": part.text})
                continue
            file_id = await self.files.put(part.image.data, part.image.mime_type)
            stored.append({"file_id": file_id, "mime_type": part.image.mime_type, "mask": part.mask})
        return stored

    async def job_task(self, job: Job) -> tuple[ImageTask, ProviderConfig]:
        """The job's task, rebuilt from what was stored at submission (400 when the model changed since)."""
        info = self.catalog.models.get(job.model)
        if info is None:
            raise InvalidRequestError(f"The model {job.model} is no longer in the catalog.", param="model")
        if job.route == LEGACY_ROUTE:
            task = self.legacy_task(info, LegacyImageGenerationRequest.model_validate(job.request, strict=False))
        else:
            req = MultimodalImageGenerationRequest.model_validate(job.request, strict=False)
            task = self.multimodal_task(info, req, await self._load_inputs(job.inputs or []))
        return task, self.configured(info)

    async def _load_inputs(self, stored: list[dict[str, Any]]) -> list[Part]:
        parts: list[Part] = []
        for item in stored:
            if "file_id" not in item:
                parts.append(Part(text=item.get("text")))
                continue
            data = await self.files.read(item["file_id"])
            if data is None:
                raise InvalidRequestError("An input image of this job is no longer stored.", param="contents")
            parts.append(Part(image=InputImage(data, item["mime_type"]), mask=bool(item.get("mask"))))
        return parts

    async def estimated_time(self, model: str) -> float | None:
        """Median seconds of the model's recent successful jobs; None without history."""
        now = time.monotonic()
        cached = self._estimates.get(model)
        if cached is not None and now - cached[0] < ESTIMATE_CACHE_SECONDS:
            return cached[1]
        durations = await self.jobs.recent_durations(model)
        estimate = round(statistics.median(durations), 1) if durations else None
        self._estimates[model] = (now, estimate)
        return estimate

    def forget_estimate(self, model: str) -> None:
        self._estimates.pop(model, None)

    # -- settling -----------------------------------------------------------------------

    def _settle(self, record: RequestRecord, admission: Admission | None) -> None:
        record.latency_ms = (time.time() - record.created) * 1000
        self.recorder.record(record)
        self.billing.settle(admission, record)

    def finish_failed(self, record: RequestRecord, exc: CCAPIError, admission: Admission | None) -> None:
        """A refused or failed request still leaves its ledger row (cost 0)."""
        record.status, record.error_type = exc.status, exc.type
        record.input_cost = record.output_cost = Decimal(0)
        self._settle(record, admission)
