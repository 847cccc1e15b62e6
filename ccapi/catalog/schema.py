"""The shape of the shipped catalog data files (ccapi/catalog/data/*.yaml).

One YAML file per provider: a `provider` mapping and a `models` list. The
loader validates every file against these models at start; a bad entry stops
the start with a message naming the file, the entry and the field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelType = Literal["chat", "image", "tts", "embedding", "stt"]
WireFormat = Literal["openai", "anthropic", "gemini", "elevenlabs", "stability", "bfl", "espeak"]
Modality = Literal["text", "image", "audio", "video", "file"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderQuirks(Strict):
    """What an OpenAI-compatible provider does differently from OpenAI."""

    # The provider rejects `stream_options`; usage then comes in the last chunk anyway.
    no_stream_options: bool = False
    # Field the provider wants for the output limit.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # OpenAI parameters the provider refuses; they are dropped before sending.
    drop_params: tuple[str, ...] = ()
    # OpenAI parameters the provider spells differently: {"seed": "random_seed"}.
    rename_params: dict[str, str] = {}
    # The provider takes only n=1.
    single_choice: bool = False


class ProviderEntry(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    display_name: str
    is_fundamental: bool
    website: str
    api: WireFormat
    base_url: str
    key_env: str | None  # None: keyless (local servers)
    quirks: ProviderQuirks = ProviderQuirks()
    pricing_source: str | None = None


class PriceTier(Strict):
    above_input_tokens: int
    input_cost_per_million: Decimal
    output_cost_per_million: Decimal
    cached_input_cost_per_million: Decimal | None = None


class Pricing(Strict):
    input_cost_per_million: Decimal | None = None
    output_cost_per_million: Decimal | None = None
    cached_input_cost_per_million: Decimal | None = None
    per_image_cost: Decimal | None = None
    per_second_cost: Decimal | None = None
    per_character_cost: Decimal | None = None
    # USD per image by size, then quality: {"1024x1024": {"low": 0.011, ...}}
    image_prices: dict[str, dict[str, Decimal]] | None = None
    tiers: tuple[PriceTier, ...] | None = None
    currency: Literal["USD"] = "USD"
    source: str
    checked: dt.date


class ModelEntry(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$")
    display_name: str
    type: ModelType
    created: int = 0
    owned_by: str | None = None  # defaults to the provider's name
    upstream_model: str | None = None  # the name the upstream wants, when not `id`
    aliases: tuple[str, ...] = ()
    input_modalities: tuple[Modality, ...]
    output_modalities: tuple[Modality, ...]
    context_length: int | None = None
    max_output_tokens: int | None = None
    streaming: bool = False
    function_calling: bool = False
    system_messages: bool = False
    json_mode: bool = False
    pricing: Pricing
    supported_sizes: tuple[str, ...] | None = None
    max_duration: int | None = None  # seconds (audio/video)
    max_input_chars: int | None = None  # TTS input limit
    voices: tuple[str, ...] | None = None  # TTS voices
    is_async: bool = False  # image models whose upstream is submit-then-poll
    supports_mask: bool = False
    deprecated: dt.date | None = None  # the date the provider retires/retired it


class CatalogFile(Strict):
    provider: ProviderEntry
    models: tuple[ModelEntry, ...] = ()
