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

OpenAI GPT image models: no input image is `POST {base}/images/generations`
(JSON); one or more input images (and an optional mask) is
`POST {base}/images/edits`, multipart/form-data with the file(s) as `image`
(one) or repeated `image[]` (several, up to 16), an optional `mask` (a PNG
whose fully transparent pixels mark where to edit, applied to the first
image), `prompt`, `n`, `size`; the answer is `data[].b64_json` with token
`usage` (OpenAI API reference, "Create image edit").

Stability AI v2beta (multipart/form-data, `Accept: application/json`, one
image per call): `generate/ultra` (text, or `image` + `strength`),
`generate/core` (text only), `generate/sd3` (`model`, and
`mode=image-to-image` + `image` + `strength`, `cfg_scale`), and
`edit/inpaint` (`image` + `mask`, white = repaint) for inpainting. Sources
and the mapping table: docs/images.md.

Pure parts first (rules, operation, wire bodies, answer parsing; unit tested),
the upstream calls last. Admission, input fetching, files, settling and jobs
are media/image_service.py's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from ccapi.catalog.catalog import ModelInfo
from ccapi.catalog.pricing import round_usd
from ccapi.core.errors import InvalidRequestError
from ccapi.core.tokens import estimate_text_tokens
from ccapi.files.image_types import png_has_alpha, sniff_image_type
from ccapi.media.images import (
    BadUpstreamAnswer,
    ImageCost,
    RawImage,
    UpstreamImages,
    _table_price,
    _token_cost,
    checked_json,
    estimated_output_tokens,
    parse_openai,
    parse_stability_v2,
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
            f"{info.id} is not supported on /images/generate yet "
            "(supported: Google Gemini, OpenAI GPT image and Stability AI image models).",
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


# --- shared rules --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormField:
    """One multipart/form-data field: a text value, or a file (with a filename)."""

    name: str
    value: str | bytes
    filename: str | None = None
    content_type: str | None = None


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def _file(name: str, image: InputImage, stem: str) -> FormField:
    return FormField(name, image.data, f"{stem}.{_EXTENSIONS.get(image.mime_type, 'png')}", image.mime_type)


def _unsupported(name: str, who: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{who} does not take the parameter '{name}'.", code="unsupported_parameter", param=f"parameters.{name}"
    )


def _refuse_set(req: MultimodalImageGenerationRequest, names: tuple[str, ...], who: str) -> None:
    for name in names:
        if getattr(req.parameters, name) is not None:
            raise _unsupported(name, who)


def prompt_of(req: MultimodalImageGenerationRequest) -> str:
    """The text parts, in order, as one prompt."""
    return "\n".join(c.text for c in req.contents if c.text is not None)


def _image_indexes(req: MultimodalImageGenerationRequest) -> list[int]:
    return [i for i, c in enumerate(req.contents) if c.image is not None]


def _mask_indexes(req: MultimodalImageGenerationRequest) -> list[int]:
    return [i for i, c in enumerate(req.contents) if c.mask is not None]


def _check_prompt(req: MultimodalImageGenerationRequest, info: ModelInfo) -> None:
    if not prompt_of(req):
        raise InvalidRequestError(
            f"{info.id} needs a text part in 'contents' (the prompt).", code="invalid_value", param="contents"
        )


def _check_masks(req: MultimodalImageGenerationRequest, info: ModelInfo) -> None:
    """A mask where the catalog says the model takes none is a 400 naming it."""
    masks = _mask_indexes(req)
    if masks and not info.entry.supports_mask:
        raise InvalidRequestError(
            f"{info.id} takes no mask (inpainting): drop 'contents[{masks[0]}].mask' or pick a model that does.",
            code="unsupported_parameter",
            param=f"contents[{masks[0]}].mask",
        )
    if len(masks) > 1:
        raise InvalidRequestError(
            f"{info.id} takes one mask.", code="invalid_value", param=f"contents[{masks[1]}].mask"
        )


def _check_input_images(req: MultimodalImageGenerationRequest, info: ModelInfo, most: int) -> None:
    images = _image_indexes(req)
    if images and (most == 0 or "image" not in info.entry.input_modalities):
        raise InvalidRequestError(
            f"{info.id} takes no input image (text-to-image only).",
            code="unsupported_parameter",
            param=f"contents[{images[0]}].image",
        )
    if len(images) > most:
        raise InvalidRequestError(
            f"{info.id} takes at most {most} input image(s).",
            code="invalid_value",
            param=f"contents[{images[most]}].image",
        )


# --- OpenAI GPT image models -----------------------------------------------------------

# MultimodalImageParameters the OpenAI Images API has no field for.
OPENAI_REFUSED = ("seed", "steps", "guidance_scale", "negative_prompt", "strength")
# Input images per edit request (OpenAI API reference: "You can provide up to 16 images").
OPENAI_MAX_IMAGES = 16
# Reservation only: input image tokens per input image. OpenAI counts an input
# image by its size and `input_fidelity`; this bounds a large high-fidelity
# image. The charge is the upstream's `usage`.
OPENAI_INPUT_IMAGE_TOKENS = 6500
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def _ratio(size: str) -> str | None:
    match = _WXH.match(size)
    if not match:
        return None
    w, h = int(match[1]), int(match[2])
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def openai_size(info: ModelInfo, req: MultimodalImageGenerationRequest) -> str | None:
    """`size` from width x height or aspect_ratio (the first listed size of that ratio); None: the model's default."""
    params = req.parameters
    supported = [s for s in info.entry.supported_sizes or () if _WXH.match(s)]
    if params.width is not None or params.height is not None:
        if params.aspect_ratio is not None:
            raise InvalidRequestError(
                "Give 'parameters.aspect_ratio' or 'width' and 'height', not both.",
                code="invalid_value",
                param="parameters.aspect_ratio",
            )
        missing = "height" if params.height is None else "width" if params.width is None else None
        if missing is not None:
            raise InvalidRequestError(
                f"'parameters.{missing}' is needed with the other dimension.",
                code="invalid_value",
                param=f"parameters.{missing}",
            )
        size = f"{params.width}x{params.height}"
        if supported and size not in supported:
            raise InvalidRequestError(
                f"{info.id} does not take {size}. Supported width x height: {', '.join(supported)}.",
                code="unsupported_value",
                param="parameters.width",
            )
        return size
    if params.aspect_ratio is not None:
        for size in supported:
            if _ratio(size) == params.aspect_ratio:
                return size
        ratios = list(dict.fromkeys(r for r in (_ratio(s) for s in supported) if r))
        raise InvalidRequestError(
            f"Invalid 'parameters.aspect_ratio': {params.aspect_ratio!r}. Supported: {', '.join(ratios)}.",
            code="unsupported_value",
            param="parameters.aspect_ratio",
        )
    return None


def check_openai(info: ModelInfo, req: MultimodalImageGenerationRequest) -> None:
    """400 naming the first thing this OpenAI image model cannot take."""
    if info.provider.name != "openai" or not info.upstream_model.startswith(("gpt-image", "dall-e")):
        raise InvalidRequestError(
            f"{info.id} is not supported on /images/generate yet (of the OpenAI-format providers, "
            "only OpenAI's own image models are).",
            code="model_not_supported",
            param="model",
        )
    _refuse_set(req, OPENAI_REFUSED, info.id)
    max_n = 1 if info.upstream_model == "dall-e-3" else 10
    if req.parameters.num_images > max_n:
        raise InvalidRequestError(
            f"{info.id} generates at most {max_n} image(s) per request.",
            code="invalid_value",
            param="parameters.num_images",
        )
    _check_prompt(req, info)
    _check_input_images(req, info, OPENAI_MAX_IMAGES)
    _check_masks(req, info)
    masks, images = _mask_indexes(req), _image_indexes(req)
    if masks and masks[0] != images[0]:
        raise InvalidRequestError(
            "OpenAI applies the mask to the first input image: put the mask with the first image.",
            code="invalid_value",
            param=f"contents[{masks[0]}].mask",
        )
    openai_size(info, req)


def check_openai_parts(req: MultimodalImageGenerationRequest, parts: list[Part]) -> None:
    """The mask must be a PNG with an alpha channel (its fully transparent pixels are edited)."""
    for part, index in zip((p for p in parts if p.mask), _mask_indexes(req), strict=False):
        if part.image is None or part.image.mime_type != "image/png" or not png_has_alpha(part.image.data):
            raise InvalidRequestError(
                f"'contents[{index}].mask' must be a PNG with an alpha channel for OpenAI models "
                "(fully transparent pixels mark where to edit).",
                code="invalid_image",
                param=f"contents[{index}].mask",
            )


def openai_generation_body(info: ModelInfo, req: MultimodalImageGenerationRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": info.upstream_model, "prompt": prompt_of(req), "n": req.parameters.num_images}
    size = openai_size(info, req)
    if size is not None:
        body["size"] = size
    return body


def openai_edit_form(info: ModelInfo, req: MultimodalImageGenerationRequest, parts: list[Part]) -> list[FormField]:
    """The /images/edits form: `image` for one input image, repeated `image[]` for several, then `mask`."""
    form = [FormField(k, str(v)) for k, v in openai_generation_body(info, req).items()]
    images = [p.image for p in parts if p.image is not None and not p.mask]
    name = "image" if len(images) == 1 else "image[]"
    form += [_file(name, image, f"image_{i}") for i, image in enumerate(images)]
    form += [_file("mask", p.image, "mask") for p in parts if p.mask and p.image is not None]
    return form


def openai_reservation(info: ModelInfo, req: MultimodalImageGenerationRequest) -> Decimal:
    """Check the model's rules, then the most the request can cost."""
    check_openai(info, req)
    n = req.parameters.num_images
    per_image = info.entry.pricing.per_image_cost
    if per_image is not None:
        return round_usd(per_image * n)
    size = openai_size(info, req) or "auto"
    table = _table_price(info, size, None)  # no quality chosen: the dearest
    if table is not None:
        return round_usd(table * n)
    prompt = estimate_text_tokens(len(prompt_of(req))) + OPENAI_INPUT_IMAGE_TOKENS * len(_image_indexes(req))
    return _token_cost(info, prompt, n * estimated_output_tokens(size, "high")).total


def openai_cost(info: ModelInfo, delivered: int, upstream: UpstreamImages) -> ImageCost:
    """Catalog per-image prices (by the size and quality the answer reports), else the upstream's token usage."""
    per_image = info.entry.pricing.per_image_cost
    if per_image is not None:
        return ImageCost(Decimal(0), round_usd(per_image * delivered))
    table = _table_price(info, upstream.size or "auto", upstream.quality)
    if table is not None:
        return ImageCost(Decimal(0), round_usd(table * delivered))
    if upstream.output_tokens is not None:
        return _token_cost(info, upstream.input_tokens or 0, upstream.output_tokens)
    return _token_cost(info, 0, delivered * estimated_output_tokens(upstream.size or "auto", upstream.quality))


# --- Stability AI v2beta ----------------------------------------------------------------

STABILITY_SEED_MAX = 4294967294
# Stability requires `strength` with an input image; sent when the request gives none.
STABILITY_DEFAULT_STRENGTH = 0.7


@dataclass(frozen=True, slots=True)
class StabilityRules:
    path: str  # under /v2beta/stable-image/
    max_images: int  # input images taken (0: text-to-image only)
    needs_mask: bool = False
    cfg_scale: bool = False  # guidance_scale, as cfg_scale
    sd3: bool = False  # sends `model` (and `mode`)


def stability_rules(info: ModelInfo) -> StabilityRules:
    model = info.upstream_model
    if model == "stable-image-ultra":
        return StabilityRules("generate/ultra", max_images=1)
    if model == "stable-image-core":
        return StabilityRules("generate/core", max_images=0)
    if model.startswith("sd3"):
        return StabilityRules("generate/sd3", max_images=1, cfg_scale=True, sd3=True)
    if model == "stable-image-inpaint":
        return StabilityRules("edit/inpaint", max_images=1, needs_mask=True)
    raise InvalidRequestError(
        f"{info.id} is not supported on /images/generate (Stability's legacy v1 engines are served "
        "by /images/generations).",
        code="model_not_supported",
        param="model",
    )


def check_stability(info: ModelInfo, req: MultimodalImageGenerationRequest) -> None:
    """400 naming the first thing this Stability model cannot take."""
    rules = stability_rules(info)
    params = req.parameters
    _refuse_set(req, ("width", "height", "steps"), info.id)
    if params.guidance_scale is not None:
        if not rules.cfg_scale:
            raise _unsupported("guidance_scale", info.id)
        if not 1 <= params.guidance_scale <= 10:
            raise InvalidRequestError(
                "'parameters.guidance_scale' must be between 1 and 10 for Stability models.",
                code="invalid_value",
                param="parameters.guidance_scale",
            )
    _check_prompt(req, info)
    _check_input_images(req, info, rules.max_images)
    _check_masks(req, info)
    has_image = bool(_image_indexes(req))
    if rules.needs_mask and not _mask_indexes(req):
        raise InvalidRequestError(
            f"{info.id} repaints the masked area of an image: give an 'image' with a 'mask' in 'contents'.",
            code="invalid_value",
            param="contents",
        )
    if params.strength is not None:
        if rules.needs_mask or rules.max_images == 0:
            raise _unsupported("strength", info.id)
        if not has_image:
            raise InvalidRequestError(
                "'parameters.strength' is for image-to-image: give an input image.",
                code="invalid_value",
                param="parameters.strength",
            )
        if not 0 <= params.strength <= 1:
            raise InvalidRequestError(
                "'parameters.strength' must be between 0 and 1.", code="invalid_value", param="parameters.strength"
            )
    if params.aspect_ratio is not None:
        if has_image:
            raise InvalidRequestError(
                "'parameters.aspect_ratio' is for text-to-image: the output follows the input image.",
                code="invalid_value",
                param="parameters.aspect_ratio",
            )
        supported = info.entry.supported_sizes or ()
        if params.aspect_ratio not in supported:
            raise InvalidRequestError(
                f"Invalid 'parameters.aspect_ratio': {params.aspect_ratio!r}. Supported: {', '.join(supported)}.",
                code="unsupported_value",
                param="parameters.aspect_ratio",
            )
    if params.seed is not None and not 0 <= params.seed <= STABILITY_SEED_MAX:
        raise InvalidRequestError(
            f"'parameters.seed' must be between 0 and {STABILITY_SEED_MAX}.",
            code="invalid_value",
            param="parameters.seed",
        )


def stability_form(
    info: ModelInfo, req: MultimodalImageGenerationRequest, parts: list[Part], index: int
) -> list[FormField]:
    """The form of call `index` (one image per call; image i gets seed + i)."""
    rules = stability_rules(info)
    params = req.parameters
    form = [FormField("prompt", prompt_of(req)), FormField("output_format", "png")]
    images = [p.image for p in parts if p.image is not None and not p.mask]
    masks = [p.image for p in parts if p.image is not None and p.mask]
    if rules.sd3:
        form.append(FormField("model", info.upstream_model))
        form.append(FormField("mode", "image-to-image" if images else "text-to-image"))
    if images:
        form.append(_file("image", images[0], "image"))
        if rules.needs_mask:
            form += [_file("mask", mask, "mask") for mask in masks[:1]]
        else:
            strength = STABILITY_DEFAULT_STRENGTH if params.strength is None else params.strength
            form.append(FormField("strength", str(strength)))
    if params.aspect_ratio is not None:
        form.append(FormField("aspect_ratio", params.aspect_ratio))
    if params.negative_prompt is not None:
        form.append(FormField("negative_prompt", params.negative_prompt))
    if params.guidance_scale is not None:
        form.append(FormField("cfg_scale", str(params.guidance_scale)))
    if params.seed is not None:
        form.append(FormField("seed", str((params.seed + index) % (STABILITY_SEED_MAX + 1))))
    return form


def stability_reservation(info: ModelInfo, req: MultimodalImageGenerationRequest) -> Decimal:
    """Check the model's rules, then the catalog's per-image price times num_images."""
    check_stability(info, req)
    return per_image_reservation(info, req)


def no_check(_req: MultimodalImageGenerationRequest) -> None:
    """The model-specific rules run in `reserve`, which knows the model."""


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


def _form_data(fields: list[FormField]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)  # Stability takes multipart only, even without a file
    for f in fields:
        form.add_field(f.name, f.value, filename=f.filename, content_type=f.content_type)
    return form


async def call_openai(
    session: aiohttp.ClientSession,
    config: ProviderConfig,
    info: ModelInfo,
    req: MultimodalImageGenerationRequest,
    parts: list[Part],
) -> UpstreamImages:
    check_openai_parts(req, parts)
    base = config.base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    if not any(p.image is not None for p in parts):
        request = session.post(f"{base}/images/generations", json=openai_generation_body(info, req), headers=headers)
    else:
        form = _form_data(openai_edit_form(info, req, parts))
        request = session.post(f"{base}/images/edits", data=form, headers=headers)
    async with request as resp:
        return parse_openai(await checked_json(resp))


async def call_stability(
    session: aiohttp.ClientSession,
    config: ProviderConfig,
    info: ModelInfo,
    req: MultimodalImageGenerationRequest,
    parts: list[Part],
) -> UpstreamImages:
    # One image per call (the v2beta API has no sample count): num_images calls at once.
    url = f"{config.base_url.rstrip('/')}/v2beta/stable-image/{stability_rules(info).path}"
    headers = {"Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"

    async def one(index: int) -> RawImage:
        form = _form_data(stability_form(info, req, parts, index))
        async with session.post(url, data=form, headers=headers) as resp:
            return parse_stability_v2(await checked_json(resp))

    n = req.parameters.num_images
    return UpstreamImages(images=list(await asyncio.gather(*(one(i) for i in range(n)))))


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
    # The OpenAI and Stability rules depend on the model: their `reserve` checks them first.
    "openai": MultimodalWire(no_check, openai_reservation, openai_cost, call_openai),
    "stability": MultimodalWire(no_check, stability_reservation, per_image_cost, call_stability),
}
