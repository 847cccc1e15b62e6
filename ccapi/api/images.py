"""POST /images/generations (synchronous; OpenAI-compatible)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, json_body, public_base_url, start_record
from ccapi.api.openapi import request_body
from ccapi.api.responses import json_response
from ccapi.api.validation import validate_body
from ccapi.core.errors import CCAPIError
from ccapi.media.images import ImageService
from ccapi.schemas.errors import ErrorResponse
from ccapi.schemas.images import LegacyImageGenerationRequest, LegacyImageGenerationResponse

router = APIRouter(tags=["Images"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 404, 413, 415, 429, 500, 502, 503, 504)
}


def image_service(request: Request) -> ImageService:
    gateway = gateway_of(request)
    return ImageService(
        catalog=gateway.catalog,
        providers=gateway.providers,
        billing=gateway.billing,
        files=gateway.files,
        recorder=gateway.chat.recorder,
        attempt_timeout=gateway.settings.attempt_timeout,
    )


@router.post(
    "/images/generations",
    summary="Generate images (OpenAI-compatible)",
    description="Answers when the images are ready; each image is stored by the gateway and returned as a "
    "signed link (`url`) or inline (`b64_json`).",
    responses={200: {"model": LegacyImageGenerationResponse}, **_ERRORS},
    openapi_extra=request_body(LegacyImageGenerationRequest, LegacyImageGenerationResponse),
)
async def create_image(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    record = start_record(request, principal, "/images/generations")
    service = image_service(request)
    try:
        req = validate_body(LegacyImageGenerationRequest, await json_body(request))
    except CCAPIError as exc:
        service.finish_failed(record, exc, None)
        raise
    base_url = public_base_url(request)
    payload, headers = await service.generate(req, record, principal, base_url)
    return json_response(payload, headers=headers)
