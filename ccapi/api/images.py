"""POST /images/generations (OpenAI-compatible; a job with `"async": true`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, json_body, public_base_url, start_record
from ccapi.api.openapi import request_body
from ccapi.api.responses import json_response
from ccapi.api.validation import validate_body
from ccapi.core.errors import CCAPIError
from ccapi.media.image_service import LEGACY_ROUTE, ImageRequest
from ccapi.schemas.errors import ErrorResponse
from ccapi.schemas.images import LegacyImageGenerationRequest, LegacyImageGenerationResponse
from ccapi.schemas.multimodal import MultimodalImageGenerationResponse

router = APIRouter(tags=["Images"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 404, 413, 415, 429, 500, 502, 503, 504)
}
JOB_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": MultimodalImageGenerationResponse, "description": "A job was created; poll `poll_url`."}
}


async def serve_images(request: Request, principal: Principal, route: str, schema: type[ImageRequest]) -> Response:
    """Either image route: validate, then generate (or submit a job)."""
    record = start_record(request, principal, route)
    service = gateway_of(request).images
    try:
        req = validate_body(schema, await json_body(request))
    except CCAPIError as exc:
        service.finish_failed(record, exc, None)
        raise
    status, payload, headers = await service.handle(req, record, principal, public_base_url(request))
    return json_response(payload, status, headers)


@router.post(
    LEGACY_ROUTE,
    summary="Generate images (OpenAI-compatible)",
    description="Answers when the images are ready (also for a submit-then-poll upstream, which the gateway "
    "polls); each image is stored by the gateway and returned as a signed link (`url`) or inline (`b64_json`). "
    'With `"async": true` it answers 202 with a job instead.',
    responses={200: {"model": LegacyImageGenerationResponse}, **JOB_ACCEPTED, **ERRORS},
    openapi_extra=request_body(LegacyImageGenerationRequest, LegacyImageGenerationResponse),
)
async def create_image(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    return await serve_images(request, principal, LEGACY_ROUTE, LegacyImageGenerationRequest)
