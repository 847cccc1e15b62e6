"""POST /images/generate (multimodal contents API; a job for asynchronous models or `"async": true`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller
from ccapi.api.images import ERRORS, JOB_ACCEPTED, serve_images
from ccapi.api.openapi import request_body
from ccapi.media.image_service import MULTIMODAL_ROUTE
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest, MultimodalImageGenerationResponse

router = APIRouter(tags=["Images"])


@router.post(
    MULTIMODAL_ROUTE,
    summary="Generate or edit images from multimodal contents",
    description="Text-to-image, image-to-image, multi-image remix and inpainting (a mask); answers when the "
    "images are ready, each stored by the gateway behind a signed link. An asynchronous model, or "
    '`"async": true`, answers 202 with a job to poll.',
    responses={200: {"model": MultimodalImageGenerationResponse}, **JOB_ACCEPTED, **ERRORS},
    openapi_extra=request_body(MultimodalImageGenerationRequest, MultimodalImageGenerationResponse),
)
async def generate_image(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    return await serve_images(request, principal, MULTIMODAL_ROUTE, MultimodalImageGenerationRequest)
