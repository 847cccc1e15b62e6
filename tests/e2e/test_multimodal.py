"""POST /images/generate through the real gateway and simulator processes:
every operation against a Gemini image model, input images by URL (from a
local server, allowed by CCAPI_ALLOW_PRIVATE_URLS) and inline, signed PNG
links, 400s naming the field, the ledger row, and the SSRF refusal on a
gateway without the allow flag."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from ccapi.jobs.store import JobStore
from ccapi.sim.images import png
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODEL = "google/gemini-3-pro-image"  # $0.134 per image
INPUT_PNG = png(8, 8, 42)
DATA = {"data": base64.b64encode(INPUT_PNG).decode(), "mime_type": "image/png"}


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    """A local aiohttp server on 127.0.0.1 serving an input image (and a non-image)."""

    async def cat(_: web.Request) -> web.Response:
        return web.Response(body=INPUT_PNG, content_type="image/png")

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="hello", content_type="text/plain")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes([web.get("/cat.png", cat), web.get("/hello.txt", text)])
    runner = web.AppRunner(app)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def mm(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("multimodal")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url, CCAPI_DATABASE_URL=url, CCAPI_FILES_DIR=str(tmp / "files"), CCAPI_ALLOW_PRIVATE_URLS="true"
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-multimodal") as gw:
        yield gw, Accounts(url)


def post(gw: ServerProcess, body: dict[str, Any], key: str = MASTER, path: str = "/images/generate") -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def cases(server: str) -> list[tuple[list[dict[str, Any]], str]]:
    return [
        ([{"text": "a watercolor fox"}], "text-to-image"),
        ([{"text": "Put a hat on this cat"}, {"image": {"url": f"{server}/cat.png"}}], "image-to-image"),
        ([{"text": "Make it night"}, {"image": DATA}], "image-to-image"),
        ([{"text": "Blend these"}, {"image": {"url": f"{server}/cat.png"}}, {"image": DATA}], "multi-image"),
        ([{"text": "Replace the sky"}, {"image": DATA, "mask": DATA}], "inpainting"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_each_operation_answers_a_downloadable_png(
    mm: tuple[ServerProcess, Accounts], image_server: str, index: int
) -> None:
    gw, _ = mm
    contents, operation = cases(image_server)[index]
    resp = post(gw, {"model": MODEL, "contents": contents, "parameters": {"aspect_ratio": "16:9", "seed": 7}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {
        "id", "created", "model", "status", "execution", "data", "poll_url", "estimated_time", "error", "usage"
    }  # fmt: skip
    assert body["id"].startswith("imgjob_")
    assert body["model"] == MODEL
    assert body["status"] == "succeeded"
    assert body["execution"] == {"mode": "sync", "operation": operation, "provider": "google"}
    assert body["poll_url"] is None and body["estimated_time"] is None and body["error"] is None
    assert body["usage"] == {"images": 1, "cost": 0.134}
    [datum] = body["data"]
    assert datum == {"url": datum["url"], "b64_json": None, "revised_prompt": None, "seed": None}
    assert datum["url"].startswith(gw.url + "/files/f_")
    image = httpx.get(datum["url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG_MAGIC)


def test_num_images_b64_and_the_v1_prefix(mm: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = mm
    body = {
        "model": "google/gemini-nano-banana-2.1",
        "contents": [{"text": "three lighthouses"}],
        "parameters": {"num_images": 3, "response_format": "b64_json"},
    }
    resp = post(gw, body, path="/v1/images/generate")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["usage"] == {"images": 3, "cost": 0.1008}
    assert len(out["data"]) == 3
    for datum in out["data"]:
        assert datum["url"] is None
        assert base64.b64decode(datum["b64_json"]).startswith(PNG_MAGIC)


def test_one_ledger_row_charged_exactly(mm: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = mm
    account = accounts.account("1.00")
    key_id, secret = accounts.key(account)
    resp = post(gw, {"model": MODEL, "contents": [{"text": "x"}], "parameters": {"num_images": 2}}, key=secret)
    assert resp.status_code == 200, resp.text
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert row["route"] == "/images/generate"
    assert row["status"] == 200
    assert row["model"] == MODEL
    assert row["provider"] == "google"
    assert Decimal(str(row["cost"])) == Decimal("0.268")
    assert accounts.balance(account) == (Decimal("0.732"), Decimal(0))


def test_too_little_credit_is_402(mm: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = mm
    _, secret = accounts.key(accounts.account("0.10"))
    resp = post(gw, {"model": MODEL, "contents": [{"text": "x"}]}, key=secret)
    assert resp.status_code == 402, resp.text
    assert resp.json()["error"]["details"] == {"needed": 0.134, "available": 0.1}


NOT_AN_IMAGE = {"data": base64.b64encode(b"plain text, not an image").decode(), "mime_type": "image/png"}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"contents": []}, 400, "contents"),
        ({"contents": [{"mask": DATA}]}, 400, "contents"),
        ({"contents": [{}]}, 400, "contents"),
        ({"contents": [{"text": "x"}, {"image": NOT_AN_IMAGE}]}, 400, "contents[1].image"),
        ({"contents": [{"text": "x"}, {"image": {"data": "%%%", "mime_type": "image/png"}}]}, 400, "contents[1].image"),
        ({"contents": [{"text": "x", "image": DATA, "mask": NOT_AN_IMAGE}]}, 400, "contents[0].mask"),
        ({"contents": [{"text": "x"}, {"text": "y", "mask": DATA}]}, 400, "contents[1].mask"),
        ({"contents": [{"image": {"url": "{server}/hello.txt"}}]}, 400, "contents[0].image.url"),
        ({"contents": [{"image": {"url": "ftp://example.com/a.png"}}]}, 400, "contents[0].image.url"),
        ({"parameters": {"num_images": 0}}, 400, "parameters.num_images"),
        ({"parameters": {"num_images": 11}}, 400, "parameters.num_images"),
        ({"parameters": {"num_images": "2"}}, 400, "parameters.num_images"),
        ({"parameters": {"width": 512}}, 400, "parameters.width"),
        ({"parameters": {"steps": 20}}, 400, "parameters.steps"),
        ({"parameters": {"guidance_scale": 7.5}}, 400, "parameters.guidance_scale"),
        ({"parameters": {"negative_prompt": "blur"}}, 400, "parameters.negative_prompt"),
        ({"parameters": {"strength": 0.4}}, 400, "parameters.strength"),
        ({"parameters": {"aspect_ratio": "7:3"}}, 400, "parameters.aspect_ratio"),
        ({"parameters": {"response_format": "png"}}, 400, "parameters.response_format"),
        ({"parameters": {"surprise": 1}}, 400, "parameters.surprise"),
        ({"async": "yes"}, 400, "async"),
        ({"async": True, "webhook_url": "https://example.com/hook"}, 400, "webhook_url"),
        ({"webhook_url": "https://example.com/hook"}, 400, "webhook_url"),
        ({"model": "google/no-such-image-model"}, 404, "model"),
        ({"model": "google/gemini-2.5-flash"}, 400, "model"),
        ({"model": "stability/stable-diffusion-xl-1024-v1-0"}, 400, "model"),
    ],
)
def test_bad_input_is_an_envelope_naming_the_field(
    mm: tuple[ServerProcess, Accounts], image_server: str, body: dict[str, Any], status: int, param: str
) -> None:
    gw, _ = mm
    full = {"model": MODEL, "contents": [{"text": "x"}], **body}
    for content in full["contents"]:
        image = content.get("image") if isinstance(content, dict) else None
        if isinstance(image, dict) and "url" in image:
            image["url"] = image["url"].replace("{server}", image_server)
    resp = post(gw, full)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param", "details"}
    assert error["param"] == param
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:1/cat.png"])
def test_a_private_url_is_refused_without_the_allow_flag(gateway: ServerProcess, url: str) -> None:
    body = {"model": MODEL, "contents": [{"text": "x"}, {"image": {"url": url}}]}
    resp = post(gateway, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == "contents[1].image.url"
    assert error["code"] == "unsafe_url"


def test_openapi_documents_the_route(mm: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = mm
    doc = httpx.get(gw.url + "/openapi.json").json()
    assert "/images/generate" in doc["paths"]
    assert "MultimodalImageGenerationRequest" in doc["components"]["schemas"]


def test_an_async_inpainting_job_runs_on_the_stored_input_images(
    mm: tuple[ServerProcess, Accounts], image_server: str
) -> None:
    gw, accounts = mm
    contents = [{"text": "Replace the sky"}, {"image": {"url": f"{image_server}/cat.png"}, "mask": DATA}]
    resp = post(gw, {"model": MODEL, "contents": contents, "async": True})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["execution"] == {"mode": "async", "operation": "inpainting", "provider": "google"}
    deadline = time.monotonic() + 20
    while (body := httpx.get(gw.url + job["poll_url"], headers={"Authorization": f"Bearer {MASTER}"}).json())[
        "status"
    ] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert body["status"] == "succeeded", body
    assert body["usage"] == {"images": 1, "cost": 0.134}
    assert httpx.get(body["data"][0]["url"]).content.startswith(PNG_MAGIC)
    stored = accounts.run(lambda s: JobStore(s).get(job["id"]))
    # The job row keeps the inputs as stored files, not the request's base64.
    assert DATA["data"] not in orjson.dumps(stored.request).decode()
    assert [c.get("image", {}).get("url", "")[:11] for c in stored.request["contents"]] == ["", "ccapi-file:"]
