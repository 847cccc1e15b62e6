"""Cost of a request from catalog prices, in Decimal end to end."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from ccapi.catalog.schema import Pricing
from ccapi.core.types import Usage

# The slowest speech the gateway reserves for (characters per second at speed
# 1.0): a reservation must cover the longest audio a text can become, and a
# TTS model's `max_duration` is its input limit at this rate.
SLOWEST_CHARS_PER_SECOND = Decimal(5)

MILLION = Decimal(1_000_000)
# The contract: USD rounded to 10 decimal places.
QUANTUM = Decimal("1e-10")
ZERO = Decimal(0)


def round_usd(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class TokenRates:
    """USD per single token, precomputed once per model at catalog load."""

    input: Decimal
    output: Decimal
    cached_input: Decimal


@dataclass(frozen=True, slots=True)
class TokenPrices:
    base: TokenRates
    # (threshold, rates): above `threshold` prompt tokens the whole request is
    # re-priced (Gemini and Claude long-context bands work this way).
    tiers: tuple[tuple[int, TokenRates], ...] = ()

    @classmethod
    def from_pricing(cls, pricing: Pricing) -> TokenPrices:
        base = _rates(
            pricing.input_cost_per_million,
            pricing.output_cost_per_million,
            pricing.cached_input_cost_per_million,
        )
        tiers = tuple(
            sorted(
                (
                    (
                        t.above_input_tokens,
                        _rates(
                            t.input_cost_per_million,
                            t.output_cost_per_million,
                            t.cached_input_cost_per_million
                            if t.cached_input_cost_per_million is not None
                            else pricing.cached_input_cost_per_million,
                        ),
                    )
                    for t in pricing.tiers or ()
                ),
                key=lambda tier: tier[0],
            )
        )
        return cls(base, tiers)

    def rates_for(self, prompt_tokens: int) -> TokenRates:
        rates = self.base
        for threshold, tier in self.tiers:
            if prompt_tokens > threshold:
                rates = tier
        return rates

    def cost(self, usage: Usage) -> tuple[Decimal, Decimal]:
        """(input_cost, output_cost) in USD, rounded to 10 decimal places."""
        rates = self.rates_for(usage.prompt_tokens)
        cached = min(usage.cached_tokens or 0, usage.prompt_tokens)
        input_cost = (usage.prompt_tokens - cached) * rates.input + cached * rates.cached_input
        output_cost = usage.completion_tokens * rates.output
        return round_usd(input_cost), round_usd(output_cost)

    def max_cost(self, prompt_tokens: int, max_output_tokens: int) -> Decimal:
        """The most a request can cost: no cache discount, the prompt's tier."""
        rates = self.rates_for(prompt_tokens)
        return round_usd(prompt_tokens * rates.input + max_output_tokens * rates.output)


def _rates(input_per_m: Decimal | None, output_per_m: Decimal | None, cached_per_m: Decimal | None) -> TokenRates:
    input_rate = (input_per_m or ZERO) / MILLION
    return TokenRates(
        input=input_rate,
        output=(output_per_m or ZERO) / MILLION,
        cached_input=cached_per_m / MILLION if cached_per_m is not None else input_rate,
    )
