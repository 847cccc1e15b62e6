"""POST /images/generate (multimodal contents API; synchronous, Gemini image models)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, json_body, public_base_url, start_record
from ccapi.api.images import _ERRORS
from ccapi.api.openapi import request_body
from ccapi.api.responses import json_response
from ccapi.api.validation import validate_body
from ccapi.core.errors import CCAPIError
from ccapi.media.multimodal import MultimodalService
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest, MultimodalImageGenerationResponse

router = APIRouter(tags=["Images"])


def multimodal_service(request: Request) -> MultimodalService:
    gateway = gateway_of(request)
    service = MultimodalService(
        catalog=gateway.catalog,
        providers=gateway.providers,
        billing=gateway.billing,
        files=gateway.files,
        recorder=gateway.chat.recorder,
        attempt_timeout=gateway.settings.attempt_timeout,
    )
    service.allow_private_urls = gateway.settings.allow_private_urls
    return service


@router.post(
    "/images/generate",
    summary="Generate or edit images from multimodal contents",
    description="Text-to-image, image-to-image, multi-image remix and inpainting (a mask) with Gemini image "
    "models; answers when the images are ready, each stored by the gateway behind a signed link.",
    responses={200: {"model": MultimodalImageGenerationResponse}, **_ERRORS},
    openapi_extra=request_body(MultimodalImageGenerationRequest, MultimodalImageGenerationResponse),
)
async def generate_image(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    record = start_record(request, principal, "/images/generate")
    service = multimodal_service(request)
    try:
        req = validate_body(MultimodalImageGenerationRequest, await json_body(request))
    except CCAPIError as exc:
        service.finish_failed(record, exc, None)
        raise
    payload, headers = await service.generate_multimodal(req, record, principal, public_base_url(request))
    return json_response(payload, headers=headers)
