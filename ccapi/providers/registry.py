"""Provider name -> adapter, built once at start from the catalog and settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from ccapi.catalog.catalog import Catalog
from ccapi.catalog.schema import ProviderEntry
from ccapi.config import Settings, env_base_url
from ccapi.providers.adapter import HTTPAdapter
from ccapi.providers.base import Dialect
from ccapi.providers.native import AnthropicDialect, GeminiDialect
from ccapi.providers.openai_compat import OpenAIDialect


@dataclass(slots=True)
class ProviderConfig:
    entry: ProviderEntry
    base_url: str
    api_key: str | None
    enabled: bool

    @property
    def configured(self) -> bool:
        return self.enabled and (self.entry.key_env is None or bool(self.api_key))

    def how_to_configure(self) -> str:
        if not self.enabled:
            return f"enable provider {self.entry.name} in the config file"
        return f"set {self.entry.key_env}"


def resolve_providers(
    catalog: Catalog, settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, ProviderConfig]:
    """Each provider's base URL and credential: config file, then environment."""
    environ = os.environ if environ is None else environ
    resolved = {}
    for name, entry in catalog.providers.items():
        own = settings.providers.get(name)
        key = own.api_key.get_secret_value() if own and own.api_key else None
        if key is None and entry.key_env:
            key = environ.get(entry.key_env) or None
        base_url = env_base_url(name, environ) or (own.base_url if own else None) or entry.base_url
        resolved[name] = ProviderConfig(entry, base_url, key, own.enabled if own else True)
    return resolved


def dialect_for(entry: ProviderEntry) -> Dialect | None:
    if entry.api == "openai":
        return OpenAIDialect(entry.quirks)
    if entry.api == "anthropic":
        return AnthropicDialect()
    if entry.api == "gemini":
        return GeminiDialect()
    return None  # media-only wire formats have no chat adapter


class ProviderRegistry:
    def __init__(self, configs: dict[str, ProviderConfig], pool_size: int) -> None:
        self.configs = configs
        self._pool_size = pool_size
        self._sessions: list[aiohttp.ClientSession] = []
        self.adapters: dict[str, HTTPAdapter] = {}

    async def start(self) -> None:
        """Open one pooled, kept-alive session per configured chat provider."""
        for name, config in self.configs.items():
            dialect = dialect_for(config.entry)
            if dialect is None or not config.configured:
                continue
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._pool_size, limit_per_host=self._pool_size, keepalive_timeout=60, ttl_dns_cache=300
                ),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
            self._sessions.append(session)
            self.adapters[name] = HTTPAdapter(name, config.base_url, config.api_key, dialect, session)

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()
        self._sessions.clear()
        self.adapters.clear()
