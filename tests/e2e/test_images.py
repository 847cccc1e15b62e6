"""POST /images/generations through the real gateway and simulator processes:
real PNGs re-hosted behind signed links, OpenAI SDK compatibility, 400s naming
the field, the ledger row and its cost, and upstream failures as 502."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXAMPLE = {
    "model": "stability/stable-diffusion-xl-1024-v1-0",
    "prompt": "photorealistic drone shot of a solar farm at sunrise",
    "n": 2,
    "size": "1024x1024",
}


@pytest.fixture(scope="module")
def imaging(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("images")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        STABILITY_API_KEY="sk-sim-stability",
        CCAPI_STABILITY_BASE_URL=sim.url,
        CCAPI_FILES_DIR=str(tmp / "files"),
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-images") as gw:
        yield gw, Accounts(url)


@pytest.fixture(scope="module")
def failing(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("images-failing")
    env = gateway_env(
        sim.url,
        CCAPI_OPENAI_BASE_URL=f"{sim.url}/_fault/status=500/v1",
        STABILITY_API_KEY="k",
        CCAPI_STABILITY_BASE_URL=f"{sim.url}/_fault/status=503",
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-images-failing") as gw:
        yield gw


def generate(
    gw: ServerProcess, body: dict[str, Any], key: str = MASTER, path: str = "/images/generations"
) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_contract_example_answers_two_downloadable_pngs(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = imaging
    resp = generate(gw, EXAMPLE)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"].startswith("img_")
    assert body["model"] == "stability/stable-diffusion-xl-1024-v1-0"
    assert body["provider"] == "stability"
    assert body["revised_prompt"] is None
    assert body["usage"] == {"images": 2, "cost": 0.004}
    assert resp.headers["x-ccapi-provider"] == "stability"
    assert resp.headers["x-ccapi-model"] == "stability/stable-diffusion-xl-1024-v1-0"
    assert resp.headers["x-ccapi-attempts"] == "1"
    assert len(body["data"]) == 2
    for datum in body["data"]:
        assert set(datum) == {"url", "b64_json", "revised_prompt", "seed"}
        assert datum["b64_json"] is None
        assert isinstance(datum["seed"], int)
        assert datum["url"].startswith(gw.url + "/files/f_")
        image = httpx.get(datum["url"])  # no bearer: the signature is the authorization
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG_MAGIC)
    assert body["data"][0]["url"] != body["data"][1]["url"]


def test_v1_prefix_and_stability_v2beta_with_a_size_as_aspect_ratio(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = imaging
    body = {"model": "stability/stable-image-core", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"}
    resp = generate(gw, body, path="/v1/images/generations")
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"] == {"images": 2, "cost": 0.06}
    resp = generate(gw, {**body, "n": 1, "size": "16:9", "response_format": "b64_json"})
    assert resp.status_code == 200, resp.text
    datum = resp.json()["data"][0]
    assert datum["url"] is None
    assert base64.b64decode(datum["b64_json"]).startswith(PNG_MAGIC)


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_the_openai_sdk_generates_with_a_current_gpt_image_model(
    imaging: tuple[ServerProcess, Accounts], response_format: str
) -> None:
    gw, _ = imaging
    client = openai.OpenAI(api_key=MASTER, base_url=f"{gw.url}/v1", max_retries=0)
    result = client.images.generate(
        model="openai/gpt-image-2",
        prompt="a watercolor fox",
        n=1,
        size="1024x1024",
        quality="low",
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert result.data is not None and len(result.data) == 1
    datum = result.data[0]
    if response_format == "b64_json":
        assert datum.url is None
        assert base64.b64decode(datum.b64_json or "").startswith(PNG_MAGIC)
    else:
        assert datum.b64_json is None
        assert httpx.get(datum.url or "").content.startswith(PNG_MAGIC)


def test_an_upstream_link_is_fetched_and_rehosted(imaging: tuple[ServerProcess, Accounts], sim: ServerProcess) -> None:
    gw, _ = imaging
    resp = generate(gw, {"model": "openai/dall-e-3", "prompt": "a red kite", "style": "natural", "quality": "hd"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    datum = body["data"][0]
    assert datum["url"].startswith(gw.url + "/files/")  # ours, never the simulator's link
    assert sim.url not in datum["url"]
    assert datum["revised_prompt"] == body["revised_prompt"] == "A detailed image: a red kite"
    assert body["usage"] == {"images": 1, "cost": 0.08}
    assert httpx.get(datum["url"]).content.startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({**EXAMPLE, "prompt": ""}, 400, "prompt"),
        ({**EXAMPLE, "n": 0}, 400, "n"),
        ({**EXAMPLE, "n": 11}, 400, "n"),
        ({**EXAMPLE, "n": "2"}, 400, "n"),
        ({**EXAMPLE, "size": "512x512"}, 400, "size"),
        ({**EXAMPLE, "style": "vivid"}, 400, "style"),
        ({**EXAMPLE, "quality": "hd"}, 400, "quality"),
        ({**EXAMPLE, "output_format": "webp"}, 400, "output_format"),
        ({**EXAMPLE, "response_format": "png"}, 400, "response_format"),
        ({**EXAMPLE, "webhook_url": "https://example.com/hook"}, 400, "webhook_url"),
        ({**EXAMPLE, "async": True, "webhook_url": "https://example.com/hook"}, 400, "webhook_url"),
        ({**EXAMPLE, "async": "yes"}, 400, "async"),
        ({**EXAMPLE, "surprise": 1}, 400, "surprise"),
        ({"prompt": "x"}, 400, "model"),
        ({"model": "openai/gpt-image-2", "prompt": "x", "style": "vivid"}, 400, "style"),
        ({"model": "openai/gpt-image-2", "prompt": "x", "quality": "hd"}, 400, "quality"),
        ({"model": "openai/gpt-image-2", "prompt": "x", "background": "transparent"}, 400, "background"),
        ({"model": "openai/dall-e-3", "prompt": "x", "n": 2}, 400, "n"),
        ({"model": "openai/dall-e-3", "prompt": "x", "quality": "low"}, 400, "quality"),
        ({"model": "openai/dall-e-3", "prompt": "x", "output_format": "png"}, 400, "output_format"),
        ({**EXAMPLE, "model": "openai/no-such-image-model"}, 404, "model"),
        ({**EXAMPLE, "model": "nope/model"}, 404, "model"),
        ({**EXAMPLE, "model": "openai/gpt-4o-mini"}, 400, "model"),
    ],
)
def test_bad_input_is_an_envelope_naming_the_field(
    imaging: tuple[ServerProcess, Accounts], body: dict[str, Any], status: int, param: str
) -> None:
    gw, _ = imaging
    resp = generate(gw, body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param", "details"}
    assert error["param"] == param
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_no_key_is_401(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = imaging
    resp = httpx.post(gw.url + "/images/generations", json=EXAMPLE, timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


def test_an_accounts_call_leaves_one_ledger_row_and_is_charged_exactly(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = imaging
    account = accounts.account("1.00")
    key_id, secret = accounts.key(account)
    resp = generate(gw, EXAMPLE, key=secret)
    assert resp.status_code == 200, resp.text
    rows = wait_for_rows(accounts, 1, key_id=key_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["route"] == "/images/generations"
    assert row["status"] == 200
    assert row["model"] == "stability/stable-diffusion-xl-1024-v1-0"
    assert row["provider"] == "stability"
    assert Decimal(str(row["cost"])) == Decimal("0.004")
    balance, reserved = accounts.balance(account)
    assert balance == Decimal("0.996")
    assert reserved == 0


def test_a_token_priced_model_is_charged_from_the_upstream_usage(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = imaging
    account = accounts.account("5.00")
    key_id, secret = accounts.key(account)
    body = {"model": "openai/gpt-image-2", "prompt": "abcdefgh", "size": "1024x1024", "quality": "high"}
    resp = generate(gw, body, key=secret)
    assert resp.status_code == 200, resp.text
    # The simulator reports 4160 output tokens ($30/M) and 2 input tokens ($5/M).
    expected = Decimal(4160) * Decimal(30) / 1_000_000 + Decimal(2) * Decimal(5) / 1_000_000
    assert Decimal(str(resp.json()["usage"]["cost"])) == expected
    row = wait_for_rows(accounts, 1, key_id=key_id)[0]
    assert Decimal(str(row["cost"])) == expected
    assert accounts.balance(account) == (Decimal("5.00") - expected, Decimal(0))


def test_too_little_credit_is_402_before_any_upstream_call(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = imaging
    account = accounts.account("0.001")
    _, secret = accounts.key(account)
    resp = generate(gw, EXAMPLE, key=secret)
    assert resp.status_code == 402, resp.text
    assert resp.json()["error"]["details"] == {"needed": 0.004, "available": 0.001}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "openai/gpt-image-2", "prompt": "x"}, 500),
        (EXAMPLE, 503),
    ],
)
def test_an_upstream_failure_is_502_with_the_attempt(failing: ServerProcess, body: dict[str, Any], status: int) -> None:
    resp = generate(failing, body)
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["type"] == "upstream_error"
    [attempt] = error["details"]["attempts"]
    assert attempt["status"] == status
    assert resp.headers["x-ccapi-attempts"] == "1"


def test_openapi_documents_the_route(imaging: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = imaging
    doc = httpx.get(gw.url + "/openapi.json").json()
    assert "/images/generations" in doc["paths"]
    assert "LegacyImageGenerationRequest" in doc["components"]["schemas"]
