"""Plan: from the request, the catalog and provider health to ordered candidates.

Pure: no I/O, no clock; everything it needs is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import InvalidRequestError, ProviderUnavailableError


@dataclass(slots=True)
class Plan:
    candidates: list[ModelInfo]
    # (canonical id, why it was skipped), for the error message when nothing is left
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Needs:
    """What the request asks of a model."""

    stream: bool = False
    tools: bool = False
    images: bool = False
    system: bool = False

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Needs:
        messages = body.get("messages") or ()
        return cls(
            stream=bool(body.get("stream")),
            tools=bool(body.get("tools")),
            images=any(_has_image(m) for m in messages),
            system=any(m.get("role") in ("system", "developer") for m in messages),
        )


def _has_image(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(p.get("type") == "image_url" for p in content)


def requested_names(model: str | None, models: list[str] | None) -> list[tuple[str, str]]:
    """(name, param) in the order they are tried: `model` first, then `models`."""
    names = [(model, "model")] if model else []
    names += [(name, f"models[{i}]") for i, name in enumerate(models or ())]
    return names


def resolve_all(catalog: Catalog, names: list[tuple[str, str]]) -> list[ModelInfo]:
    """Every requested name to catalog entries (404 on the first unknown one)."""
    resolved: list[ModelInfo] = []
    for name, param in names:
        resolved.extend(catalog.models[i] for i in catalog.resolve(name, param))
    return resolved


def unfit_reason(info: ModelInfo, needs: Needs) -> tuple[str, str] | None:
    """(param, reason) when the model cannot take this request."""
    entry = info.entry
    if entry.type != "chat":
        return "model", f"{info.id} is a {entry.type} model, not a chat model"
    if needs.tools and not entry.function_calling:
        return "tools", f"{info.id} does not support tools"
    if needs.images and "image" not in entry.input_modalities:
        return "messages", f"{info.id} does not accept image input"
    if needs.stream and not entry.streaming:
        return "stream", f"{info.id} does not support streaming"
    return None


def plan_candidates(
    resolved: list[ModelInfo],
    needs: Needs,
    configured: Mapping[str, bool],
    how_to_configure: Mapping[str, str],
    open_breakers: frozenset[str],
) -> Plan:
    plan = Plan(candidates=[])
    unfit: list[tuple[str, str]] = []
    unconfigured: list[str] = []
    for info in resolved:
        reason = unfit_reason(info, needs)
        if reason is not None:
            unfit.append(reason)
            plan.skipped.append((info.id, reason[1]))
        elif not configured.get(info.provider.name, False):
            unconfigured.append(info.provider.name)
            plan.skipped.append((info.id, f"provider {info.provider.name} is not configured"))
        elif info.provider.name in open_breakers:
            plan.skipped.append((info.id, f"provider {info.provider.name} is down (circuit open)"))
        else:
            plan.candidates.append(info)
    if plan.candidates:
        return plan
    if len(unfit) == len(resolved):
        param, _ = unfit[0]
        reasons = "; ".join(r for _, r in unfit)
        raise InvalidRequestError(f"No requested model can take this request: {reasons}.", param=param)
    if unconfigured and len(unconfigured) + len(unfit) == len(resolved):
        steps = sorted({how_to_configure[p] for p in unconfigured})
        raise ProviderUnavailableError(
            f"No candidate's provider is configured: {', '.join(steps)}.",
            code="provider_not_configured",
            details={"skipped": [{"model": m, "reason": r} for m, r in plan.skipped]},
        )
    raise ProviderUnavailableError(
        "No candidate has a healthy provider: " + "; ".join(f"{m}: {r}" for m, r in plan.skipped) + ".",
        code="provider_unavailable",
        details={"skipped": [{"model": m, "reason": r} for m, r in plan.skipped]},
    )
