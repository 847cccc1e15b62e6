"""The pure parts of text to speech: format negotiation, the cost rule, voices,
what a model cannot take, and WAV arithmetic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ccapi.catalog.catalog import Catalog
from ccapi.catalog.schema import Pricing
from ccapi.core.errors import InvalidRequestError
from ccapi.media import audio
from ccapi.media.speech import (
    Delivery,
    audio_tokens,
    input_tokens,
    longest_seconds,
    max_speech_cost,
    negotiate,
    speech_cost,
    unfit_reason,
    upstream_voice,
)
from ccapi.schemas.speech import AudioSpeechRequest

CATALOG = Catalog.load()

# (output_format, response_format, Accept) -> (encoding, delivery)
NEGOTIATION = [
    (None, None, None, "mp3", "url"),
    (None, None, "*/*", "mp3", "url"),
    (None, None, "application/json", "mp3", "url"),
    ("wav", None, None, "wav", "url"),
    (None, "url", None, "mp3", "url"),
    ("flac", "b64_json", None, "flac", "b64_json"),
    (None, "b64_json", "audio/*", "mp3", "b64_json"),  # explicit JSON wins over Accept
    ("ogg", "url", "audio/ogg", "ogg", "url"),
    (None, None, "audio/*", "mp3", "raw"),
    (None, None, "application/octet-stream", "mp3", "raw"),
    (None, None, "audio/flac", "flac", "raw"),  # a named audio type picks the encoding
    (None, None, "audio/wav;q=0.9, */*;q=0.1", "wav", "raw"),
    ("aac", None, "audio/flac", "aac", "raw"),  # output_format beats the Accept's type
    (None, None, "audio/*;q=0", "mp3", "url"),  # refused, not asked for
    (None, "wav", None, "wav", "raw"),  # OpenAI clients
    (None, "pcm", "application/json", "pcm", "raw"),
    ("opus", "opus", None, "opus", "raw"),
    ("ogg", "opus", None, "opus", "raw"),  # the same Ogg Opus bytes: no contradiction
]


@pytest.mark.parametrize(("output_format", "response_format", "accept", "encoding", "mode"), NEGOTIATION)
def test_negotiation_table(
    output_format: str | None, response_format: str | None, accept: str | None, encoding: str, mode: str
) -> None:
    assert negotiate(output_format, response_format, accept) == Delivery(encoding, mode)


@pytest.mark.parametrize(("output_format", "response_format"), [("mp3", "wav"), ("flac", "pcm"), ("ogg", "aac")])
def test_contradicting_formats_are_a_400(output_format: str, response_format: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        negotiate(output_format, response_format, None)
    assert caught.value.param == "response_format"
    assert caught.value.code == "conflicting_formats"


def pricing(**prices: Any) -> Pricing:
    return Pricing(source="https://example.com", checked=dt.date(2026, 11, 29), **prices)


def test_per_character_cost() -> None:
    cost = speech_cost(pricing(per_character_cost=Decimal("0.00005")), 17, Decimal("1.9"))
    assert (cost.prompt_tokens, cost.completion_tokens) == (0, 0)
    assert cost.total == cost.input_cost == Decimal("0.00085")
    assert max_speech_cost(pricing(per_character_cost=Decimal("0.00005")), 17, 0.25) == Decimal("0.00085")


def test_per_second_cost() -> None:
    cost = speech_cost(pricing(per_second_cost=Decimal("0.001")), 100, Decimal("2.5"))
    assert cost.total == cost.output_cost == Decimal("0.0025")


def test_token_cost_rule() -> None:
    """gpt-4o-mini-tts: ceil(chars / 4) input tokens; ceil(seconds * 1250 / 60) audio tokens."""
    prices = pricing(input_cost_per_million=Decimal("0.6"), output_cost_per_million=Decimal("12"))
    cost = speech_cost(prices, 17, Decimal("6"))
    assert cost.prompt_tokens == 5 == input_tokens(17)
    assert cost.completion_tokens == 125 == audio_tokens(Decimal("6"))
    assert cost.input_cost == Decimal("0.000003")
    assert cost.output_cost == Decimal("0.0015")  # $0.015 per minute, as OpenAI estimates
    assert isinstance(cost.total, Decimal)


def test_the_reservation_covers_slow_speech() -> None:
    prices = pricing(input_cost_per_million=Decimal("0.6"), output_cost_per_million=Decimal("12"))
    # 60 characters spoken very slowly (5 characters a second at speed 1).
    assert longest_seconds(60, 1.0) == Decimal(13)
    assert max_speech_cost(prices, 60, 1.0) >= speech_cost(prices, 60, Decimal(12)).total
    assert max_speech_cost(prices, 60, 0.25) > max_speech_cost(prices, 60, 1.0)


def model(model_id: str) -> Any:
    return CATALOG.models[model_id]


def request(**fields: Any) -> AudioSpeechRequest:
    return AudioSpeechRequest.model_validate({"model": "x", "input": "Hello.", **fields})


def test_voices_resolve_to_what_each_provider_takes() -> None:
    eleven = model("elevenlabs/eleven_turbo_v2")
    assert upstream_voice(eleven, "aria") == "9BWtsMINqrJLrRacOk9x"
    assert upstream_voice(eleven, "Aria") == "9BWtsMINqrJLrRacOk9x"
    assert upstream_voice(eleven, None) == "9BWtsMINqrJLrRacOk9x"  # the catalog's first voice
    assert upstream_voice(eleven, "JBFqnCBsd6RMkjVDRZzb") == "JBFqnCBsd6RMkjVDRZzb"  # a raw voice id
    assert upstream_voice(eleven, "alloy") is None
    openai = model("openai/tts-1")
    assert upstream_voice(openai, "alloy") == "alloy"
    assert upstream_voice(openai, "marin") == "marin"  # documented by OpenAI, not in the catalog entry
    assert upstream_voice(openai, "aria") is None
    assert upstream_voice(model("espeak/espeak-ng"), "de") == "de"


UNFIT = [
    ("openai/gpt-4o-mini", {}, "model"),
    ("openai/tts-1", {"voice": "alloy", "input": "x" * 4097}, "input"),
    ("elevenlabs/eleven_turbo_v2", {"voice": "aria", "input": "x" * 4097}, None),  # its limit is 30,000
    ("elevenlabs/eleven_v3", {"input": "x" * 5001}, "input"),
    ("openai/tts-1", {"voice": "nobody"}, "voice"),
    ("openai/tts-1", {"instructions": "Whisper."}, "instructions"),
    ("openai/gpt-4o-mini-tts", {"instructions": "Whisper."}, None),
    ("espeak/espeak-ng", {"instructions": "Whisper."}, "instructions"),
    ("elevenlabs/eleven_turbo_v2", {"speed": 1.5}, "speed"),
    ("elevenlabs/eleven_turbo_v2", {"speed": 1.1}, None),
    ("openai/tts-1", {"speed": 4.0}, None),
    ("espeak/espeak-ng", {"speed": 0.25}, None),
]


@pytest.mark.parametrize(("model_id", "fields", "param"), UNFIT)
def test_what_a_model_cannot_take(model_id: str, fields: dict[str, Any], param: str | None) -> None:
    reason = unfit_reason(model(model_id), request(**fields))
    assert (reason[0] if reason else None) == param


def test_wav_with_espeak_placeholder_sizes() -> None:
    pcm = b"\x01\x00" * 22050  # one second at 22.05 kHz
    header = bytearray(audio.wav_header(len(pcm), 22050))
    header[4:8] = (0x7FFFF024).to_bytes(4, "little")  # what espeak-ng --stdout writes
    header[40:44] = (0x7FFFF000).to_bytes(4, "little")
    assert audio.wav_seconds(bytes(header) + pcm) == 1.0
    assert audio.wav_seconds(audio.pcm_to_wav(b"\x00\x00" * 12000)) == 0.5
    assert audio.pcm_seconds(b"\x00\x00" * 48000) == 2.0


def test_espeak_rate_follows_speed_within_its_range() -> None:
    assert audio.espeak_wpm(1.0) == 175
    assert audio.espeak_wpm(2.0) == 350
    assert audio.espeak_wpm(0.25) == 80
    assert audio.espeak_wpm(4.0) == 450


def test_encoding_tables_agree() -> None:
    assert set(audio.CONTENT_TYPES) == set(audio.ENCODINGS)
    assert set(audio.ACCEPT_TYPES.values()) <= set(audio.ENCODINGS)
    assert audio.same_encoding("ogg", "opus") and not audio.same_encoding("ogg", "mp3")
