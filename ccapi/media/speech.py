"""POST /audio/speech: plan, admit, call the provider, convert, store, price, record.

Providers (the catalog's `api` of each TTS model):

- `openai`: `POST {base}/audio/speech` with `{model, input, voice,
  response_format, speed, instructions}`; the answer is the audio bytes.
- `elevenlabs`: `POST {base}/v1/text-to-speech/{voice_id}?output_format=…`
  with the `xi-api-key` header and `{text, model_id, voice_settings.speed}`.
- `espeak`: the local `espeak-ng` binary (WAV on stdout), no network.

When a provider cannot produce the requested encoding, the gateway converts
(ffmpeg). `duration` is always measured on the decoded audio. Cost rule (see
docs/speech.md): per character when the catalog prices the model per
character; per second when per second; otherwise per token, with input
tokens = ceil(characters / 4) and output (audio) tokens = ceil(seconds ×
1250 / 60) (OpenAI's published estimate for gpt-4o-mini-tts: $0.015 per
minute of audio at $12 per million audio tokens).
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import aiohttp
import orjson
from starlette.responses import Response

from ccapi.api.deps import Principal
from ccapi.api.responses import json_response
from ccapi.billing.service import Admission, BillingService
from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.catalog.pricing import MILLION, SLOWEST_CHARS_PER_SECOND, round_usd
from ccapi.catalog.schema import Pricing
from ccapi.core.errors import (
    CCAPIError,
    GatewayTimeoutError,
    InternalError,
    InvalidRequestError,
    ProviderUnavailableError,
    UpstreamError,
)
from ccapi.core.recorder import Recorder
from ccapi.core.redact import redact_secrets
from ccapi.core.types import RequestRecord
from ccapi.files.store import FileStore
from ccapi.media import audio
from ccapi.providers.base import AttemptError
from ccapi.providers.registry import ProviderConfig
from ccapi.routing.failover import Attempt, Deadline
from ccapi.routing.health import HealthBook
from ccapi.routing.plan import requested_names, resolve_all
from ccapi.schemas.speech import DEFAULT_MAX_INPUT_CHARS, AudioSpeechRequest

ROUTE: Final = "/audio/speech"

# --- format negotiation (pure) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    encoding: str  # one of audio.ENCODINGS
    mode: str  # "url" | "b64_json" | "raw"


def _accepts_raw(accept: str | None) -> tuple[bool, str | None]:
    """(raw bytes wanted, the encoding a specific audio type names) from Accept."""
    if not accept:
        return False, None
    raw, named = False, None
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media.startswith("audio/") or media == "application/octet-stream":
            raw = True
            if named is None and media in audio.ACCEPT_TYPES:
                named = audio.ACCEPT_TYPES[media]
    return raw, named


def negotiate(output_format: str | None, response_format: str | None, accept: str | None) -> Delivery:
    """The encoding and how it is delivered (the contract's table):

    - `response_format` url / b64_json: JSON; encoding `output_format` or mp3.
    - `response_format` an encoding (OpenAI clients): raw bytes in it; an
      explicit `output_format` that says otherwise is a 400.
    - no `response_format`: `Accept: audio/*` or `application/octet-stream`
      asks for raw bytes (a specific audio type also picks the encoding when
      `output_format` is absent); anything else gets the JSON with `audio_url`.
    """
    if response_format in ("url", "b64_json"):
        return Delivery(output_format or "mp3", response_format)
    if response_format is not None:
        if output_format is not None and not audio.same_encoding(output_format, response_format):
            raise InvalidRequestError(
                f"'response_format' {response_format!r} contradicts 'output_format' {output_format!r}: "
                "send one encoding (or response_format 'url' / 'b64_json' with output_format).",
                code="conflicting_formats",
                param="response_format",
            )
        return Delivery(response_format, "raw")
    raw, named = _accepts_raw(accept)
    if raw:
        return Delivery(output_format or named or "mp3", "raw")
    return Delivery(output_format or "mp3", "url")


# --- cost (pure) -----------------------------------------------------------------

# Audio output tokens per second of speech for token-priced models: OpenAI
# estimates gpt-4o-mini-tts at $0.015 per minute with audio output at $12 / 1M
# tokens, i.e. 1250 tokens per minute.
AUDIO_TOKENS_PER_MINUTE: Final = Decimal(1250)
CHARS_PER_TOKEN: Final = 4


@dataclass(frozen=True, slots=True)
class SpeechCost:
    prompt_tokens: int
    completion_tokens: int
    input_cost: Decimal
    output_cost: Decimal

    @property
    def total(self) -> Decimal:
        return self.input_cost + self.output_cost


def input_tokens(characters: int) -> int:
    return math.ceil(characters / CHARS_PER_TOKEN)


def audio_tokens(seconds: Decimal) -> int:
    return math.ceil(seconds * AUDIO_TOKENS_PER_MINUTE / 60)


def speech_cost(pricing: Pricing, characters: int, seconds: Decimal) -> SpeechCost:
    """What a request costs, in Decimal USD rounded to 10 places."""
    if pricing.per_character_cost is not None:
        return SpeechCost(0, 0, round_usd(characters * pricing.per_character_cost), Decimal(0))
    if pricing.per_second_cost is not None:
        return SpeechCost(0, 0, Decimal(0), round_usd(seconds * pricing.per_second_cost))
    prompt, completion = input_tokens(characters), audio_tokens(seconds)
    input_rate = (pricing.input_cost_per_million or Decimal(0)) / MILLION
    output_rate = (pricing.output_cost_per_million or Decimal(0)) / MILLION
    return SpeechCost(prompt, completion, round_usd(prompt * input_rate), round_usd(completion * output_rate))


def longest_seconds(characters: int, speed: float) -> Decimal:
    """The most audio `characters` can become at `speed` (for the reservation)."""
    return Decimal(characters) / (SLOWEST_CHARS_PER_SECOND * Decimal(str(speed))) + 1


def max_speech_cost(pricing: Pricing, characters: int, speed: float) -> Decimal:
    return speech_cost(pricing, characters, longest_seconds(characters, speed)).total


# --- voices ----------------------------------------------------------------------

# OpenAI's documented built-in voices (API reference, "Create speech", read
# 2026-11-29: https://developers.openai.com/api/reference/resources/audio/subresources/speech/methods/create).
OPENAI_VOICES: Final = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"}
)
# ElevenLabs premade voices: name -> voice_id. Source: the premade voices of
# GET https://api.elevenlabs.io/v1/voices (ids as ElevenLabs publishes them in
# its docs and examples, e.g. George = JBFqnCBsd6RMkjVDRZzb in the
# text-to-speech quick start); read 2026-11-29. A raw 20-character voice_id
# is accepted as well (a cloned or library voice of the operator's account).
ELEVENLABS_VOICE_IDS: Final = {
    "aria": "9BWtsMINqrJLrRacOk9x",
    "rachel": "21m00Tcm4TlvDq8ikWAM",
    "sarah": "EXAVITQu4vr4xnSDxMaL",
    "roger": "CwhRBWXzGAHq8TQ4Fs17",
    "laura": "FGY2WhTYpPnrIDTdsKH5",
    "charlie": "IKne3meq5aSn9XLyUdCD",
    "george": "JBFqnCBsd6RMkjVDRZzb",
    "brian": "nPczCjzI2devNBz1zQrb",
    "lily": "pFZP5JQG7iQjIQuC4Bku",
}
_ELEVENLABS_ID: Final = re.compile(r"^[A-Za-z0-9]{20}$")
# ElevenLabs' voice_settings.speed range.
ELEVENLABS_SPEED: Final = (0.7, 1.2)
SUPPORTED_APIS: Final = frozenset({"openai", "elevenlabs", "espeak"})


def model_voices(info: ModelInfo) -> list[str]:
    voices = list(info.entry.voices or ())
    if info.provider.api == "openai":
        voices += sorted(OPENAI_VOICES - set(voices))
    return voices


def upstream_voice(info: ModelInfo, voice: str | None) -> str | None:
    """The provider's name (or id) for the requested voice; None if it has no such voice."""
    voices = model_voices(info)
    if voice is None:
        return _upstream_name(info, voices[0]) if voices else None
    lowered = voice.lower()
    if lowered in voices:
        return _upstream_name(info, lowered)
    if info.provider.api == "elevenlabs" and _ELEVENLABS_ID.match(voice):
        return voice
    return None


def _upstream_name(info: ModelInfo, voice: str) -> str:
    if info.provider.api == "elevenlabs":
        return ELEVENLABS_VOICE_IDS.get(voice, voice)
    return voice


def takes_instructions(info: ModelInfo) -> bool:
    return info.provider.api == "openai" and not info.upstream_model.startswith("tts-1")


def max_input_chars(info: ModelInfo) -> int:
    return info.entry.max_input_chars or DEFAULT_MAX_INPUT_CHARS


def unfit_reason(info: ModelInfo, req: AudioSpeechRequest) -> tuple[str, str] | None:
    """(param, reason) when the model cannot take this request."""
    entry = info.entry
    if entry.type != "tts":
        return "model", f"{info.id} is a {entry.type} model, not a text-to-speech (tts) model"
    if info.provider.api not in SUPPORTED_APIS:
        return "model", f"{info.id}: the gateway cannot call {info.provider.name} for speech"
    limit = max_input_chars(info)
    if len(req.input) > limit:
        return "input", f"{info.id} takes at most {limit} characters of input (got {len(req.input)})"
    if upstream_voice(info, req.voice) is None:
        voices = ", ".join(model_voices(info))
        return "voice", f"{info.id} has no voice {req.voice!r} (voices: {voices})"
    if req.instructions is not None and not takes_instructions(info):
        return "instructions", f"{info.id} does not take instructions"
    low, high = ELEVENLABS_SPEED
    if info.provider.api == "elevenlabs" and not low <= req.speed <= high:
        return "speed", f"{info.id} takes a speed from {low} to {high}"
    return None


# --- providers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechCall:
    text: str
    voice: str  # the provider's name or id
    speed: float
    instructions: str | None
    encoding: str  # what the client asked for
    upstream_model: str


# OpenAI's response_format for each encoding (it sends Ogg Opus as `opus`).
_OPENAI_FORMAT: Final = {
    "mp3": "mp3",
    "wav": "wav",
    "ogg": "opus",
    "opus": "opus",
    "aac": "aac",
    "flac": "flac",
    "pcm": "pcm",
}


async def _post_audio(
    session: aiohttp.ClientSession,
    provider: str,
    url: str,
    headers: Mapping[str, str],
    body: dict[str, Any],
    params: Mapping[str, str] | None = None,
) -> bytes:
    try:
        async with session.post(url, data=orjson.dumps(body), headers=headers, params=params) as resp:
            data = await resp.read()
            if resp.status >= 400:
                raise _http_error(provider, resp.status, data)
            ctype = resp.headers.get("content-type", "")
            if not data or ctype.startswith(("application/json", "text/")):
                raise AttemptError("malformed", f"{provider} answered {ctype or 'nothing'} instead of audio")
            return data
    except aiohttp.ClientError as exc:
        raise AttemptError("connect", f"{provider}: {type(exc).__name__}: {exc}") from None


def _http_error(provider: str, status: int, data: bytes) -> AttemptError:
    message = redact_secrets(_upstream_message(data) or f"HTTP {status}")
    text = f"{provider} returned {status}: {message}"
    if status in (400, 413, 422):
        return AttemptError("http", text, status=status, failover=False, client_status=413 if status == 413 else 400)
    return AttemptError("http", text, status=status)


def _upstream_message(data: bytes) -> str | None:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:200].decode(errors="replace").strip() or None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        detail = parsed.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return str(detail["message"])
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return str(detail[0].get("msg") or detail[0])
    return None


async def call_openai(config: ProviderConfig, session: aiohttp.ClientSession, call: SpeechCall) -> tuple[bytes, str]:
    wire = _OPENAI_FORMAT[call.encoding]
    body: dict[str, Any] = {
        "model": call.upstream_model,
        "input": call.text,
        "voice": call.voice,
        "response_format": wire,
        "speed": call.speed,
    }
    if call.instructions is not None:
        body["instructions"] = call.instructions
    headers = {"Authorization": f"Bearer {config.api_key}", "Content-Type": "application/json"}
    data = await _post_audio(session, "openai", f"{config.base_url.rstrip('/')}/audio/speech", headers, body)
    return data, wire


async def call_elevenlabs(
    config: ProviderConfig, session: aiohttp.ClientSession, call: SpeechCall
) -> tuple[bytes, str]:
    # mp3 natively; everything else from lossless 24 kHz PCM through ffmpeg.
    wire, encoding = ("mp3_44100_128", "mp3") if call.encoding == "mp3" else ("pcm_24000", "pcm")
    body: dict[str, Any] = {"text": call.text, "model_id": call.upstream_model}
    if call.speed != 1.0:
        body["voice_settings"] = {"speed": call.speed}
    headers = {"xi-api-key": config.api_key or "", "Content-Type": "application/json", "Accept": "audio/*"}
    url = f"{config.base_url.rstrip('/')}/v1/text-to-speech/{call.voice}"
    data = await _post_audio(session, "elevenlabs", url, headers, body, {"output_format": wire})
    return data, encoding


async def call_espeak(call: SpeechCall) -> tuple[bytes, str]:
    try:
        return await audio.espeak(call.text, call.voice, call.speed), "wav"
    except audio.AudioToolError as exc:
        raise AttemptError("local", f"espeak: {exc}") from None


# --- the service -----------------------------------------------------------------


@dataclass(slots=True)
class Spoken:
    info: ModelInfo
    attempts: list[Attempt]
    data: bytes
    seconds: float


class SpeechService:
    def __init__(
        self,
        catalog: Catalog,
        providers: Mapping[str, ProviderConfig],
        health: HealthBook,
        billing: BillingService,
        recorder: Recorder,
        files: FileStore,
        attempt_timeout: float,
        request_timeout: float,
        max_models: int,
    ) -> None:
        self.catalog = catalog
        self.providers = providers
        self.health = health
        self.billing = billing
        self.recorder = recorder
        self.files = files
        self.attempt_timeout = attempt_timeout
        self.request_timeout = request_timeout
        self.max_models = max_models

    def configured(self, name: str) -> bool:
        config = self.providers.get(name)
        if config is None or not config.configured:
            return False
        if config.entry.api == "espeak":
            return audio.espeak_available()
        return True

    def how_to_configure(self, name: str) -> str:
        config = self.providers[name]
        if config.entry.api == "espeak" and config.configured:
            return "install espeak-ng (Debian: apt-get install espeak-ng)"
        return config.how_to_configure()

    async def handle(
        self, req: AudioSpeechRequest, accept: str | None, base_url: str, record: RequestRecord, principal: Principal
    ) -> Response:
        admission: Admission | None = None
        try:
            delivery = negotiate(req.output_format, req.response_format, accept)
            candidates = self.plan(req, record)
            candidates = self.billing.allowed(principal, candidates)
            chars = len(req.input)

            def most_it_can_cost() -> Decimal:
                return max(max_speech_cost(c.entry.pricing, chars, req.speed) for c in candidates)

            admission = await self.billing.admit_cost(principal, most_it_can_cost, input_tokens(chars))
            spoken = await self.speak(candidates, req, delivery.encoding, Deadline(self.request_timeout))
        except CCAPIError as exc:
            if admission is not None:
                exc.headers = {**admission.headers, **exc.headers}
            await self._finish_failed(record, exc, admission)
            raise
        except BaseException:
            # A bug, or the task cancelled (the client left, a stop past its
            # grace): the hold still goes back and the request leaves its row.
            internal = InternalError("Internal error; it has been logged.", code="internal_error")
            await asyncio.shield(self._finish_failed(record, internal, admission))
            raise
        info = spoken.info
        cost = speech_cost(info.entry.pricing, chars, Decimal(str(spoken.seconds)))
        headers = {
            "x-ccapi-provider": info.provider.name,
            "x-ccapi-model": info.id,
            "x-ccapi-attempts": str(len(spoken.attempts)),
            "x-ccapi-cost": _money(cost.total),
            "x-ccapi-duration": f"{spoken.seconds:.3f}",
        }
        if admission is not None:
            headers.update(admission.headers)
        payload: dict[str, Any] | None = None
        if delivery.mode != "raw":
            payload = {
                "created": int(time.time()),
                "model": info.id,
                "provider": info.provider.name,
                "format": delivery.encoding,
                "characters": chars,
                "duration": round(spoken.seconds, 3),
                "credits_charged": float(cost.total),
                "audio_url": None,
                "b64_audio": None,
            }
            if delivery.mode == "b64_json":
                payload["b64_audio"] = base64.b64encode(spoken.data).decode("ascii")
            else:
                file_id = await self.files.put(spoken.data, audio.CONTENT_TYPES[delivery.encoding])
                payload["audio_url"] = self.files.signed_url(file_id, base_url)
        await self._finish(record, spoken, cost, admission)
        if payload is not None:
            return json_response(payload, headers=headers)
        return Response(spoken.data, media_type=audio.CONTENT_TYPES[delivery.encoding], headers=headers)

    def plan(self, req: AudioSpeechRequest, record: RequestRecord) -> list[ModelInfo]:
        if req.model is None and not req.models:
            raise InvalidRequestError("Missing required parameter: 'model' (or 'models').", param="model")
        if req.models is not None and len(req.models) > self.max_models:
            raise InvalidRequestError(f"'models' takes at most {self.max_models} entries.", param="models")
        names = requested_names(req.model, req.models)
        record.requested_models = [name for name, _ in names]
        resolved = resolve_all(self.catalog, names)
        open_breakers = self.health.open_providers()
        candidates: list[ModelInfo] = []
        unfit: list[tuple[str, str]] = []
        unconfigured: list[str] = []
        skipped: list[tuple[str, str]] = []
        for info in resolved:
            reason = unfit_reason(info, req)
            name = info.provider.name
            if reason is not None:
                unfit.append(reason)
                skipped.append((info.id, reason[1]))
            elif not self.configured(name):
                unconfigured.append(name)
                skipped.append((info.id, f"provider {name} is not configured"))
            elif name in open_breakers:
                skipped.append((info.id, f"provider {name} is down (circuit open)"))
            else:
                candidates.append(info)
        if candidates:
            return candidates
        details = {"skipped": [{"model": m, "reason": r} for m, r in skipped]}
        if len(unfit) == len(resolved):
            reasons = "; ".join(r for _, r in unfit)
            raise InvalidRequestError(
                f"No requested model can take this request: {reasons}.", code="invalid_value", param=unfit[0][0]
            )
        if unconfigured and len(unconfigured) + len(unfit) == len(resolved):
            steps = sorted({self.how_to_configure(p) for p in unconfigured})
            raise ProviderUnavailableError(
                f"No candidate's provider is configured: {', '.join(steps)}.",
                code="provider_not_configured",
                details=details,
            )
        raise ProviderUnavailableError(
            "No candidate has a healthy provider: " + "; ".join(f"{m}: {r}" for m, r in skipped) + ".",
            code="provider_unavailable",
            details=details,
        )

    async def speak(
        self, candidates: list[ModelInfo], req: AudioSpeechRequest, encoding: str, deadline: Deadline
    ) -> Spoken:
        """One attempt per candidate, in order, within the deadline (as chat)."""
        attempts: list[Attempt] = []
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=("User-Agent",)
        ) as session:
            for info in candidates:
                if deadline.remaining() <= 0.01:
                    raise _deadline_error(attempts, deadline)
                name = info.provider.name
                breaker = self.health.breaker(name)
                started = time.monotonic()
                if not breaker.acquire(started):
                    continue
                timeout = min(self.attempt_timeout, deadline.remaining())
                try:
                    async with asyncio.timeout(timeout):
                        data, seconds = await self._attempt(session, info, req, encoding)
                except TimeoutError:
                    error = AttemptError("timeout", f"{name} did not answer within {timeout:g}s")
                    self._failed(info, error, started, attempts)
                    continue
                except AttemptError as exc:
                    self._failed(info, exc, started, attempts)
                    continue
                latency = (time.monotonic() - started) * 1000
                breaker.record(True, latency, time.monotonic())
                attempts.append(Attempt(name, info.id, 200, None, latency))
                return Spoken(info, attempts, data, seconds)
        if deadline.remaining() <= 0:
            raise _deadline_error(attempts, deadline)
        if not attempts:
            raise UpstreamError(
                "No candidate provider could be called right now; retry shortly.",
                code="all_providers_busy",
                details={"attempts": []},
            )
        summary = "; ".join(f"{a.model}: {a.error}" for a in attempts)
        raise UpstreamError(
            f"Every candidate provider failed ({len(attempts)} attempts): {summary}",
            code="upstream_failed",
            details={"attempts": [a.to_dict() for a in attempts]},
        )

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        info: ModelInfo,
        req: AudioSpeechRequest,
        encoding: str,
    ) -> tuple[bytes, float]:
        """The provider's audio in `encoding`, and its decoded length in seconds."""
        voice = upstream_voice(info, req.voice)
        assert voice is not None  # the plan kept only models with this voice
        call = SpeechCall(req.input, voice, req.speed, req.instructions, encoding, info.upstream_model)
        api = info.provider.api
        config = self.providers[info.provider.name]
        if api == "openai":
            data, got = await call_openai(config, session, call)
        elif api == "elevenlabs":
            data, got = await call_elevenlabs(config, session, call)
        else:
            data, got = await call_espeak(call)
        try:
            data = await audio.convert(data, got, encoding)
            seconds = await audio.decoded_seconds(data, encoding)
        except audio.AudioToolError as exc:
            raise AttemptError("malformed", f"{info.provider.name}: its audio could not be converted: {exc}") from None
        if seconds <= 0:
            raise AttemptError("malformed", f"{info.provider.name} returned empty audio")
        return data, seconds

    def _failed(self, info: ModelInfo, exc: AttemptError, started: float, attempts: list[Attempt]) -> None:
        now = time.monotonic()
        latency = (now - started) * 1000
        breaker = self.health.breaker(info.provider.name)
        attempts.append(Attempt(info.provider.name, info.id, exc.status, exc.message, latency, kind=exc.kind))
        if not exc.failover:
            breaker.release()
            raise InvalidRequestError(
                exc.message,
                code="upstream_rejected_request",
                param=exc.param,
                details={"attempts": [a.to_dict() for a in attempts]},
            )
        breaker.record(False, latency, now)

    async def _finish(
        self, record: RequestRecord, spoken: Spoken, cost: SpeechCost, admission: Admission | None
    ) -> None:
        record.model, record.provider = spoken.info.id, spoken.info.provider.name
        record.attempts = [a.to_dict() for a in spoken.attempts]
        record.status = 200
        record.prompt_tokens, record.completion_tokens = cost.prompt_tokens, cost.completion_tokens
        record.input_cost, record.output_cost = cost.input_cost, cost.output_cost
        record.latency_ms = (time.time() - record.created) * 1000
        await self._record(record, admission)

    async def _finish_failed(self, record: RequestRecord, exc: CCAPIError, admission: Admission | None) -> None:
        record.status, record.error_type = exc.status, exc.type
        if exc.details and isinstance(exc.details.get("attempts"), list):
            record.attempts = exc.details["attempts"]
            exc.headers["x-ccapi-attempts"] = str(len(record.attempts))
        record.latency_ms = (time.time() - record.created) * 1000
        await self._record(record, admission)

    async def _record(self, record: RequestRecord, admission: Admission | None) -> None:
        self.recorder.record(record)
        self.billing.settle(admission, record)
        if admission is not None:
            await self.billing.correct_tokens(admission, record)

    async def record_rejected(self, record: RequestRecord, exc: Exception) -> None:
        """A request refused before planning (bad body) still leaves its ledger row."""
        if isinstance(exc, CCAPIError):
            await self._finish_failed(record, exc, None)


def _deadline_error(attempts: list[Attempt], deadline: Deadline) -> GatewayTimeoutError:
    return GatewayTimeoutError(
        f"The request's deadline of {deadline.seconds:g}s passed after {len(attempts)} attempts.",
        code="request_timeout",
        details={"attempts": [a.to_dict() for a in attempts]},
    )


def _money(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount else "0"
