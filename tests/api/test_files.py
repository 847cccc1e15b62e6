"""Signed, expiring file links: 403 before anything else, 404 for a deleted file,
the same with files in a local directory and in an S3 bucket (moto's real S3
endpoint); 503 when the bucket cannot be reached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ccapi.app import create_app
from ccapi.config import load_settings
from tests.infra import S3Server, s3
from tests.support import free_port

from .conftest import MASTER

__all__ = ["s3"]


def s3_settings(server: S3Server, prefix: str = "") -> dict[str, object]:
    env = server.gateway_env(prefix)
    return {
        "files_backend": "s3",
        "s3": {key.removeprefix("CCAPI_S3__").lower(): value for key, value in env.items() if "S3__" in key},
    }


@pytest.fixture(params=["local", "s3"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    backend: dict[str, object] = {"files_dir": tmp_path / "files"}
    if request.param == "s3":
        backend = s3_settings(request.getfixturevalue("s3"), prefix=f"{tmp_path.name}/")
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/ccapi.db", master_key=MASTER, **backend)
    with TestClient(create_app(settings)) as c:
        yield c


def store(client: TestClient, data: bytes = b"\x89PNG fake", ctype: str = "image/png") -> str:
    files = client.app.state.gateway.files  # type: ignore[attr-defined]
    return str(client.portal.call(files.put, data, ctype))  # type: ignore[union-attr]


def test_a_signed_link_serves_the_file_without_a_bearer(client: TestClient) -> None:
    file_id = store(client)
    url = client.app.state.gateway.files.signed_url(file_id, "http://testserver")  # type: ignore[attr-defined]
    r = client.get(url)
    assert r.status_code == 200 and r.content == b"\x89PNG fake"
    assert r.headers["content-type"] == "image/png"
    assert client.get(url.replace("/files/", "/v1/files/")).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda u: u.split("?")[0],  # no signature
        lambda u: u[:-1] + ("0" if u[-1] != "0" else "1"),  # tampered signature
        lambda u: u.replace("exp=", "exp=1"),  # tampered expiry
        lambda u: u.replace("/files/f_", "/files/f_0"),  # another id
    ],
)
def test_a_missing_or_tampered_signature_is_403(client: TestClient, mangle) -> None:  # type: ignore[no-untyped-def]
    file_id = store(client)
    url = client.app.state.gateway.files.signed_url(file_id, "http://testserver")  # type: ignore[attr-defined]
    r = client.get(mangle(url))
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "permission_error"


def test_an_expired_link_is_403_and_a_deleted_file_404(client: TestClient) -> None:
    files = client.app.state.gateway.files  # type: ignore[attr-defined]
    file_id = store(client)
    expired = files.signed_url(file_id, "http://testserver", now=time.time() - 7200)
    assert client.get(expired).status_code == 403
    fresh = files.signed_url(file_id, "http://testserver")
    client.portal.call(files.delete, file_id)  # type: ignore[union-attr]
    r = client.get(fresh)
    assert r.status_code == 404 and r.json()["error"]["code"] == "file_not_found"
    unknown = files.signed_url("f_" + "0" * 24, "http://testserver")
    assert client.get(unknown).status_code == 404


def test_the_generated_signing_key_survives_a_restart(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/ccapi.db", master_key=MASTER, files_dir=tmp_path / "files"
    )
    urls = []
    for _ in range(2):
        with TestClient(create_app(settings)) as c:
            urls.append(c.app.state.gateway.files.signed_url("f_" + "1" * 24, "http://t", now=1.0))  # type: ignore[attr-defined]
    assert urls[0] == urls[1]


def test_an_unreachable_bucket_is_503_and_the_link_stays_valid(tmp_path: Path) -> None:
    nowhere = S3Server(f"http://127.0.0.1:{free_port()}", "ccapi-nowhere")
    backend = s3_settings(nowhere)
    backend["s3"]["timeout"] = 2  # type: ignore[index]
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/ccapi.db", master_key=MASTER, **backend)
    with TestClient(create_app(settings)) as c:
        url = c.app.state.gateway.files.signed_url("f_" + "2" * 24, "http://testserver")  # type: ignore[attr-defined]
        r = c.get(url)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "file_storage_unavailable"
    assert "secret" not in r.text
