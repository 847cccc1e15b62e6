"""Google Imagen (Gemini API `:predict`) and Black Forest Labs (submit-then-poll) on
/images/generations: the parameter rules, the translation both ways, and the BFL
polling loop against the in-process simulator (resumed tasks are not submitted again)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ccapi.api.validation import validate_body
from ccapi.catalog.catalog import Catalog
from ccapi.core.errors import InvalidRequestError
from ccapi.media.images import (
    AttemptFailed,
    BadUpstreamAnswer,
    BflTask,
    RawImage,
    bfl_body,
    bfl_poll_delays,
    call_images,
    check_params,
    imagen_body,
    parse_bfl_result,
    parse_bfl_task,
    parse_imagen,
    reservation,
)
from ccapi.media.upstream_task import UPSTREAM_TASK, UpstreamTaskHooks
from ccapi.providers.registry import ProviderConfig
from ccapi.schemas.images import LegacyImageGenerationRequest
from ccapi.sim.images import png
from ccapi.sim.server import SIM_STATE, create_sim_app

CATALOG = Catalog.load([Path(__file__).parents[1] / "catalogs" / "imagen.yaml"])
IMAGEN = "google/imagen-4.0-generate-001"
IMAGEN_FAST = "google/imagen-4.0-fast-generate-001"
PNG = png(2, 2, 7)


def request(**fields: Any) -> LegacyImageGenerationRequest:
    return validate_body(LegacyImageGenerationRequest, {"prompt": "a cat", **fields})


def checked(name: str, **fields: Any) -> Any:
    return check_params(request(model=name, **fields), CATALOG.models[name])


@pytest.mark.parametrize(
    ("name", "fields", "param"),
    [
        (IMAGEN, {"quality": "hd"}, "quality"),
        (IMAGEN, {"style": "vivid"}, "style"),
        (IMAGEN, {"background": "opaque"}, "background"),
        (IMAGEN, {"moderation": "low"}, "moderation"),
        (IMAGEN, {"n": 5}, "n"),
        (IMAGEN, {"output_format": "webp"}, "output_format"),
        (IMAGEN, {"output_compression": 80, "output_format": "png"}, "output_compression"),
        (IMAGEN, {"size": "1024x512"}, "size"),
        (IMAGEN, {"size": "3:2"}, "size"),
        (IMAGEN_FAST, {"size": "2048x2048"}, "size"),
        ("bfl/flux-pro-1.1", {"quality": "hd"}, "quality"),
        ("bfl/flux-pro-1.1", {"style": "natural"}, "style"),
        ("bfl/flux-pro-1.1", {"background": "transparent"}, "background"),
        ("bfl/flux-pro-1.1", {"output_compression": 50, "output_format": "jpeg"}, "output_compression"),
        ("bfl/flux-pro-1.1", {"moderation": "low"}, "moderation"),
        ("bfl/flux-pro-1.1", {"output_format": "webp"}, "output_format"),
        ("bfl/flux-pro-1.1", {"n": 5}, "n"),
        ("bfl/flux-pro-1.1", {"size": "512x512"}, "size"),
        ("bfl/flux-pro-1.1-ultra", {"size": "1024x512"}, "size"),
        ("bfl/flux-pro-1.0-fill", {}, "model"),
    ],
)
def test_a_parameter_the_model_cannot_take_is_a_400_naming_it(name: str, fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        checked(name, **fields)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("name", "fields", "parameters"),
    [
        (IMAGEN, {}, {"sampleCount": 1, "aspectRatio": "1:1", "includeRaiReason": True}),
        (IMAGEN, {"n": 4, "size": "16:9"}, {"sampleCount": 4, "aspectRatio": "16:9", "includeRaiReason": True}),
        (IMAGEN, {"size": "1024x1024"}, {"sampleCount": 1, "aspectRatio": "1:1", "includeRaiReason": True}),
        (
            IMAGEN,
            {"size": "2048x2048"},
            {"sampleCount": 1, "aspectRatio": "1:1", "includeRaiReason": True, "sampleImageSize": "2K"},
        ),
        (
            IMAGEN,
            {"output_format": "jpeg", "output_compression": 70},
            {
                "sampleCount": 1,
                "aspectRatio": "1:1",
                "includeRaiReason": True,
                "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 70},
            },
        ),
        (
            IMAGEN_FAST,
            {"size": "1280x960", "output_format": "png"},
            {
                "sampleCount": 1,
                "aspectRatio": "4:3",
                "includeRaiReason": True,
                "outputOptions": {"mimeType": "image/png"},
            },
        ),
    ],
)
def test_imagen_predict_body(name: str, fields: dict[str, Any], parameters: dict[str, Any]) -> None:
    assert imagen_body(checked(name, **fields)) == {"instances": [{"prompt": "a cat"}], "parameters": parameters}


@pytest.mark.parametrize(
    ("name", "fields", "body"),
    [
        ("bfl/flux-pro-1.1", {}, {"prompt": "a cat", "width": 1024, "height": 1024}),
        ("bfl/flux-pro-1.1", {"size": "1344x768"}, {"prompt": "a cat", "width": 1344, "height": 768}),
        (
            "bfl/flux-dev",
            {"output_format": "png"},
            {"prompt": "a cat", "width": 1024, "height": 1024, "output_format": "png"},
        ),
        ("bfl/flux-2-pro", {"size": "1920x1080"}, {"prompt": "a cat", "width": 1920, "height": 1080}),
        ("bfl/flux-pro-1.1-ultra", {}, {"prompt": "a cat", "aspect_ratio": "21:9"}),
        ("bfl/flux-pro-1.1-ultra", {"size": "1024x1024"}, {"prompt": "a cat", "aspect_ratio": "1:1"}),
        (
            "bfl/flux-kontext-pro",
            {"size": "16:9", "output_format": "jpeg"},
            {"prompt": "a cat", "aspect_ratio": "16:9", "output_format": "jpeg"},
        ),
    ],
)
def test_bfl_submit_body(name: str, fields: dict[str, Any], body: dict[str, Any]) -> None:
    assert bfl_body(checked(name, **fields)) == body


def test_bfl_reserves_one_task_per_image() -> None:
    params = checked("bfl/flux-pro-1.1", n=3)
    assert reservation(CATALOG.models["bfl/flux-pro-1.1"], params) == Decimal("0.12")


def test_parsing_imagen_predictions() -> None:
    b64 = base64.b64encode(PNG).decode()
    parsed = parse_imagen(
        {"predictions": [{"bytesBase64Encoded": b64, "mimeType": "image/png"}, {"raiFilteredReason": "people"}]}
    )
    assert [image.data for image in parsed.images] == [PNG]
    with pytest.raises(AttemptFailed) as caught:
        parse_imagen({"predictions": [{"raiFilteredReason": "Your prompt was blocked"}]})
    assert caught.value.client_error and "Your prompt was blocked" in caught.value.message
    for bad in ({}, {"predictions": [{}]}, {"predictions": [{"bytesBase64Encoded": "%%%"}]}, []):
        with pytest.raises(BadUpstreamAnswer):
            parse_imagen(bad)


def test_parsing_a_bfl_submission() -> None:
    task = parse_bfl_task({"id": "t1", "polling_url": "https://api.eu2.bfl.ai/v1/get_result?id=t1", "cost": 4})
    assert task == BflTask("t1", "https://api.eu2.bfl.ai/v1/get_result?id=t1")
    for bad in ({"id": "t1"}, {"polling_url": "https://x"}, {"id": "t1", "polling_url": "/relative"}, None):
        with pytest.raises(BadUpstreamAnswer):
            parse_bfl_task(bad)


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        ({"id": "t", "status": "Pending", "result": None, "progress": 0.3}, None),
        ({"id": "t", "status": "Generating", "result": None}, None),
        (
            {"id": "t", "status": "Ready", "result": {"sample": "https://delivery/x.jpeg", "seed": 7}},
            RawImage(url="https://delivery/x.jpeg", seed=7),
        ),
        ({"id": "t", "status": "Ready", "result": None}, BadUpstreamAnswer),
        ({"id": "t", "status": "Error", "result": None}, "server"),
        ({"id": "t", "status": "Failed"}, "server"),
        ({"id": "t", "status": "Task not found"}, "server"),
        ({"id": "t", "status": "Content Moderated", "details": {"Moderation Reasons": ["x"]}}, "client"),
        ({"id": "t", "status": "Request Moderated"}, "client"),
        ({"id": "t"}, BadUpstreamAnswer),
    ],
)
def test_parsing_a_bfl_result(payload: dict[str, Any], outcome: Any) -> None:
    if outcome is None or isinstance(outcome, RawImage):
        assert parse_bfl_result(payload) == outcome
    elif outcome is BadUpstreamAnswer:
        with pytest.raises(BadUpstreamAnswer):
            parse_bfl_result(payload)
    else:
        with pytest.raises(AttemptFailed) as caught:
            parse_bfl_result(payload)
        assert caught.value.client_error is (outcome == "client")
        assert payload["status"] in caught.value.message


def test_bfl_polls_back_off_from_half_a_second_to_five() -> None:
    delays = list(itertools.islice(bfl_poll_delays(), 9))
    assert delays[:3] == [0.5, 0.75, 1.125]
    assert delays[-1] == 5.0 and max(delays) == 5.0 and delays == sorted(delays)


# --- the BFL wire against the simulator -----------------------------------------------


@pytest.fixture()
async def sim() -> AsyncIterator[TestServer]:
    server = TestServer(create_sim_app())
    await server.start_server()
    yield server
    await server.close()


def bfl_config(sim: TestServer, prefix: str = "") -> ProviderConfig:
    provider = CATALOG.models["bfl/flux-pro-1.1"].provider
    return ProviderConfig(
        entry=provider, base_url=f"{str(sim.make_url('')).rstrip('/')}{prefix}", api_key="k", enabled=True
    )


async def run_bfl(sim: TestServer, prompt: str, n: int = 1, budget: float = 10, prefix: str = "") -> Any:
    info = CATALOG.models["bfl/flux-pro-1.1"]
    params = check_params(request(model=info.id, prompt=prompt, n=n), info)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=budget)) as session:
        return await call_images(session, bfl_config(sim, prefix), info, params)


async def test_bfl_submits_n_tasks_and_answers_their_links(sim: TestServer) -> None:
    upstream = await run_bfl(sim, "two foxes", n=2)
    assert len(upstream.images) == 2
    assert all(image.url and "/_sim/images/" in image.url and image.data is None for image in upstream.images)
    assert sim.app[SIM_STATE].bfl_submissions == {"two foxes": 2}


async def test_a_slow_bfl_task_is_polled_until_ready(sim: TestServer) -> None:
    upstream = await run_bfl(sim, "a slow fox [sim:pending_ms=1200]")
    assert len(upstream.images) == 1
    assert sim.app[SIM_STATE].by_path["/v1/get_result"] >= 3


async def test_a_bfl_task_slower_than_the_deadline_times_out(sim: TestServer) -> None:
    with pytest.raises(TimeoutError):
        await run_bfl(sim, "a very slow fox [sim:pending_ms=60000]", budget=1.5)


@pytest.mark.parametrize(("status", "client_error"), [("Error", False), ("Content Moderated", True)])
async def test_a_failed_bfl_task_is_an_attempt_failure(sim: TestServer, status: str, client_error: bool) -> None:
    with pytest.raises(AttemptFailed) as caught:
        await run_bfl(sim, f"a fox [sim:job_status={status}]")
    assert caught.value.client_error is client_error
    assert status in caught.value.message


async def test_a_bfl_submission_error_names_the_upstream_reason(sim: TestServer) -> None:
    with pytest.raises(AttemptFailed) as caught:
        await run_bfl(sim, "a fox", prefix="/_fault/status=402")
    assert caught.value.status == 402


async def test_a_job_saves_its_tasks_and_a_resumed_job_polls_them_instead_of_submitting(sim: TestServer) -> None:
    saved: list[dict[str, Any]] = []

    async def save(upstream: dict[str, Any]) -> None:
        saved.append(upstream)

    token = UPSTREAM_TASK.set(UpstreamTaskHooks(None, save))
    try:
        first = await run_bfl(sim, "a resumable fox", n=2)
    finally:
        UPSTREAM_TASK.reset(token)
    assert len(first.images) == 2
    assert len(saved) == 2 and len(saved[-1]["tasks"]) == 2  # saved after each submission
    token = UPSTREAM_TASK.set(UpstreamTaskHooks(saved[-1], save))
    try:
        again = await run_bfl(sim, "a resumable fox", n=2)
    finally:
        UPSTREAM_TASK.reset(token)
    assert [image.url for image in again.images] == [image.url for image in first.images]
    assert sim.app[SIM_STATE].bfl_submissions == {"a resumable fox": 2}  # not 4
    # A job that died after one of its submissions submits only the missing one.
    token = UPSTREAM_TASK.set(UpstreamTaskHooks({"tasks": saved[0]["tasks"]}, save))
    try:
        await run_bfl(sim, "a resumable fox", n=2)
    finally:
        UPSTREAM_TASK.reset(token)
    assert sim.app[SIM_STATE].bfl_submissions == {"a resumable fox": 3}


async def test_imagen_predict_against_the_simulator(sim: TestServer) -> None:
    info = CATALOG.models[IMAGEN]
    params = check_params(request(model=IMAGEN, n=3, size="2048x1536"), info)
    config = ProviderConfig(entry=info.provider, base_url=str(sim.make_url("")), api_key="k", enabled=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        upstream = await call_images(session, config, info, params)
    assert len(upstream.images) == 3
    assert all(image.data and image.data.startswith(b"\x89PNG") for image in upstream.images)
