"""The rate limiter shared by every instance: the same sliding 60-second window
of one-second buckets as `MemoryRateLimiter`, kept in Redis.

Each limit (a key's or an account's) is one Redis hash, fields `<second>:r`
(requests) and `<second>:t` (tokens), expiring WINDOW + 1 seconds after its
last write, and pruned of buckets that left the window, so nothing grows
without bound. Every call is one round trip: a Lua script that reads all the
limits' buckets, decides, and counts the request only if every limit admits
it, atomically, so N instances together never admit more than a limit.

The decision is made in Lua; the headers and the 429's details are computed
from the buckets the script returns by the in-memory limiter's own code, so
both limiters answer identically to the same history. Time is the caller's
clock (`now`), as for the in-memory limiter: instances are expected to run
NTP-synchronised clocks (a second of skew shifts a bucket by a second).

When Redis cannot be reached the limiter fails open (requests are admitted
without limit headers, and a warning is logged): limits protect capacity,
not money, which the database's reservations guard. `/health/ready` reports
Redis as down meanwhile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ccapi.billing.ratelimit import WINDOW, Limit, MemoryRateLimiter, Verdict

log = logging.getLogger("ccapi.ratelimit")

# KEYS: one hash per limit. ARGV: mode ("admit" | "peek" | "add"), second,
# tokens, then per limit its rpm and tpm ("" for none).
# Returns {admitted (0/1), live fields of limit 1, live fields of limit 2, ...},
# the fields as HGETALL gives them, before this call's own increment.
_SCRIPT = """
local mode = ARGV[1]
local second = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local ttl = window + 1
local oldest = second - window

if mode == 'add' then
  for i, key in ipairs(KEYS) do
    if ARGV[4 + 2 * i] ~= '' then
      local field = second .. ':t'
      local value = tonumber(redis.call('HGET', key, field) or '0') + tokens
      if value < 0 then value = 0 end
      redis.call('HSET', key, field, value)
      redis.call('EXPIRE', key, ttl)
    end
  end
  return {1}
end

local admitted = 1
local out = {0}
for i, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  local live, dead = {}, {}
  local requests, used_tokens = 0, 0
  for j = 1, #flat, 2 do
    local field, value = flat[j], tonumber(flat[j + 1])
    local sep = string.find(field, ':', 1, true)
    local s = tonumber(string.sub(field, 1, sep - 1))
    if s <= oldest then
      dead[#dead + 1] = field
    else
      live[#live + 1] = field
      live[#live + 1] = value
      if s <= second then
        if string.sub(field, sep + 1) == 'r' then
          requests = requests + value
        else
          used_tokens = used_tokens + value
        end
      end
    end
  end
  if mode == 'admit' and #dead > 0 then
    redis.call('HDEL', key, unpack(dead))
  end
  local rpm, tpm = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  if (rpm and requests + 1 > rpm) or (tpm and used_tokens + tokens > tpm) then
    admitted = 0
  end
  out[i + 1] = live
end

if mode == 'admit' and admitted == 1 then
  for _, key in ipairs(KEYS) do
    redis.call('HINCRBY', key, second .. ':r', 1)
    redis.call('HINCRBY', key, second .. ':t', tokens)
    redis.call('EXPIRE', key, ttl)
  end
end
out[1] = admitted
return out
"""

# Seconds between two "Redis is unreachable" warnings.
_WARN_EVERY = 10.0


class RedisRateLimiter:
    def __init__(self, url: str, *, prefix: str = "ccapi:rl:", timeout: float = 1.0) -> None:
        # One quick retry for a pooled connection that Redis dropped; a slow
        # Redis is not retried: the request waits at most `timeout`, then fails open.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        self._redis: Redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry)
        self._script = self._redis.register_script(_SCRIPT)
        self._prefix = prefix
        self._warned_at = 0.0

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def admit(self, limits: list[Limit], tokens: int, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        second = int(now)
        reply = await self._run("admit", limits, second, tokens)
        if reply is None:
            return Verdict(True, {})
        admitted, snapshot = reply
        if not admitted:
            refused = snapshot._first_refusal(limits, tokens, now, second)
            if refused is not None:
                return refused
            # Unreachable while the script and _first_refusal agree; never admit on doubt.
            return Verdict(False, snapshot._headers(limits, now, second), reset_seconds=1)
        for limit in limits:
            snapshot._window(limit).add(second, 1, tokens)
        return Verdict(True, snapshot._headers(limits, now, second))

    async def peek(self, limits: list[Limit], now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        second = int(now)
        reply = await self._run("peek", limits, second, 0)
        if reply is None:
            return Verdict(True, {})
        return Verdict(True, reply[1]._headers(limits, now, second))

    async def add_tokens(self, limits: list[Limit], tokens: int, at: float) -> None:
        if time.time() - at >= WINDOW or not tokens:
            return  # that second has left the window (or there is nothing to correct)
        await self._run("add", limits, int(at), tokens)

    async def _run(
        self, mode: str, limits: list[Limit], second: int, tokens: int
    ) -> tuple[bool, MemoryRateLimiter] | None:
        """One script call; the limits' live buckets as an in-memory limiter
        (to compute headers with), or None when Redis is unreachable."""
        keys = [f"{self._prefix}{limit.scope}:{limit.id}" for limit in limits]
        args: list[str | int] = [mode, second, tokens, WINDOW]
        for limit in limits:
            args += ["" if limit.rpm is None else limit.rpm, "" if limit.tpm is None else limit.tpm]
        try:
            reply = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return None
        snapshot = MemoryRateLimiter()
        if mode != "add":
            for limit, fields in zip(limits, reply[1:], strict=True):
                _load(snapshot, limit, fields, second)
        return bool(reply[0]), snapshot

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("Redis rate limiter unreachable (%s); admitting without limits", exc)


def _load(snapshot: MemoryRateLimiter, limit: Limit, fields: list[Any], second: int) -> None:
    """Fill `limit`'s in-memory window with the buckets Redis returned."""
    window = snapshot._window(limit)
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        bucket, _, kind = (name.decode() if isinstance(name, bytes) else str(name)).partition(":")
        s = int(bucket)
        if not second - WINDOW < s <= second:
            continue  # written by an instance whose clock is ahead: not in this window yet
        window.set(s, "requests" if kind == "r" else "tokens", int(value))
