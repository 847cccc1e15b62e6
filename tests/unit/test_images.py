"""The pure parts of image generation: parameter rules per model family,
sizes, reservations and charges, and each wire format's translation."""

from __future__ import annotations

import base64
import zlib
from decimal import Decimal
from typing import Any

import pytest

from ccapi.api.validation import validate_body
from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import InvalidRequestError
from ccapi.files.image_types import sniff_image_type
from ccapi.media.images import (
    BadUpstreamAnswer,
    UpstreamImages,
    actual_cost,
    check_params,
    estimated_output_tokens,
    openai_body,
    parse_openai,
    parse_stability_v1,
    parse_stability_v2,
    reservation,
    resolve_size,
    stability_v1_body,
    stability_v2_form,
)
from ccapi.schemas.images import LegacyImageGenerationRequest
from ccapi.sim.images import png

CATALOG = Catalog.load()


def model(name: str) -> ModelInfo:
    return CATALOG.models[name]


def request(**fields: Any) -> LegacyImageGenerationRequest:
    return validate_body(LegacyImageGenerationRequest, {"prompt": "a cat", **fields})


def refused(name: str, **fields: Any) -> str | None:
    with pytest.raises(InvalidRequestError) as caught:
        check_params(request(model=name, **fields), model(name))
    return caught.value.param


@pytest.mark.parametrize(
    ("name", "fields", "param"),
    [
        ("openai/gpt-image-2", {"style": "vivid"}, "style"),
        ("openai/gpt-image-2", {"quality": "standard"}, "quality"),
        ("openai/gpt-image-2", {"background": "transparent"}, "background"),
        ("openai/gpt-image-2", {"size": "1792x1024"}, "size"),
        ("openai/gpt-image-2", {"output_compression": 50}, "output_compression"),
        ("openai/gpt-image-1.5", {"background": "transparent", "output_format": "jpeg"}, "background"),
        ("openai/dall-e-3", {"n": 2}, "n"),
        ("openai/dall-e-3", {"quality": "high"}, "quality"),
        ("openai/dall-e-3", {"background": "opaque"}, "background"),
        ("openai/dall-e-3", {"moderation": "low"}, "moderation"),
        ("stability/stable-diffusion-xl-1024-v1-0", {"quality": "standard"}, "quality"),
        ("stability/stable-diffusion-xl-1024-v1-0", {"output_format": "jpeg"}, "output_format"),
        ("stability/stable-diffusion-xl-1024-v1-0", {"size": "1:1"}, "size"),
        ("stability/sd3.5-large", {"output_format": "webp"}, "output_format"),
        ("stability/stable-image-core", {"size": "1000x1000x"}, "size"),
        ("stability/stable-image-core", {"size": "1024x512"}, "size"),
        ("stability/stable-image-core", {"style": "natural"}, "style"),
        ("openai/gpt-4o-mini", {}, "model"),
        ("google/gemini-2.5-flash-image", {}, "model"),
    ],
)
def test_a_parameter_the_model_cannot_take_is_a_400_naming_it(name: str, fields: dict[str, Any], param: str) -> None:
    assert refused(name, **fields) == param


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("openai/gpt-image-2", {"quality": "low", "background": "opaque", "output_format": "webp"}),
        ("openai/gpt-image-2", {"output_format": "jpeg", "output_compression": 80, "moderation": "low"}),
        ("openai/gpt-image-1.5", {"background": "transparent", "output_format": "png", "size": "1536x1024"}),
        ("openai/dall-e-3", {"quality": "hd", "style": "natural", "size": "1792x1024"}),
        ("stability/stable-diffusion-xl-1024-v1-0", {"n": 10, "size": "1344x768", "output_format": "png"}),
        ("stability/stable-image-ultra", {"size": "21:9", "output_format": "webp"}),
    ],
)
def test_what_the_model_takes_passes(name: str, fields: dict[str, Any]) -> None:
    check_params(request(model=name, **fields), model(name))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "prompt": ""}, "prompt"),
        ({"model": "m", "prompt": "x", "n": 0}, "n"),
        ({"model": "m", "prompt": "x", "n": 11}, "n"),
        ({"model": "m", "prompt": "x", "n": 1.0}, "n"),
        ({"model": "m", "prompt": "x", "response_format": "png"}, "response_format"),
        ({"model": "m", "prompt": "x", "background": "clear"}, "background"),
        ({"model": "m", "prompt": 5}, "prompt"),
        ({"model": "m", "prompt": "x", "async": "yes"}, "async"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": "x", "models": ["a"]}, "models"),
    ],
)
def test_the_schema_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_body(LegacyImageGenerationRequest, body)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("openai/gpt-image-2", None, "auto"),
        ("openai/dall-e-3", None, "1024x1024"),
        ("stability/stable-image-core", None, "1:1"),
        ("stability/stable-image-core", "1024x1024", "1:1"),
        ("stability/stable-image-core", "1920x1080", "16:9"),
        ("stability/stable-diffusion-xl-1024-v1-0", None, "1024x1024"),
    ],
)
def test_sizes(name: str, size: str | None, expected: str) -> None:
    assert resolve_size(size, model(name)) == expected


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("stability/stable-diffusion-xl-1024-v1-0", {"n": 2, "size": "1024x1024"}, Decimal("0.004")),
        ("stability/stable-image-ultra", {"n": 3}, Decimal("0.24")),
        ("openai/dall-e-3", {"quality": "hd", "size": "1792x1024"}, Decimal("0.12")),
        ("openai/dall-e-3", {}, Decimal("0.08")),  # quality unknown: the dearest of the size
        ("openai/gpt-image-1.5", {"n": 2, "quality": "low", "size": "1024x1024"}, Decimal("0.018")),
        ("openai/gpt-image-1.5", {"size": "1024x1536"}, Decimal("0.2")),
        # token-priced: the prompt estimate (2 tokens at $5/M) + 272 output tokens at $30/M
        ("openai/gpt-image-2", {"quality": "low", "size": "1024x1024"}, Decimal("0.00001") + Decimal("0.00816")),
    ],
)
def test_the_reservation(name: str, fields: dict[str, Any], expected: Decimal) -> None:
    info = model(name)
    assert reservation(info, check_params(request(model=name, **fields), info)) == expected


def test_charges_follow_the_delivery_and_the_upstream() -> None:
    info = model("openai/dall-e-3")
    params = check_params(request(model="openai/dall-e-3"), info)
    assert actual_cost(info, params, 1, UpstreamImages()).total == Decimal("0.04")  # dall-e-3 defaults to standard
    token = model("openai/gpt-image-2")
    params = check_params(request(model="openai/gpt-image-2"), token)
    cost = actual_cost(token, params, 1, UpstreamImages(input_tokens=10, output_tokens=1000))
    assert (cost.input_cost, cost.output_cost) == (Decimal("0.00005"), Decimal("0.03"))
    assert (cost.prompt_tokens, cost.output_tokens) == (10, 1000)
    core = model("stability/stable-image-core")
    params = check_params(request(model="stability/stable-image-core", n=3), core)
    assert actual_cost(core, params, 2, UpstreamImages()).total == Decimal("0.06")  # only what was delivered


def test_token_estimates_scale_with_area() -> None:
    assert estimated_output_tokens("1024x1024", "low") == 272
    assert estimated_output_tokens("1024x1536", "high") == 6240
    assert estimated_output_tokens("2048x2048", None) == 4 * 4160
    assert estimated_output_tokens("auto", "medium") == 1584


def test_openai_body_never_sends_response_format_to_gpt_image_models() -> None:
    info = model("openai/gpt-image-2")
    body = openai_body(check_params(request(model="openai/gpt-image-2", response_format="url", n=2), info), info)
    assert body == {"model": "gpt-image-2", "prompt": "a cat", "n": 2, "size": "auto"}
    dalle = model("openai/dall-e-3")
    body = openai_body(check_params(request(model="openai/dall-e-3", style="vivid"), dalle), dalle)
    assert body["response_format"] == "url" and body["style"] == "vivid"


def test_stability_bodies() -> None:
    sdxl = model("stability/stable-diffusion-xl-1024-v1-0")
    params = check_params(request(model=sdxl.id, n=2, size="1152x896"), sdxl)
    assert stability_v1_body(params) == {
        "text_prompts": [{"text": "a cat", "weight": 1}],
        "width": 1152,
        "height": 896,
        "samples": 2,
    }
    sd3 = model("stability/sd3.5-large")
    form = stability_v2_form(check_params(request(model=sd3.id, size="16:9"), sd3), sd3)
    assert form == {"prompt": "a cat", "aspect_ratio": "16:9", "output_format": "png", "model": "sd3.5-large"}


def test_parsing_each_wire_format() -> None:
    image = png(4, 3, 7)
    b64 = base64.b64encode(image).decode()
    got = parse_openai(
        {
            "data": [{"b64_json": b64}, {"url": "https://x.test/a.png", "revised_prompt": "r"}],
            "usage": {"input_tokens": 3, "output_tokens": 9},
            "quality": "low",
            "size": "1024x1024",
        }
    )
    assert got.images[0].data == image and got.images[1].url == "https://x.test/a.png"
    assert got.images[1].revised_prompt == "r"
    assert (got.input_tokens, got.output_tokens, got.quality, got.size) == (3, 9, "low", "1024x1024")
    v1 = parse_stability_v1({"artifacts": [{"base64": b64, "seed": 5, "finishReason": "SUCCESS"}]})
    assert v1.images[0].seed == 5 and v1.images[0].data == image
    v2 = parse_stability_v2({"image": b64, "finish_reason": "SUCCESS", "seed": 9})
    assert v2.seed == 9 and v2.data == image
    for bad in ({}, {"data": [{}]}, {"data": [{"b64_json": "!!"}]}):
        with pytest.raises(BadUpstreamAnswer):
            parse_openai(bad)
    with pytest.raises(BadUpstreamAnswer):
        parse_stability_v1({"artifacts": [{"base64": b64, "finishReason": "ERROR"}]})


def test_the_simulators_png_is_valid() -> None:
    image = png(5, 2, 0x123456)
    assert sniff_image_type(image) == "image/png"
    idat_len = int.from_bytes(image[33:37], "big")
    assert image[37:41] == b"IDAT"
    rows = zlib.decompress(image[41 : 41 + idat_len])
    assert len(rows) == 2 * (1 + 5 * 3)
    assert sniff_image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"<html>") is None
