"""Pure parts of POST /images/generate: operation detection, parameter refusal, wire body, answer parsing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ccapi.core.errors import InvalidRequestError
from ccapi.media.images import BadUpstreamAnswer
from ccapi.media.multimodal import (
    InputImage,
    Part,
    check_contents,
    check_gemini,
    decode_inline,
    gemini_body,
    operation_of,
    parse_gemini_image,
)
from ccapi.schemas.multimodal import MultimodalImageGenerationRequest, MultimodalImageSource
from ccapi.sim.images import png

PNG = png(2, 2, 1)
DATA = {"data": base64.b64encode(PNG).decode(), "mime_type": "image/png"}
URL = {"url": "https://example.com/a.png"}


def req(contents: list[dict[str, Any]], **parameters: Any) -> MultimodalImageGenerationRequest:
    return MultimodalImageGenerationRequest.model_validate(
        {"model": "google/gemini-3-pro-image", "contents": contents, "parameters": parameters}
    )


@pytest.mark.parametrize(
    ("contents", "operation"),
    [
        ([{"text": "a cat"}], "text-to-image"),
        ([{"text": "hat"}, {"image": URL}], "image-to-image"),
        ([{"image": DATA}], "image-to-image"),
        ([{"text": "mix"}, {"image": URL}, {"image": DATA}], "multi-image"),
        ([{"text": "fix"}, {"image": DATA, "mask": DATA}], "inpainting"),
        ([{"image": URL}, {"image": DATA, "mask": DATA}], "inpainting"),  # the mask wins
    ],
)
def test_operation_is_the_first_match(contents: list[dict[str, Any]], operation: str) -> None:
    assert operation_of(req(contents)) == operation


@pytest.mark.parametrize(
    ("parameters", "param"),
    [
        ({"width": 512}, "parameters.width"),
        ({"height": 512}, "parameters.height"),
        ({"steps": 30}, "parameters.steps"),
        ({"guidance_scale": 7.5}, "parameters.guidance_scale"),
        ({"negative_prompt": "blurry"}, "parameters.negative_prompt"),
        ({"strength": 0.5}, "parameters.strength"),
        ({"aspect_ratio": "7:3"}, "parameters.aspect_ratio"),
    ],
)
def test_a_parameter_gemini_cannot_take_is_refused_by_name(parameters: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_gemini(req([{"text": "x"}], **parameters))
    assert caught.value.param == param


def test_taken_parameters_pass_and_reach_the_wire_body() -> None:
    request = req([{"text": "x"}, {"image": DATA, "mask": DATA}], aspect_ratio="16:9", seed=7, num_images=3)
    check_contents(request)
    check_gemini(request)
    image = InputImage(PNG, "image/png")
    body = gemini_body([Part(text="x"), Part(image=image), Part(image=image, mask=True)], request)
    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
        "seed": 7,
    }
    [turn] = body["contents"]
    assert turn["role"] == "user"
    assert [next(iter(p)) for p in turn["parts"]] == ["text", "inlineData", "inlineData", "text"]
    assert turn["parts"][1]["inlineData"] == {"mimeType": "image/png", "data": DATA["data"]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": [{"mask": DATA}]}, "contents"),
        ({"contents": [{"text": "x"}, {"text": "y", "mask": DATA}]}, "contents[1].mask"),
    ],
)
def test_request_level_refusals(body: dict[str, Any], param: str) -> None:
    full = {"model": "m", "contents": [{"text": "x"}], **body}
    with pytest.raises(InvalidRequestError) as caught:
        check_contents(MultimodalImageGenerationRequest.model_validate(full))
    assert caught.value.param == param


def test_inline_data_must_be_an_image() -> None:
    assert decode_inline(MultimodalImageSource(**DATA), "contents[0].image").mime_type == "image/png"
    bad = MultimodalImageSource(data=base64.b64encode(b"not an image").decode(), mime_type="image/png")
    with pytest.raises(InvalidRequestError) as caught:
        decode_inline(bad, "contents[0].image")
    assert caught.value.param == "contents[0].image"


def test_parse_takes_the_first_inline_image() -> None:
    payload = {
        "candidates": [
            {"content": {"parts": [{"text": "here"}, {"inlineData": {"mimeType": "image/png", "data": DATA["data"]}}]}}
        ]
    }
    assert parse_gemini_image(payload) == PNG
    with pytest.raises(BadUpstreamAnswer):
        parse_gemini_image({"candidates": [{"content": {"parts": [{"text": "no"}]}, "finishReason": "STOP"}]})
    with pytest.raises(BadUpstreamAnswer):
        parse_gemini_image({"promptFeedback": {"blockReason": "SAFETY"}})
