"""Unit tests of the simulator's fault-spec grammar (ccapi/sim/faults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccapi.sim.faults import (
    FAULT_KEYS,
    NO_FAULTS,
    FaultSpec,
    FaultSpecError,
    build_spec,
    canonical,
    merge_layers,
    parse_pairs,
    parse_spec,
    split_model_suffix,
)
from ccapi.sim.server import SimConfig, load_config


def spec(*texts: str) -> FaultSpec:
    return build_spec(merge_layers(*(parse_spec(t) for t in texts)))


def test_every_documented_key_parses_to_its_field() -> None:
    parsed = spec(
        "status=503,retry_after=2,latency_ms=150,chunk_delay_ms=20,reset=1,cut_after=3,malformed=1,"
        "content_type=text/html,stream_error_after=4,tokens=40,parallel=1,cached_tokens=7,fail_times=2,id=t1"
    )
    assert parsed.status == 503
    assert parsed.retry_after == "2"
    assert parsed.latency_ms == 150
    assert parsed.chunk_delay_ms == 20
    assert parsed.reset is True
    assert parsed.cut_after == 3
    assert parsed.malformed is True
    assert parsed.content_type == "text/html"
    assert parsed.stream_error_after == 4
    assert parsed.tokens == 40
    assert parsed.parallel is True
    assert parsed.cached_tokens == 7
    assert parsed.fail_times == 2
    assert parsed.id == "t1"


def test_key_set_is_the_documented_grammar() -> None:
    assert FAULT_KEYS == {
        "status",
        "retry_after",
        "latency_ms",
        "ttfb_ms",
        "chunk_delay_ms",
        "reset",
        "cut_after",
        "malformed",
        "content_type",
        "stream_error_after",
        "tokens",
        "parallel",
        "cached_tokens",
        "fail_times",
        "id",
        "pending_ms",
        "job_status",
    }


def test_empty_spec_is_no_faults() -> None:
    assert parse_spec("") == {}
    assert spec("") is NO_FAULTS
    assert NO_FAULTS.status is None and NO_FAULTS.latency_ms == 0 and not NO_FAULTS.reset
    assert NO_FAULTS.key == ""


def test_ttfb_ms_is_an_alias_of_latency_ms() -> None:
    assert parse_spec("ttfb_ms=80") == {"latency_ms": 80}
    # Whichever comes last wins, as for a repeated key.
    assert spec("latency_ms=10,ttfb_ms=30").latency_ms == 30


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False), ("false", False)])
def test_flags_accept_one_zero_and_words(raw: str, expected: bool) -> None:
    assert spec(f"reset={raw}").reset is expected


def test_whitespace_and_empty_items_are_tolerated() -> None:
    assert parse_pairs(" status = 500 ,, tokens=3 , ") == {"status": "500", "tokens": "3"}


def test_repeated_key_keeps_last_value() -> None:
    assert spec("status=500,status=502").status == 502


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(FaultSpecError, match="unknown fault key 'bogus'") as info:
        parse_spec("status=500,bogus=1")
    assert info.value.key == "bogus"


def test_item_without_equals_is_rejected() -> None:
    with pytest.raises(FaultSpecError, match="not key=value") as info:
        parse_spec("status")
    assert info.value.key == "status"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("status=abc", "status"),
        ("status=99", "status"),
        ("status=600", "status"),
        ("latency_ms=-5", "latency_ms"),
        ("tokens=1.5", "tokens"),
        ("reset=maybe", "reset"),
        ("retry_after=soon", "retry_after"),
        ("retry_after=-1", "retry_after"),
        ("content_type=", "content_type"),
        ("fail_times=x", "fail_times"),
    ],
)
def test_bad_values_name_their_key(text: str, key: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_spec(text)
    assert info.value.key == key
    assert f"'{key}'" in str(info.value)


def test_retry_after_accepts_fractions_and_keeps_text() -> None:
    assert spec("retry_after=1.5").retry_after == "1.5"


def test_id_accepts_any_text_including_empty() -> None:
    assert spec("id=").id == ""
    assert spec("id=test_circuit/42").id == "test_circuit/42"


def test_later_layers_override_earlier_keys_only() -> None:
    config, path, header, model = "latency_ms=5,tokens=3", "status=503", "status=429,retry_after=1", "tokens=9"
    merged = spec(config, path, header, model)
    assert merged.status == 429  # header beats path
    assert merged.retry_after == "1"
    assert merged.latency_ms == 5  # config kept where nobody overrides
    assert merged.tokens == 9  # model suffix beats config


def test_canonical_text_is_order_independent() -> None:
    a = spec("status=500,fail_times=2,id=x")
    b = spec("id=x", "fail_times=2,status=500")
    assert a.key == b.key == "fail_times=2,id=x,status=500"
    assert canonical({"reset": True}) == "reset=1"


def test_distinct_ids_give_distinct_counter_keys() -> None:
    assert spec("status=500,fail_times=1,id=a").key != spec("status=500,fail_times=1,id=b").key


def test_without_failures_keeps_content_controls() -> None:
    full = spec("status=500,latency_ms=100,cut_after=2,tokens=4,parallel=1,cached_tokens=2,fail_times=1,id=z")
    healed = full.without_failures()
    assert healed.status is None and healed.latency_ms == 0 and healed.cut_after is None
    assert (healed.tokens, healed.parallel, healed.cached_tokens) == (4, True, 2)
    assert healed.key == full.key


@pytest.mark.parametrize(
    ("text", "breaks"),
    [
        ("", False),
        ("tokens=50,status=500,latency_ms=10", False),
        ("chunk_delay_ms=1", True),
        ("cut_after=0", True),
        ("stream_error_after=2", True),
        ("malformed=1", True),
    ],
)
def test_breaks_stream_marks_faults_that_need_event_by_event_writes(text: str, breaks: bool) -> None:
    assert spec(text).breaks_stream is breaks


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", ("gpt-4o-mini", "")),
        ("gpt-4o-mini@status=500", ("gpt-4o-mini", "status=500")),
        ("claude-haiku-4-5@status=529,id=a@b", ("claude-haiku-4-5", "status=529,id=a@b")),
        ("gemini-2.5-flash@", ("gemini-2.5-flash", "")),
    ],
)
def test_model_suffix_splits_on_first_at(model: str, expected: tuple[str, str]) -> None:
    assert split_model_suffix(model) == expected


def test_config_file_default_spec(tmp_path: Path) -> None:
    text_cfg = tmp_path / "a.yaml"
    text_cfg.write_text('fault: "latency_ms=20,tokens=3"\n')
    assert load_config(str(text_cfg)) == SimConfig(fault="latency_ms=20,tokens=3")
    map_cfg = tmp_path / "b.yaml"
    map_cfg.write_text("fault:\n  status: 503\n  reset: false\n")
    assert parse_spec(load_config(str(map_cfg)).fault) == {"status": 503, "reset": False}
    empty = tmp_path / "c.yaml"
    empty.write_text("")
    assert load_config(str(empty)) == SimConfig()


def test_config_file_rejects_unknown_keys_and_bad_specs(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("faults: status=500\n")
    with pytest.raises(ValueError, match="unknown simulator config keys: faults"):
        load_config(str(typo))
    bad = tmp_path / "bad.yaml"
    bad.write_text("fault: nope=1\n")
    with pytest.raises(FaultSpecError, match="'nope'"):
        load_config(str(bad))
