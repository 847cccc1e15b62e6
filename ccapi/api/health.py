"""GET /health (liveness), GET /health/ready (each dependency checked) and
GET /metrics (Prometheus; admin keys only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, admin, gateway_of
from ccapi.api.errors import error_response
from ccapi.api.responses import json_response
from ccapi.core.errors import ProviderUnavailableError
from ccapi.observability.metrics import CONTENT_TYPE
from ccapi.schemas.errors import ErrorResponse

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Liveness")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/health/ready",
    summary="Readiness: every dependency checked",
    responses={503: {"model": ErrorResponse, "description": "A dependency is down (`details.checks`)"}},
)
async def ready(request: Request) -> Response:
    checks = await gateway_of(request).readiness()
    if all(v == "ok" for v in checks.values()):
        return json_response({"status": "ok", "checks": checks})
    down = ", ".join(k for k, v in checks.items() if v != "ok")
    return error_response(ProviderUnavailableError(f"Not ready: {down}.", code="not_ready", details={"checks": checks}))


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin keys only)",
    description="Requests, latency histograms, tokens, cost, upstream errors by provider, breaker state, "
    "queue depths, in the Prometheus text format (docs/operations.md).",
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **{status: {"model": ErrorResponse} for status in (401, 403, 500)},
    },
)
async def metrics(request: Request, _: Annotated[Principal, Depends(admin)]) -> Response:
    return Response(gateway_of(request).metrics.render(), media_type=CONTENT_TYPE)
