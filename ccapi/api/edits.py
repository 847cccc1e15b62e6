"""POST /images/edits (OpenAI's multipart shape), served by the multimodal path.

The form's `image` (or repeated `image[]`) files, optional `mask` and `prompt`
become a `/images/generate` request (the mask goes with the first image, as
OpenAI applies it there); the answer is OpenAI's images response
(`LegacyImageGenerationResponse`). Form fields (OpenAI API reference,
"Create image edit"): model, prompt, image / image[], mask, n, size,
response_format.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, public_base_url, start_record
from ccapi.api.images import ERRORS, JOB_ACCEPTED
from ccapi.api.responses import json_response
from ccapi.api.validation import validate_body
from ccapi.core.errors import CCAPIError, InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from ccapi.core.ids import new_id
from ccapi.files.image_types import sniff_image_type
from ccapi.schemas.images import LegacyImageGenerationResponse
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest

EDITS_ROUTE = "/images/edits"
TEXT_FIELDS = ("model", "prompt", "n", "size", "response_format")
FILE_FIELDS = ("image", "image[]", "mask")
MAX_FORM_FILES = 17  # 16 images and a mask

router = APIRouter(tags=["Images"])

# What a multimodal error names, as this route's form names it.
_PARAMS = {"parameters.num_images": "n", "parameters.width": "size", "parameters.height": "size"}


def form_param(param: str | None) -> str | None:
    """`contents[0].text` -> `prompt`, `contents[2].image` -> `image`, `contents[1].mask` -> `mask`..."""
    if param is None:
        return None
    if param in _PARAMS:
        return _PARAMS[param]
    if param.startswith("contents"):
        for field in ("mask", "image"):
            if f".{field}" in param:
                return field
        return "prompt" if ".text" in param else "image"
    return param


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a text field.", code="invalid_value", param=name)
    return value


async def _image(upload: Any, name: str) -> dict[str, str]:
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError(f"'{name}' must be a file.", code="invalid_value", param=name)
    data = await upload.read()
    mime = sniff_image_type(data)
    if mime is None:
        raise InvalidRequestError(f"'{name}' is not a PNG, JPEG or WebP image.", code="invalid_image", param=name)
    return {"data": base64.b64encode(data).decode(), "mime_type": mime}


async def multimodal_request(form: Any) -> MultimodalImageGenerationRequest:
    """The /images/generate request of an edit form (400 naming the form field)."""
    for key in form:
        if key not in TEXT_FIELDS + FILE_FIELDS:
            raise InvalidRequestError(
                f"Unknown parameter: '{key}' (this route takes {', '.join(TEXT_FIELDS + FILE_FIELDS)}).",
                code="unsupported_parameter",
                param=key,
            )
    model, prompt = _text(form, "model"), _text(form, "prompt")
    for name, value in (("model", model), ("prompt", prompt)):
        if not value:
            raise InvalidRequestError("Missing required parameter.", code="invalid_value", param=name)
    uploads = [("image", u) for u in form.getlist("image")] + [("image[]", u) for u in form.getlist("image[]")]
    if not uploads:
        raise InvalidRequestError("Missing required parameter: an 'image' file.", code="invalid_value", param="image")
    contents: list[dict[str, Any]] = [{"text": prompt}]
    for name, upload in uploads:
        contents.append({"image": await _image(upload, name)})
    masks = form.getlist("mask")
    if len(masks) > 1:
        raise InvalidRequestError("Give one 'mask'.", code="invalid_value", param="mask")
    if masks:
        contents[1]["mask"] = await _image(masks[0], "mask")
    parameters: dict[str, Any] = {}
    n = _text(form, "n")
    if n is not None:
        if not n.isdigit() or not 1 <= int(n) <= 10:
            raise InvalidRequestError("Invalid 'n': an integer from 1 to 10.", code="invalid_value", param="n")
        parameters["num_images"] = int(n)
    size = _text(form, "size")
    if size is not None and size != "auto":
        width, sep, height = size.partition("x")
        if not (sep and width.isdigit() and height.isdigit()):
            raise InvalidRequestError(
                f"Invalid 'size': {size!r} (WIDTHxHEIGHT or auto).", code="invalid_value", param="size"
            )
        parameters["width"], parameters["height"] = int(width), int(height)
    response_format = _text(form, "response_format")
    if response_format is not None:
        if response_format not in ("url", "b64_json"):
            raise InvalidRequestError(
                "Invalid 'response_format': url or b64_json.", code="invalid_value", param="response_format"
            )
        parameters["response_format"] = response_format
    return validate_body(
        MultimodalImageGenerationRequest, {"model": model, "contents": contents, "parameters": parameters}
    )


def legacy_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A multimodal 200 answer in OpenAI's images response shape."""
    data = payload["data"]
    return {
        "id": f"img_{new_id()}",
        "created": payload.get("created", int(time.time())),
        "model": payload["model"],
        "provider": payload["execution"]["provider"],
        "data": data,
        "revised_prompt": data[0]["revised_prompt"] if data else None,
        "usage": payload["usage"],
    }


@router.post(
    EDITS_ROUTE,
    summary="Edit images (OpenAI-compatible, multipart)",
    description="OpenAI's image edit form (`image` or `image[]` files, optional `mask`, `prompt`, `n`, `size`, "
    "`response_format`), run as image-to-image, multi-image or inpainting on `/images/generate`'s models; "
    "answers OpenAI's images response.",
    responses={200: {"model": LegacyImageGenerationResponse}, **JOB_ACCEPTED, **ERRORS},
)
async def edit_image(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    gateway = gateway_of(request)
    record = start_record(request, principal, EDITS_ROUTE)
    service = gateway.images
    try:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise UnsupportedMediaTypeError(
                f"Content type {content_type!r} is not supported: send multipart/form-data.",
                code="unsupported_media_type",
            )
        limit = gateway.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > limit:
            raise PayloadTooLargeError(
                f"The request body exceeds the limit of {limit} bytes (or has no Content-Length).",
                code="body_too_large",
            )
        try:
            form = await request.form(max_files=MAX_FORM_FILES, max_fields=len(TEXT_FIELDS) + 8)
        except (HTTPException, MultiPartException) as exc:
            detail = exc.detail if isinstance(exc, HTTPException) else exc.message
            raise InvalidRequestError(f"The multipart form is invalid: {detail}", code="invalid_value") from None
        try:
            req = await multimodal_request(form)
        finally:
            await form.close()
    except CCAPIError as exc:
        service.finish_failed(record, exc, None)
        raise
    try:
        status, payload, headers = await service.handle(req, record, principal, public_base_url(request))
    except CCAPIError as exc:
        exc.param = form_param(exc.param)
        raise
    return json_response(legacy_payload(payload) if status == 200 else payload, status, headers)
