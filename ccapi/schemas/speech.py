"""Text to speech shapes: the contract's `AudioSpeechRequest` (one shape for
CCAPI's own clients and for OpenAI's `/v1/audio/speech`) and `AudioSpeechResponse`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Encoding = Literal["mp3", "wav", "ogg", "opus", "aac", "flac", "pcm"]
# `url` / `b64_json`: the JSON answer; an encoding (as OpenAI clients send): raw bytes.
ResponseFormat = Literal["url", "b64_json", "mp3", "wav", "ogg", "opus", "aac", "flac", "pcm"]

# Without a per-model limit in the catalog, `input` may be this long (OpenAI's limit).
DEFAULT_MAX_INPUT_CHARS = 4096


class AudioSpeechRequest(BaseModel):
    """`input` is checked against each model's `max_input_chars` (4096 when the
    catalog gives none) and `voice` against its voices once the model is known."""

    # Strict: "1.5" is not a speed, as OpenAI answers. Unknown fields are a 400:
    # speech providers are native wire formats, nothing is forwarded raw.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, min_length=1, examples=["elevenlabs/eleven_turbo_v2"])
    models: list[str] | None = Field(
        default=None, min_length=1, description="Failover candidates, tried in order after `model`."
    )
    input: str = Field(min_length=1, examples=["Welcome to CCAPI."])
    voice: str | None = Field(
        default=None, min_length=1, description="A voice of the model (see its catalog entry).", examples=["aria"]
    )
    output_format: Encoding | None = Field(default=None, description="The audio encoding; `mp3` when not given.")
    response_format: ResponseFormat | None = Field(
        default=None,
        description="`url` (default) or `b64_json` for the JSON answer; an encoding for the raw audio bytes.",
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096)
    # OpenAI's: only whole audio is served, never server-sent events.
    stream_format: Literal["audio"] | None = None


class AudioSpeechResponse(BaseModel):
    created: int
    model: str
    provider: str
    format: Encoding
    characters: int
    duration: float = Field(description="Seconds of decoded audio.")
    credits_charged: float = Field(description="The request's cost in USD (also reported for the master key).")
    audio_url: str | None = Field(description="A signed link on the gateway (no bearer header needed).")
    b64_audio: str | None = Field(description="The audio, base64, when `response_format` is `b64_json`.")
