import datetime as dt
from decimal import Decimal

import pytest

from ccapi.catalog.pricing import TokenPrices
from ccapi.catalog.schema import PriceTier, Pricing
from ccapi.core.types import Usage


def pricing(**kw: object) -> Pricing:
    return Pricing(source="https://example.test/pricing", checked=dt.date(2026, 11, 29), **kw)  # type: ignore[arg-type]


MINI = TokenPrices.from_pricing(
    pricing(
        input_cost_per_million=Decimal("0.15"),
        output_cost_per_million=Decimal("0.60"),
        cached_input_cost_per_million=Decimal("0.075"),
    )
)
TIERED = TokenPrices.from_pricing(
    pricing(
        input_cost_per_million=Decimal("1.25"),
        output_cost_per_million=Decimal("10"),
        tiers=(
            PriceTier(
                above_input_tokens=200_000,
                input_cost_per_million=Decimal("2.5"),
                output_cost_per_million=Decimal("15"),
            ),
        ),
    )
)


@pytest.mark.parametrize(
    ("prices", "usage", "expected"),
    [
        (MINI, Usage(120, 256), (Decimal("0.000018"), Decimal("0.0001536"))),
        (MINI, Usage(1000, 0, cached_tokens=400), (Decimal("0.00012"), Decimal("0"))),
        (MINI, Usage(0, 0), (Decimal(0), Decimal(0))),
        (TIERED, Usage(200_000, 1000), (Decimal("0.25"), Decimal("0.01"))),
        # Past the threshold the whole request is re-priced.
        (TIERED, Usage(200_001, 1000), (Decimal("0.5000025"), Decimal("0.015"))),
    ],
)
def test_cost_uses_catalog_prices_exactly(prices: TokenPrices, usage: Usage, expected: tuple[Decimal, Decimal]) -> None:
    assert prices.cost(usage) == expected


def test_costs_are_rounded_to_ten_places() -> None:
    odd = TokenPrices.from_pricing(
        pricing(input_cost_per_million=Decimal("0.333333"), output_cost_per_million=Decimal("0"))
    )
    input_cost, _ = odd.cost(Usage(7, 0))
    assert input_cost == Decimal("0.0000023333")
    assert input_cost.as_tuple().exponent == -10


def test_a_thousand_requests_sum_exactly() -> None:
    total = sum((sum(MINI.cost(Usage(123, 457))) for _ in range(1000)), Decimal(0))
    assert total == Decimal("0.2926500000")
    assert float(total) == 0.29265


def test_max_cost_ignores_the_cache_discount() -> None:
    assert MINI.max_cost(1000, 1000) == Decimal("0.00075")
