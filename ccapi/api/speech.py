"""POST /audio/speech (text to speech; OpenAI's /v1/audio/speech too)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, caller, gateway_of, json_body, public_base_url, start_record
from ccapi.api.openapi import request_body
from ccapi.api.validation import validate_body
from ccapi.media.audio import CONTENT_TYPES
from ccapi.media.speech import ROUTE, SpeechService
from ccapi.schemas.errors import ErrorResponse
from ccapi.schemas.speech import AudioSpeechRequest, AudioSpeechResponse

router = APIRouter(tags=["Audio"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 404, 413, 415, 429, 500, 502, 503, 504)
}
_AUDIO = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/audio/speech",
    summary="Create speech",
    description="Text to speech. JSON `AudioSpeechResponse` with a signed `audio_url` (or `b64_audio`), "
    "or the raw audio bytes when `response_format` is an encoding (OpenAI clients) or, without "
    "`response_format`, when `Accept` asks for `audio/*` / `application/octet-stream`. "
    "The raw answer carries the cost in `x-ccapi-cost`.",
    responses={
        200: {
            "model": AudioSpeechResponse,
            "content": {ctype: _AUDIO for ctype in sorted(set(CONTENT_TYPES.values()))},
            "headers": {"x-ccapi-cost": {"description": "USD charged", "schema": {"type": "string"}}},
        },
        **_ERRORS,
    },
    openapi_extra=request_body(AudioSpeechRequest),
)
async def create_speech(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Response:
    record = start_record(request, principal, ROUTE)
    service = speech_service(request)
    try:
        req = validate_body(AudioSpeechRequest, await json_body(request))
    except Exception as exc:
        await service.record_rejected(record, exc)
        raise
    base_url = public_base_url(request)
    return await service.handle(req, request.headers.get("accept"), base_url, record, principal)


def speech_service(request: Request) -> SpeechService:
    """The app's speech service, built on first use from the gateway's parts."""
    service: SpeechService | None = getattr(request.app.state, "speech", None)
    if service is None:
        gateway = gateway_of(request)
        settings = gateway.settings
        service = SpeechService(
            catalog=gateway.catalog,
            providers=gateway.providers,
            health=gateway.health,
            billing=gateway.billing,
            recorder=gateway.chat.recorder,
            files=gateway.files,
            attempt_timeout=settings.attempt_timeout,
            request_timeout=settings.request_timeout,
            max_models=settings.max_models,
        )
        request.app.state.speech = service
    return service
