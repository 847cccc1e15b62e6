"""GET /files/{id}?exp=…&sig=…: generated images and audio by signed link."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from ccapi.api.deps import gateway_of
from ccapi.core.errors import NotFoundError, PermissionDeniedError
from ccapi.schemas.errors import ErrorResponse

router = APIRouter(tags=["Files"])


@router.get(
    "/files/{file_id}",
    summary="Download a generated file by its signed link",
    description="No bearer header: the link's `exp` (unix seconds) and `sig` authorize it.",
    responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    response_class=Response,
)
async def get_file(request: Request, file_id: str, exp: str | None = None, sig: str | None = None) -> Response:
    files = gateway_of(request).files
    if not files.verify(file_id, exp, sig):
        raise PermissionDeniedError("This link is invalid or has expired.", code="invalid_signature")
    found = await files.get(file_id)  # FileStorageError: 503 when the bucket is unreachable
    if found is None:
        raise NotFoundError("This file no longer exists.", code="file_not_found")
    headers = {"cache-control": "private, max-age=300"}
    if found.path is not None:
        return FileResponse(found.path, media_type=found.content_type, headers=headers)
    if found.size is not None:
        headers["content-length"] = str(found.size)
    assert found.chunks is not None  # a backend gives a path or a stream
    return StreamingResponse(found.chunks, media_type=found.content_type, headers=headers)
