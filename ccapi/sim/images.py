"""Image generation wire formats for the simulator: OpenAI and Stability AI.

Every answer holds REAL (small) PNG images, 1/64 of the requested size, in
the provider's own wire format:

- OpenAI `POST /v1/images/generations`: `data[].b64_json` (GPT image models,
  which refuse `response_format`, with `usage` in tokens) or, for DALL-E,
  `data[].url` (served by this simulator at `/_sim/images/<id>.png`) or
  `b64_json` as `response_format` asks, with `revised_prompt`.
- Stability v1 `POST /v1/generation/<engine>/text-to-image` (JSON in,
  `{"artifacts": [{"base64", "seed", "finishReason"}]}` out).
- OpenAI `POST /v1/images/edits` (multipart/form-data: `image` or repeated
  `image[]` files, up to 16, each a real PNG/JPEG/WebP; an optional `mask`,
  a PNG with an alpha channel; `prompt`, `n`, `size`...): answered like a
  GPT image generation, with the input images counted in
  `usage.input_tokens_details.image_tokens`.
- Stability v2beta `POST /v2beta/stable-image/generate/{ultra,core,sd3}`
  (multipart/form-data in; `{"image", "finish_reason", "seed"}` with
  `Accept: application/json`, else the image bytes).
- Black Forest Labs, submit-then-poll: `POST /v1/<model>` (header `x-key`)
  answers `{id, polling_url}`; `GET /v1/get_result?id=` (where polling_url
  points) answers `{id, status, result, progress}`: `Pending` for the task's
  `pending_ms`, then `Ready` with `result.sample` (a link to the PNG served
  here, no key needed) or the fault's `job_status` (`Error`, `Content
  Moderated`, ...). Submissions are counted per prompt (`GET /_sim/stats`).
- Imagen through the Gemini API, `POST /v1beta/models/<imagen>:predict`
  (server.py routes it here): `predictions[].bytesBase64Encoded`.

Image routes also take a fault spec from the prompt, `[sim:<spec>]` (e.g.
`a fox [sim:pending_ms=1500]`), the highest layer: a gateway test can pick a
fault per request without a header or a model suffix reaching the upstream.
  `Accept: application/json`, else the image bytes). An `image` file makes it
  image-to-image (ultra; sd3 with `mode=image-to-image`), which needs
  `strength` and takes no `aspect_ratio`; core takes no image.
- Stability v2beta `POST /v2beta/stable-image/edit/inpaint` (`image` and
  `mask` files, or an `image` with an alpha channel, and `prompt`).

The fault pipeline is the server's (status, latency_ms, reset, malformed,
cut_after, content_type, fail_times); only the body parsing differs, since
Stability's v2beta bodies are multipart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
from aiohttp import web

from ccapi.files.image_types import png_has_alpha, sniff_image_type
from ccapi.sim.content import InvalidRequest, new_id
from ccapi.sim.faults import NO_FAULTS, FaultSpec, FaultSpecError, split_model_suffix

if TYPE_CHECKING:
    from ccapi.sim.server import Dialect, _Simulator

__all__ = ["image_routes", "imagen_payload", "png", "prompt_fault"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Output tokens per 1024x1024 image by quality (OpenAI's gpt-image-1 table).
_TOKENS: Final = {"low": 272, "medium": 1056, "high": 4160}
_STABILITY_RATIOS: Final = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
_KEPT_LINKS: Final = 256
_KEPT_TASKS: Final = 4096
_PROMPT_FAULT: Final = re.compile(r"\[sim:([^\]]*)\]")
_IMAGEN_RATIOS: Final = ("1:1", "3:4", "4:3", "9:16", "16:9")
_IMAGEN_MIME: Final = ("image/png", "image/jpeg")


def prompt_fault(prompt: object) -> str:
    """The `[sim:<spec>]` markers of a prompt, joined (later ones override)."""
    return ",".join(_PROMPT_FAULT.findall(prompt)) if isinstance(prompt, str) else ""


@dataclass(slots=True)
class BflTask:
    """One submitted task: Pending until `ready_at`, then `Ready` or the fault's status."""

    prompt: str
    ready_at: float
    final: str
    width: int
    height: int
    seed: int
    sample: str | None = None


# Input image tokens the simulator counts per input image of an edit.
_INPUT_IMAGE_TOKENS: Final = 388
_MAX_EDIT_IMAGES: Final = 16


def png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG: a gradient whose colours follow `seed`."""
    r0, g0, b0 = (seed >> 16) & 0xFF, (seed >> 8) & 0xFF, seed & 0xFF
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes(((r0 + x * 8) & 0xFF, (g0 + y * 8) & 0xFF, b0))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


def _seed(prompt: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{prompt}\0{index}".encode()).digest()[:4], "big")


def _dims(size: str) -> tuple[int, int]:
    w, sep, h = size.partition("x")
    if sep and w.isdigit() and h.isdigit():
        return max(1, int(w) // 64), max(1, int(h) // 64)
    a, sep, b = size.partition(":")
    if sep and a.isdigit() and b.isdigit():
        return max(1, 16 * int(a) // max(int(a), int(b))), max(1, 16 * int(b) // max(int(a), int(b)))
    return 16, 16


async def _files(request: web.Request, *names: str) -> list[bytes]:
    """The uploaded files of these form fields (the form is parsed once and cached by aiohttp)."""
    form = await request.post()
    out: list[bytes] = []
    for name in names:
        for value in form.getall(name, []):
            if isinstance(value, web.FileField):
                value.file.seek(0)
                out.append(value.file.read())
            else:
                raise InvalidRequest(f"'{name}' must be a file, not a text field.", name)
    return out


def _checked_images(files: list[bytes], name: str) -> None:
    for data in files:
        if sniff_image_type(data) is None:
            raise InvalidRequest(
                f"Invalid image file or mode for image '{name}': supported formats are png, jpeg and webp.", name
            )


class StabilityDialect:
    """Stability AI's auth and error shapes: `{"id", "name", "errors": [...]}`."""

    name: Final = "stability"
    json_content_type: Final = "application/json"

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None:
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return None
        return 401, "Missing API key: send Authorization: Bearer <key>."

    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes:
        name = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limit_exceeded"}
        kind = name.get(status, "internal_error" if status >= 500 else "error")
        return orjson.dumps({"id": new_id(""), "name": kind, "errors": [message or f"HTTP {status}"]})

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_")}


class BflDialect:
    """Black Forest Labs' auth (`x-key`) and FastAPI-style errors: `{"detail": ...}`."""

    name: Final = "bfl"
    json_content_type: Final = "application/json"

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None:
        if headers.get("x-key", "").strip():
            return None
        return 403, "Not authenticated - no x-key header."

    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes:
        if status == 422 or (status == 400 and param):
            loc = ["body", param] if param else ["body"]
            return orjson.dumps({"detail": [{"loc": loc, "msg": message or "invalid", "type": "value_error"}]})
        return orjson.dumps({"detail": message or f"HTTP {status}"})

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_")}


class ImageRoutes:
    def __init__(self, sim: _Simulator) -> None:
        self.sim = sim
        self.stability = StabilityDialect()
        self.bfl = BflDialect()
        self.links: OrderedDict[str, bytes] = OrderedDict()
        self.tasks: OrderedDict[str, BflTask] = OrderedDict()

    # --- the shared pipeline (JSON or multipart bodies) -----------------------

    async def handle(
        self,
        request: web.Request,
        dialect: Any,
        answer: Callable[[dict[str, Any], FaultSpec], Awaitable[web.StreamResponse]],
        path_model: str | None = None,
    ) -> web.StreamResponse:
        sim, typed = self.sim, cast("Dialect", dialect)
        sim.count(request)
        body: dict[str, Any] | None = None
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            raw = await request.read()
            try:
                parsed = orjson.loads(raw) if raw else None
                body = parsed if isinstance(parsed, dict) else None
            except orjson.JSONDecodeError:
                body = None
        model_spec = ""
        if path_model is not None:
            model_spec = split_model_suffix(path_model)[1]
        elif body is not None and isinstance(body.get("model"), str):
            body["model"], model_spec = split_model_suffix(body["model"])
        if body is not None and (marker := prompt_fault(body.get("prompt"))):
            model_spec = f"{model_spec},{marker}" if model_spec else marker
        try:
            faults = sim.resolve_faults(
                request.match_info.get("fault", ""), request.headers.get("x-sim-fault", ""), model_spec
            )
        except FaultSpecError as exc:
            return await sim.send_error(request, typed, 400, f"ccapi sim: {exc}", param=exc.key)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.reset:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response()
        denied = typed.check_auth(request.headers, request.query)
        if denied is not None:
            return await sim.send_error(request, typed, denied[0], denied[1], faults)
        if faults.status is not None:
            return await sim.send_error(request, typed, faults.status, None, faults)
        if body is None:
            return await sim.send_error(request, typed, 400, "The request body is not valid.", faults)
        try:
            return await answer(body, faults)
        except InvalidRequest as exc:
            return await sim.send_error(request, typed, 400, str(exc), faults, exc.param)

    def _link(self, request: web.Request, data: bytes) -> str:
        key = new_id("img")
        self.links[key] = data
        while len(self.links) > _KEPT_LINKS:
            self.links.popitem(last=False)
        return f"{request.scheme}://{request.host}/_sim/images/{key}.png"

    # --- OpenAI -----------------------------------------------------------------

    async def openai(self, request: web.Request) -> web.StreamResponse:
        dialect = self.sim.openai

        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            payload = self.openai_payload(request, body)
            return await self.sim.send(request, cast("Dialect", dialect), 200, orjson.dumps(payload), faults)

        return await self.handle(request, dialect, answer)

    async def openai_edits(self, request: web.Request) -> web.StreamResponse:
        dialect = self.sim.openai

        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            if not request.content_type.startswith("multipart/form-data"):
                raise InvalidRequest("The request must be multipart/form-data.", None)
            model = body.get("model") or ""
            if not model.startswith("gpt-image"):
                raise InvalidRequest(f"Invalid model {model!r}: edits take a GPT image model here.", "model")
            images = await _files(request, "image", "image[]")
            if not images:
                raise InvalidRequest("Missing required parameter: 'image'.", "image")
            if len(images) > _MAX_EDIT_IMAGES:
                raise InvalidRequest(f"Too many images: at most {_MAX_EDIT_IMAGES}.", "image")
            _checked_images(images, "image")
            masks = await _files(request, "mask")
            if len(masks) > 1:
                raise InvalidRequest("Only one 'mask' is accepted.", "mask")
            if masks and not png_has_alpha(masks[0]):
                raise InvalidRequest("Invalid mask image format - mask image missing alpha channel.", "mask")
            n = body.get("n", "1")
            if not str(n).isdigit():
                raise InvalidRequest("Invalid 'n': must be an integer.", "n")
            payload = self.openai_payload(request, {**body, "n": int(n)})
            usage = payload["usage"]
            extra = _INPUT_IMAGE_TOKENS * len(images)
            usage["input_tokens"] += extra
            usage["input_tokens_details"]["image_tokens"] = extra
            usage["total_tokens"] += extra
            return await self.sim.send(request, cast("Dialect", dialect), 200, orjson.dumps(payload), faults)

        return await self.handle(request, dialect, answer)

    def openai_payload(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        model, prompt, n = body.get("model"), body.get("prompt"), body.get("n", 1)
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", "model")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("Missing required parameter: 'prompt'.", "prompt")
        gpt_image = model.startswith("gpt-image")
        max_n = 1 if model == "dall-e-3" else 10
        if not isinstance(n, int) or not 1 <= n <= max_n:
            raise InvalidRequest(f"Invalid 'n': must be between 1 and {max_n}.", "n")
        if gpt_image and "response_format" in body:
            raise InvalidRequest("Unknown parameter: 'response_format'.", "response_format")
        if not gpt_image and "style" in body and model != "dall-e-3":
            raise InvalidRequest("Unknown parameter: 'style'.", "style")
        size = body.get("size") or ("auto" if gpt_image else "1024x1024")
        if not isinstance(size, str):
            raise InvalidRequest("Invalid 'size'.", "size")
        shown = "1024x1024" if size == "auto" else size
        quality = body.get("quality") or "auto"
        shown_quality = "medium" if quality == "auto" else str(quality)
        data = []
        for i in range(n):
            image = png(*_dims(shown), _seed(prompt, i))
            if gpt_image or body.get("response_format") == "b64_json":
                data.append({"b64_json": base64.b64encode(image).decode()})
            else:
                data.append({"url": self._link(request, image)})
            if not gpt_image:
                data[-1]["revised_prompt"] = f"A detailed image: {prompt}"
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        if gpt_image:
            w, _, h = shown.partition("x")
            per_image = math.ceil(_TOKENS.get(shown_quality, 4160) * int(w) * int(h) / (1024 * 1024))
            text = max(1, len(prompt) // 4)
            payload.update(
                background=body.get("background") or "opaque",
                output_format=body.get("output_format") or "png",
                quality=shown_quality,
                size=shown,
                usage={
                    "input_tokens": text,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": text},
                    "output_tokens": per_image * n,
                    "total_tokens": text + per_image * n,
                },
            )
        return payload

    async def link(self, request: web.Request) -> web.StreamResponse:
        data = self.links.get(request.match_info["name"].removesuffix(".png"))
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/png")

    # --- Stability AI -------------------------------------------------------------

    async def stability_v1(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            prompts = body.get("text_prompts")
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, dict) for p in prompts):
                raise InvalidRequest("text_prompts: required, a non-empty list")
            text = " ".join(str(p.get("text", "")) for p in prompts)
            width, height, samples = body.get("width", 1024), body.get("height", 1024), body.get("samples", 1)
            if not isinstance(samples, int) or not 1 <= samples <= 10:
                raise InvalidRequest("samples: must be between 1 and 10")
            if not isinstance(width, int) or not isinstance(height, int) or width % 64 or height % 64:
                raise InvalidRequest("width and height must be multiples of 64")
            artifacts = [
                {
                    "base64": base64.b64encode(png(width // 64, height // 64, _seed(text, i))).decode(),
                    "seed": _seed(text, i),
                    "finishReason": "SUCCESS",
                }
                for i in range(samples)
            ]
            return await self.sim.send(
                request, cast("Dialect", self.stability), 200, orjson.dumps({"artifacts": artifacts}), faults
            )

        return await self.handle(request, self.stability, answer)

    async def stability_v2(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]

        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            if not request.content_type.startswith("multipart/form-data"):
                raise InvalidRequest("Content-Type must be multipart/form-data")
            prompt = body.get("prompt")
            if not prompt:
                raise InvalidRequest("prompt: is required")
            images = await _files(request, "image")
            _checked_images(images, "image")
            mode = body.get("mode") or "text-to-image"
            if endpoint == "core" and images:
                raise InvalidRequest("image: core does not take an input image")
            if endpoint == "sd3" and (mode == "image-to-image") != bool(images):
                raise InvalidRequest("mode: image-to-image needs an image, and an image needs mode image-to-image")
            if images:
                strength = body.get("strength")
                try:
                    valid = strength is not None and 0 <= float(strength) <= 1
                except ValueError:
                    valid = False
                if not valid:
                    raise InvalidRequest("strength: required with an image, between 0 and 1")
                if body.get("aspect_ratio"):
                    raise InvalidRequest("aspect_ratio: not accepted with an image (the output follows it)")
            return await self._stability_image(request, body, faults)

        return await self.handle(request, self.stability, answer)

    async def stability_inpaint(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            if not request.content_type.startswith("multipart/form-data"):
                raise InvalidRequest("Content-Type must be multipart/form-data")
            if not body.get("prompt"):
                raise InvalidRequest("prompt: is required")
            images, masks = await _files(request, "image"), await _files(request, "mask")
            if len(images) != 1:
                raise InvalidRequest("image: required (one file)")
            _checked_images(images + masks, "image")
            if not masks and not png_has_alpha(images[0]):
                raise InvalidRequest("mask: required unless the image has an alpha channel")
            return await self._stability_image(request, body, faults)

        return await self.handle(request, self.stability, answer)

    async def _stability_image(
        self, request: web.Request, body: dict[str, Any], faults: FaultSpec
    ) -> web.StreamResponse:
        ratio = body.get("aspect_ratio") or "1:1"
        if ratio not in _STABILITY_RATIOS:
            raise InvalidRequest(f"aspect_ratio: must be one of {', '.join(_STABILITY_RATIOS)}")
        output_format = body.get("output_format") or "png"
        if output_format != "png":
            # The simulator draws PNG only; a real upstream would encode JPEG/WebP.
            raise InvalidRequest("output_format: the simulator answers png only")
        seed = _seed(str(body.get("prompt")), int(body.get("seed") or 0))
        image = png(*_dims(str(ratio)), seed)
        if "application/json" in request.headers.get("Accept", ""):
            payload = {"image": base64.b64encode(image).decode(), "finish_reason": "SUCCESS", "seed": seed}
            return await self.sim.send(request, cast("Dialect", self.stability), 200, orjson.dumps(payload), faults)
        return web.Response(
            body=image, content_type="image/png", headers={"finish-reason": "SUCCESS", "seed": str(seed)}
        )

    # --- Black Forest Labs -------------------------------------------------------

    async def bfl_submit(self, request: web.Request) -> web.StreamResponse:
        path_model = request.match_info["model"]
        model = split_model_suffix(path_model)[0]

        async def answer(body: dict[str, Any], faults: FaultSpec) -> web.StreamResponse:
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise InvalidRequest("Field required", "prompt")
            width, height = self._bfl_dims(model, body)
            key = new_id("")
            self.sim.bfl_submissions[prompt] = self.sim.bfl_submissions.get(prompt, 0) + 1
            seed = body["seed"] if isinstance(body.get("seed"), int) else _seed(prompt, len(self.tasks))
            self.tasks[key] = BflTask(
                prompt, time.monotonic() + faults.pending_ms / 1000, faults.job_status or "Ready", width, height, seed
            )
            while len(self.tasks) > _KEPT_TASKS:
                self.tasks.popitem(last=False)
            polling_url = f"{request.scheme}://{request.host}/v1/get_result?id={key}"
            payload = {"id": key, "polling_url": polling_url, "cost": 4.0, "input_mp": 0, "output_mp": 1.05}
            return await self.sim.send(request, cast("Dialect", self.bfl), 200, orjson.dumps(payload), faults)

        return await self.handle(request, self.bfl, answer, path_model=path_model)

    @staticmethod
    def _bfl_dims(model: str, body: dict[str, Any]) -> tuple[int, int]:
        """Checks the size fields as the model's endpoint does; the sample's (1/64) dimensions."""
        if model.startswith(("flux-pro-1.1-ultra", "flux-kontext")):
            ratio = body.get("aspect_ratio") or ("16:9" if "ultra" in model else "1:1")
            if not isinstance(ratio, str) or not re.fullmatch(r"\d{1,2}:\d{1,2}", ratio):
                raise InvalidRequest("aspect_ratio must look like '16:9'", "aspect_ratio")
            return _dims(ratio)
        if "aspect_ratio" in body:
            raise InvalidRequest("Extra inputs are not permitted", "aspect_ratio")
        width, height = body.get("width", 1024), body.get("height", 768)
        # FLUX1.1 [pro] and FLUX.1 [dev]: 256-1440 px, multiples of 32; FLUX.2 goes up to 4MP.
        low, high, step = (256, 1440, 32) if model in ("flux-pro-1.1", "flux-dev", "flux-pro") else (64, 4096, 8)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or not low <= value <= high or value % step:
                raise InvalidRequest(f"{name} must be a multiple of {step} between {low} and {high}", name)
        return _dims(f"{width}x{height}")

    async def bfl_result(self, request: web.Request) -> web.StreamResponse:
        self.sim.count(request)
        denied = self.bfl.check_auth(request.headers, request.query)
        if denied is not None:
            return await self.sim.send_error(request, cast("Dialect", self.bfl), denied[0], denied[1])
        key = request.query.get("id", "")
        task = self.tasks.get(key)
        payload: dict[str, Any] = {"id": key, "status": "Task not found", "result": None, "progress": None}
        if task is not None and time.monotonic() < task.ready_at:
            payload.update(status="Pending", progress=0.5)
        elif task is not None and task.final != "Ready":
            payload["status"] = task.final
            if "Moderated" in task.final:
                payload["details"] = {"Moderation Reasons": ["ccapi sim: job_status fault"]}
        elif task is not None:
            if task.sample is None:
                task.sample = self._link(request, png(task.width, task.height, task.seed))
            payload.update(
                status="Ready",
                progress=None,
                result={"sample": task.sample, "prompt": task.prompt, "seed": task.seed},
            )
        return await self.sim.send(request, cast("Dialect", self.bfl), 200, orjson.dumps(payload), NO_FAULTS)


def imagen_payload(body: Any, faults: FaultSpec) -> dict[str, Any]:
    """An Imagen `:predict` answer (Gemini API): one prediction per sample, filtered ones by `job_status`."""
    instances = body.get("instances") if isinstance(body, dict) else None
    first = instances[0] if isinstance(instances, list) and instances else None
    prompt = first.get("prompt") if isinstance(first, dict) else None
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("instances[0].prompt is required", "instances")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidRequest("parameters must be an object", "parameters")
    count, ratio = params.get("sampleCount", 4), params.get("aspectRatio", "1:1")
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise InvalidRequest("sampleCount must be between 1 and 4", "parameters.sampleCount")
    if ratio not in _IMAGEN_RATIOS:
        raise InvalidRequest(f"aspectRatio must be one of {', '.join(_IMAGEN_RATIOS)}", "parameters.aspectRatio")
    if params.get("sampleImageSize", "1K") not in ("1K", "2K"):
        raise InvalidRequest("sampleImageSize must be 1K or 2K", "parameters.sampleImageSize")
    if params.get("personGeneration", "allow_adult") not in ("dont_allow", "allow_adult"):
        raise InvalidRequest("personGeneration allow_all is not supported in Gemini API", "parameters")
    options = params.get("outputOptions") or {}
    if isinstance(options, dict) and options.get("mimeType", "image/png") not in _IMAGEN_MIME:
        raise InvalidRequest("outputOptions.mimeType must be image/png or image/jpeg", "parameters.outputOptions")
    scale = 2 if params.get("sampleImageSize") == "2K" else 1
    predictions: list[dict[str, Any]] = []
    for i in range(count):
        if faults.job_status:
            predictions.append({"raiFilteredReason": f"ccapi sim: {faults.job_status}"})
            continue
        w, h = _dims(str(ratio))
        image = png(w * scale, h * scale, _seed(prompt, i))
        # The simulator draws PNG whatever the mimeType asked (like its other image routes).
        predictions.append({"bytesBase64Encoded": base64.b64encode(image).decode(), "mimeType": "image/png"})
    return {"predictions": predictions}


def image_routes(sim: _Simulator) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of the image endpoints, for create_sim_app (after every fixed /v1 path)."""
    routes = ImageRoutes(sim)
    return [
        ("POST", "/v1/images/generations", routes.openai),
        ("POST", "/v1/images/edits", routes.openai_edits),
        ("POST", "/v1/generation/{engine}/text-to-image", routes.stability_v1),
        ("POST", "/v2beta/stable-image/generate/{endpoint}", routes.stability_v2),
        ("POST", "/v2beta/stable-image/edit/inpaint", routes.stability_inpaint),
        ("GET", "/_sim/images/{name}", routes.link),
        ("GET", "/v1/get_result", routes.bfl_result),
        # Last: BFL's submit route is any one-segment POST /v1/<model>.
        ("POST", "/v1/{model}", routes.bfl_submit),
    ]


def gemini_wants_image(body: Any) -> bool:
    """A Gemini generateContent body asking for IMAGE in generationConfig.responseModalities."""
    config = body.get("generationConfig") or body.get("generation_config") if isinstance(body, dict) else None
    modalities = (
        (config.get("responseModalities") or config.get("response_modalities")) if isinstance(config, dict) else None
    )
    return isinstance(modalities, list) and "IMAGE" in modalities


def gemini_image_payload(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A GenerateContentResponse with one text part and one inlineData PNG, sized by imageConfig.aspectRatio."""
    texts: list[str] = []
    images = 0
    for content in body.get("contents") or []:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and (part.get("inlineData") or part.get("inline_data")):
                images += 1
    config = body.get("generationConfig") or {}
    image_config = config.get("imageConfig") or {} if isinstance(config, dict) else {}
    ratio = str(image_config.get("aspectRatio") or "1:1")
    seed = config.get("seed") if isinstance(config.get("seed"), int) else None
    prompt = " ".join(texts)
    image = png(*_dims(ratio), _seed(prompt, seed or 0))
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": f"Here is your image ({images} input image(s))."},
                        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": max(1, len(prompt) // 4) + 258 * images,
            "candidatesTokenCount": 1290,
            "totalTokenCount": max(1, len(prompt) // 4) + 258 * images + 1290,
        },
        "modelVersion": model,
        "responseId": hashlib.sha256(image).hexdigest()[:22],
    }
