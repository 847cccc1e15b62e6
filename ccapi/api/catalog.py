"""GET /models, /models/{provider}/{model}, /providers, /providers/{name}."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, authenticated, gateway_of
from ccapi.api.pages import Limit, Offset
from ccapi.api.pages import page as paged
from ccapi.api.responses import json_response
from ccapi.catalog.query import ModelQuery, SortKey, query_models
from ccapi.core.errors import NotFoundError
from ccapi.routing.health import HEALTH_WINDOW_SECONDS
from ccapi.schemas.catalog import (
    ModelListResponse,
    ModelSummary,
    ProviderDetailResponse,
    ProviderListResponse,
)
from ccapi.schemas.errors import ErrorResponse

router = APIRouter(tags=["Catalog"], responses={401: {"model": ErrorResponse}, 400: {"model": ErrorResponse}})


@router.get("/models", response_model=ModelListResponse, summary="List available models")
async def list_models(
    request: Request,
    _: Annotated[Principal, Depends(authenticated)],
    provider: str | None = None,
    type: Literal["chat", "image", "tts", "embedding", "stt"] | None = None,
    sort: SortKey = "id",
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = 100,
    offset: Offset = 0,
    input_modality: str | None = None,
    output_modality: str | None = None,
    q: str | None = None,
) -> Response:
    catalog = gateway_of(request).catalog
    query = ModelQuery(provider, type, input_modality, output_modality, q, sort, order, limit, offset)
    page, total = query_models(catalog.models.values(), query)
    return json_response(paged([m.summary for m in page], total, limit, offset))


@router.get(
    "/models/{provider}/{model:path}",
    response_model=ModelSummary,
    summary="Get one model",
    responses={404: {"model": ErrorResponse}},
)
async def get_model(
    request: Request, provider: str, model: str, _: Annotated[Principal, Depends(authenticated)]
) -> Response:
    catalog = gateway_of(request).catalog
    found = catalog.models.get(f"{provider}/{model}")
    if found is None:
        catalog.resolve(f"{provider}/{model}")  # raises the precise 404
        raise NotFoundError(f"The model '{provider}/{model}' does not exist.", code="model_not_found", param="model")
    return json_response(found.summary)


def _provider_summary(request: Request, name: str) -> dict[str, Any]:
    gateway = gateway_of(request)
    config = gateway.providers[name]
    return {
        "name": name,
        "display_name": config.entry.display_name,
        "is_fundamental": config.entry.is_fundamental,
        "model_count": len(gateway.catalog.models_of(name)),
        "status": gateway.health.status(name, config.configured),
    }


@router.get("/providers", response_model=ProviderListResponse, summary="List providers")
async def list_providers(
    request: Request,
    _: Annotated[Principal, Depends(authenticated)],
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    names = sorted(gateway_of(request).providers)
    page = [_provider_summary(request, n) for n in names[offset : offset + limit]]
    return json_response(paged(page, len(names), limit, offset))


@router.get(
    "/providers/{name}",
    response_model=ProviderDetailResponse,
    summary="Get provider details",
    responses={404: {"model": ErrorResponse}},
)
async def get_provider(request: Request, name: str, _: Annotated[Principal, Depends(authenticated)]) -> Response:
    gateway = gateway_of(request)
    config = gateway.providers.get(name)
    if config is None:
        raise NotFoundError(f"Unknown provider {name!r}. See GET /providers.", code="provider_not_found", param="name")
    models = sorted(gateway.catalog.models_of(name), key=lambda m: m.id)
    rate, p50, samples = gateway.health.breaker(name).recent(time.monotonic())
    health = {
        "success_rate": rate,
        "p50_latency_ms": p50,
        "window_seconds": int(HEALTH_WINDOW_SECONDS),
        "samples": samples,
    }
    return json_response(
        {
            **_provider_summary(request, name),
            "website": config.entry.website,
            "base_url": config.base_url,
            "supported_types": sorted({m.entry.type for m in models}),
            "models": [m.summary for m in models],
            "health": health,
            "success_rate": rate,
            "p50_latency_ms": p50,
        }
    )
