"""The image-generation request and response shapes (the contract's
`LegacyImageGenerationRequest` / `LegacyImageGenerationResponse`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LegacyImageGenerationRequest(BaseModel):
    """OpenAI's `/v1/images/generations` body; what a model cannot take is a
    400 naming the field (see media/images.check_params)."""

    # Strict: "2" is not an n, as OpenAI answers. Unknown fields are a 400 too:
    # image providers are native wire formats, so nothing is forwarded raw.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=32000)
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    user: str | None = None
    async_: bool = Field(default=False, alias="async")
    webhook_url: str | None = None


class ImageDatum(BaseModel):
    url: str | None
    b64_json: str | None
    revised_prompt: str | None
    seed: int | None


class ImageUsage(BaseModel):
    images: int
    cost: float


class LegacyImageGenerationResponse(BaseModel):
    id: str
    created: int
    model: str
    provider: str
    data: list[ImageDatum]
    revised_prompt: str | None
    usage: ImageUsage
