"""The chat service: validate the request's models, plan, run, price, render."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any

from starlette.responses import Response, StreamingResponse

from ccapi.api.deps import Principal
from ccapi.api.responses import json_response
from ccapi.api.shutdown import shutting_down_error
from ccapi.billing.service import Admission, BillingService
from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.config import LatencySettings
from ccapi.core.errors import CCAPIError, GatewayTimeoutError, InternalError, InvalidRequestError, UpstreamError
from ccapi.core.ids import new_id
from ccapi.core.recorder import Recorder
from ccapi.core.sse import DONE, encode_data
from ccapi.core.tokens import estimate_prompt_tokens, estimate_text_tokens
from ccapi.core.types import RequestRecord, Usage
from ccapi.providers.base import AttemptError
from ccapi.routing.failover import Attempt, Deadline, FailoverRunner, StreamServed
from ccapi.routing.health import HealthBook
from ccapi.routing.latency import NOT_ASKED, CandidateLatency, LatencyTable, RequestLatency
from ccapi.routing.plan import Needs, plan_candidates, requested_names, resolve_all
from ccapi.schemas.chat import ChatCompletionRequest


def usage_json(usage: Usage, input_cost: Decimal, output_cost: Decimal) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "input_cost": float(input_cost),
        "output_cost": float(output_cost),
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def served_headers(info: ModelInfo, attempts: list[Attempt]) -> dict[str, str]:
    return {
        "x-ccapi-provider": info.provider.name,
        "x-ccapi-model": info.id,
        "x-ccapi-attempts": str(len(attempts)),
    }


class ChatService:
    def __init__(
        self,
        catalog: Catalog,
        configured: Mapping[str, bool],
        how_to_configure: Mapping[str, str],
        runner: FailoverRunner,
        health: HealthBook,
        recorder: Recorder,
        request_timeout: float,
        max_models: int,
        billing: BillingService | None = None,
        latency: LatencyTable | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.billing = billing
        # True while the server cancels the requests left at the end of a stop.
        self.stopping = stopping
        self.latency = latency or LatencyTable(LatencySettings())
        self.catalog = catalog
        self.configured = configured
        self.how_to_configure = how_to_configure
        self.runner = runner
        self.health = health
        self.recorder = recorder
        self.request_timeout = request_timeout
        self.max_models = max_models

    async def handle(
        self,
        req: ChatCompletionRequest,
        body: dict[str, Any],
        record: RequestRecord,
        principal: Principal,
        asked: RequestLatency = NOT_ASKED,
    ) -> Response:
        """Answer the request; `record` is filled in, billed and handed to the recorder.
        `asked`: the request's latency headers (TTFT deadline, hedge delay)."""
        record.stream = bool(req.stream)
        admission: Admission | None = None
        attempts: list[Attempt] = []
        try:
            candidates = self._plan(req, body, record)
            if self.billing is not None:
                candidates = self.billing.allowed(principal, candidates)
                admission = await self.billing.admit(principal, candidates, body)
            deadline = Deadline(self.request_timeout)
            limits = self.latency.plan(candidates, asked)
            if req.stream:
                served = await self.runner.open_stream(candidates, body, deadline, limits, attempts)
                return self._stream_response(req, body, served, deadline, record, admission)
            return await self._complete(candidates, body, deadline, limits, record, admission, attempts)
        except CCAPIError as exc:
            record.attempt_kinds = [a.kind for a in attempts]
            if admission is not None:
                exc.headers = {**admission.headers, **exc.headers}
            await self._finish_failed(record, exc, admission)
            raise
        except asyncio.CancelledError:
            # Only a stop past its grace period cancels a request's task
            # (api/shutdown.py answers the client): the hold still goes back
            # and the request leaves its row.
            await asyncio.shield(self._finish_failed(record, shutting_down_error(), admission))
            raise
        except BaseException:
            # A bug: the hold still goes back and the request still leaves its row.
            internal = InternalError("Internal error; it has been logged.", code="internal_error")
            await asyncio.shield(self._finish_failed(record, internal, admission))
            raise

    def _plan(self, req: ChatCompletionRequest, body: dict[str, Any], record: RequestRecord) -> list[ModelInfo]:
        if req.model is None and not req.models:
            raise InvalidRequestError("Missing required parameter: 'model' (or 'models').", param="model")
        if req.models is not None and len(req.models) > self.max_models:
            raise InvalidRequestError(f"'models' takes at most {self.max_models} entries.", param="models")
        if req.stream_options is not None and not req.stream:
            raise InvalidRequestError("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
        names = requested_names(req.model, req.models)
        record.requested_models = [name for name, _ in names]
        resolved = resolve_all(self.catalog, names)
        plan = plan_candidates(
            resolved, Needs.of(body), self.configured, self.how_to_configure, self.health.open_providers()
        )
        return plan.candidates

    async def _complete(
        self,
        candidates: list[ModelInfo],
        body: dict[str, Any],
        deadline: Deadline,
        limits: list[CandidateLatency] | None,
        record: RequestRecord,
        admission: Admission | None,
        attempts: list[Attempt],
    ) -> Response:
        served, result = await self.runner.complete(candidates, body, deadline, limits, attempts)
        info = served.model
        input_cost, output_cost = info.prices.cost(result.usage)
        payload = {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": info.id,
            "provider": info.provider.name,
            "choices": result.choices,
            "usage": usage_json(result.usage, input_cost, output_cost),
            **result.extra,
        }
        await self._finish(record, info, served.attempts, 200, result.usage, input_cost, output_cost, admission)
        headers = served_headers(info, served.attempts)
        if admission is not None:
            headers.update(admission.headers)
        return json_response(payload, headers=headers)

    def _stream_response(
        self,
        req: ChatCompletionRequest,
        body: dict[str, Any],
        served: StreamServed,
        deadline: Deadline,
        record: RequestRecord,
        admission: Admission | None,
    ) -> Response:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        record.ttft_ms = served.ttft_ms
        headers = {**served_headers(served.model, served.attempts), "cache-control": "no-cache"}
        if admission is not None:
            headers.update(admission.headers)
        return StreamingResponse(
            self._relay(served, body, include_usage, deadline, record, admission, time.monotonic()),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _relay(
        self,
        served: StreamServed,
        body: dict[str, Any],
        include_usage: bool,
        deadline: Deadline,
        record: RequestRecord,
        admission: Admission | None,
        opened: float,
    ) -> AsyncIterator[bytes]:
        info, stream = served.model, served.stream
        base: dict[str, Any] = {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": info.id,
            "provider": info.provider.name,
        }
        if include_usage:
            base["usage"] = None  # as OpenAI: null on every chunk but the last
        delivered_chars = 0
        error: CCAPIError | None = None
        try:
            fragment = served.first
            while fragment is not None:
                delivered_chars += _delta_chars(fragment)
                yield encode_data({**base, **fragment})
                if deadline.remaining() <= 0:
                    raise GatewayTimeoutError(
                        f"The request's deadline of {deadline.seconds:g}s passed mid-stream.", code="request_timeout"
                    )
                fragment = await anext(served.iterator, None)
            if not stream.finished:
                raise AttemptError("stream", f"{info.provider.name} ended the stream before it was complete")
        except AttemptError as exc:
            error = _stream_error(exc.message)
            for attempt in served.attempts:  # the served provider failed after all
                if attempt.status == 200 and attempt.provider == info.provider.name:
                    attempt.kind = exc.kind
        except CCAPIError as exc:
            error = exc
        except asyncio.CancelledError:
            # The client went away (billed for what it got), or the stop's
            # grace period is over (api/shutdown.py sends the error event).
            if self.stopping():
                error = shutting_down_error()
            raise
        finally:
            # The upstream's share: every attempt to its first event, then the
            # served stream from there to its end (for the overhead metric).
            relayed = time.monotonic() - opened
            record.upstream_ms = sum(a.latency_ms for a in served.attempts) + relayed * 1000
            usage = _delivered_usage(stream.usage, body, delivered_chars)
            input_cost, output_cost = info.prices.cost(usage)
            if error is not None:
                record.error_type = error.type
            status = 200 if error is None else error.status
            # Settled before anything else is awaited: once cancelled, this
            # task is cancelled again at its next await.
            try:
                await self._finish(record, info, served.attempts, status, usage, input_cost, output_cost, admission)
            finally:
                await stream.aclose()
        if error is not None:
            # After a mid-stream error only [DONE] may follow (the contract).
            yield encode_data(error.to_dict())
        elif include_usage:
            yield encode_data({**base, "choices": [], "usage": usage_json(usage, input_cost, output_cost)})
        yield DONE

    async def _finish(
        self,
        record: RequestRecord,
        info: ModelInfo,
        attempts: list[Attempt],
        status: int,
        usage: Usage,
        input_cost: Decimal,
        output_cost: Decimal,
        admission: Admission | None,
    ) -> None:
        record.model, record.provider = info.id, info.provider.name
        # Each attempt's cost for the ledger: the one that answered (the only
        # 200) costs the request's; the others delivered nothing (a hedged
        # loser that had already answered in full carries its own).
        for attempt in attempts:
            if attempt.status == 200:
                attempt.cost = input_cost + output_cost
        record.attempts = [_priced(a) for a in attempts]
        record.attempt_kinds = [a.kind for a in attempts]
        record.status = status
        record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        record.input_cost, record.output_cost = input_cost, output_cost
        record.latency_ms = (time.time() - record.created) * 1000
        await self._record(record, admission)

    async def _record(self, record: RequestRecord, admission: Admission | None) -> None:
        self.recorder.record(record)
        if self.billing is not None:
            self.billing.settle(admission, record)
            if admission is not None:
                await self.billing.correct_tokens(admission, record)

    async def record_rejected(self, record: RequestRecord, exc: Exception) -> None:
        """A request refused before planning (bad body) still leaves its record."""
        if isinstance(exc, CCAPIError):
            await self._finish_failed(record, exc, None)

    async def _finish_failed(self, record: RequestRecord, exc: CCAPIError, admission: Admission | None) -> None:
        record.status, record.error_type = exc.status, exc.type
        if exc.details and isinstance(exc.details.get("attempts"), list):
            record.attempts = [{"cost": 0.0, **a} for a in exc.details["attempts"]]
            exc.headers["x-ccapi-attempts"] = str(len(record.attempts))
        record.latency_ms = (time.time() - record.created) * 1000
        await self._record(record, admission)


def _priced(attempt: Attempt) -> dict[str, Any]:
    if attempt.cost is None:
        attempt.cost = Decimal(0)
    return attempt.to_dict()


def _stream_error(message: str) -> CCAPIError:
    return UpstreamError(message, code="stream_interrupted")


def _delta_chars(fragment: dict[str, Any]) -> int:
    chars = 0
    for choice in fragment.get("choices", ()):
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            chars += len(content)
        for call in delta.get("tool_calls") or ():
            chars += len((call.get("function") or {}).get("arguments") or "")
    return chars


def _delivered_usage(reported: Usage, body: dict[str, Any], delivered_chars: int) -> Usage:
    """The upstream's usage when it sent it; else an estimate of what was
    delivered (a cut stream still pays for its delivered tokens)."""
    if reported.prompt_tokens or reported.completion_tokens:
        return reported
    return Usage(
        prompt_tokens=estimate_prompt_tokens(body),
        completion_tokens=estimate_text_tokens(delivered_chars),
    )
