"""POST /images/generate with OpenAI GPT image and Stability AI models, and
POST /images/edits (OpenAI's multipart shape, with the official `openai`
SDK), through the real gateway and simulator processes: every operation,
`execution.operation`, 400s naming the field, ledger rows."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from ccapi.sim.images import png
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INPUT_PNG = png(8, 8, 42)
# A 1x1 RGBA PNG: a mask with an alpha channel, as OpenAI wants.
RGBA_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
)
DATA = {"data": base64.b64encode(INPUT_PNG).decode(), "mime_type": "image/png"}
MASK = {"data": base64.b64encode(RGBA_PNG).decode(), "mime_type": "image/png"}

TEXT = [{"text": "a watercolor fox"}]
ONE = [{"text": "make it night"}, {"image": DATA}]
TWO = [{"text": "blend these"}, {"image": DATA}, {"image": DATA}]
MASKED = [{"text": "replace the sky"}, {"image": DATA, "mask": MASK}]


@pytest.fixture(scope="module")
def gw(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("edits")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        CCAPI_FILES_DIR=str(tmp / "files"),
        STABILITY_API_KEY="sk-sim-stability",
        CCAPI_STABILITY_BASE_URL=sim.url,
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-edits") as server:
        yield server, Accounts(url)


def post(server: ServerProcess, body: dict[str, Any], key: str = MASTER) -> httpx.Response:
    return httpx.post(
        server.url + "/images/generate", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "operation", "provider", "cost"),
    [
        ("openai/gpt-image-1", TEXT, {}, "text-to-image", "openai", 0.042),
        ("openai/gpt-image-1", ONE, {"aspect_ratio": "1:1"}, "image-to-image", "openai", 0.042),
        ("openai/gpt-image-1", TWO, {"num_images": 2}, "multi-image", "openai", 0.084),
        ("openai/gpt-image-1", MASKED, {}, "inpainting", "openai", 0.042),
        ("stability/sd3.5-large", TEXT, {"aspect_ratio": "16:9", "seed": 7, "guidance_scale": 4.0}, "text-to-image",
         "stability", 0.065),
        ("stability/stable-image-core", TEXT, {"negative_prompt": "blur"}, "text-to-image", "stability", 0.03),
        ("stability/sd3.5-large", ONE, {"strength": 0.4, "num_images": 2}, "image-to-image", "stability", 0.13),
        ("stability/stable-image-ultra", ONE, {}, "image-to-image", "stability", 0.08),
        ("stability/stable-image-inpaint", MASKED, {"seed": 3}, "inpainting", "stability", 0.05),
    ],
)  # fmt: skip
def test_each_operation(
    gw: tuple[ServerProcess, Accounts],
    model: str,
    contents: list[dict[str, Any]],
    parameters: dict[str, Any],
    operation: str,
    provider: str,
    cost: float,
) -> None:
    server, _ = gw
    resp = post(server, {"model": model, "contents": contents, "parameters": parameters})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "succeeded"
    assert body["execution"] == {"mode": "sync", "operation": operation, "provider": provider}
    assert body["usage"] == {"images": parameters.get("num_images", 1), "cost": cost}
    for datum in body["data"]:
        image = httpx.get(datum["url"])
        assert image.status_code == 200
        assert image.content.startswith(PNG_MAGIC)


def test_token_priced_edit_is_charged_from_usage(gw: tuple[ServerProcess, Accounts]) -> None:
    server, accounts = gw
    account = accounts.account("1.00")
    key_id, secret = accounts.key(account)
    resp = post(server, {"model": "openai/gpt-image-2", "contents": [{"text": "xxxx"}, {"image": DATA}]}, key=secret)
    assert resp.status_code == 200, resp.text
    # The simulator's usage: 1 text + 388 image input tokens ($5/M), 1056 output tokens ($30/M).
    expected = Decimal(389) * 5 / 10**6 + Decimal(1056) * 30 / 10**6
    assert abs(Decimal(str(resp.json()["usage"]["cost"])) - expected) < Decimal("0.00001")
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert (row["route"], row["status"], row["model"], row["provider"]) == (
        "/images/generate",
        200,
        "openai/gpt-image-2",
        "openai",
    )
    assert abs(Decimal(str(row["cost"])) - expected) < Decimal("0.00001")


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "param"),
    [
        ("openai/gpt-image-1", TEXT, {"seed": 7}, "parameters.seed"),
        ("openai/gpt-image-1", TEXT, {"negative_prompt": "blur"}, "parameters.negative_prompt"),
        ("openai/gpt-image-1", ONE, {"strength": 0.5}, "parameters.strength"),
        ("openai/gpt-image-1", TEXT, {"width": 640, "height": 480}, "parameters.width"),
        ("openai/gpt-image-1", [{"text": "x"}, {"image": DATA, "mask": DATA}], {}, "contents[1].mask"),  # no alpha
        ("openai/dall-e-3", ONE, {}, "contents[1].image"),
        ("stability/sd3.5-large", TEXT, {"steps": 30}, "parameters.steps"),
        ("stability/sd3.5-large", TEXT, {"width": 512}, "parameters.width"),
        ("stability/stable-image-ultra", TEXT, {"guidance_scale": 5.0}, "parameters.guidance_scale"),
        ("stability/sd3.5-large", ONE, {"aspect_ratio": "1:1"}, "parameters.aspect_ratio"),
        ("stability/sd3.5-large", MASKED, {}, "contents[1].mask"),  # no mask input (catalog)
        ("stability/stable-image-ultra", MASKED, {}, "contents[1].mask"),
        ("stability/sd3.5-large", TWO, {}, "contents[2].image"),
        ("stability/stable-image-core", ONE, {}, "contents[1].image"),
        ("stability/stable-image-inpaint", ONE, {}, "contents"),
        ("stability/stable-diffusion-xl-1024-v1-0", TEXT, {}, "model"),
        ("openai/gpt-6.2-sol", TEXT, {}, "model"),  # a chat model
    ],
)
def test_refusals_name_the_field_and_leave_a_row(
    gw: tuple[ServerProcess, Accounts],
    model: str,
    contents: list[dict[str, Any]],
    parameters: dict[str, Any],
    param: str,
) -> None:
    server, accounts = gw
    key_id, secret = accounts.key(accounts.account("1.00"))
    resp = post(server, {"model": model, "contents": contents, "parameters": parameters}, key=secret)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert row["status"] == 400 and row["route"] == "/images/generate"
    assert Decimal(str(row["cost"])) == 0


def sdk(server: ServerProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_openai_sdk_images_edit_with_a_mask(gw: tuple[ServerProcess, Accounts]) -> None:
    server, accounts = gw
    key_id, secret = accounts.key(accounts.account("1.00"))
    result = sdk(server, secret).images.edit(
        model="openai/gpt-image-1",
        image=("cat.png", INPUT_PNG, "image/png"),
        mask=("mask.png", RGBA_PNG, "image/png"),
        prompt="Put a hat on the cat",
        n=2,
        size="1024x1024",
        response_format="b64_json",
    )
    assert result.model_extra is not None
    assert result.model_extra["provider"] == "openai"
    assert result.model_extra["id"].startswith("img_")
    assert result.data is not None and len(result.data) == 2
    for datum in result.data:
        assert datum.b64_json is not None and base64.b64decode(datum.b64_json).startswith(PNG_MAGIC)
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert (row["route"], row["status"], row["model"]) == ("/images/edits", 200, "openai/gpt-image-1")
    assert Decimal(str(row["cost"])) == Decimal("0.084")


def test_openai_sdk_images_edit_several_images_and_stability(gw: tuple[ServerProcess, Accounts]) -> None:
    server, _ = gw
    client = sdk(server)
    result = client.images.edit(
        model="openai/gpt-image-1",
        image=[("a.png", INPUT_PNG, "image/png"), ("b.png", INPUT_PNG, "image/png")],
        prompt="Blend them",
    )
    assert result.data is not None and len(result.data) == 1
    url = result.data[0].url
    assert url is not None and httpx.get(url).content.startswith(PNG_MAGIC)
    inpainted = client.images.edit(
        model="stability/stable-image-inpaint",
        image=("a.png", INPUT_PNG, "image/png"),
        mask=("m.png", INPUT_PNG, "image/png"),
        prompt="a red door",
    )
    assert inpainted.data is not None and len(inpainted.data) == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"mask": ("m.png", INPUT_PNG, "image/png")}, "mask"),  # no alpha channel
        ({"image": ("a.txt", b"not an image", "text/plain")}, "image"),
        ({"n": 11}, "n"),
        ({"size": "640x480"}, "size"),
        ({"quality": "high"}, "quality"),
        ({"model": "stability/sd3.5-large"}, "mask"),
    ],
)
def test_openai_sdk_edit_errors_name_the_form_field(
    gw: tuple[ServerProcess, Accounts], kwargs: dict[str, Any], param: str
) -> None:
    server, _ = gw
    args: dict[str, Any] = {
        "model": "openai/gpt-image-1",
        "image": ("a.png", INPUT_PNG, "image/png"),
        "mask": ("m.png", RGBA_PNG, "image/png"),
        "prompt": "x",
        **kwargs,
    }
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).images.edit(**args)
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == param


def test_edits_needs_multipart(gw: tuple[ServerProcess, Accounts]) -> None:
    server, _ = gw
    resp = httpx.post(
        server.url + "/images/edits",
        json={"model": "openai/gpt-image-1"},
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"
