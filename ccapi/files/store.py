"""Generated files (images, audio): stored by the gateway, served by signed,
expiring links that need no bearer header.

`sig` is HMAC-SHA256 of "<id>:<exp>" under the operator's
CCAPI_FILE_SIGNING_KEY, or a key generated on first start and kept in the
database (so links survive restarts).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from ccapi.core import ids

_ID = re.compile(r"^f_[0-9a-f]{24}$")
# Content types we store, with the extension the file keeps on disk.
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/flac": "flac",
    "audio/pcm": "pcm",
}
TYPES = {ext: ctype for ctype, ext in EXTENSIONS.items()}


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    path: Path
    content_type: str


class FileStore:
    def __init__(self, directory: Path, ttl: int, signing_key: bytes | None = None) -> None:
        self.directory = directory
        self.ttl = ttl
        # Set at start (from settings, or the key stored in the database).
        self._key = signing_key or b""

    def use_key(self, signing_key: bytes) -> None:
        self._key = signing_key

    async def put(self, data: bytes, content_type: str) -> str:
        """Store `data`; returns the file's id."""
        ext = EXTENSIONS.get(content_type)
        if ext is None:
            raise ValueError(f"unsupported content type {content_type!r}")
        file_id = f"f_{ids.new_id()}"
        path = self.directory / f"{file_id}.{ext}"
        await asyncio.to_thread(_write, path, data)
        return file_id

    async def get(self, file_id: str) -> StoredFile | None:
        if not _ID.match(file_id):
            return None
        matches = await asyncio.to_thread(lambda: sorted(self.directory.glob(f"{file_id}.*")))
        if not matches:
            return None
        path = matches[0]
        return StoredFile(file_id, path, TYPES.get(path.suffix[1:], "application/octet-stream"))

    async def read(self, file_id: str) -> bytes | None:
        found = await self.get(file_id)
        if found is None:
            return None
        try:
            return await asyncio.to_thread(found.path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, file_id: str) -> bool:
        found = await self.get(file_id)
        if found is None:
            return False
        await asyncio.to_thread(found.path.unlink, True)
        return True

    def signature(self, file_id: str, expires: int) -> str:
        if not self._key:
            raise RuntimeError("the file signing key is not loaded yet")
        return hmac.new(self._key, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def verify(self, file_id: str, expires: str | None, sig: str | None, now: float | None = None) -> bool:
        """The signature is checked first, whether or not the file exists."""
        if not expires or not sig or not expires.isdigit():
            return False
        good = hmac.compare_digest(self.signature(file_id, int(expires)), sig)
        return good and int(expires) > (time.time() if now is None else now)

    def signed_url(self, file_id: str, base_url: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl)
        query = urlencode({"exp": expires, "sig": self.signature(file_id, expires)})
        return f"{base_url.rstrip('/')}/files/{file_id}?{query}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # readers never see a half-written file


def new_signing_key() -> str:
    return secrets.token_hex(32)
