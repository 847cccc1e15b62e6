"""Audio plumbing for text to speech: the format tables (pure), WAV/PCM
arithmetic (pure), and the ffmpeg / espeak-ng subprocesses (asyncio, never
blocking the event loop).

Encodings are the contract's names: mp3, wav, ogg (Ogg Opus), opus (the same
Ogg Opus bytes, as OpenAI sends them), aac (ADTS), flac, pcm (16-bit
little-endian mono at 24 kHz, headerless, as OpenAI sends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import tempfile
from typing import Final

ENCODINGS: Final = ("mp3", "wav", "ogg", "opus", "aac", "flac", "pcm")
CONTENT_TYPES: Final = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}
# What `Accept: audio/...` names, to the encoding it asks for.
ACCEPT_TYPES: Final = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/pcm": "pcm",
    "audio/l16": "pcm",
}
PCM_RATE: Final = 24_000  # the contract's pcm: 16-bit LE mono at 24 kHz
PCM_BYTES_PER_SECOND: Final = PCM_RATE * 2

# ffmpeg output arguments per encoding (after `-i`). wav is built from pcm in
# Python so that its header carries exact sizes.
_ENCODE_ARGS: Final[dict[str, tuple[str, ...]]] = {
    "mp3": ("-ac", "1", "-ar", "24000", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
    "ogg": ("-ac", "1", "-ar", "24000", "-c:a", "libopus", "-b:a", "48k", "-f", "ogg"),
    "opus": ("-ac", "1", "-ar", "24000", "-c:a", "libopus", "-b:a", "48k", "-f", "ogg"),
    "aac": ("-ac", "1", "-ar", "24000", "-c:a", "aac", "-b:a", "64k", "-f", "adts"),
    "flac": ("-ac", "1", "-ar", "24000", "-c:a", "flac", "-f", "flac"),
    "pcm": ("-ac", "1", "-ar", "24000", "-c:a", "pcm_s16le", "-f", "s16le"),
}
# ffmpeg input arguments for a headerless source.
_RAW_INPUT: Final = ("-f", "s16le", "-ar", str(PCM_RATE), "-ac", "1")


class AudioToolError(Exception):
    """ffmpeg or espeak-ng failed (or is missing); the message says which."""


def same_encoding(a: str, b: str) -> bool:
    """ogg and opus are the same bytes (Ogg Opus); only the content type differs."""
    opus = {"ogg", "opus"}
    return a == b or (a in opus and b in opus)


# --- WAV / PCM, pure ----------------------------------------------------------


def wav_header(pcm_len: int, rate: int = PCM_RATE, channels: int = 1, width: int = 2) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + pcm_len,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * channels * width,
        channels * width,
        width * 8,
        b"data",
        pcm_len,
    )


def pcm_to_wav(pcm: bytes, rate: int = PCM_RATE) -> bytes:
    return wav_header(len(pcm), rate) + pcm


def wav_info(data: bytes) -> tuple[int, int, int, int, int]:
    """(sample rate, channels, bytes per sample, data offset, data bytes) of a PCM WAV.

    Tolerates the placeholder sizes a streaming writer leaves (espeak-ng
    --stdout writes 0x7ffff000): the data is what is actually there.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioToolError("not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if tag == b"fmt " and body + 16 <= len(data):
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (rate, channels, bits // 8)
        elif tag == b"data":
            if fmt is None:
                raise AudioToolError("WAV data before its fmt chunk")
            return (*fmt, body, min(size, len(data) - body))
        pos = body + size + (size & 1)
    raise AudioToolError("WAV without a data chunk")


def wav_seconds(data: bytes) -> float:
    rate, channels, width, _, size = wav_info(data)
    return size / (rate * channels * width) if rate and channels and width else 0.0


def pcm_seconds(data: bytes) -> float:
    return len(data) / PCM_BYTES_PER_SECOND


# --- subprocesses -------------------------------------------------------------


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


async def _run(cmd: list[str], stdin: bytes) -> bytes:
    """Run `cmd`, feed `stdin`, return stdout. The caller bounds the time
    (asyncio.timeout); a cancelled run kills its process."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise AudioToolError(f"{cmd[0]} is not installed") from None
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:  # timeout or cancellation: never leave the child behind
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise AudioToolError(f"{os.path.basename(cmd[0])} exited with {proc.returncode}: {tail[0]}")
    return out


def _input_args(encoding: str) -> tuple[str, ...]:
    return _RAW_INPUT if encoding == "pcm" else ()


async def convert(data: bytes, source: str, target: str) -> bytes:
    """Re-encode `data` from `source` to `target` (ffmpeg). Same encoding: as is."""
    if same_encoding(source, target):
        return data
    if target == "wav":
        return pcm_to_wav(await convert(data, source, "pcm"))
    if target not in _ENCODE_ARGS:
        raise AudioToolError(f"no encoder for {target!r}")
    # A file, not a pipe, for the output: flac and ogg write their totals at the end.
    fd, path = tempfile.mkstemp(suffix=f".{target}", prefix="ccapi-audio-")
    os.close(fd)
    try:
        cmd = [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            *_input_args(source),
            "-i",
            "pipe:0",
            "-vn",
            *_ENCODE_ARGS[target],
            "-y",
            path,
        ]
        await _run(cmd, data)
        return await asyncio.to_thread(_read_and_remove, path)
    finally:
        await asyncio.to_thread(_remove, path)


def _read_and_remove(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def decoded_seconds(data: bytes, encoding: str) -> float:
    """The audio's length in seconds, from its decoded samples (not a header's claim)."""
    if encoding == "pcm":
        return pcm_seconds(data)
    if encoding == "wav":
        return wav_seconds(data)
    # Decode to 8 kHz mono s16le and count: exact, and cheap enough.
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0"]
    cmd += ["-vn", "-ac", "1", "-ar", "8000", "-f", "s16le", "pipe:1"]
    out = await _run(cmd, data)
    return len(out) / 16_000


ESPEAK_WPM: Final = 175  # espeak-ng's default rate, words per minute, for speed 1.0
ESPEAK_WPM_RANGE: Final = (80, 450)


def espeak_wpm(speed: float) -> int:
    """Words per minute for a speed multiplier, within what espeak-ng takes."""
    low, high = ESPEAK_WPM_RANGE
    return max(low, min(high, round(ESPEAK_WPM * speed)))


async def espeak(text: str, voice: str, speed: float) -> bytes:
    """WAV from espeak-ng. The text goes on stdin (never argv: no option injection)."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(espeak_wpm(speed)), "-b", "1", "--stdout", "--stdin"]
    out = await _run(cmd, text.encode("utf-8"))
    if not out.startswith(b"RIFF"):
        raise AudioToolError("espeak-ng produced no audio")
    rate, channels, width, offset, size = wav_info(out)
    pcm = out[offset : offset + size]
    # Rewrite the header: espeak-ng --stdout leaves placeholder sizes in it.
    return wav_header(len(pcm), rate, channels, width) + pcm
