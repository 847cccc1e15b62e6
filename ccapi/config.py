"""One Settings object, from the environment (CCAPI_*) and a YAML file.

Precedence: explicit arguments > environment > YAML config file > defaults.
Provider credentials and base URLs are data-driven: for every provider in the
catalog, `<KEY_ENV>` (e.g. OPENAI_API_KEY) and `CCAPI_<NAME>_BASE_URL` are read
once at start by `resolve_providers`, never on the request path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class ProviderSettings(BaseModel):
    """Per-provider operator settings from the config file."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    base_url: str | None = None
    enabled: bool = True


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Consecutive failed attempts that open a provider's breaker.
    failure_threshold: int = Field(default=5, ge=1)
    # Seconds an open breaker waits before letting one probe through.
    reset_seconds: float = Field(default=30.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CCAPI_",
        extra="forbid",
        env_nested_delimiter="__",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    master_key: SecretStr | None = None
    database_url: str = "sqlite:///./ccapi.db"
    # Shared rate-limit counters for several instances (`redis://host:6379/0`);
    # unset, each instance counts in memory on its own.
    redis_url: str | None = None
    public_url: str | None = None
    # Generated files (images, audio): where they are kept and how long links live.
    files_dir: Path = Path("./data/files")
    file_signing_key: SecretStr | None = None
    file_url_ttl: int = Field(default=3600, ge=1)
    # Let user-given URLs (input images, webhooks) reach private/loopback addresses (development, tests).
    allow_private_urls: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Every log line, the per-request access line included: JSON objects or logfmt.
    log_format: Literal["json", "logfmt"] = "json"

    attempt_timeout: float = Field(default=60.0, gt=0)
    request_timeout: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_models: int = Field(default=10, ge=1)
    # Seconds an instance keeps unused leased credit before giving it back
    # (see billing/credit.py).
    credit_idle_release: float = Field(default=5.0, gt=0)
    # Connections kept per upstream host.
    upstream_pool_size: int = Field(default=256, ge=1)

    breaker: BreakerSettings = BreakerSettings()
    providers: dict[str, ProviderSettings] = {}
    aliases: dict[str, str] = {}
    # Extra catalog files (same format as the shipped ones) that add or override entries.
    catalog_files: list[Path] = []

    config_file: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _config_path(init_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    explicit = init_settings().get("config_file")
    path = explicit or os.environ.get("CCAPI_CONFIG_FILE")
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    return path


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    if config_file is not None:
        overrides["config_file"] = Path(config_file)
    return Settings(**overrides)


def env_base_url(provider: str, environ: Mapping[str, str]) -> str | None:
    """`CCAPI_<PROVIDER>_BASE_URL`, with dashes in the name as underscores."""
    return environ.get(f"CCAPI_{provider.upper().replace('-', '_')}_BASE_URL") or None
