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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
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


class JobSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Jobs one instance runs at once.
    concurrency: int = Field(default=8, ge=1, le=256)
    # Seconds a runner holds a job without renewing it; a gateway that died
    # loses its jobs to another runner after this long.
    lease_seconds: float = Field(default=30.0, ge=0.5)
    # Seconds between looks for new jobs (a job submitted to this instance starts at once).
    poll_interval: float = Field(default=1.0, gt=0)
    # Longest a job may run (a submit-then-poll upstream included) before it fails.
    timeout: float = Field(default=600.0, gt=0)


class S3Settings(BaseModel):
    """Where generated files go when `files_backend` is "s3": AWS S3 or any
    S3-compatible server (MinIO, Cloudflare R2, Ceph, ...).

    Unset credentials and region fall back to the standard AWS_* variables and
    instance roles, as the AWS SDKs do.
    """

    model_config = ConfigDict(extra="forbid")

    bucket: str | None = None
    # Prepended to every object name, e.g. "ccapi/files/".
    prefix: str = ""
    # An S3-compatible server's URL; unset means AWS. An http:// URL is allowed
    # (a server on the same host or network).
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers
    # need, or virtual-hosted style (`bucket.endpoint/key`), which AWS prefers.
    # Unset: path style exactly when endpoint_url is set.
    path_style: bool | None = None
    # Seconds one request to the bucket may take.
    timeout: float = Field(default=30.0, gt=0)


# The largest latency limit (ms) accepted: a larger one is a mistake.
MAX_LATENCY_MS = 600_000


class ModelLatencySettings(BaseModel):
    """Latency limits for the models a `latency.models` key matches (ms; 0: off;
    unset: inherited from a less specific pattern or the default)."""

    model_config = ConfigDict(extra="forbid")

    ttft_timeout_ms: int | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)
    hedge_ms: int | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)


class LatencySettings(ModelLatencySettings):
    """Time-to-first-token deadline and hedging for chat (see routing/latency.py).

    The defaults apply to every model; `models` overrides them by model id or
    glob pattern (`openai/*`, `*/gpt-4o*`): a model group.
    """

    models: dict[str, ModelLatencySettings] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CCAPI_",
        extra="forbid",
        env_nested_delimiter="__",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Worker processes serving the port (`ccapi serve --workers N`); with more
    # than one, rate limits are counted in Redis or the database (docs/design.md).
    workers: int = Field(default=1, ge=1, le=64)
    master_key: SecretStr | None = None
    database_url: str = "sqlite:///./ccapi.db"
    # Shared rate-limit counters for several instances (`redis://host:6379/0`);
    # unset, each instance counts on its own (in memory; in the database when
    # it runs several workers).
    redis_url: str | None = None
    public_url: str | None = None
    # Generated files (images, audio): where they are kept and how long links live.
    files_backend: Literal["local", "s3"] = "local"
    files_dir: Path = Path("./data/files")  # the "local" backend's directory
    s3: S3Settings = S3Settings()  # the "s3" backend's bucket
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
    # On SIGTERM/SIGINT: seconds the requests in flight get to finish before
    # they are ended with an error (api/shutdown.py).
    shutdown_grace: int = Field(default=30, ge=0)
    # PostgreSQL: seconds to connect, or to wait for a pooled connection,
    # before a request fails with a 503 rather than hanging on a dead database.
    database_timeout: float = Field(default=5.0, gt=0)

    # Asynchronous image jobs (see jobs/runner.py): webhook deliveries are
    # signed with this secret (without it, `webhook_url` is refused).
    webhook_secret: SecretStr | None = None
    jobs: JobSettings = JobSettings()

    breaker: BreakerSettings = BreakerSettings()
    latency: LatencySettings = LatencySettings()
    providers: dict[str, ProviderSettings] = {}
    aliases: dict[str, str] = {}
    # Extra catalog files (same format as the shipped ones) that add or override entries.
    catalog_files: list[Path] = []

    config_file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _workers_share_a_database(self) -> Settings:
        if self.workers > 1 and self.database_url.startswith("sqlite") and ":memory:" in self.database_url:
            raise ValueError("several workers need a database they share: an in-memory SQLite database is not")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.files_backend == "s3" and not self.s3.bucket:
            raise ValueError("files_backend is s3 but no bucket is set (CCAPI_S3__BUCKET or s3.bucket)")
        return self

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
