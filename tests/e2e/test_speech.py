"""POST /audio/speech through the real gateway and simulator processes: what a
user gets back (JSON with a working signed link, base64, raw bytes for OpenAI
clients), that the audio is real and as long as its text, the error envelope
for bad input, 402, failover, and the ledger row."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.infra import in_ci
from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows


@pytest.fixture(autouse=True)
def _audio_tools() -> None:
    """ffmpeg and espeak-ng are needed: fail under CI, skip locally."""
    absent = [tool for tool in ("ffmpeg", "espeak-ng") if shutil.which(tool) is None]
    if absent:
        reason = f"{', '.join(absent)} not installed (scripts/dev test installs them: apt-get install espeak-ng ffmpeg)"
        if in_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


EXAMPLE = {
    "model": "elevenlabs/eleven_turbo_v2",
    "input": "Welcome to CCAPI.",
    "voice": "aria",
    "output_format": "mp3",
    "response_format": "url",
    "speed": 1.0,
    "instructions": None,
}
RESPONSE_KEYS = {
    "created",
    "model",
    "provider",
    "format",
    "characters",
    "duration",
    "credits_charged",
    "audio_url",
    "b64_audio",
}
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
# ffprobe's codec for each encoding.
CODECS = {
    "mp3": "mp3",
    "wav": "pcm_s16le",
    "ogg": "opus",
    "opus": "opus",
    "aac": "aac",
    "flac": "flac",
}
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}


@pytest.fixture(scope="module")
def speech_gw(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("speech")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        ELEVENLABS_API_KEY="sk-sim-elevenlabs",
        CCAPI_ELEVENLABS_BASE_URL=sim.url,
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="speech-gateway") as gw:
        yield gw, Accounts(url)


@pytest.fixture(scope="module")
def bare_gw(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No provider key at all, except an OpenAI that always answers 503."""
    tmp = tmp_path_factory.mktemp("speech-bare")
    env = {
        "CCAPI_MASTER_KEY": MASTER,
        "CCAPI_DATABASE_URL": f"sqlite:///{tmp}/ccapi.db",
        "CCAPI_BREAKER__FAILURE_THRESHOLD": "1000",
        "OPENAI_API_KEY": "sk-sim-openai",
        "CCAPI_OPENAI_BASE_URL": f"{sim.url}/_fault/status=503/v1",
    }
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="speech-bare") as gw:
        yield gw


def speak(gw: ServerProcess, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/audio/speech", json=body, headers={**AUTH, **(headers or {})}, timeout=60)


PROBE_FIELDS = "stream=codec_name,sample_rate:format=format_name"


def probe(data: bytes, raw_pcm: bool = False) -> dict[str, Any]:
    """ffprobe's view of the bytes: codec, container and decoded duration."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
        fh.write(data)
        fh.flush()
        fmt = ["-f", "s16le", "-ar", "24000", "-ac", "1"] if raw_pcm else []
        out = subprocess.run(
            ["ffprobe", "-v", "error", *fmt, "-show_entries", PROBE_FIELDS, "-of", "json", fh.name],
            check=True,
            capture_output=True,
        ).stdout
        pcm = subprocess.run(
            ["ffmpeg", "-v", "error", *fmt, "-i", fh.name, "-ac", "1", "-ar", "8000", "-f", "s16le", "pipe:1"],
            check=True,
            capture_output=True,
        ).stdout
    info = json.loads(out)
    return {
        "codec": info["streams"][0]["codec_name"],
        "container": info["format"]["format_name"],
        "seconds": len(pcm) / 16000,
    }


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getnframes() / w.getframerate()


def assert_envelope(resp: httpx.Response, status: int, param: str | None, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param", "details"}
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error


# --- the contract's example ------------------------------------------------------


def test_contract_example_gives_a_signed_link_to_real_mp3(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    resp = speak(gw, EXAMPLE)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == RESPONSE_KEYS
    assert body["model"] == "elevenlabs/eleven_turbo_v2"
    assert body["provider"] == "elevenlabs"
    assert body["format"] == "mp3"
    assert body["characters"] == 17
    assert body["b64_audio"] is None
    # $0.05 per 1000 characters, reported for the master key too.
    assert Decimal(str(body["credits_charged"])) == Decimal("0.00085")
    assert resp.headers["x-ccapi-provider"] == "elevenlabs"
    assert resp.headers["x-ccapi-model"] == "elevenlabs/eleven_turbo_v2"
    assert resp.headers["x-ccapi-attempts"] == "1"
    assert body["audio_url"].startswith(f"{gw.url}/files/f_")

    audio = httpx.get(body["audio_url"], timeout=10)  # no bearer header
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    probed = probe(audio.content)
    assert (probed["codec"], probed["container"]) == ("mp3", "mp3")
    assert probed["seconds"] == pytest.approx(body["duration"], abs=0.1)
    assert 0.5 <= body["duration"] < 5


def test_b64_json_carries_the_audio_inline(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    resp = speak(gw, {**EXAMPLE, "response_format": "b64_json", "output_format": "flac"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == RESPONSE_KEYS
    assert body["audio_url"] is None
    assert body["format"] == "flac"
    probed = probe(base64.b64decode(body["b64_audio"]))
    assert probed["codec"] == "flac"
    assert probed["seconds"] == pytest.approx(body["duration"], abs=0.05)


def test_openai_sdk_gets_raw_wav(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    client = OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
    text = "Hello from the OpenAI SDK, through the gateway, as a wave file."
    resp = client.audio.speech.create(model="openai/tts-1", voice="alloy", input=text, response_format="wav")
    data = resp.content
    assert data[:4] == b"RIFF"
    seconds = wav_seconds(data)
    # The simulator speaks about 15 characters per second.
    assert seconds == pytest.approx(len(text) / 15, rel=0.1)
    assert resp.response.headers["x-ccapi-provider"] == "openai"
    assert Decimal(resp.response.headers["x-ccapi-cost"]) == Decimal(len(text)) * Decimal("0.000015")


def test_openai_sdk_default_is_mp3_bytes(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    client = OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
    resp = client.audio.speech.create(model="openai/gpt-4o-mini-tts", voice="coral", input=SENTENCE)
    assert resp.response.headers["content-type"] == "audio/mpeg"
    assert probe(resp.content)["codec"] == "mp3"


def test_espeak_speaks_locally_without_any_provider_key(bare_gw: ServerProcess) -> None:
    resp = speak(bare_gw, {"model": "espeak/espeak-ng", "voice": "en", "input": SENTENCE, "response_format": "wav"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav"
    assert resp.headers["x-ccapi-provider"] == "espeak"
    assert resp.headers["x-ccapi-cost"] == "0"
    seconds = wav_seconds(resp.content)
    assert 1.5 < seconds < 10  # a real voice reading one sentence
    # Faster speech is shorter.
    fast = speak(bare_gw, {"model": "espeak/espeak-ng", "input": SENTENCE, "response_format": "wav", "speed": 2.0})
    assert fast.status_code == 200, fast.text
    assert wav_seconds(fast.content) < seconds * 0.75


def test_failover_to_the_next_model(bare_gw: ServerProcess) -> None:
    # OpenAI answers 503 here; espeak takes over (each with its default voice).
    body = {"models": ["openai/tts-1", "espeak/espeak-ng"], "input": "Failing over.", "response_format": "b64_json"}
    resp = speak(bare_gw, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["provider"] == "espeak"
    assert resp.headers["x-ccapi-attempts"] == "2"
    only_openai = speak(bare_gw, {**body, "models": ["openai/tts-1"]})
    assert_envelope(only_openai, 502, None, "upstream_failed")
    assert only_openai.json()["error"]["details"]["attempts"][0]["status"] == 503


# --- every encoding ----------------------------------------------------------------


@pytest.mark.parametrize("provider_model", ["openai/tts-1", "elevenlabs/eleven_turbo_v2", "espeak/espeak-ng"])
@pytest.mark.parametrize("encoding", ["mp3", "wav", "ogg", "opus", "aac", "flac", "pcm"])
def test_every_encoding_round_trips(
    speech_gw: tuple[ServerProcess, Accounts], provider_model: str, encoding: str
) -> None:
    gw, _ = speech_gw
    body: dict[str, Any] = {"model": provider_model, "input": SENTENCE, "output_format": encoding}
    resp = speak(gw, body, {"Accept": "audio/*"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == CONTENT_TYPES[encoding]
    assert Decimal(resp.headers["x-ccapi-cost"]) >= 0
    if encoding == "pcm":
        assert len(resp.content) % 2 == 0
        seconds = len(resp.content) / 48000
        assert probe(resp.content, raw_pcm=True)["seconds"] == pytest.approx(seconds, abs=0.01)
    else:
        probed = probe(resp.content)
        assert probed["codec"] == CODECS[encoding]
        seconds = probed["seconds"]
    assert float(resp.headers["x-ccapi-duration"]) == pytest.approx(seconds, abs=0.1)
    assert 1.5 < seconds < 10


def test_accept_header_and_explicit_url(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    body = {"model": "openai/tts-1", "voice": "nova", "input": "Accept negotiation."}
    raw = speak(gw, body, {"Accept": "application/octet-stream"})
    assert raw.headers["content-type"] == "audio/mpeg"
    named = speak(gw, body, {"Accept": "audio/flac"})
    assert named.headers["content-type"] == "audio/flac"
    explicit = speak(gw, {**body, "response_format": "url"}, {"Accept": "audio/*"})
    assert explicit.headers["content-type"].startswith("application/json")
    assert explicit.json()["audio_url"]
    default = speak(gw, body)
    assert default.json()["format"] == "mp3"
    assert default.json()["audio_url"]


# --- errors --------------------------------------------------------------------------

BAD = [
    ("empty input", {"input": ""}, 400, "input", None),
    ("input too long for tts-1", {"model": "openai/tts-1", "voice": "alloy", "input": "x" * 4097}, 400, "input", None),
    ("input too long for eleven v3", {"model": "elevenlabs/eleven_v3", "input": "x" * 5001}, 400, "input", None),
    ("speed too high", {"speed": 4.5}, 400, "speed", None),
    ("speed too low", {"speed": 0.1}, 400, "speed", None),
    ("speed a string", {"speed": "1"}, 400, "speed", None),
    ("speed ElevenLabs cannot do", {"speed": 2.0}, 400, "speed", None),
    ("unknown voice", {"voice": "alloy"}, 400, "voice", None),
    ("unknown OpenAI voice", {"model": "openai/tts-1", "voice": "aria"}, 400, "voice", None),
    ("unknown encoding", {"output_format": "wma"}, 400, "output_format", None),
    ("unknown response format", {"response_format": "m4a"}, 400, "response_format", None),
    (
        "contradicting formats",
        {"model": "openai/tts-1", "voice": "alloy", "output_format": "mp3", "response_format": "wav"},
        400,
        "response_format",
        "conflicting_formats",
    ),
    (
        "instructions for tts-1",
        {"model": "openai/tts-1", "voice": "alloy", "instructions": "Calm."},
        400,
        "instructions",
        None,
    ),
    ("chat model", {"model": "openai/gpt-4o-mini"}, 400, "model", None),
    ("no model", {"model": None}, 400, "model", None),
    ("unknown field", {"pitch": 3}, 400, "pitch", None),
    ("unknown model", {"model": "openai/tts-9"}, 404, "model", "model_not_found"),
    ("unknown provider", {"model": "nope/tts"}, 404, "model", "provider_not_found"),
    ("unknown failover model", {"models": ["openai/tts-1", "x/y"]}, 404, "models[1]", "provider_not_found"),
]


@pytest.mark.parametrize(("change", "status", "param", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_the_envelope(
    speech_gw: tuple[ServerProcess, Accounts],
    sim: ServerProcess,
    change: dict[str, Any],
    status: int,
    param: str,
    code: str | None,
) -> None:
    gw, _ = speech_gw
    before = httpx.get(f"{sim.url}/_sim/stats").json()["requests"]
    assert_envelope(speak(gw, {**EXAMPLE, **change}), status, param, code)
    assert httpx.get(f"{sim.url}/_sim/stats").json()["requests"] == before  # nothing was called


def test_wrong_content_type_is_415(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = speech_gw
    resp = httpx.post(f"{gw.url}/audio/speech", content=b"hello", headers={**AUTH, "Content-Type": "text/plain"})
    assert_envelope(resp, 415, None, "unsupported_media_type")


# --- billing ------------------------------------------------------------------------


def test_too_little_credit_is_402_before_any_call(
    speech_gw: tuple[ServerProcess, Accounts], sim: ServerProcess
) -> None:
    gw, accounts = speech_gw
    account = accounts.account("0.0001")
    _, secret = accounts.key(account)
    before = httpx.get(f"{sim.url}/_sim/stats").json()["by_path"].get("/v1/text-to-speech/9BWtsMINqrJLrRacOk9x", 0)
    resp = httpx.post(f"{gw.url}/audio/speech", json=EXAMPLE, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert_envelope(resp, 402, None, "insufficient_credits")
    details = resp.json()["error"]["details"]
    assert Decimal(str(details["needed"])) == Decimal("0.00085")
    assert Decimal(str(details["available"])) == Decimal("0.0001")
    after = httpx.get(f"{sim.url}/_sim/stats").json()["by_path"].get("/v1/text-to-speech/9BWtsMINqrJLrRacOk9x", 0)
    assert after == before
    rows = wait_for_rows(accounts, 1, account_id=account)
    assert [(r["route"], r["status"], r["error_type"]) for r in rows] == [("/audio/speech", 402, "billing_error")]


def test_one_ledger_row_with_the_charged_cost(speech_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = speech_gw
    account = accounts.account("1")
    _, secret = accounts.key(account)
    auth = {"Authorization": f"Bearer {secret}"}
    resp = httpx.post(f"{gw.url}/v1/audio/speech", json=EXAMPLE, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    charged = Decimal(str(resp.json()["credits_charged"]))
    token_priced = {"model": "openai/gpt-4o-mini-tts", "voice": "marin", "input": SENTENCE, "response_format": "pcm"}
    raw = httpx.post(f"{gw.url}/v1/audio/speech", json=token_priced, headers=auth, timeout=30)
    assert raw.status_code == 200, raw.text
    raw_cost = Decimal(raw.headers["x-ccapi-cost"])
    rows = wait_for_rows(accounts, 2, account_id=account)
    assert len(rows) == 2
    by_model = {r["model"]: r for r in rows}
    row = by_model["elevenlabs/eleven_turbo_v2"]
    assert row["route"] == "/audio/speech"
    assert row["status"] == 200
    assert row["provider"] == "elevenlabs"
    assert Decimal(str(row["cost"])) == charged == Decimal("0.00085")
    assert row["prompt_tokens"] == 0
    # Token-priced: ceil(chars / 4) input tokens, ceil(seconds * 1250 / 60) audio tokens.
    tokens = by_model["openai/gpt-4o-mini-tts"]
    seconds = Decimal(len(raw.content)) / 48000
    assert tokens["prompt_tokens"] == -(-len(SENTENCE) // 4)
    assert abs(tokens["completion_tokens"] - float(seconds * 1250 / 60)) <= 1
    assert Decimal(str(tokens["cost"])) == raw_cost > 0
    balance, reserved = accounts.balance(account)
    assert balance == Decimal(1) - charged - raw_cost
    assert reserved == 0


def test_public_url_builds_the_links(sim: ServerProcess, tmp_path: Path) -> None:
    env = {
        "CCAPI_MASTER_KEY": MASTER,
        "CCAPI_DATABASE_URL": f"sqlite:///{tmp_path}/ccapi.db",
        "CCAPI_PUBLIC_URL": "https://gw.example",
    }
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="speech-public") as gw:
        resp = speak(gw, {"model": "espeak/espeak-ng", "input": "Public links."})
        assert resp.status_code == 200, resp.text
        link = resp.json()["audio_url"]
        assert link.startswith("https://gw.example/files/f_")
        local = httpx.get(gw.url + link.removeprefix("https://gw.example"), timeout=10)
        assert local.status_code == 200
        assert local.headers["content-type"] == "audio/mpeg"
