"""POST /images/generations for Google Imagen and Black Forest Labs FLUX through the
real gateway and simulator processes: a synchronous request to a submit-then-poll
model answers when its task is ready, the images are re-hosted, failed or moderated
tasks are enveloped errors with their ledger row, and the OpenAI SDK works with both."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows
from .test_images import PNG_MAGIC, generate

IMAGEN_CATALOG = Path(__file__).parents[1] / "catalogs" / "imagen.yaml"


@pytest.fixture(scope="module")
def gateway(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("images-bfl")
    url = f"sqlite:///{tmp}/ccapi.db"
    env = gateway_env(
        sim.url,
        CCAPI_DATABASE_URL=url,
        CCAPI_FILES_DIR=str(tmp / "files"),
        # A sync request to a BFL model waits for its task: give the polling room.
        CCAPI_ATTEMPT_TIMEOUT="15",
        BFL_API_KEY="sim-bfl",
        CCAPI_BFL_BASE_URL=sim.url,
        CCAPI_CATALOG_FILES=json.dumps([str(IMAGEN_CATALOG)]),
    )
    with run_ccapi(["serve"], env=env, tmp_path=tmp, name="gateway-images-bfl") as gw:
        yield gw, Accounts(url)


def sim_stats(sim: ServerProcess) -> dict[str, object]:
    stats: dict[str, object] = httpx.get(sim.url + "/_sim/stats").json()
    return stats


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_a_bfl_model_answers_synchronously_once_its_task_is_ready(
    gateway: tuple[ServerProcess, Accounts], sim: ServerProcess, response_format: str
) -> None:
    gw, _ = gateway
    prompt = f"a fox in the snow ({response_format})"
    body = {"model": "bfl/flux-pro-1.1", "prompt": prompt, "size": "1024x768", "response_format": response_format}
    resp = generate(gw, body)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    assert payload["provider"] == "bfl" and payload["model"] == "bfl/flux-pro-1.1"
    assert payload["usage"] == {"images": 1, "cost": 0.04}
    [datum] = payload["data"]
    assert isinstance(datum["seed"], int)
    if response_format == "url":
        assert datum["url"].startswith(gw.url + "/files/")  # re-hosted, never the upstream's signed link
        assert httpx.get(datum["url"]).content.startswith(PNG_MAGIC)
    else:
        assert datum["url"] is None
        assert base64.b64decode(datum["b64_json"]).startswith(PNG_MAGIC)
    assert sim_stats(sim)["bfl_submissions"][prompt] == 1  # type: ignore[index]


def test_n_bfl_images_are_n_tasks_and_an_aspect_ratio_model_takes_a_size(
    gateway: tuple[ServerProcess, Accounts], sim: ServerProcess
) -> None:
    gw, _ = gateway
    prompt = "three lighthouses"
    resp = generate(gw, {"model": "bfl/flux-pro-1.1-ultra", "prompt": prompt, "n": 3, "size": "1024x1024"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"] == {"images": 3, "cost": 0.18}
    assert len({d["url"] for d in resp.json()["data"]}) == 3
    assert sim_stats(sim)["bfl_submissions"][prompt] == 3  # type: ignore[index]


def test_a_slow_bfl_task_still_answers(gateway: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = gateway
    resp = generate(gw, {"model": "bfl/flux-dev", "prompt": "a slow tortoise [sim:pending_ms=2500]"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["images"] == 1


@pytest.mark.parametrize(
    ("job_status", "status", "error_type"),
    [("Error", 502, "upstream_error"), ("Content Moderated", 400, "invalid_request_error")],
)
def test_a_failed_bfl_task_is_an_envelope_with_a_ledger_row(
    gateway: tuple[ServerProcess, Accounts], job_status: str, status: int, error_type: str
) -> None:
    gw, accounts = gateway
    account = accounts.account("1.00")
    key_id, secret = accounts.key(account)
    body = {"model": "bfl/flux-pro-1.1", "prompt": f"a fox [sim:job_status={job_status}]"}
    resp = generate(gw, body, key=secret)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["type"] == error_type
    assert job_status in error["message"]
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert row["status"] == status and row["model"] == "bfl/flux-pro-1.1"
    assert Decimal(str(row["cost"])) == 0
    assert accounts.balance(account) == (Decimal("1.00"), Decimal(0))


def test_a_bfl_unsupported_parameter_is_a_400_naming_it(gateway: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = gateway
    resp = generate(gw, {"model": "bfl/flux-pro-1.1", "prompt": "x", "quality": "hd"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "quality"


def test_imagen_generates_n_images_charged_per_image(gateway: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = gateway
    account = accounts.account("1.00")
    key_id, secret = accounts.key(account)
    body = {"model": "google/imagen-4.0-generate-001", "prompt": "a koi pond", "n": 3, "size": "16:9"}
    resp = generate(gw, body, key=secret)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    assert payload["provider"] == "google"
    assert payload["usage"] == {"images": 3, "cost": 0.12}
    assert all(httpx.get(d["url"]).content.startswith(PNG_MAGIC) for d in payload["data"])
    [row] = wait_for_rows(accounts, 1, key_id=key_id)
    assert Decimal(str(row["cost"])) == Decimal("0.12")
    resp = generate(gw, {**body, "n": 5})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "n"


@pytest.mark.parametrize("model", ["bfl/flux-kontext-pro", "google/imagen-4.0-fast-generate-001"])
def test_the_openai_sdk_generates_with_bfl_and_imagen(gateway: tuple[ServerProcess, Accounts], model: str) -> None:
    gw, _ = gateway
    client = openai.OpenAI(api_key=MASTER, base_url=f"{gw.url}/v1", max_retries=0, timeout=30)
    result = client.images.generate(model=model, prompt="a paper crane", n=1, size="1024x1024")
    assert result.data is not None and len(result.data) == 1
    assert httpx.get(result.data[0].url or "").content.startswith(PNG_MAGIC)
    b64 = client.images.generate(model=model, prompt="a paper crane", response_format="b64_json")
    assert b64.data is not None and base64.b64decode(b64.data[0].b64_json or "").startswith(PNG_MAGIC)


def test_a_bfl_job_polls_its_task_and_submits_it_once(
    gateway: tuple[ServerProcess, Accounts], sim: ServerProcess
) -> None:
    gw, _ = gateway
    prompt = "a job fox [sim:pending_ms=800]"
    resp = generate(gw, {"model": "bfl/flux-pro-1.1", "prompt": prompt, "n": 2, "async": True})
    assert resp.status_code == 202, resp.text
    poll = gw.url + resp.headers["location"]
    deadline = time.monotonic() + 20
    job = resp.json()
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = httpx.get(poll, headers={"Authorization": f"Bearer {MASTER}"}).json()
    assert job["status"] == "succeeded", job
    assert len(job["data"]) == 2 and job["usage"] == {"images": 2, "cost": 0.08}
    assert sim_stats(sim)["bfl_submissions"][prompt] == 2  # type: ignore[index]
