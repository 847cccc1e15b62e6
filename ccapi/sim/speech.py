"""Text-to-speech routes of the simulator: OpenAI `POST /v1/audio/speech` and
ElevenLabs `POST /v1/text-to-speech/{voice_id}`.

The audio is real: a 400 Hz tone whose length grows with the text (about 15
characters per second at speed 1.0), made as 16-bit PCM here and encoded with
ffmpeg for mp3, opus, aac and flac. Fault specs work as on the chat routes
(path prefix, `x-sim-fault` header, `model@spec` suffix): `status`,
`retry_after`, `latency_ms`, `reset`, `fail_times`, `content_type`, and
`malformed` (bytes that are not audio).
"""

from __future__ import annotations

import asyncio
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from ccapi.media import audio
from ccapi.sim.faults import FaultSpec, FaultSpecError, split_model_suffix

CHARS_PER_SECOND: Final = 15.0
MAX_SECONDS: Final = 600.0
TONE_HZ: Final = 400
OPENAI_FORMATS: Final = ("mp3", "opus", "aac", "flac", "wav", "pcm")
_ELEVEN_FORMAT: Final = re.compile(r"^(mp3|pcm|opus|wav)_(\d{4,5})(?:_(\d{2,3}))?$")
_MALFORMED: Final = b"\x00\x01 this is not audio \x02\x03"


class _Sim(Protocol):
    """What the speech routes use of the simulator's shared state (server.py)."""

    def count(self, request: web.Request) -> None: ...
    def resolve_faults(self, path_spec: str, header_spec: str, model_spec: str) -> FaultSpec: ...


def seconds_for(text: str, speed: float) -> float:
    return min(MAX_SECONDS, max(0.5, len(text) / CHARS_PER_SECOND / speed))


def tone_pcm(seconds: float, rate: int = audio.PCM_RATE) -> bytes:
    """16-bit LE mono PCM: a sine tone of `seconds` at `rate`."""
    period = max(2, round(rate / TONE_HZ))
    cycle = struct.pack(f"<{period}h", *(int(8000 * math.sin(2 * math.pi * i / period)) for i in range(period)))
    samples = int(seconds * rate)
    whole, rest = divmod(samples, period)
    return cycle * whole + cycle[: rest * 2]


async def speech_audio(text: str, speed: float, encoding: str, rate: int = audio.PCM_RATE) -> bytes:
    seconds = seconds_for(text, speed)
    if encoding == "pcm":
        return tone_pcm(seconds, rate)
    if encoding == "wav":
        return audio.pcm_to_wav(tone_pcm(seconds, rate), rate)
    return await audio.convert(tone_pcm(seconds), "pcm", encoding)


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


class SpeechRoutes:
    def __init__(self, sim: _Sim, fault_header: str = "x-sim-fault") -> None:
        self.sim = sim
        self.fault_header = fault_header

    async def _pipeline(
        self,
        request: web.Request,
        model: Any,
        error: Callable[[int, str | None, str | None], bytes],
        authorized: bool,
    ) -> tuple[FaultSpec | None, web.StreamResponse | None, Any]:
        """(faults, an early answer or None, the model without its fault suffix)."""
        model_spec = ""
        if isinstance(model, str):
            model, model_spec = split_model_suffix(model)
        try:
            faults = self.sim.resolve_faults(
                request.match_info.get("fault", ""), request.headers.get(self.fault_header, ""), model_spec
            )
        except FaultSpecError as exc:
            return None, _json(400, error(400, f"ccapi sim: {exc}", exc.key)), model
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.reset:
            _abort(request)
            return faults, web.Response(), model
        if not authorized:
            return faults, _json(401, error(401, None, None)), model
        if faults.status is not None:
            headers = {"retry-after": faults.retry_after} if faults.retry_after is not None else {}
            return faults, _json(faults.status, error(faults.status, None, None), headers), model
        return faults, None, model

    # --- OpenAI ---------------------------------------------------------------

    async def openai_speech(self, request: web.Request) -> web.StreamResponse:
        self.sim.count(request)
        body = await _read_json(request)
        model = body.get("model") if isinstance(body, dict) else None
        auth = request.headers.get("Authorization", "")
        authorized = auth[:7].lower() == "bearer " and bool(auth[7:].strip())
        faults, early, model = await self._pipeline(request, model, _openai_error, authorized)
        if early is not None or faults is None:
            return early or web.Response(status=500)
        if not isinstance(body, dict):
            return _json(400, _openai_error(400, "The request body is not valid JSON.", None))
        problem = _check_openai(body, model)
        if problem is not None:
            return _json(400, _openai_error(400, problem[1], problem[0]))
        encoding = body.get("response_format") or "mp3"
        data = await speech_audio(body["input"], float(body.get("speed") or 1.0), encoding)
        return _audio(data, audio.CONTENT_TYPES[encoding], faults)

    # --- ElevenLabs -----------------------------------------------------------

    async def elevenlabs_speech(self, request: web.Request) -> web.StreamResponse:
        self.sim.count(request)
        body = await _read_json(request)
        model = body.get("model_id", "eleven_multilingual_v2") if isinstance(body, dict) else None
        authorized = bool(request.headers.get("xi-api-key"))
        faults, early, model = await self._pipeline(request, model, _eleven_error, authorized)
        if early is not None or faults is None:
            return early or web.Response(status=500)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return _json(422, _eleven_error(422, "text: field required", "text"))
        matched = _ELEVEN_FORMAT.match(request.query.get("output_format", "mp3_44100_128"))
        if matched is None:
            return _json(422, _eleven_error(422, "output_format: unsupported value", "output_format"))
        codec, rate = matched.group(1), int(matched.group(2))
        settings = body.get("voice_settings") or {}
        speed = settings.get("speed", 1.0) if isinstance(settings, dict) else 1.0
        if not isinstance(speed, int | float) or not 0.7 <= speed <= 1.2:
            return _json(422, _eleven_error(422, "voice_settings.speed must be between 0.7 and 1.2", "speed"))
        encoding = "ogg" if codec == "opus" else codec
        data = await speech_audio(body["text"], float(speed), encoding, rate)
        return _audio(data, audio.CONTENT_TYPES[encoding], faults)


async def _read_json(request: web.Request) -> Any:
    raw = await request.read() if request.body_exists else b""
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _check_openai(body: Mapping[str, Any], model: Any) -> tuple[str, str] | None:
    if not isinstance(model, str) or not model:
        return "model", "you must provide a model parameter"
    text = body.get("input")
    if not isinstance(text, str) or not text:
        return "input", "Missing required parameter: 'input'."
    if len(text) > 4096:
        return "input", "String too long: 'input' may have at most 4096 characters."
    if not isinstance(body.get("voice"), str) or not body["voice"]:
        return "voice", "Missing required parameter: 'voice'."
    if body.get("response_format", "mp3") not in OPENAI_FORMATS:
        return "response_format", f"Invalid value: {body.get('response_format')!r}."
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return "speed", "'speed' must be between 0.25 and 4.0."
    if body.get("instructions") is not None and model.startswith("tts-1"):
        return "instructions", "Instructions are not supported by this model."
    return None


def _openai_error(status: int, message: str | None, param: str | None) -> bytes:
    kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status)
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    error = {"message": message or f"Error {status}.", "type": kind, "param": param, "code": None}
    return orjson.dumps({"error": error})


def _eleven_error(status: int, message: str | None, param: str | None) -> bytes:
    if status == 401:
        return orjson.dumps({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
    if status == 422:
        return orjson.dumps({"detail": [{"loc": ["body", param], "msg": message, "type": "value_error"}]})
    return orjson.dumps({"detail": {"status": "error", "message": message or f"Error {status}."}})


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _audio(data: bytes, content_type: str, faults: FaultSpec) -> web.Response:
    if faults.malformed:
        data = _MALFORMED
    return web.Response(body=data, headers={"Content-Type": faults.content_type or content_type})
