"""The multimodal image-generation shapes (the contract's
`MultimodalImageGenerationRequest` / `MultimodalImageGenerationResponse`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccapi.schemas.images import ImageDatum, ImageUsage


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class MultimodalImageSource(_Strict):
    """An image (or mask): `{"url"}` or `{"data", "mime_type"}`."""

    url: str | None = Field(default=None, min_length=1)
    data: str | None = Field(default=None, min_length=1)
    mime_type: Literal["image/png", "image/jpeg", "image/webp"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MultimodalImageSource:
        if (self.url is None) == (self.data is None):
            raise ValueError("give either 'url' or 'data' (with 'mime_type')")
        if self.url is not None and self.mime_type is not None:
            raise ValueError("'mime_type' goes with 'data', not with 'url'")
        return self


class MultimodalInputContent(_Strict):
    text: str | None = Field(default=None, min_length=1, max_length=32000)
    image: MultimodalImageSource | None = None
    mask: MultimodalImageSource | None = None


class MultimodalImageParameters(_Strict):
    num_images: int = Field(default=1, ge=1, le=10)
    aspect_ratio: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    strength: float | None = None
    response_format: Literal["url", "b64_json"] | None = None


class MultimodalImageGenerationRequest(_Strict):
    model: str = Field(min_length=1)
    contents: list[MultimodalInputContent] = Field(min_length=1, max_length=32)
    parameters: MultimodalImageParameters = MultimodalImageParameters()
    webhook_url: str | None = None
    async_: bool = Field(default=False, alias="async")


class MultimodalExecution(BaseModel):
    mode: Literal["sync", "async"]
    operation: Literal["inpainting", "multi-image", "image-to-image", "text-to-image"]
    provider: str


class MultimodalImageGenerationResponse(BaseModel):
    id: str
    created: int
    model: str
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    execution: MultimodalExecution
    data: list[ImageDatum]
    poll_url: str | None
    estimated_time: float | None
    error: dict[str, object] | None
    usage: ImageUsage
