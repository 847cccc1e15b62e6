"""Generated files (images, audio): stored by the gateway, served by signed,
expiring links that need no bearer header.

The bytes live in a backend: a local directory (LocalBackend, the default) or
an S3-compatible bucket (ccapi/files/s3.py); FileStore checks ids and signs
and verifies links the same way for both.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from ccapi.core import ids
from ccapi.core.errors import ProviderUnavailableError

if TYPE_CHECKING:
    from ccapi.config import Settings

_ID = re.compile(r"^f_[0-9a-f]{24}$")
# Content types we store, with the extension a local file keeps.
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
    content_type: str
    size: int | None = None
    # One of the two: a file on this machine (served as is), or the body as it
    # streams from a bucket.
    path: Path | None = None
    chunks: AsyncIterator[bytes] | None = None


class FileStorageError(ProviderUnavailableError):
    """The storage could not be reached or refused the operation (not "no such file").

    A CCAPIError, so any route that stores or serves a file answers 503 in the
    contract's envelope; the cause is logged by the backend, never shown.
    """

    def __init__(self) -> None:
        super().__init__("The file storage is unavailable; try again shortly.", code="file_storage_unavailable")


class FileBackend(Protocol):
    """Where the bytes live. Ids are checked and signatures verified by FileStore."""

    async def write(self, file_id: str, data: bytes, content_type: str) -> None: ...

    async def open(self, file_id: str) -> StoredFile | None: ...

    async def remove(self, file_id: str) -> bool: ...


class FileStore:
    def __init__(self, backend: FileBackend | Path, ttl: int, signing_key: bytes | None = None) -> None:
        # A path stands for the local backend in that directory.
        self.backend = LocalBackend(backend) if isinstance(backend, Path) else backend
        self.ttl = ttl
        # Set at start (from settings, or the key stored in the database).
        self._key = signing_key or b""

    def use_key(self, signing_key: bytes) -> None:
        self._key = signing_key

    async def put(self, data: bytes, content_type: str) -> str:
        """Store `data`; returns the file's id."""
        if content_type not in EXTENSIONS:
            raise ValueError(f"unsupported content type {content_type!r}")
        file_id = f"f_{ids.new_id()}"
        await self.backend.write(file_id, data, content_type)
        return file_id

    async def get(self, file_id: str) -> StoredFile | None:
        if not _ID.match(file_id):
            return None
        return await self.backend.open(file_id)

    async def read(self, file_id: str) -> bytes | None:
        found = await self.get(file_id)
        if found is None:
            return None
        if found.chunks is not None:
            return b"".join([chunk async for chunk in found.chunks])
        if found.path is None:
            return None
        try:
            return await asyncio.to_thread(found.path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, file_id: str) -> bool:
        if not _ID.match(file_id):
            return False
        return await self.backend.remove(file_id)

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


class LocalBackend:
    """Files in a directory on this machine, named `<id>.<extension>`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def write(self, file_id: str, data: bytes, content_type: str) -> None:
        path = self.directory / f"{file_id}.{EXTENSIONS[content_type]}"
        await asyncio.to_thread(_write, path, data)

    async def open(self, file_id: str) -> StoredFile | None:
        path = await asyncio.to_thread(self._find, file_id)
        if path is None:
            return None
        return StoredFile(file_id, TYPES.get(path.suffix[1:], "application/octet-stream"), path=path)

    async def remove(self, file_id: str) -> bool:
        path = await asyncio.to_thread(self._find, file_id)
        if path is None:
            return False
        await asyncio.to_thread(path.unlink, True)
        return True

    def _find(self, file_id: str) -> Path | None:
        # `.part` files are writes in progress.
        matches = sorted(p for p in self.directory.glob(f"{file_id}.*") if p.suffix != ".part")
        return matches[0] if matches else None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # readers never see a half-written file


def file_backend(settings: Settings) -> FileBackend:
    if settings.files_backend == "s3":
        # Imported only when configured, so the default local mode pays
        # neither its import time nor its ~5 MB of resident memory.
        from ccapi.files.s3 import S3Backend

        return S3Backend(settings.s3)
    return LocalBackend(settings.files_dir)


def new_signing_key() -> str:
    return secrets.token_hex(32)
