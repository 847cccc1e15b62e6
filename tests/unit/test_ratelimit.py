"""Rate-limit rules that need no server: OpenAI's reset durations, and the
in-memory limiter's own cases. The limiter semantics shared with the Redis
limiter are tested against both in tests/storage/test_ratelimit_backends.py."""

from __future__ import annotations

import pytest

from ccapi.billing.ratelimit import Limit, MemoryRateLimiter, duration


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.5, "0.5s"),
        (0.0123, "0.0123s"),
        (1, "1s"),
        (1.2, "2s"),  # whole seconds round up: never reset earlier than said
        (59, "59s"),
        (59.5, "1m0s"),
        (60, "1m0s"),
        (61, "1m1s"),
        (360, "6m0s"),
    ],
)
def test_reset_durations_use_openai_format(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


async def test_a_key_and_an_account_with_the_same_id_are_separate_windows() -> None:
    limiter = MemoryRateLimiter()
    t = 1_800_000_000.0
    assert (await limiter.admit([Limit("key", "x", 1, None)], 1, t)).allowed
    assert (await limiter.admit([Limit("account", "x", 1, None)], 1, t)).allowed
    assert not (await limiter.admit([Limit("key", "x", 1, None)], 1, t)).allowed


async def test_no_limits_admit_everything_without_headers() -> None:
    verdict = await MemoryRateLimiter().admit([], 10**9)
    assert verdict.allowed and verdict.headers == {}
