"""Multimodal image generation (`POST /images/generate`): the operation, the
input parts, and each provider's wire format.

Google Gemini image-output models ("Nano Banana") via
`POST {base}/v1beta/models/{model}:generateContent` (Gemini API
image-generation guide and GenerationConfig reference): text parts and input
images (`inlineData {mimeType, data}`) in one user turn;
`generationConfig.responseModalities: ["TEXT", "IMAGE"]`,
`generationConfig.imageConfig.aspectRatio`, `generationConfig.seed`; the
answer's `candidates[0].content.parts[]` hold `inlineData` images. Gemini has
no mask input: a mask goes as an extra image part plus an instruction text.
`num_images` > 1 is that many calls at once (one image each).

Pure parts first (rules, operation, wire bodies, answer parsing; unit tested),
the upstream calls last. Admission, input fetching, files, settling and jobs
are media/image_service.py's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from ccapi.catalog.catalog import ModelInfo
from ccapi.catalog.pricing import round_usd
from ccapi.core.errors import InvalidRequestError
from ccapi.media.images import (
    BadUpstreamAnswer,
    ImageCost,
    RawImage,
    UpstreamImages,
    checked_json,
    sniff_image_type,
)
from ccapi.providers.registry import ProviderConfig
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest, MultimodalImageSource

# Aspect ratios of the Gemini image models (imageConfig.aspectRatio).
GEMINI_ASPECT_RATIOS = (
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
    "1:4",
    "4:1",
    "1:8",
    "8:1",
)
# MultimodalImageParameters a Gemini image model cannot take (a non-null one is a 400).
GEMINI_REFUSED = ("width", "height", "steps", "guidance_scale", "negative_prompt", "strength")
MASK_INSTRUCTION = (
    "The image just before this text is a mask for the image before it: "
    "edit only the white area of the mask and keep everything else unchanged."
)


@dataclass(frozen=True, slots=True)
class InputImage:
    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class Part:
    """One input part, in request order: a text, an image, or the mask of the image before it."""

    text: str | None = None
    image: InputImage | None = None
    mask: bool = False


def operation_of(req: MultimodalImageGenerationRequest) -> str:
    """The contract's `execution.operation`, first match."""
    if any(c.mask is not None for c in req.contents):
        return "inpainting"
    images = sum(1 for c in req.contents if c.image is not None)
    if images >= 2:
        return "multi-image"
    if images == 1:
        return "image-to-image"
    return "text-to-image"


def check_model(info: ModelInfo) -> None:
    if info.entry.type != "image":
        raise InvalidRequestError(
            f"{info.id} is a {info.entry.type} model, not an image model.", code="invalid_model", param="model"
        )
    if info.provider.api not in MULTIMODAL_WIRES:
        raise InvalidRequestError(
            f"{info.id} is not supported on /images/generate yet (supported: Google Gemini image models).",
            code="model_not_supported",
            param="model",
        )


def check_contents(req: MultimodalImageGenerationRequest) -> None:
    """400 naming the first element of `contents` no model can take."""
    if not any(c.text is not None or c.image is not None for c in req.contents):
        raise InvalidRequestError(
            "'contents' needs at least one text or image part.", code="invalid_value", param="contents"
        )
    for i, content in enumerate(req.contents):
        if content.mask is not None and content.image is None:
            raise InvalidRequestError(
                f"'contents[{i}].mask' needs an 'image' in the same element.",
                code="invalid_value",
                param=f"contents[{i}].mask",
            )


def check_gemini(req: MultimodalImageGenerationRequest) -> None:
    """400 naming the first parameter a Gemini image model cannot take."""
    params = req.parameters
    for name in GEMINI_REFUSED:
        if getattr(params, name) is not None:
            raise InvalidRequestError(
                f"Gemini image models do not take the parameter '{name}'.",
                code="unsupported_parameter",
                param=f"parameters.{name}",
            )
    if params.aspect_ratio is not None and params.aspect_ratio not in GEMINI_ASPECT_RATIOS:
        raise InvalidRequestError(
            f"Invalid 'parameters.aspect_ratio': {params.aspect_ratio!r}. "
            f"Supported: {', '.join(GEMINI_ASPECT_RATIOS)}.",
            code="unsupported_value",
            param="parameters.aspect_ratio",
        )


def decode_inline(source: MultimodalImageSource, param: str) -> InputImage:
    """A `{data, mime_type}` source, checked to be a PNG, JPEG or WebP."""
    try:
        data = base64.b64decode(source.data or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"'{param}.data' is not valid base64.", code="invalid_image", param=param) from None
    sniffed = sniff_image_type(data)
    if sniffed is None:
        raise InvalidRequestError(f"'{param}' is not a PNG, JPEG or WebP image.", code="invalid_image", param=param)
    return InputImage(data, sniffed)


def gemini_body(parts: list[Part], req: MultimodalImageGenerationRequest) -> dict[str, Any]:
    wire: list[dict[str, Any]] = []
    for part in parts:
        if part.text is not None:
            wire.append({"text": part.text})
        if part.image is not None:
            encoded = base64.b64encode(part.image.data).decode()
            wire.append({"inlineData": {"mimeType": part.image.mime_type, "data": encoded}})
            if part.mask:
                wire.append({"text": MASK_INSTRUCTION})
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if req.parameters.aspect_ratio is not None:
        config["imageConfig"] = {"aspectRatio": req.parameters.aspect_ratio}
    if req.parameters.seed is not None:
        config["seed"] = req.parameters.seed
    return {"contents": [{"role": "user", "parts": wire}], "generationConfig": config}


def parse_gemini_image(payload: Any) -> bytes:
    """The first image of a generateContent answer."""
    candidates = payload.get("candidates") if isinstance(payload, dict) else None
    if not isinstance(candidates, list) or not candidates:
        feedback = payload.get("promptFeedback") if isinstance(payload, dict) else None
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        raise BadUpstreamAnswer(f"no candidates (blockReason {reason})" if reason else "no candidates")
    content = candidates[0].get("content") if isinstance(candidates[0], dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        inline = (part.get("inlineData") or part.get("inline_data")) if isinstance(part, dict) else None
        if isinstance(inline, dict) and isinstance(inline.get("data"), str):
            try:
                return base64.b64decode(inline["data"], validate=True)
            except (binascii.Error, ValueError):
                raise BadUpstreamAnswer("an image is not valid base64") from None
    finish = candidates[0].get("finishReason") if isinstance(candidates[0], dict) else None
    raise BadUpstreamAnswer(f"the answer holds no image (finishReason {finish})")


def reservation(info: ModelInfo, n: int) -> Decimal:
    per_image = info.entry.pricing.per_image_cost
    if per_image is None:
        raise InvalidRequestError(f"{info.id} has no per-image price in the catalog.", param="model")
    return round_usd(per_image * n)


def per_image_reservation(info: ModelInfo, req: MultimodalImageGenerationRequest) -> Decimal:
    return reservation(info, req.parameters.num_images)


def per_image_cost(info: ModelInfo, delivered: int, _upstream: UpstreamImages) -> ImageCost:
    return ImageCost(Decimal(0), reservation(info, delivered))


# --- the upstream calls ------------------------------------------------------------


async def call_gemini(
    session: aiohttp.ClientSession,
    config: ProviderConfig,
    info: ModelInfo,
    req: MultimodalImageGenerationRequest,
    parts: list[Part],
) -> UpstreamImages:
    url = f"{config.base_url.rstrip('/')}/v1beta/models/{info.upstream_model}:generateContent"
    headers = {"x-goog-api-key": config.api_key or ""}
    body = gemini_body(parts, req)

    async def one() -> RawImage:
        async with session.post(url, json=body, headers=headers) as resp:
            return RawImage(data=parse_gemini_image(await checked_json(resp)))

    return UpstreamImages(images=list(await asyncio.gather(*(one() for _ in range(req.parameters.num_images)))))


MultimodalCall = Callable[
    [aiohttp.ClientSession, ProviderConfig, ModelInfo, MultimodalImageGenerationRequest, list[Part]],
    Awaitable[UpstreamImages],
]


@dataclass(frozen=True, slots=True)
class MultimodalWire:
    """A provider family on this route: what it refuses (400s), what it costs, how it is called."""

    check: Callable[[MultimodalImageGenerationRequest], None]
    reserve: Callable[[ModelInfo, MultimodalImageGenerationRequest], Decimal]
    cost: Callable[[ModelInfo, int, UpstreamImages], ImageCost]
    call: MultimodalCall


MULTIMODAL_WIRES: dict[str, MultimodalWire] = {
    "gemini": MultimodalWire(check_gemini, per_image_reservation, per_image_cost, call_gemini),
}
