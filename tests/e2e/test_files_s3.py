"""The real gateway with its files in an S3 bucket (moto's real S3 endpoint on
127.0.0.1), in front of the real simulator: generated images and speech land
in the bucket and their signed links serve them without a bearer header."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ccapi.files.store import FileStore
from tests.infra import S3Server, in_ci, s3
from tests.support import ServerProcess, run_ccapi

from .conftest import AUTH, gateway_env

__all__ = ["s3"]

SIGNING_KEY = "s3-e2e-signing-key"
PREFIX = "gw/files/"


@pytest.fixture(scope="module")
def s3_gateway(sim: ServerProcess, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("files-s3")
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=f"sqlite:///{tmp}/ccapi.db",
        CCAPI_FILE_SIGNING_KEY=SIGNING_KEY,
        STABILITY_API_KEY="sk-sim-stability",
        CCAPI_STABILITY_BASE_URL=sim.url,
        ELEVENLABS_API_KEY="sk-sim-elevenlabs",
        CCAPI_ELEVENLABS_BASE_URL=sim.url,
        **s3.gateway_env(PREFIX),
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-files-s3") as gw:
        yield gw
        assert s3.secret_access_key not in gw.output()
    assert not list(tmp.glob("data/files/*")), "no file may be written to the local directory"


def file_id_of(url: str) -> str:
    return url.split("/files/")[1].split("?")[0]


def test_a_generated_image_is_kept_in_the_bucket_and_served_by_its_link(
    s3_gateway: ServerProcess, s3: S3Server
) -> None:
    body = {"model": "stability/stable-diffusion-xl-1024-v1-0", "prompt": "a lighthouse", "n": 1}
    resp = httpx.post(f"{s3_gateway.url}/v1/images/generations", json=body, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    url = resp.json()["data"][0]["url"]
    assert url.startswith(f"{s3_gateway.url}/files/f_")

    image = httpx.get(url, timeout=10)  # no bearer header
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert s3.objects()[PREFIX + file_id_of(url)] == ("image/png", image.content)


def test_speech_is_kept_in_the_bucket_and_served_by_its_link(s3_gateway: ServerProcess, s3: S3Server) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        reason = "espeak-ng and ffmpeg are needed for speech (scripts/dev test installs them)"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    body = {"model": "elevenlabs/eleven_turbo_v2", "input": "Files live in the bucket.", "voice": "aria"}
    resp = httpx.post(f"{s3_gateway.url}/v1/audio/speech", json=body, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    url = resp.json()["audio_url"]

    audio = httpx.get(url, timeout=10)
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    assert int(audio.headers["content-length"]) == len(audio.content) > 1000
    assert s3.objects()[PREFIX + file_id_of(url)] == ("audio/mpeg", audio.content)


def test_tampered_and_expired_links_are_403_and_a_deleted_object_404(s3_gateway: ServerProcess, s3: S3Server) -> None:
    body = {"model": "stability/stable-diffusion-xl-1024-v1-0", "prompt": "a harbour", "n": 1}
    resp = httpx.post(f"{s3_gateway.url}/v1/images/generations", json=body, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    url = resp.json()["data"][0]["url"]
    file_id = file_id_of(url)

    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert httpx.get(tampered, timeout=10).status_code == 403
    # Rightly signed with the gateway's key, but an hour past its expiry.
    signer = FileStore(Path("unused"), ttl=1)
    signer.use_key(SIGNING_KEY.encode())
    expired = signer.signed_url(file_id, s3_gateway.url, now=time.time() - 3600)
    r = httpx.get(expired, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"

    s3.client().delete_object(Bucket=s3.bucket, Key=PREFIX + file_id)
    gone = httpx.get(url, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "file_not_found"
