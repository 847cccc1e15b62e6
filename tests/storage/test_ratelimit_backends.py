"""One set of rate-limit cases, run against every limiter: the in-process one,
the Redis one (on a throwaway redis-server) and the database one (SQLite and
a throwaway PostgreSQL). Time is simulated with the `now` argument; nothing
sleeps."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccapi.app import create_app
from ccapi.billing.ratelimit import Limit, MemoryRateLimiter, RateLimiter
from ccapi.billing.ratelimit_db import DatabaseRateLimiter
from ccapi.billing.ratelimit_redis import RedisRateLimiter
from ccapi.config import load_settings
from ccapi.storage.migrate import upgrade
from ccapi.storage.store import Store
from tests.infra import PostgresServer
from tests.support import free_port

T = 1_800_000_000.0  # a whole second, so offsets read as seconds into the window
DURATION = re.compile(r"^(\d+m\d+s|\d+s|0\.\d+s)$")  # OpenAI's `1s`, `6m0s`, `0.5s`


_databases = itertools.count(1)


def new_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database at the newest schema: SQLite in tmp_path, or one on the throwaway PostgreSQL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/ccapi-{next(_databases)}.db"
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.create_database(f"ccapi_ratelimit_{next(_databases)}")
    upgrade(url)
    return url


@pytest.fixture(params=["memory", "redis", "sqlite", "postgresql"])
async def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    if request.param == "redis":
        redis = RedisRateLimiter(request.getfixturevalue("redis_url"))
        yield redis
        await redis.close()
        return
    store = Store(new_database(request.param, request, tmp_path))
    yield DatabaseRateLimiter(store)
    await store.close()


def key(rpm: int | None = None, tpm: int | None = None) -> Limit:
    return Limit("key", "key_" + uuid.uuid4().hex, rpm, tpm)


def account(rpm: int | None = None, tpm: int | None = None) -> Limit:
    return Limit("account", "acct_" + uuid.uuid4().hex, rpm, tpm)


async def test_rpm_refusal_names_scope_type_limit_and_reset(limiter: RateLimiter) -> None:
    limits = [key(rpm=3)]
    for offset in (0.2, 1.2, 2.2):
        assert (await limiter.admit(limits, 10, T + offset)).allowed
    refused = await limiter.admit(limits, 10, T + 3.5)
    assert not refused.allowed
    assert (refused.scope, refused.limit_type, refused.limit) == ("key", "requests", 3)
    # The first request's bucket (second T) leaves the window at T+60.
    assert refused.reset_seconds == 57
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "57s"


async def test_tpm_refusal_and_a_request_larger_than_the_limit(limiter: RateLimiter) -> None:
    limits = [key(tpm=100)]
    assert (await limiter.admit(limits, 60, T)).allowed
    refused = await limiter.admit(limits, 50, T + 10.5)
    assert not refused.allowed
    assert (refused.scope, refused.limit_type, refused.limit, refused.reset_seconds) == ("key", "tokens", 100, 50)
    assert (await limiter.admit(limits, 40, T + 11)).allowed  # what fits still fits
    too_big = await limiter.admit(limits, 101, T + 12)
    assert (too_big.allowed, too_big.limit_type, too_big.reset_seconds) == (False, "tokens", 60)


async def test_headers_show_the_tighter_of_key_and_account(limiter: RateLimiter) -> None:
    shared = account(rpm=5, tpm=None)
    other_key = key(rpm=100)
    for _ in range(3):
        assert (await limiter.admit([other_key, shared], 10, T)).allowed
    mine = key(rpm=10, tpm=1000)
    verdict = await limiter.admit([mine, shared], 10, T + 1)
    assert verdict.allowed
    headers = verdict.headers
    # Requests: the account's 5 (1 left) is tighter than the key's 10 (9 left).
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("5", "1")
    # Tokens: only the key limits them.
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("1000", "990")
    assert (await limiter.admit([mine, shared], 10, T + 2)).allowed
    refused = await limiter.admit([mine, shared], 10, T + 3)
    assert (refused.allowed, refused.scope, refused.limit, refused.reset_seconds) == (False, "account", 5, 57)


async def test_a_refused_request_counts_against_no_limit(limiter: RateLimiter) -> None:
    mine, shared = key(rpm=5, tpm=100), account(rpm=1)
    assert (await limiter.admit([mine, shared], 10, T)).allowed
    assert not (await limiter.admit([mine, shared], 10, T + 1)).allowed  # the account is full
    headers = (await limiter.peek([mine], T + 2)).headers
    assert headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-remaining-tokens"] == "90"


async def test_reset_headers_use_openai_durations(limiter: RateLimiter) -> None:
    limits = [key(rpm=2, tpm=1000)]
    assert (await limiter.admit(limits, 100, T + 0.5)).allowed
    headers = (await limiter.peek(limits, T + 30.25)).headers
    assert headers["x-ratelimit-reset-requests"] == "30s"  # 29.75 s, rounded up
    assert headers["x-ratelimit-reset-tokens"] == "30s"
    headers = (await limiter.peek(limits, T + 0.75)).headers
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert all(DURATION.match(v) for k, v in headers.items() if k.startswith("x-ratelimit-reset-"))
    empty = (await limiter.peek([key(rpm=2, tpm=10)], T)).headers
    assert (empty["x-ratelimit-remaining-requests"], empty["x-ratelimit-reset-requests"]) == ("2", "0s")


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    limits = [key(rpm=2)]
    for _ in range(5):
        assert (await limiter.peek(limits, T)).headers["x-ratelimit-remaining-requests"] == "2"
    assert (await limiter.admit(limits, 1, T)).allowed


async def test_the_window_slides_second_by_second(limiter: RateLimiter) -> None:
    limits = [key(rpm=2)]
    assert (await limiter.admit(limits, 1, T)).allowed
    assert (await limiter.admit(limits, 1, T + 1)).allowed
    refused = await limiter.admit(limits, 1, T + 30)
    assert (refused.allowed, refused.reset_seconds) == (False, 30)
    # At T+60 the bucket of second T has left the window; second T+1's has not.
    assert (await limiter.admit(limits, 1, T + 60)).allowed
    refused = await limiter.admit(limits, 1, T + 60.5)
    assert (refused.allowed, refused.reset_seconds) == (False, 1)  # never 0: whole seconds >= 1
    assert (await limiter.admit(limits, 1, T + 61)).allowed
    # Two minutes later, the whole window is free again.
    late = await limiter.admit(limits, 1, T + 200)
    assert late.allowed and late.headers["x-ratelimit-remaining-requests"] == "1"


async def test_add_tokens_corrects_the_estimate(limiter: RateLimiter) -> None:
    # add_tokens ignores corrections older than the window by the real clock.
    now = time.time()
    limits = [key(tpm=100), account(tpm=1000)]
    admitted = await limiter.admit(limits, 80, now)  # estimate: prompt + max_tokens
    assert admitted.allowed and admitted.headers["x-ratelimit-remaining-tokens"] == "20"
    assert not (await limiter.admit(limits, 50, now)).allowed
    await limiter.add_tokens(limits, -70, now)  # it used 10
    assert (await limiter.peek(limits, now)).headers["x-ratelimit-remaining-tokens"] == "90"
    assert (await limiter.admit(limits, 50, now)).allowed
    await limiter.add_tokens(limits, +30, now)  # a bigger answer than estimated
    assert (await limiter.peek(limits, now)).headers["x-ratelimit-remaining-tokens"] == "10"
    await limiter.add_tokens(limits, -10_000, now)  # never below zero in a bucket
    assert (await limiter.peek(limits, now)).headers["x-ratelimit-remaining-tokens"] == "100"


async def test_a_correction_older_than_the_window_is_ignored(limiter: RateLimiter) -> None:
    limits = [key(tpm=100)]
    long_ago = time.time() - 61
    await limiter.add_tokens(limits, 50, long_ago)
    assert (await limiter.peek(limits, long_ago)).headers["x-ratelimit-remaining-tokens"] == "100"


# -- the database limiter only ----------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_database_limits_hold_across_workers(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two limiters on two Store instances (two worker processes) racing on one
    key and one account admit exactly the limit, while token corrections land
    concurrently (no deadlock)."""
    url = new_database(kind, request, tmp_path)
    stores = [Store(url), Store(url)]
    try:
        first, second = (DatabaseRateLimiter(store) for store in stores)
        limits = [key(rpm=25, tpm=10_000), account(rpm=1000, tpm=100_000)]
        now = time.time()
        calls = [lim.admit(limits, 10, now) for lim in (first, second) * 40]
        calls += [lim.add_tokens(limits, 1, now) for lim in (first, second) * 5]
        results = await asyncio.gather(*calls)
        verdicts = results[:80]
        assert sum(v.allowed for v in verdicts) == 25
        refused = [v for v in verdicts if not v.allowed]
        assert all((v.scope, v.limit_type, v.limit) == ("key", "requests", 25) for v in refused)
        assert all(v.reset_seconds >= 1 for v in refused)
        # Both instances read the same window: 25 requests and their tokens (+10 corrections).
        for lim in (first, second):
            headers = (await lim.peek(limits, now)).headers
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert headers["x-ratelimit-remaining-tokens"] == str(10_000 - 25 * 10 - 10)
    finally:
        for store in stores:
            await store.close()


async def test_database_buckets_are_pruned(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from ccapi.billing import ratelimit_db
    from ccapi.storage.tables import rate_buckets

    store = Store(new_database("sqlite", request, tmp_path))
    try:
        limiter = DatabaseRateLimiter(store)
        limits = [key(rpm=1000)]
        for offset in range(0, 120, 2):
            assert (await limiter.admit(limits, 5, T + offset)).allowed
        limiter._pruned_at -= ratelimit_db.PRUNE_SECONDS  # as if the last prune were long ago
        assert (await limiter.admit(limits, 5, T + 120)).allowed
        async with store.engine.connect() as conn:
            seconds = (await conn.execute(select(rate_buckets.c.second))).scalars().all()
            assert (await conn.execute(select(func.count()).select_from(rate_buckets))).scalar_one() == len(seconds)
        # The anchor and the buckets still in the window (T+62 .. T+120), nothing older.
        assert sorted(seconds) == [0, *range(int(T) + 62, int(T) + 121, 2)]
    finally:
        await store.close()


async def test_database_down_fails_open(tmp_path: Path) -> None:
    store = Store(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none")
    try:
        limiter = DatabaseRateLimiter(store)
        verdict = await limiter.admit([key(rpm=1)], 1)
        assert verdict.allowed and verdict.headers == {}
        assert (await limiter.peek([key(rpm=1)])).headers == {}
        await limiter.add_tokens([key(tpm=1)], 5, time.time())
    finally:
        await store.close()


def test_several_workers_count_in_the_database_unless_redis_is_set(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path}/ccapi.db"
    cases = [({}, MemoryRateLimiter), ({"workers": 2}, DatabaseRateLimiter)]
    cases.append(({"workers": 2, "redis_url": request.getfixturevalue("redis_url")}, RedisRateLimiter))
    for overrides, expected in cases:
        app = create_app(load_settings(database_url=database, **overrides), migrate=False)
        assert type(app.state.gateway.billing.limiter) is expected
    with pytest.raises(ValueError, match="in-memory SQLite"):
        load_settings(database_url="sqlite:///:memory:", workers=2)


# -- Redis only ---------------------------------------------------------------------


async def test_redis_limits_hold_across_instances(redis_url: str) -> None:
    """Two limiters (two gateway instances) racing on one key admit exactly its limit."""
    # A generous timeout: a loaded machine must not turn this into a fail-open admission.
    first, second = RedisRateLimiter(redis_url, timeout=10), RedisRateLimiter(redis_url, timeout=10)
    try:
        limits = [key(rpm=25), account(rpm=1000)]
        verdicts = await asyncio.gather(*(lim.admit(limits, 1) for lim in (first, second) * 40))
        assert sum(v.allowed for v in verdicts) == 25
        refused = [v for v in verdicts if not v.allowed]
        assert all((v.scope, v.limit_type, v.limit) == ("key", "requests", 25) for v in refused)
        assert all(v.reset_seconds >= 1 for v in refused)
    finally:
        await first.close()
        await second.close()


async def test_redis_keys_expire_and_old_buckets_are_pruned(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url)
    client: Redis = Redis.from_url(redis_url)
    try:
        limits = [key(rpm=1000)]
        name = f"ccapi:rl:key:{limits[0].id}"
        for offset in range(0, 120, 2):
            assert (await limiter.admit(limits, 5, T + offset)).allowed
        assert 0 < await client.ttl(name) <= 61
        # Buckets that left the window are deleted: at most 60 seconds x 2 fields remain.
        assert await client.hlen(name) <= 60
        peek = await limiter.peek(limits, T + 118)
        assert peek.headers["x-ratelimit-remaining-requests"] == str(1000 - 30)
    finally:
        await client.aclose()
        await limiter.close()


async def test_redis_down_fails_open() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        for _ in range(3):
            verdict = await limiter.admit([key(rpm=1)], 1)
            assert verdict.allowed and verdict.headers == {}
        assert (await limiter.peek([key(rpm=1)])).headers == {}
        await limiter.add_tokens([key(tpm=1)], 5, time.time())
        with pytest.raises(RedisError):
            await limiter.ping()
    finally:
        await limiter.close()


@pytest.mark.parametrize("up", [True, False])
def test_readiness_reports_redis(up: bool, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("redis_url") if up else f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/ccapi.db", redis_url=url)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
    if up:
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    else:
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["checks"]["redis"] == "down"
