"""Filtering, sorting and paging of the catalog for GET /models (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ccapi.catalog.catalog import ModelInfo

SortKey = Literal["id", "created", "context_length", "input_price", "output_price"]


@dataclass(frozen=True, slots=True)
class ModelQuery:
    provider: str | None = None
    type: str | None = None
    input_modality: str | None = None
    output_modality: str | None = None
    q: str | None = None
    sort: SortKey = "id"
    order: Literal["asc", "desc"] = "asc"
    limit: int = 100
    offset: int = 0


def _matches(info: ModelInfo, query: ModelQuery) -> bool:
    entry = info.entry
    if query.provider is not None and info.provider.name != query.provider:
        return False
    if query.type is not None and entry.type != query.type:
        return False
    if query.input_modality is not None and query.input_modality not in entry.input_modalities:
        return False
    if query.output_modality is not None and query.output_modality not in entry.output_modalities:
        return False
    if query.q:
        needle = query.q.lower()
        haystack = f"{info.id} {entry.display_name} {' '.join(entry.aliases)}".lower()
        return needle in haystack
    return True


def _sort_value(info: ModelInfo, key: SortKey) -> Any:
    entry, pricing = info.entry, info.entry.pricing
    value: Any = {
        "id": info.id,
        "created": entry.created,
        "context_length": entry.context_length,
        "input_price": pricing.input_cost_per_million,
        "output_price": pricing.output_cost_per_million,
    }[key]
    return value


def query_models(models: Iterable[ModelInfo], query: ModelQuery) -> tuple[list[ModelInfo], int]:
    """(one page, total matches). Models without a value for the sort key come last."""
    found = [m for m in models if _matches(m, query)]
    with_value = [m for m in found if _sort_value(m, query.sort) is not None]
    without = sorted((m for m in found if _sort_value(m, query.sort) is None), key=lambda m: m.id)
    with_value.sort(key=lambda m: (_sort_value(m, query.sort), m.id), reverse=query.order == "desc")
    ordered = with_value + without
    return ordered[query.offset : query.offset + query.limit], len(ordered)
