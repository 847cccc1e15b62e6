"""Pure parts of POST /images/generate for OpenAI GPT image and Stability AI
models: rules (400s naming the field), multipart forms, pricing."""

from __future__ import annotations

import base64
import struct
import zlib
from decimal import Decimal
from typing import Any

import pytest

from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import InvalidRequestError
from ccapi.files.image_types import png_has_alpha
from ccapi.media.images import RawImage, UpstreamImages
from ccapi.media.multimodal import (
    InputImage,
    Part,
    check_openai,
    check_openai_parts,
    check_stability,
    openai_cost,
    openai_edit_form,
    openai_generation_body,
    openai_reservation,
    stability_form,
    stability_reservation,
)
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest
from ccapi.sim.images import png

CATALOG = Catalog.load()
PNG = png(2, 2, 1)
DATA = {"data": base64.b64encode(PNG).decode(), "mime_type": "image/png"}


def rgba_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\0\0\0\0"))
        + chunk(b"IEND", b"")
    )


def info(model: str) -> ModelInfo:
    return CATALOG.models[CATALOG.resolve(model)[0]]


def req(model: str, contents: list[dict[str, Any]], **parameters: Any) -> MultimodalImageGenerationRequest:
    return MultimodalImageGenerationRequest.model_validate(
        {"model": model, "contents": contents, "parameters": parameters}
    )


TEXT = [{"text": "a fox"}]
ONE = [{"text": "a fox"}, {"image": DATA}]
TWO = [{"text": "a fox"}, {"image": DATA}, {"image": DATA}]
MASKED = [{"text": "a fox"}, {"image": DATA, "mask": DATA}]

GPT = "openai/gpt-image-1"
GPT2 = "openai/gpt-image-2"


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "param"),
    [
        (GPT, TEXT, {"seed": 1}, "parameters.seed"),
        (GPT, TEXT, {"steps": 20}, "parameters.steps"),
        (GPT, TEXT, {"guidance_scale": 5.0}, "parameters.guidance_scale"),
        (GPT, TEXT, {"negative_prompt": "x"}, "parameters.negative_prompt"),
        (GPT, ONE, {"strength": 0.5}, "parameters.strength"),
        (GPT, TEXT, {"aspect_ratio": "16:9"}, "parameters.aspect_ratio"),  # gpt-image-1 lists no 16:9 size
        (GPT, TEXT, {"width": 1000, "height": 1000}, "parameters.width"),
        (GPT, TEXT, {"width": 1024}, "parameters.height"),
        (GPT, TEXT, {"width": 1024, "height": 1024, "aspect_ratio": "1:1"}, "parameters.aspect_ratio"),
        (GPT, [{"image": DATA}], {}, "contents"),  # no prompt
        (GPT, [{"text": "x"}, {"image": DATA}, {"image": DATA, "mask": DATA}], {}, "contents[2].mask"),
        (GPT, [{"text": "x"}] + [{"image": DATA}] * 17, {}, "contents[17].image"),
        ("openai/dall-e-3", ONE, {}, "contents[1].image"),
        ("openai/dall-e-3", TEXT, {"num_images": 2}, "parameters.num_images"),
        ("openai/dall-e-3", MASKED, {}, "contents[1].image"),
    ],
)
def test_openai_refusals_name_the_field(
    model: str, contents: list[dict[str, Any]], parameters: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_openai(info(model), req(model, contents, **parameters))
    assert caught.value.param == param


def test_openai_refuses_other_openai_format_providers() -> None:
    other = next(m for m in CATALOG.models.values() if m.provider.api == "openai" and m.provider.name != "openai")
    with pytest.raises(InvalidRequestError) as caught:
        check_openai(other, req(other.id, TEXT))
    assert caught.value.param == "model"


@pytest.mark.parametrize(
    ("model", "parameters", "size"),
    [
        (GPT, {}, None),
        (GPT, {"aspect_ratio": "2:3"}, "1024x1536"),
        (GPT, {"aspect_ratio": "1:1"}, "1024x1024"),
        (GPT2, {"aspect_ratio": "16:9"}, "2048x1152"),
        (GPT, {"width": 1536, "height": 1024}, "1536x1024"),
    ],
)
def test_openai_generation_body(model: str, parameters: dict[str, Any], size: str | None) -> None:
    body = openai_generation_body(info(model), req(model, TEXT, num_images=2, **parameters))
    expected = {"model": info(model).upstream_model, "prompt": "a fox", "n": 2}
    assert body == (expected if size is None else {**expected, "size": size})


def parts_of(contents: list[dict[str, Any]], mask: bytes = PNG) -> list[Part]:
    parts: list[Part] = []
    for c in contents:
        if "text" in c:
            parts.append(Part(text=c["text"]))
        if "image" in c:
            parts.append(Part(image=InputImage(PNG, "image/png")))
        if "mask" in c:
            parts.append(Part(image=InputImage(mask, "image/png"), mask=True))
    return parts


@pytest.mark.parametrize(
    ("contents", "files"),
    [
        (ONE, [("image", "image_0.png")]),
        (TWO, [("image[]", "image_0.png"), ("image[]", "image_1.png")]),
        (MASKED, [("image", "image_0.png"), ("mask", "mask.png")]),
    ],
)
def test_openai_edit_form(contents: list[dict[str, Any]], files: list[tuple[str, str]]) -> None:
    form = openai_edit_form(info(GPT), req(GPT, contents), parts_of(contents))
    assert [(f.name, f.value) for f in form if f.filename is None] == [
        ("model", "gpt-image-1"),
        ("prompt", "a fox"),
        ("n", "1"),
    ]
    assert [(f.name, f.filename) for f in form if f.filename is not None] == files
    assert all(f.content_type == "image/png" for f in form if f.filename)


def test_openai_mask_needs_alpha() -> None:
    assert png_has_alpha(rgba_png()) and not png_has_alpha(PNG) and not png_has_alpha(b"nope")
    check_openai_parts(req(GPT, MASKED), parts_of(MASKED, rgba_png()))
    with pytest.raises(InvalidRequestError) as caught:
        check_openai_parts(req(GPT, MASKED), parts_of(MASKED, PNG))
    assert caught.value.param == "contents[1].mask"


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "reserved"),
    [
        (GPT, TEXT, {"num_images": 2}, "0.50"),  # the dearest listed per-image price (1024x1536 high) x 2
        (GPT, TEXT, {"aspect_ratio": "1:1"}, "0.167"),
        # token-priced: (text + 6500 per input image) x $5/M + 4160 x 4 (2048x2048 high) x $30/M
        (GPT2, ONE, {"width": 2048, "height": 2048}, "0.53171"),  # 0.032505 + 0.4992, to 5 places
        ("stability/sd3.5-large", ONE, {"num_images": 3}, "0.195"),
        ("stability/stable-image-inpaint", MASKED, {}, "0.05"),
    ],
)
def test_reservation(model: str, contents: list[dict[str, Any]], parameters: dict[str, Any], reserved: str) -> None:
    reserve = openai_reservation if model.startswith("openai/") else stability_reservation
    assert reserve(info(model), req(model, contents, **parameters)) == Decimal(reserved)


def test_openai_cost_follows_usage_or_the_table() -> None:
    usage = UpstreamImages([RawImage(data=PNG)], input_tokens=1000, output_tokens=4160, size="1024x1024")
    cost = openai_cost(info(GPT2), 1, usage)
    assert (cost.prompt_tokens, cost.output_tokens) == (1000, 4160)
    assert cost.total == Decimal("0.005") + Decimal("0.1248")
    table = UpstreamImages([RawImage(data=PNG)] * 2, size="1024x1024", quality="low")
    assert openai_cost(info(GPT), 2, table).total == Decimal("0.022")


SD3 = "stability/sd3.5-large"
ULTRA = "stability/stable-image-ultra"
CORE = "stability/stable-image-core"
INPAINT = "stability/stable-image-inpaint"


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "param"),
    [
        (SD3, TEXT, {"width": 512}, "parameters.width"),
        (SD3, TEXT, {"height": 512}, "parameters.height"),
        (SD3, TEXT, {"steps": 30}, "parameters.steps"),
        (ULTRA, TEXT, {"guidance_scale": 4.0}, "parameters.guidance_scale"),
        (SD3, TEXT, {"guidance_scale": 11.0}, "parameters.guidance_scale"),
        (SD3, TEXT, {"strength": 0.5}, "parameters.strength"),  # no input image
        (SD3, ONE, {"strength": 1.5}, "parameters.strength"),
        (INPAINT, MASKED, {"strength": 0.5}, "parameters.strength"),
        (SD3, ONE, {"aspect_ratio": "1:1"}, "parameters.aspect_ratio"),
        (SD3, TEXT, {"aspect_ratio": "4:3"}, "parameters.aspect_ratio"),
        (SD3, TEXT, {"seed": 4294967295}, "parameters.seed"),
        (SD3, TWO, {}, "contents[2].image"),
        (CORE, ONE, {}, "contents[1].image"),
        (SD3, MASKED, {}, "contents[1].mask"),
        (ULTRA, MASKED, {}, "contents[1].mask"),
        (INPAINT, ONE, {}, "contents"),
        (INPAINT, TEXT, {}, "contents"),
        (SD3, [{"image": DATA}], {}, "contents"),
        ("stability/stable-diffusion-xl-1024-v1-0", TEXT, {}, "model"),
    ],
)
def test_stability_refusals_name_the_field(
    model: str, contents: list[dict[str, Any]], parameters: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_stability(info(model), req(model, contents, **parameters))
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("model", "contents", "parameters", "index", "fields", "files"),
    [
        (
            SD3,
            TEXT,
            {"aspect_ratio": "16:9", "seed": 7, "negative_prompt": "blur", "guidance_scale": 4.5},
            1,
            {"prompt": "a fox", "output_format": "png", "model": "sd3.5-large", "mode": "text-to-image",
             "aspect_ratio": "16:9", "negative_prompt": "blur", "cfg_scale": "4.5", "seed": "8"},
            [],
        ),
        (
            SD3,
            ONE,
            {"strength": 0.4},
            0,
            {"prompt": "a fox", "output_format": "png", "model": "sd3.5-large", "mode": "image-to-image",
             "strength": "0.4"},
            ["image"],
        ),
        (ULTRA, ONE, {}, 0, {"prompt": "a fox", "output_format": "png", "strength": "0.7"}, ["image"]),
        (CORE, TEXT, {"seed": 3}, 0, {"prompt": "a fox", "output_format": "png", "seed": "3"}, []),
        (INPAINT, MASKED, {}, 0, {"prompt": "a fox", "output_format": "png"}, ["image", "mask"]),
    ],
)  # fmt: skip
def test_stability_form(
    model: str,
    contents: list[dict[str, Any]],
    parameters: dict[str, Any],
    index: int,
    fields: dict[str, str],
    files: list[str],
) -> None:
    r = req(model, contents, **parameters)
    check_stability(info(model), r)
    form = stability_form(info(model), r, parts_of(contents), index)
    assert {f.name: f.value for f in form if f.filename is None} == fields
    assert [f.name for f in form if f.filename is not None] == files
