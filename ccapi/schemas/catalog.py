"""The catalog's response shapes (the seed's ModelSummary, ModelListResponse, ...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ModelProvider(BaseModel):
    name: str
    display_name: str
    is_fundamental: bool


class Capabilities(BaseModel):
    context_length: int | None
    max_output_tokens: int | None
    streaming: bool
    function_calling: bool
    system_messages: bool


class PricingSummary(BaseModel):
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    per_image_cost: float | None
    per_second_cost: float | None
    currency: Literal["USD"]
    cached_input_cost_per_million: float | None = None
    per_character_cost: float | None = None
    image_prices: dict[str, dict[str, float]] | None = None
    tiers: list[dict[str, Any]] | None = None
    source: str | None = None
    checked: str | None = None


class ModelDetails(BaseModel):
    display_name: str
    type: str
    input_modalities: list[str]
    output_modalities: list[str]
    capabilities: Capabilities
    pricing: PricingSummary
    supported_sizes: list[str] | None
    max_duration: int | None
    aliases: list[str] = []
    deprecated: str | None = None
    # An image model whose requests run as jobs (202, then GET /images/jobs/{id}).
    is_async: bool = False


class ModelSummary(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    provider: ModelProvider
    ccapi: ModelDetails


class ModelListResponse(BaseModel):
    object: Literal["list"]
    data: list[ModelSummary]
    total: int
    limit: int
    offset: int
    has_more: bool


class ProviderSummary(BaseModel):
    name: str
    display_name: str
    is_fundamental: bool
    model_count: int
    status: Literal["configured", "unconfigured", "degraded", "down"]


class ProviderListResponse(BaseModel):
    object: Literal["list"]
    data: list[ProviderSummary]
    total: int
    limit: int
    offset: int
    has_more: bool


class ProviderHealth(BaseModel):
    success_rate: float | None
    p50_latency_ms: float | None
    window_seconds: int
    samples: int


class ProviderDetailResponse(ProviderSummary):
    website: str
    base_url: str
    supported_types: list[str]
    models: list[ModelSummary]
    health: ProviderHealth
    success_rate: float | None
    p50_latency_ms: float | None
