"""Which TTFT deadline and hedge delay apply: headers, then the settings."""

import pytest

from ccapi.catalog.catalog import Catalog
from ccapi.config import LatencySettings, load_settings
from ccapi.core.errors import InvalidRequestError
from ccapi.routing.latency import (
    HEDGE_HEADER,
    NOT_ASKED,
    TTFT_HEADER,
    CandidateLatency,
    LatencyTable,
    RequestLatency,
    latency_table,
    request_latency,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def headers(**values: str) -> dict[str, str]:
    names = {"ttft": TTFT_HEADER, "hedge": HEDGE_HEADER}
    return {names[k]: v for k, v in values.items()}


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, NOT_ASKED), ({"ttft": "500"}, RequestLatency(500, None)), ({"hedge": " 200 "}, RequestLatency(None, 200)),
     ({"ttft": "0", "hedge": "600000"}, RequestLatency(0, 600000))],
)  # fmt: skip
def test_latency_headers_are_read_in_ms(given: dict[str, str], expected: RequestLatency) -> None:
    assert request_latency(headers(**given).get) == expected


@pytest.mark.parametrize("name", ["ttft", "hedge"])
@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "", "600001", "9" * 5000, "²", "1e3", "+5"])
def test_a_bad_latency_header_is_400_naming_it(name: str, raw: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        request_latency(headers(**{name: raw}).get)
    header = TTFT_HEADER if name == "ttft" else HEDGE_HEADER
    assert err.value.status == 400 and err.value.param == header and header in err.value.message
    assert err.value.code == "invalid_header"


def table(**settings: object) -> LatencyTable:
    return LatencyTable(LatencySettings.model_validate(settings))


def test_the_most_specific_pattern_wins_field_by_field() -> None:
    t = table(
        ttft_timeout_ms=10000,
        models={
            "openai/*": {"ttft_timeout_ms": 3000, "hedge_ms": 500},
            "openai/gpt-4o-mini": {"ttft_timeout_ms": 1000},
            "*/gpt-4o-*": {"hedge_ms": 800},
            "anthropic/*": {"ttft_timeout_ms": 0},
        },
    )
    # The exact id sets ttft; its hedge comes from the longer of the two patterns.
    assert t.for_model("openai/gpt-4o-mini") == CandidateLatency(1.0, 0.8)
    assert t.for_model("openai/o3") == CandidateLatency(3.0, 0.5)
    assert t.for_model("mistral/mistral-small-2506") == CandidateLatency(10.0, None)
    assert t.for_model("anthropic/claude-haiku-4-5") == CandidateLatency(None, None)  # 0: off


def test_headers_override_the_settings_for_every_candidate(catalog: Catalog) -> None:
    candidates = [catalog.models["openai/gpt-4o-mini"], catalog.models["mistral/mistral-small-2506"]]
    t = table(models={"openai/*": {"hedge_ms": 500, "ttft_timeout_ms": 2000}})
    assert t.plan(candidates, NOT_ASKED) == [CandidateLatency(2.0, 0.5), CandidateLatency()]
    assert t.plan(candidates, RequestLatency(ttft_ms=300)) == [
        CandidateLatency(0.3, 0.5, ttft_asked=True),
        CandidateLatency(0.3, None, ttft_asked=True),
    ]
    assert t.plan(candidates, RequestLatency(ttft_ms=0, hedge_ms=0)) is None  # both turned off


def test_no_limits_is_the_plain_path(catalog: Catalog) -> None:
    candidates = [catalog.models["openai/gpt-4o-mini"]]
    assert table().plan(candidates, NOT_ASKED) is None
    assert table().plan(candidates, RequestLatency(hedge_ms=150)) == [CandidateLatency(None, 0.15)]


def test_latency_settings_come_from_env_and_yaml(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    config = Path(str(tmp_path)) / "ccapi.yaml"
    config.write_text("latency:\n  ttft_timeout_ms: 4000\n  models:\n    'openai/*': {hedge_ms: 250}\n")
    monkeypatch.setenv("CCAPI_LATENCY__TTFT_TIMEOUT_MS", "1500")
    settings = load_settings(config)
    assert settings.latency.ttft_timeout_ms == 1500  # the environment wins over the file
    assert settings.latency.models["openai/*"].hedge_ms == 250
    with pytest.raises(ValueError):
        load_settings(None, latency={"models": {"openai/*": {"hedge_ms": -1}}})


def test_a_pattern_matching_no_model_stops_the_start(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="opnai"):
        latency_table(LatencySettings.model_validate({"models": {"opnai/*": {"hedge_ms": 1}}}), catalog)
    assert latency_table(LatencySettings.model_validate({"models": {"openai/*": {"hedge_ms": 1}}}), catalog).active
