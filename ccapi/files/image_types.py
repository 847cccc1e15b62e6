"""What an image's bytes are: its type (by magic number), and whether a PNG
has an alpha channel. Shared by the gateway (checking inputs and upstream
answers) and the simulator (checking what it is sent)."""

from __future__ import annotations

import struct


def sniff_image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def png_has_alpha(data: bytes) -> bool:
    """A PNG with an alpha channel (colour type 4 or 6) or a tRNS chunk."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 26:
        return False
    if data[25] in (4, 6):
        return True
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False
