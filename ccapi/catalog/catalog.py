"""The model and provider catalog: loaded and validated once at start.

Everything the request path needs from it (resolution of a name to
candidates, per-token prices, the rendered ModelSummary) is precomputed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ccapi.catalog.pricing import SLOWEST_CHARS_PER_SECOND, TokenPrices
from ccapi.catalog.schema import CatalogFile, ModelEntry, ProviderEntry
from ccapi.core.errors import NotFoundError

_PRICE_FIELDS = (
    "input_cost_per_million",
    "output_cost_per_million",
    "per_image_cost",
    "per_second_cost",
)


class CatalogError(Exception):
    """A catalog file is invalid; the message names the file, entry and field."""


@dataclass(slots=True)
class ModelInfo:
    id: str  # canonical: provider/model
    provider: ProviderEntry
    entry: ModelEntry
    prices: TokenPrices
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def upstream_model(self) -> str:
        return self.entry.upstream_model or self.entry.id


@dataclass(slots=True)
class Catalog:
    providers: dict[str, ProviderEntry]
    models: dict[str, ModelInfo]
    # bare name or alias -> canonical ids, fundamental provider first
    _names: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, extra_files: Iterable[Path] = (), aliases: dict[str, str] | None = None) -> Catalog:
        files = [(str(p.name), p.read_text()) for p in _shipped_files()]
        files += [(str(p), Path(p).read_text()) for p in extra_files]
        providers: dict[str, ProviderEntry] = {}
        entries: dict[str, dict[str, ModelEntry]] = {}
        for name, text in files:
            parsed = _parse(name, text)
            providers[parsed.provider.name] = parsed.provider
            models = entries.setdefault(parsed.provider.name, {})
            for model in parsed.models:
                models[model.id] = model  # later files override earlier ones by id
        catalog = cls(providers=providers, models={})
        for provider_name, models in entries.items():
            provider = providers[provider_name]
            for model in models.values():
                info = ModelInfo(
                    id=f"{provider_name}/{model.id}",
                    provider=provider,
                    entry=model,
                    prices=TokenPrices.from_pricing(model.pricing),
                )
                info.summary = render_summary(info)
                catalog.models[info.id] = info
        catalog._index_names(aliases or {})
        return catalog

    def _index_names(self, aliases: dict[str, str]) -> None:
        names: dict[str, list[str]] = {}
        # Fundamental providers first, so a bare name resolves to the lab that trains it.
        ordered = sorted(self.models.values(), key=lambda m: not m.provider.is_fundamental)
        for info in ordered:
            for name in (info.entry.id, *info.entry.aliases):
                names.setdefault(name, []).append(info.id)
                if name != info.entry.id:
                    names.setdefault(f"{info.provider.name}/{name}", []).append(info.id)
        for alias, target in aliases.items():
            if target not in self.models:
                raise CatalogError(f"alias {alias!r}: target {target!r} is not in the catalog")
            names[alias] = [target]
        self._names = names

    def resolve(self, name: str, param: str = "model") -> list[str]:
        """Canonical ids a requested name stands for, best first; 404 if none."""
        if name in self.models:
            return [name]
        found = self._names.get(name)
        if found:
            return found
        prefix, sep, _ = name.partition("/")
        if sep and prefix not in self.providers:
            raise NotFoundError(
                f"Unknown provider {prefix!r} in {param} {name!r}. See GET /providers.",
                code="provider_not_found",
                param=param,
            )
        raise NotFoundError(
            f"The model {name!r} does not exist in the catalog. See GET /models.",
            code="model_not_found",
            param=param,
        )

    def models_of(self, provider: str) -> list[ModelInfo]:
        return [m for m in self.models.values() if m.provider.name == provider]


def _shipped_files() -> list[Path]:
    data = resources.files("ccapi.catalog") / "data"
    return sorted(Path(str(p)) for p in data.iterdir() if p.name.endswith(".yaml"))


def _parse(name: str, text: str) -> CatalogFile:
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog file {name}: not valid YAML: {exc}") from None
    try:
        return CatalogFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(f"catalog file {name}: {_where(raw, err['loc'])}: {err['msg']}") from None


def _where(raw: Any, loc: tuple[Any, ...]) -> str:
    """Name the entry (by its id) and the field, e.g. `models[gpt-4o].pricing.source`."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int):
            entry_id = node[key].get("id") if isinstance(node, list) and isinstance(node[key], dict) else None
            parts[-1] += f"[{entry_id or key}]"
        else:
            parts.append(str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return "entry " + ".".join(parts)


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def render_summary(info: ModelInfo) -> dict[str, Any]:
    """The contract's ModelSummary, JSON-ready; built once per model."""
    entry, provider, pricing = info.entry, info.provider, info.entry.pricing
    price: dict[str, Any] = {f: _number(getattr(pricing, f)) for f in _PRICE_FIELDS}
    price["currency"] = pricing.currency
    price["cached_input_cost_per_million"] = _number(pricing.cached_input_cost_per_million)
    price["per_character_cost"] = _number(pricing.per_character_cost)
    price["image_prices"] = (
        {size: {q: float(v) for q, v in qs.items()} for size, qs in pricing.image_prices.items()}
        if pricing.image_prices
        else None
    )
    price["tiers"] = (
        [
            {
                "above_input_tokens": t.above_input_tokens,
                "input_cost_per_million": float(t.input_cost_per_million),
                "output_cost_per_million": float(t.output_cost_per_million),
            }
            for t in pricing.tiers
        ]
        if pricing.tiers
        else None
    )
    price["source"] = pricing.source
    price["checked"] = pricing.checked.isoformat()
    return {
        "id": info.id,
        "object": "model",
        "created": entry.created,
        "owned_by": entry.owned_by or provider.name,
        "provider": {
            "name": provider.name,
            "display_name": provider.display_name,
            "is_fundamental": provider.is_fundamental,
        },
        "ccapi": {
            "display_name": entry.display_name,
            "type": entry.type,
            "input_modalities": list(entry.input_modalities),
            "output_modalities": list(entry.output_modalities),
            "capabilities": {
                "context_length": entry.context_length,
                "max_output_tokens": entry.max_output_tokens,
                "streaming": entry.streaming,
                "function_calling": entry.function_calling,
                "system_messages": entry.system_messages,
            },
            "pricing": price,
            "supported_sizes": list(entry.supported_sizes) if entry.supported_sizes else None,
            "max_duration": max_duration(entry),
            "aliases": list(entry.aliases),
            "deprecated": entry.deprecated.isoformat() if entry.deprecated else None,
            "is_async": entry.is_async,
        },
    }


def max_duration(entry: ModelEntry) -> int | None:
    """Seconds of media one request can produce: the catalog's figure, else for
    a TTS model its input limit spoken at the slowest rate the gateway reserves
    for (SLOWEST_CHARS_PER_SECOND at speed 1.0; an upper bound, not a promise)."""
    if entry.max_duration is not None or entry.type != "tts" or entry.max_input_chars is None:
        return entry.max_duration
    return math.ceil(entry.max_input_chars / SLOWEST_CHARS_PER_SECOND)
