"""Image generation for `POST /images/generations`: the model rules, pricing
and each provider's wire format.

Pure parts first (rules, pricing, translation to and from each wire format,
each a table-driven unit test); the upstream calls last. Admission, files,
settling and jobs are media/image_service.py's. Provider rules and their
sources are in docs/images.md.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from ccapi.catalog.catalog import ModelInfo
from ccapi.catalog.pricing import MILLION, round_usd
from ccapi.core.errors import InvalidRequestError
from ccapi.core.redact import redact_secrets
from ccapi.core.tokens import estimate_text_tokens
from ccapi.media.upstream_task import UPSTREAM_TASK
from ccapi.providers.registry import ProviderConfig
from ccapi.schemas.images import LegacyImageGenerationRequest

# --- rules: what each model family takes ---------------------------------------

GPT_IMAGE_QUALITIES = ("auto", "low", "medium", "high")
DALLE3_QUALITIES = ("auto", "standard", "hd")
DALLE3_STYLES = ("vivid", "natural")
ALL_FORMATS = ("png", "jpeg", "webp")
IMAGEN_IMAGE_SIZES = ("1K", "2K")
# Imagen's 1K outputs are at most 1408 px on their long side (1408x768 at 16:9); a larger
# requested size asks for its 2K resolution.
IMAGEN_1K_EDGE = 1408
# Each image is one BFL task; a bound keeps one request from filling the account's
# concurrent-task allowance.
BFL_MAX_N = 4


@dataclass(frozen=True, slots=True)
class ModelRules:
    """The OpenAI image parameters a model family takes (None: refused)."""

    wire: str  # "openai" | "stability-v1" | "stability-v2" | "imagen" | "bfl"
    qualities: tuple[str, ...] | None = None
    styles: tuple[str, ...] | None = None
    output_formats: tuple[str, ...] | None = None
    backgrounds: tuple[str, ...] | None = None
    compression: bool = False
    moderation: bool = False
    max_n: int = 10
    # Stability v2beta route: "ultra" | "core" | "sd3"
    endpoint: str | None = None
    # Imagen's `sampleImageSize` choices (None: the model has one resolution).
    image_sizes: tuple[str, ...] | None = None


def rules_for(info: ModelInfo) -> ModelRules:
    """The family rules of an image model; 400 `model` for a wire format this route does not drive yet."""
    provider, model = info.provider.name, info.upstream_model
    if info.provider.api == "openai" and provider == "openai":
        if model.startswith("gpt-image"):
            # gpt-image-2 and later refuse transparent backgrounds (OpenAI's model page).
            transparent = not re.match(r"gpt-image-([2-9]|\d\d)", model)
            backgrounds = ("transparent", "opaque", "auto") if transparent else ("opaque", "auto")
            return ModelRules(
                "openai",
                qualities=GPT_IMAGE_QUALITIES,
                output_formats=ALL_FORMATS,
                backgrounds=backgrounds,
                compression=True,
                moderation=True,
            )
        if model == "dall-e-3":
            return ModelRules("openai", qualities=DALLE3_QUALITIES, styles=DALLE3_STYLES, max_n=1)
        if model == "dall-e-2":
            return ModelRules("openai", qualities=("auto", "standard"))
    if info.provider.api == "stability":
        if model.startswith("stable-diffusion-"):
            return ModelRules("stability-v1", output_formats=("png",))
        if model == "stable-image-ultra":
            return ModelRules("stability-v2", output_formats=ALL_FORMATS, endpoint="ultra")
        if model == "stable-image-core":
            return ModelRules("stability-v2", output_formats=ALL_FORMATS, endpoint="core")
        if model.startswith("sd3"):
            return ModelRules("stability-v2", output_formats=("png", "jpeg"), endpoint="sd3")
    if info.provider.api == "gemini" and model.startswith("imagen-"):
        # Gemini API `:predict` (google-genai's _GenerateImagesConfig_to_mldev): sampleCount 1-4,
        # outputOptions.mimeType png/jpeg (+ compressionQuality), sampleImageSize 1K/2K except on -fast.
        sizes = None if "fast" in model else IMAGEN_IMAGE_SIZES
        return ModelRules("imagen", output_formats=("png", "jpeg"), compression=True, max_n=4, image_sizes=sizes)
    if info.provider.api == "bfl" and "fill" not in model:
        # One image per BFL task (the API has no sample count); n tasks run at once.
        # output_format: jpeg | png on every text-to-image endpoint (docs.bfl.ai API reference).
        # FLUX.1 Fill needs an input image: not a text-to-image model.
        return ModelRules("bfl", output_formats=("jpeg", "png"), max_n=BFL_MAX_N)
    raise InvalidRequestError(
        f"{info.id} is not supported on /images/generations yet "
        "(supported: OpenAI, Stability AI, Google Imagen and Black Forest Labs text-to-image models).",
        code="model_not_supported",
        param="model",
    )


@dataclass(frozen=True, slots=True)
class ImageParams:
    """A checked request: every value is one the model takes."""

    prompt: str
    n: int
    size: str  # as the catalog lists it (a WxH or, for Stability v2beta, an aspect ratio)
    quality: str | None
    style: str | None
    output_format: str | None
    output_compression: int | None
    background: str | None
    moderation: str | None
    user: str | None
    response_format: str  # what the client wants back: "url" | "b64_json"
    rules: ModelRules
    image_size: str | None = None  # Imagen's sampleImageSize, when the size asks for more than 1K


_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def resolve_size(size: str | None, info: ModelInfo) -> str:
    supported = info.entry.supported_sizes or ()
    if size is None:
        return "auto" if "auto" in supported else (supported[0] if supported else "1024x1024")
    if not supported or size in supported:
        return size
    match = _WXH.match(size)
    if match and all(":" in s for s in supported):
        # A WxH for an aspect-ratio model (Stability v2beta) is taken when its ratio is listed.
        w, h = int(match[1]), int(match[2])
        g = math.gcd(w, h)
        ratio = f"{w // g}:{h // g}"
        if ratio in supported:
            return ratio
    raise InvalidRequestError(
        f"Invalid 'size': {size!r} is not supported by {info.id}. Supported: {', '.join(supported)}.",
        code="invalid_value",
        param="size",
    )


def _refuse(param: str, info: ModelInfo, value: Any, allowed: tuple[str, ...] | None) -> InvalidRequestError:
    if allowed is None:
        return InvalidRequestError(
            f"{info.id} does not take the parameter '{param}'.", code="unsupported_parameter", param=param
        )
    return InvalidRequestError(
        f"Invalid '{param}': {value!r} is not supported by {info.id}. Supported: {', '.join(allowed)}.",
        code="unsupported_value",
        param=param,
    )


def check_params(req: LegacyImageGenerationRequest, info: ModelInfo) -> ImageParams:
    """400 naming the first parameter this model cannot take, else the checked params."""
    if info.entry.type != "image":
        raise InvalidRequestError(
            f"{info.id} is a {info.entry.type} model, not an image model.", code="invalid_model", param="model"
        )
    rules = rules_for(info)
    if req.n > rules.max_n:
        raise InvalidRequestError(
            f"Invalid 'n': {info.id} generates at most {rules.max_n} image(s) per request.",
            code="invalid_value",
            param="n",
        )
    size = resolve_size(req.size, info)
    for param, value, allowed in (
        ("quality", req.quality, rules.qualities),
        ("style", req.style, rules.styles),
        ("output_format", req.output_format, rules.output_formats),
        ("background", req.background, rules.backgrounds),
    ):
        if value is not None and (allowed is None or value not in allowed):
            raise _refuse(param, info, value, allowed)
    if req.output_compression is not None:
        if not rules.compression:
            raise _refuse("output_compression", info, req.output_compression, None)
        if req.output_format not in ("jpeg", "webp"):
            raise InvalidRequestError(
                "'output_compression' needs output_format 'jpeg' or 'webp'.", param="output_compression"
            )
    if req.moderation is not None and not rules.moderation:
        raise _refuse("moderation", info, req.moderation, None)
    if req.background == "transparent" and req.output_format == "jpeg":
        raise InvalidRequestError(
            "A transparent background needs output_format 'png' or 'webp'.", code="invalid_value", param="background"
        )
    return ImageParams(
        prompt=req.prompt,
        n=req.n,
        size=size,
        quality=req.quality,
        style=req.style,
        output_format=req.output_format,
        output_compression=req.output_compression,
        background=req.background,
        moderation=req.moderation,
        user=req.user,
        response_format=req.response_format or "url",
        rules=rules,
        image_size=imagen_image_size(req.size, rules, info) if rules.wire == "imagen" else None,
    )


def imagen_image_size(size: str | None, rules: ModelRules, info: ModelInfo) -> str | None:
    """Imagen's sampleImageSize for a WxH size larger than its 1K outputs ("2K"), else None (1K)."""
    match = _WXH.match(size or "")
    if match is None or max(int(match[1]), int(match[2])) <= IMAGEN_1K_EDGE:
        return None
    if rules.image_sizes is None or "2K" not in rules.image_sizes:
        raise InvalidRequestError(
            f"Invalid 'size': {size!r} is larger than {info.id} generates (1K only).",
            code="invalid_value",
            param="size",
        )
    return "2K"


# --- pricing ------------------------------------------------------------------

# Output image tokens per 1024x1024 of a GPT image model, by quality (OpenAI's
# published gpt-image-1 table: 272 / 1056 / 4160), scaled by area. Only the
# reservation uses it for token-priced models; the charge is the upstream's usage.
TOKENS_PER_MEGATILE = {"low": 272, "medium": 1056, "high": 4160}
# `size: auto` lets the model pick among its standard sizes; reserve for the largest of them.
AUTO_SIZE_AREA = 1024 * 1536


@dataclass(frozen=True, slots=True)
class ImageCost:
    input_cost: Decimal
    output_cost: Decimal
    prompt_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> Decimal:
        return self.input_cost + self.output_cost


def _area(size: str) -> int:
    match = _WXH.match(size)
    return int(match[1]) * int(match[2]) if match else AUTO_SIZE_AREA


def estimated_output_tokens(size: str, quality: str | None) -> int:
    per_tile = TOKENS_PER_MEGATILE.get(quality or "high", TOKENS_PER_MEGATILE["high"])
    return math.ceil(per_tile * _area(size) / (1024 * 1024))


def _table_price(info: ModelInfo, size: str, quality: str | None) -> Decimal | None:
    table = info.entry.pricing.image_prices
    if not table:
        return None
    rows = [table[size]] if size in table else list(table.values())
    if quality is not None and quality != "auto" and all(quality in row for row in rows):
        return max(row[quality] for row in rows)
    return max(price for row in rows for price in row.values())  # unknown choice: the dearest


def _token_cost(info: ModelInfo, prompt_tokens: int, output_tokens: int) -> ImageCost:
    pricing = info.entry.pricing
    rate_in = (pricing.input_cost_per_million or Decimal(0)) / MILLION
    rate_out = (pricing.output_cost_per_million or Decimal(0)) / MILLION
    return ImageCost(
        round_usd(prompt_tokens * rate_in), round_usd(output_tokens * rate_out), prompt_tokens, output_tokens
    )


def reservation(info: ModelInfo, params: ImageParams) -> Decimal:
    """The most the request can cost (the amount reserved before the call)."""
    per_image = info.entry.pricing.per_image_cost
    if per_image is not None:
        return round_usd(per_image * params.n)
    table = _table_price(info, params.size, params.quality)
    if table is not None:
        return round_usd(table * params.n)
    prompt = estimate_text_tokens(len(params.prompt))
    return _token_cost(info, prompt, params.n * estimated_output_tokens(params.size, params.quality)).total


def actual_cost(info: ModelInfo, params: ImageParams, delivered: int, upstream: UpstreamImages) -> ImageCost:
    """What the delivered images cost: catalog per-image prices, else the upstream's token usage."""
    per_image = info.entry.pricing.per_image_cost
    if per_image is not None:
        return ImageCost(Decimal(0), round_usd(per_image * delivered))
    size = upstream.size or params.size
    quality = upstream.quality or params.quality
    if quality is None and params.rules.styles is not None:
        quality = "standard"  # dall-e-3's default
    table = _table_price(info, size, quality)
    if table is not None:
        return ImageCost(Decimal(0), round_usd(table * delivered))
    if upstream.output_tokens is not None:
        return _token_cost(info, upstream.input_tokens or 0, upstream.output_tokens)
    prompt = estimate_text_tokens(len(params.prompt))
    return _token_cost(info, prompt, delivered * estimated_output_tokens(size, quality))


# --- translation: our params <-> each wire format -------------------------------


@dataclass(slots=True)
class RawImage:
    data: bytes | None = None
    url: str | None = None  # an upstream link, fetched and re-hosted
    revised_prompt: str | None = None
    seed: int | None = None


@dataclass(slots=True)
class UpstreamImages:
    images: list[RawImage] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    size: str | None = None
    quality: str | None = None


class BadUpstreamAnswer(Exception):
    """The upstream answered 2xx with something we cannot read."""


def openai_body(params: ImageParams, info: ModelInfo) -> dict[str, Any]:
    body: dict[str, Any] = {"model": info.upstream_model, "prompt": params.prompt, "n": params.n, "size": params.size}
    for name in ("quality", "style", "output_format", "output_compression", "background", "moderation", "user"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.rules.styles is not None or info.upstream_model == "dall-e-2":
        # DALL-E answers links by default; GPT image models always answer base64 and refuse the field.
        body["response_format"] = params.response_format
    return body


def parse_openai(payload: Any) -> UpstreamImages:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise BadUpstreamAnswer("no 'data' list")
    out = UpstreamImages(size=_str(payload.get("size")), quality=_str(payload.get("quality")))
    for item in payload["data"]:
        if not isinstance(item, dict):
            raise BadUpstreamAnswer("a 'data' item is not an object")
        raw = RawImage(revised_prompt=_str(item.get("revised_prompt")))
        if isinstance(item.get("b64_json"), str):
            raw.data = _b64(item["b64_json"])
        elif isinstance(item.get("url"), str):
            raw.url = item["url"]
        else:
            raise BadUpstreamAnswer("an image has neither 'b64_json' nor 'url'")
        out.images.append(raw)
    usage = payload.get("usage")
    if isinstance(usage, dict):
        out.input_tokens = _int(usage.get("input_tokens"))
        out.output_tokens = _int(usage.get("output_tokens"))
    return out


def stability_v1_body(params: ImageParams) -> dict[str, Any]:
    width, _, height = params.size.partition("x")
    return {
        "text_prompts": [{"text": params.prompt, "weight": 1}],
        "width": int(width),
        "height": int(height),
        "samples": params.n,
    }


def parse_stability_v1(payload: Any) -> UpstreamImages:
    artifacts = payload.get("artifacts") if isinstance(payload, dict) else None
    if not isinstance(artifacts, list):
        raise BadUpstreamAnswer("no 'artifacts' list")
    out = UpstreamImages()
    for art in artifacts:
        if not isinstance(art, dict) or not isinstance(art.get("base64"), str):
            raise BadUpstreamAnswer("an artifact has no 'base64'")
        if art.get("finishReason") == "ERROR":
            raise BadUpstreamAnswer("an artifact finished with ERROR")
        out.images.append(RawImage(data=_b64(art["base64"]), seed=_int(art.get("seed"))))
    return out


def stability_v2_form(params: ImageParams, info: ModelInfo) -> dict[str, str]:
    form = {"prompt": params.prompt, "aspect_ratio": params.size, "output_format": params.output_format or "png"}
    if params.rules.endpoint == "sd3":
        form["model"] = info.upstream_model
    return form


def parse_stability_v2(payload: Any) -> RawImage:
    if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
        raise BadUpstreamAnswer("no 'image'")
    if payload.get("finish_reason") not in (None, "SUCCESS", "CONTENT_FILTERED"):
        raise BadUpstreamAnswer(f"finish_reason {payload.get('finish_reason')!r}")
    return RawImage(data=_b64(payload["image"]), seed=_int(payload.get("seed")))


# Imagen through the Gemini API: POST {base}/v1beta/models/{model}:predict. Field names as the
# google-genai SDK writes them for the Gemini API (_GenerateImagesParameters_to_mldev /
# _GenerateImagesConfig_to_mldev, _GeneratedImage_from_mldev); docs/images.md has the sources.
_IMAGEN_MIME = {"png": "image/png", "jpeg": "image/jpeg"}


def imagen_body(params: ImageParams) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "sampleCount": params.n,
        "aspectRatio": params.size,
        # Without it a filtered image is silently missing from `predictions`.
        "includeRaiReason": True,
    }
    if params.image_size is not None:
        parameters["sampleImageSize"] = params.image_size
    if params.output_format is not None:
        parameters["outputOptions"] = {"mimeType": _IMAGEN_MIME[params.output_format]}
        if params.output_compression is not None:
            parameters["outputOptions"]["compressionQuality"] = params.output_compression
    return {"instances": [{"prompt": params.prompt}], "parameters": parameters}


def parse_imagen(payload: Any) -> UpstreamImages:
    """`predictions[].bytesBase64Encoded`; a prediction holding only `raiFilteredReason` was filtered out."""
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list):
        raise BadUpstreamAnswer("no 'predictions' list")
    out = UpstreamImages()
    reasons: list[str] = []
    for item in predictions:
        if not isinstance(item, dict):
            raise BadUpstreamAnswer("a prediction is not an object")
        if isinstance(item.get("bytesBase64Encoded"), str):
            out.images.append(RawImage(data=_b64(item["bytesBase64Encoded"])))
        elif isinstance(item.get("raiFilteredReason"), str):
            reasons.append(item["raiFilteredReason"])
        else:
            raise BadUpstreamAnswer("a prediction has neither 'bytesBase64Encoded' nor 'raiFilteredReason'")
    if not out.images and reasons:
        # The prompt (or every image) was refused by the provider's safety filter: the request's fault.
        raise AttemptFailed(200, f"every image was filtered: {reasons[0]}", client_error=True)
    return out


# Black Forest Labs: POST {base}/v1/{model} answers {id, polling_url}; GET polling_url
# (x-key again) answers {id, status, result, ...} until status is terminal. Statuses from
# BFL's OpenAPI `StatusResponse` plus "Failed" (docs.bfl.ai quick start); docs/images.md.
BFL_READY = "Ready"
BFL_MODERATED = ("Request Moderated", "Content Moderated")
BFL_FAILED = ("Error", "Failed", "Task not found")
# Poll backoff: BFL's own examples poll every 0.5 s; slower jobs are polled less often.
BFL_POLL_FIRST = 0.5
BFL_POLL_MAX = 5.0
BFL_POLL_GROWTH = 1.5


@dataclass(frozen=True, slots=True)
class BflTask:
    id: str
    polling_url: str

    def saved(self) -> dict[str, str]:
        return {"id": self.id, "polling_url": self.polling_url}


def bfl_body(params: ImageParams) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": params.prompt}
    if ":" in params.size:
        body["aspect_ratio"] = params.size  # Ultra and Kontext take a ratio
    else:
        width, _, height = params.size.partition("x")
        body["width"], body["height"] = int(width), int(height)
    if params.output_format is not None:
        body["output_format"] = params.output_format
    return body


def parse_bfl_task(payload: Any) -> BflTask:
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        raise BadUpstreamAnswer("no task 'id'")
    polling_url = payload.get("polling_url")
    if not isinstance(polling_url, str) or not polling_url.startswith(("http://", "https://")):
        raise BadUpstreamAnswer("no 'polling_url'")
    return BflTask(payload["id"], polling_url)


def parse_bfl_result(payload: Any) -> RawImage | None:
    """The image link once the task is Ready, None while it runs; AttemptFailed when it ended badly."""
    if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
        raise BadUpstreamAnswer("no task 'status'")
    status = payload["status"]
    if status == BFL_READY:
        result = payload.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("sample"), str):
            raise BadUpstreamAnswer("a Ready task without 'result.sample'")
        return RawImage(url=result["sample"], seed=_int(result.get("seed")))
    reason = status
    details = payload.get("details")
    if isinstance(details, dict) and details:
        reason += ": " + "; ".join(f"{k}: {v}" for k, v in details.items())
    if status in BFL_MODERATED:
        raise AttemptFailed(200, f"the task ended {reason}", client_error=True)
    if status in BFL_FAILED:
        raise AttemptFailed(200, f"the task ended {reason}")
    return None  # Pending, or a progress state BFL may add (they are not terminal)


def bfl_poll_delays() -> Iterator[float]:
    delay = BFL_POLL_FIRST
    while True:
        yield delay
        delay = min(delay * BFL_POLL_GROWTH, BFL_POLL_MAX)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise BadUpstreamAnswer("an image is not valid base64") from None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- the upstream calls ----------------------------------------------------------------

MAX_FETCHED_IMAGE_BYTES = 50 * 1024 * 1024


class AttemptFailed(Exception):
    def __init__(
        self, status: int | None, message: str, client_error: bool = False, started: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.client_error = client_error  # the upstream refused the request itself (400)
        self.started = started  # time.monotonic() when the attempt began


def attempt_entry(info: ModelInfo, status: int | None, error: str | None, started: float) -> dict[str, Any]:
    return {
        "provider": info.provider.name,
        "model": info.id,
        "status": status,
        "error": error,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


async def checked_json(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()
    if resp.status >= 400:
        message = redact_secrets(_upstream_message(raw) or f"HTTP {resp.status}")
        raise AttemptFailed(resp.status, f"HTTP {resp.status}: {message}", client_error=resp.status in (400, 422))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadUpstreamAnswer("the body is not JSON") from None


def _upstream_message(raw: bytes) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
        # Stability: {"id", "name": "bad_request", "errors": ["the reason", ...]}
        if isinstance(body.get("errors"), list) and body["errors"]:
            return str(body["errors"][0])
        detail = body.get("detail")  # FastAPI validation errors (BFL): [{"loc", "msg", ...}]
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and "msg" in detail[0]:
            return str(detail[0]["msg"])
        for key in ("detail", "name"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


def _bearer(config: ProviderConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


async def _call_openai(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    url = f"{config.base_url.rstrip('/')}/images/generations"
    async with session.post(url, json=openai_body(params, info), headers=_bearer(config)) as resp:
        return parse_openai(await checked_json(resp))


async def _call_stability_v1(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    url = f"{config.base_url.rstrip('/')}/v1/generation/{info.upstream_model}/text-to-image"
    headers = {**_bearer(config), "Accept": "application/json"}
    async with session.post(url, json=stability_v1_body(params), headers=headers) as resp:
        return parse_stability_v1(await checked_json(resp))


async def _call_stability_v2(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    # One image per call (the v2beta API has no sample count): n calls at once.
    url = f"{config.base_url.rstrip('/')}/v2beta/stable-image/generate/{params.rules.endpoint}"
    headers = {**_bearer(config), "Accept": "application/json"}

    async def one() -> RawImage:
        # The v2beta API takes multipart/form-data only (even without a file part).
        form = aiohttp.MultipartWriter("form-data")
        for name, value in stability_v2_form(params, info).items():
            form.append(value).set_content_disposition("form-data", name=name)
        async with session.post(url, data=form, headers=headers) as resp:
            return parse_stability_v2(await checked_json(resp))

    return UpstreamImages(images=list(await asyncio.gather(*(one() for _ in range(params.n)))))


async def _call_imagen(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    url = f"{config.base_url.rstrip('/')}/v1beta/models/{info.upstream_model}:predict"
    headers = {"x-goog-api-key": config.api_key or ""}
    async with session.post(url, json=imagen_body(params), headers=headers) as resp:
        return parse_imagen(await checked_json(resp))


async def _call_bfl(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    """Submit one task per image (or resume the job's saved tasks), then poll them all until Ready.

    The whole call, polling included, stays within the session's total timeout (the attempt's
    or the job's): aiohttp applies that timeout per request, so it is enforced here as well.
    """
    headers = {"x-key": config.api_key or "", "Accept": "application/json"}
    hooks = UPSTREAM_TASK.get()
    tasks = _saved_bfl_tasks(hooks.resume if hooks is not None else None)[: params.n]
    lock = asyncio.Lock()

    async def submit() -> BflTask:
        url = f"{config.base_url.rstrip('/')}/v1/{info.upstream_model}"
        async with session.post(url, json=bfl_body(params), headers=headers) as resp:
            task = parse_bfl_task(await checked_json(resp))
        if hooks is not None:
            async with lock:  # saved as soon as known: a restarted job polls it instead of paying twice
                tasks.append(task)
                await hooks.save({"tasks": [t.saved() for t in tasks]})
        return task

    async def one(task: BflTask | None) -> RawImage:
        task = task or await submit()
        for delay in bfl_poll_delays():
            async with session.get(task.polling_url, headers=headers) as resp:
                image = parse_bfl_result(await _bfl_poll_json(resp))
            if image is not None:
                return image
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the delays never end

    budget = session.timeout.total
    async with asyncio.timeout(budget):
        known: list[BflTask | None] = list(tasks)
        images = await _all_or_none([one(t) for t in known + [None] * (params.n - len(known))])
    return UpstreamImages(images=images)


async def _all_or_none(calls: list[Coroutine[Any, Any, RawImage]]) -> list[RawImage]:
    """Every call's result; when one fails, the others are cancelled and its error is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in running]


def _saved_bfl_tasks(resume: dict[str, Any] | None) -> list[BflTask]:
    saved = resume.get("tasks") if isinstance(resume, dict) else None
    if not isinstance(saved, list):
        return []
    return [
        BflTask(t["id"], t["polling_url"])
        for t in saved
        if isinstance(t, dict) and isinstance(t.get("id"), str) and isinstance(t.get("polling_url"), str)
    ]


async def _bfl_poll_json(resp: aiohttp.ClientResponse) -> Any:
    if resp.status == 404:
        # An unknown task id: BFL answers the "Task not found" status (with a 404 on some hosts).
        raw = await resp.read()
        return {"status": "Task not found", "details": {"message": _upstream_message(raw) or "HTTP 404"}}
    return await checked_json(resp)


_WIRES: dict[str, Callable[[aiohttp.ClientSession, ProviderConfig, ModelInfo, ImageParams], Awaitable[UpstreamImages]]]
_WIRES = {
    "openai": _call_openai,
    "stability-v1": _call_stability_v1,
    "stability-v2": _call_stability_v2,
    "imagen": _call_imagen,
    "bfl": _call_bfl,
}


async def call_images(
    session: aiohttp.ClientSession, config: ProviderConfig, info: ModelInfo, params: ImageParams
) -> UpstreamImages:
    """One call to the model's provider in its own wire format."""
    return await _WIRES[params.rules.wire](session, config, info, params)
