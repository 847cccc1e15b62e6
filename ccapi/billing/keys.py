"""API keys: hashing, allowed-model patterns, and the in-process key cache.

Keys are looked up by their SHA-256 (keys are 256-bit random, so a fast hash
is the right one; a lookup by hash reveals nothing about the secret's
prefix, unlike comparing secrets). The cache is refreshed from the database
every second (`updated >= last poll`), so a revocation or a new limit
reaches every instance within two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING

from ccapi.api.deps import Principal
from ccapi.billing.types import ApiKey
from ccapi.core.errors import AuthenticationError

if TYPE_CHECKING:
    from ccapi.storage.store import Store

log = logging.getLogger("ccapi.keys")

REFRESH_SECONDS = 1.0
# A poll looks back this far, so a row committed just before the previous
# poll's clock reading is not missed (clocks of instances differ slightly).
REFRESH_OVERLAP = 1.0
MAX_REMEMBERED_MISSES = 10_000


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def compile_patterns(patterns: list[str] | None) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p)) for p in patterns or ())


def model_allowed(key: ApiKey, model_id: str) -> bool:
    return not key.patterns or any(p.match(model_id) for p in key.patterns)


class KeyCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_hash: dict[str, ApiKey] = {}
        self._accounts: dict[str, tuple[int | None, int | None]] = {}
        self._misses: dict[str, float] = {}
        self._polled_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="ccapi-key-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        started = time.time()
        since = self._polled_at - REFRESH_OVERLAP
        for key in await self.store.keys_changed_since(since):
            self._by_hash[key.key_hash] = key
        for account_id, rpm, tpm in await self.store.account_limits_changed_since(since):
            self._accounts[account_id] = (rpm, tpm)
        self._polled_at = started

    def put(self, key: ApiKey) -> None:
        """This instance changed the key: no need to wait for the poll."""
        self._by_hash[key.key_hash] = key

    def put_account(self, account_id: str, rpm: int | None, tpm: int | None) -> None:
        self._accounts[account_id] = (rpm, tpm)

    def get(self, key_hash: str) -> ApiKey | None:
        return self._by_hash.get(key_hash)

    async def lookup(self, key_hash: str) -> ApiKey | None:
        """A cache miss: the key may be newer than the last poll (made by the CLI
        or another instance a moment ago). Misses are remembered for a second so
        that unknown keys cannot turn into a database query each."""
        now = time.monotonic()
        if self._misses.get(key_hash, 0.0) > now:
            return None
        key = await self.store.get_key_by_hash(key_hash)
        if key is None:
            if len(self._misses) > MAX_REMEMBERED_MISSES:
                self._misses.clear()
            self._misses[key_hash] = now + REFRESH_SECONDS
            return None
        if key.account_id not in self._accounts:
            account = await self.store.get_account(key.account_id)
            if account is not None:
                self._accounts[account.id] = (account.rpm, account.tpm)
        self.put(key)
        return key

    def account_limits(self, account_id: str) -> tuple[int | None, int | None] | None:
        return self._accounts.get(account_id)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:  # the database is down: keep serving from the cache
                log.warning("key cache refresh failed", exc_info=True)


class KeyAuthenticator:
    """The master key, or an account's key from the cache."""

    def __init__(self, master_key: str | None, cache: KeyCache) -> None:
        self._master = master_key.encode() if master_key else None
        self.cache = cache

    async def authenticate(self, token: str) -> Principal:
        if self._master is not None and hmac.compare_digest(token.encode(), self._master):
            return Principal(key_id=None, account_id=None, is_admin=True, is_master=True)
        key_hash = hash_key(token)
        key = self.cache.get(key_hash) or await self.cache.lookup(key_hash)
        if key is None:
            raise AuthenticationError("Invalid API key.", code="invalid_api_key")
        if key.revoked_at is not None:
            raise AuthenticationError("This API key has been revoked.", code="key_revoked")
        if key.expires_at is not None and key.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.", code="key_expired")
        return Principal(key_id=key.id, account_id=key.account_id, is_admin=key.admin, key=key)
