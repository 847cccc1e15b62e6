"""Multimodal image generation (`POST /images/generate`, synchronous) for
Google Gemini image-output models ("Nano Banana"), via
`POST {base}/v1beta/models/{model}:generateContent`.

Wire format (Gemini API image-generation guide and GenerationConfig
reference): text parts and input images (`inlineData {mimeType, data}`) in
one user turn; `generationConfig.responseModalities: ["TEXT", "IMAGE"]`,
`generationConfig.imageConfig.aspectRatio`, `generationConfig.seed`; the
answer's `candidates[0].content.parts[]` hold `inlineData` images. Gemini has
no mask input: a mask goes as an extra image part plus an instruction text.
`num_images` > 1 is that many calls at once (one image each).

Pure parts first (rules, operation, wire body, answer parsing; unit tested),
the I/O (`MultimodalService`) last. It reuses ImageService's settling.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from ccapi.api.deps import Principal
from ccapi.billing.service import Admission
from ccapi.catalog.catalog import ModelInfo
from ccapi.catalog.pricing import round_usd
from ccapi.core.errors import CCAPIError, InvalidRequestError, ProviderUnavailableError
from ccapi.core.ids import new_id
from ccapi.core.types import RequestRecord
from ccapi.files.fetch import fetch
from ccapi.media.images import (
    MAX_FETCHED_IMAGE_BYTES,
    AttemptFailed,
    BadUpstreamAnswer,
    ImageService,
    _attempt,
    _checked_json,
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
FETCH_TIME_LIMIT = 20.0


@dataclass(frozen=True, slots=True)
class InputImage:
    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class Part:
    text: str | None = None
    image: InputImage | None = None


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
    if info.entry.is_async:
        raise InvalidRequestError(
            f"{info.id} is an asynchronous model; async image jobs are not supported yet.",
            code="model_not_supported",
            param="model",
        )
    if info.provider.api != "gemini":
        raise InvalidRequestError(
            f"{info.id} is not supported on /images/generate yet (supported: Google Gemini image models).",
            code="model_not_supported",
            param="model",
        )


def check_request(req: MultimodalImageGenerationRequest) -> None:
    """400 naming the first field this route (and Gemini) cannot take."""
    if req.async_:
        raise InvalidRequestError("'async': true is not supported yet on this gateway.", param="async")
    if req.webhook_url is not None:
        raise InvalidRequestError("'webhook_url' is not supported yet (webhooks are for jobs).", param="webhook_url")
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


# --- the service ----------------------------------------------------------------


class MultimodalService(ImageService):
    allow_private_urls: bool = False

    async def generate_multimodal(
        self, req: MultimodalImageGenerationRequest, record: RequestRecord, principal: Principal, base_url: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        admission: Admission | None = None
        record.requested_models = [req.model]
        try:
            info = self.catalog.models[self.catalog.resolve(req.model)[0]]
            check_model(info)
            check_request(req)
            config = self.providers[info.provider.name]
            if not config.configured:
                raise ProviderUnavailableError(
                    f"No candidate's provider is configured: {config.how_to_configure()}.",
                    code="provider_not_configured",
                )
            self.billing.allowed(principal, [info])
            parts = await self._parts(req)
            n = req.parameters.num_images
            admission = await self.billing.admit_cost(principal, lambda: reservation(info, n), 0)
            record.model, record.provider = info.id, info.provider.name
            started = time.monotonic()
            try:
                images = await self._call_gemini(config, info, gemini_body(parts, req), n)
            except AttemptFailed as failed:
                raise self._attempt_error(info, failed, started, record) from None
            record.attempts = [_attempt(info, 200, None, started)]
            payload = await self._render_multimodal(info, req, images, base_url)
            cost = reservation(info, len(images))
            record.input_cost, record.output_cost = Decimal(0), cost
            record.status = 200
            self._settle(record, admission)
        except CCAPIError as exc:
            if admission is not None:
                exc.headers = {**admission.headers, **exc.headers}
            self.finish_failed(record, exc, admission)
            raise
        return payload, self._served_headers(info, admission)

    async def _parts(self, req: MultimodalImageGenerationRequest) -> list[Part]:
        """The user turn's parts, in order; every input image checked (fetched when given by URL)."""
        parts: list[Part] = []
        for i, content in enumerate(req.contents):
            if content.text is not None:
                parts.append(Part(text=content.text))
            if content.image is not None:
                parts.append(Part(image=await self._image(content.image, f"contents[{i}].image")))
            if content.mask is not None:
                parts.append(Part(image=await self._image(content.mask, f"contents[{i}].mask")))
                parts.append(Part(text=MASK_INSTRUCTION))
        return parts

    async def _image(self, source: MultimodalImageSource, param: str) -> InputImage:
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

    async def _call_gemini(
        self, config: ProviderConfig, info: ModelInfo, body: dict[str, Any], n: int
    ) -> list[tuple[bytes, str]]:
        url = f"{config.base_url.rstrip('/')}/v1beta/models/{info.upstream_model}:generateContent"
        headers = {"x-goog-api-key": config.api_key or ""}
        timeout = aiohttp.ClientTimeout(total=self.attempt_timeout)

        async def one(session: aiohttp.ClientSession) -> tuple[bytes, str]:
            async with session.post(url, json=body, headers=headers) as resp:
                image = parse_gemini_image(await _checked_json(resp))
            content_type = sniff_image_type(image)
            if content_type is None:
                raise BadUpstreamAnswer("an image is not PNG, JPEG or WebP")
            return image, content_type

        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                return list(await asyncio.gather(*(one(session) for _ in range(n))))
        except TimeoutError:
            raise AttemptFailed(None, f"no answer within {self.attempt_timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise AttemptFailed(None, f"connection failed: {exc.__class__.__name__}") from None
        except BadUpstreamAnswer as exc:
            raise AttemptFailed(200, f"unreadable answer: {exc}") from None

    async def _render_multimodal(
        self, info: ModelInfo, req: MultimodalImageGenerationRequest, images: list[tuple[bytes, str]], base_url: str
    ) -> dict[str, Any]:
        as_b64 = req.parameters.response_format == "b64_json"
        data = []
        for image, content_type in images:
            file_id = await self.files.put(image, content_type)
            data.append(
                {
                    "url": None if as_b64 else self.files.signed_url(file_id, base_url),
                    "b64_json": base64.b64encode(image).decode() if as_b64 else None,
                    "revised_prompt": None,
                    "seed": None,
                }
            )
        return {
            "id": f"imgjob_{new_id()}",
            "created": int(time.time()),
            "model": info.id,
            "status": "succeeded",
            "execution": {"mode": "sync", "operation": operation_of(req), "provider": info.provider.name},
            "data": data,
            "poll_url": None,
            "estimated_time": None,
            "error": None,
            "usage": {"images": len(images), "cost": float(reservation(info, len(images)))},
        }
