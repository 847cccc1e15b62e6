"""The file store's backends: a local directory and an S3 bucket (moto's real
S3 endpoint on 127.0.0.1) keep, give back and delete the same files the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccapi.config import S3Settings
from ccapi.files.store import FileStorageError, FileStore, LocalBackend, StoredFile
from tests.infra import S3Server, s3
from tests.support import free_port

__all__ = ["s3"]

PNG = b"\x89PNG\r\n\x1a\n fake image"
MP3 = b"ID3 fake audio" * 100_000  # 1.4 MB: more than one chunk from the bucket


def s3_backend(server: S3Server, prefix: str = "", **overrides: object) -> object:
    from ccapi.files.s3 import S3Backend

    return S3Backend(
        S3Settings.model_validate(
            {
                "bucket": server.bucket,
                "prefix": prefix,
                "endpoint_url": server.url,
                "region": "us-east-1",
                "access_key_id": server.access_key_id,
                "secret_access_key": server.secret_access_key,
                "timeout": 10,
            }
            | overrides
        )
    )


@pytest.fixture(params=["local", "s3"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    if request.param == "local":
        return FileStore(LocalBackend(tmp_path / "files"), ttl=60)
    server: S3Server = request.getfixturevalue("s3")
    return FileStore(s3_backend(server, prefix=f"t-{tmp_path.name}/"), ttl=60)  # type: ignore[arg-type]


async def read(found: StoredFile) -> bytes:
    if found.path is not None:
        return found.path.read_bytes()
    assert found.chunks is not None
    return b"".join([chunk async for chunk in found.chunks])


@pytest.mark.parametrize(("data", "ctype"), [(PNG, "image/png"), (MP3, "audio/mpeg")], ids=["png", "mp3"])
async def test_a_stored_file_comes_back_with_its_bytes_and_type(files: FileStore, data: bytes, ctype: str) -> None:
    file_id = await files.put(data, ctype)
    found = await files.get(file_id)
    assert found is not None
    assert (found.id, found.content_type) == (file_id, ctype)
    assert await read(found) == data


async def test_a_deleted_file_is_gone_and_deleting_it_again_says_so(files: FileStore) -> None:
    file_id = await files.put(PNG, "image/png")
    assert await files.delete(file_id) is True
    assert await files.get(file_id) is None
    assert await files.delete(file_id) is False


async def test_unknown_and_malformed_ids_are_not_found(files: FileStore) -> None:
    assert await files.get("f_" + "0" * 24) is None
    for bad in ("f_../../etc/passwd", "x", "f_" + "0" * 23 + "*"):
        assert await files.get(bad) is None
        assert await files.delete(bad) is False


async def test_only_known_content_types_are_stored(files: FileStore) -> None:
    with pytest.raises(ValueError, match="unsupported content type"):
        await files.put(b"<html>", "text/html")


async def test_s3_objects_are_named_prefix_and_id_and_carry_their_type(s3: S3Server) -> None:
    files = FileStore(s3_backend(s3, prefix="gw1/files/"), ttl=60)  # type: ignore[arg-type]
    file_id = await files.put(PNG, "image/png")
    assert s3.objects()[f"gw1/files/{file_id}"] == ("image/png", PNG)


async def test_an_unreachable_bucket_is_a_storage_error_not_a_missing_file() -> None:
    nowhere = S3Server(f"http://127.0.0.1:{free_port()}", "ccapi-nowhere")
    files = FileStore(s3_backend(nowhere, timeout=2), ttl=60)  # type: ignore[arg-type]
    with pytest.raises(FileStorageError):
        await files.get("f_" + "0" * 24)
    with pytest.raises(FileStorageError):
        await files.put(PNG, "image/png")
    with pytest.raises(FileStorageError):
        await files.delete("f_" + "0" * 24)


async def test_a_missing_bucket_is_a_storage_error(s3: S3Server) -> None:
    files = FileStore(s3_backend(s3, bucket="ccapi-no-such-bucket"), ttl=60)  # type: ignore[arg-type]
    with pytest.raises(FileStorageError):
        await files.put(PNG, "image/png")


def test_the_s3_backend_never_shows_its_credentials(s3: S3Server) -> None:
    backend = s3_backend(s3, secret_access_key="very-secret-value", access_key_id="AKIDVISIBLE")
    assert "very-secret-value" not in repr(backend) and "AKIDVISIBLE" not in repr(backend)
