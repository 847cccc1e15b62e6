"""Generated files in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...).

The client is obstore (Rust's object_store): its async calls run on its own
threads, so the event loop never waits on the bucket, and it signs requests
itself (SigV4). Objects are named `<prefix><id>` and carry their content type
as `Content-Type`, so serving a file is one GET.
https://developmentseed.org/obstore/latest/api/store/aws/
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from ccapi.config import S3Settings
from ccapi.files.store import FileStorageError, StoredFile

if TYPE_CHECKING:  # typing-only names in obstore
    from obstore.store import ClientConfig, RetryConfig, S3Config

log = logging.getLogger(__name__)
# Starlette sends each chunk as it comes; 1 MiB keeps memory flat for large audio.
CHUNK_BYTES = 1024 * 1024


class S3Backend:
    def __init__(self, settings: S3Settings) -> None:
        if not settings.bucket:
            raise ValueError("the S3 file backend needs a bucket")
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        try:
            self._store = S3Store(
                settings.bucket,
                prefix=settings.prefix or None,
                config=_s3_config(settings),
                client_options=_client_options(settings),
                retry_config=_retry_config(settings),
            )
        except BaseError as exc:  # e.g. a secret access key without its key id
            raise ValueError(f"S3 file storage settings: {str(exc).splitlines()[0]}") from None

    def __repr__(self) -> str:  # never the credentials
        return f"S3Backend(bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def write(self, file_id: str, data: bytes, content_type: str) -> None:
        try:
            await obstore.put_async(self._store, file_id, data, attributes={"Content-Type": content_type})
        except (BaseError, FileNotFoundError) as exc:  # obstore raises the builtin for NoSuchBucket
            raise _storage_error("write", exc) from exc

    async def open(self, file_id: str) -> StoredFile | None:
        try:
            result = await obstore.get_async(self._store, file_id)
        except FileNotFoundError:  # obstore's not-found is the builtin
            return None
        except BaseError as exc:
            raise _storage_error("read", exc) from exc
        content_type = str(result.attributes.get("Content-Type") or "application/octet-stream")
        return StoredFile(file_id, content_type, size=result.meta["size"], chunks=result.stream(CHUNK_BYTES))

    async def remove(self, file_id: str) -> bool:
        # S3 answers a DELETE of a missing key with success, so ask first.
        try:
            await obstore.head_async(self._store, file_id)
            await obstore.delete_async(self._store, file_id)
        except FileNotFoundError:  # obstore's not-found is the builtin
            return False
        except BaseError as exc:
            raise _storage_error("delete", exc) from exc
        return True


def _s3_config(settings: S3Settings) -> S3Config:
    config: S3Config = {}
    if settings.endpoint_url:
        config["endpoint"] = settings.endpoint_url
    if settings.region:
        config["region"] = settings.region
    if settings.access_key_id:
        config["access_key_id"] = settings.access_key_id.get_secret_value()
    if settings.secret_access_key:
        config["secret_access_key"] = settings.secret_access_key.get_secret_value()
    path_style = settings.path_style if settings.path_style is not None else bool(settings.endpoint_url)
    config["virtual_hosted_style_request"] = not path_style
    return config


def _client_options(settings: S3Settings) -> ClientConfig:
    return {
        "timeout": timedelta(seconds=settings.timeout),
        "connect_timeout": timedelta(seconds=min(settings.timeout, 5.0)),
        # The operator chose the endpoint; a plain-http one is a server nearby.
        "allow_http": bool(settings.endpoint_url and settings.endpoint_url.startswith("http://")),
    }


def _retry_config(settings: S3Settings) -> RetryConfig:
    # obstore's default retries for up to 3 minutes; a download link should
    # rather fail within the request timeout.
    return {"max_retries": 3, "retry_timeout": timedelta(seconds=settings.timeout)}


def _storage_error(action: str, exc: Exception) -> FileStorageError:
    # obstore's message names the endpoint, bucket and key and the server's
    # answer, never the credentials.
    log.warning("S3 file storage: %s failed: %s", action, str(exc).splitlines()[0])
    return FileStorageError()
