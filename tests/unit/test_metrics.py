"""Metric labels and recording: what a finished request adds to /metrics."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccapi.billing.ledger import LedgerWriter
from ccapi.core.recorder import AccessLogRecorder
from ccapi.core.types import RequestRecord
from ccapi.observability.logs import JsonFormatter, LogfmtFormatter, logfmt_value
from ccapi.observability.metrics import Metrics, MetricsRecorder, attempt_error_kind
from ccapi.routing.health import HealthBook

MODELS = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5")
PROVIDERS = ("openai", "anthropic", "mistral")


def record(**fields: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "request_id": "req_1",
        "route": "/chat/completions",
        "created": 0.0,
        "key_id": "key_secretish",
        "account_id": "acct_1",
        "requested_models": ["openai/gpt-4o-mini"],
        "model": "openai/gpt-4o-mini",
        "provider": "openai",
        "attempts": [{"provider": "openai", "model": "openai/gpt-4o-mini", "status": 200, "error": None,
                      "latency_ms": 300.0}],
        "status": 200,
        "error_type": None,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "input_cost": Decimal("0.0001"),
        "output_cost": Decimal("0.0002"),
        "latency_ms": 302.0,
    }  # fmt: skip
    base.update(fields)
    return RequestRecord(**base)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture()
def metrics() -> Metrics:
    return Metrics(MODELS, PROVIDERS)


def test_a_served_request_counts_by_route_status_provider_and_model(metrics: Metrics) -> None:
    recorder = MetricsRecorder(metrics)
    recorder.record(record())
    recorder.record(record())
    call = {"route": "/chat/completions", "provider": "openai", "model": "openai/gpt-4o-mini"}
    assert value(metrics, "ccapi_requests_total", status="200", **call) == 2
    assert value(metrics, "ccapi_request_duration_seconds_count", **call) == 2
    assert value(metrics, "ccapi_request_duration_seconds_sum", **call) == pytest.approx(0.604)
    assert value(metrics, "ccapi_upstream_duration_seconds_sum", **call) == pytest.approx(0.6)
    assert value(metrics, "ccapi_gateway_overhead_seconds_sum", **call) == pytest.approx(0.004)
    assert value(metrics, "ccapi_tokens_total", direction="input", **call) == 20
    assert value(metrics, "ccapi_tokens_total", direction="output", **call) == 40
    assert value(metrics, "ccapi_cost_usd_total", **call) == pytest.approx(0.0006)
    assert value(metrics, "ccapi_upstream_attempts_total", provider="openai") == 2
    assert value(metrics, "ccapi_time_to_first_token_seconds_count", **call) == 0


def test_a_stream_records_its_time_to_first_token_and_its_relay_as_upstream(metrics: Metrics) -> None:
    MetricsRecorder(metrics).record(record(stream=True, ttft_ms=120.0, upstream_ms=900.0, latency_ms=901.0))
    call = {"route": "/chat/completions", "provider": "openai", "model": "openai/gpt-4o-mini"}
    assert value(metrics, "ccapi_time_to_first_token_seconds_sum", **call) == pytest.approx(0.12)
    assert value(metrics, "ccapi_upstream_duration_seconds_sum", **call) == pytest.approx(0.9)
    assert value(metrics, "ccapi_gateway_overhead_seconds_sum", **call) == pytest.approx(0.001)


def test_label_values_stay_bounded_and_never_carry_ids(metrics: Metrics) -> None:
    recorder = MetricsRecorder(metrics)
    for i in range(50):
        recorder.record(record(model=f"made-up/model-{i}", provider=f"nobody-{i}", request_id=f"req_{i}"))
    recorder.record(record(model=None, provider=None, attempts=[], status=400, error_type="invalid_request_error"))
    text = metrics.render().decode()
    assert "made-up" not in text and "nobody-" not in text
    assert "req_" not in text and "key_secretish" not in text and "acct_1" not in text
    assert value(metrics, "ccapi_requests_total", route="/chat/completions", status="200",
                 provider="unknown", model="unknown") == 50  # fmt: skip
    assert value(metrics, "ccapi_requests_total", route="/chat/completions", status="400",
                 provider="none", model="none") == 1  # fmt: skip
    # Nothing called upstream: no upstream or overhead sample for it.
    assert value(metrics, "ccapi_upstream_duration_seconds_count", route="/chat/completions",
                 provider="none", model="none") == 0  # fmt: skip


def test_each_failed_attempt_counts_as_an_upstream_error_by_kind(metrics: Metrics) -> None:
    attempts = [
        {"provider": "mistral", "status": 503, "error": "busy", "latency_ms": 5.0},
        {"provider": "mistral", "status": None, "error": "slow", "latency_ms": 2000.0},
        {"provider": "anthropic", "status": 429, "error": "limit", "latency_ms": 5.0},
        {"provider": "openai", "status": 200, "error": None, "latency_ms": 100.0},
    ]
    kinds = ["http", "timeout", "http", None]
    MetricsRecorder(metrics).record(record(attempts=attempts, attempt_kinds=kinds, latency_ms=2111.0))
    assert value(metrics, "ccapi_upstream_errors_total", provider="mistral", kind="5xx") == 1
    assert value(metrics, "ccapi_upstream_errors_total", provider="mistral", kind="timeout") == 1
    assert value(metrics, "ccapi_upstream_errors_total", provider="anthropic", kind="429") == 1
    assert value(metrics, "ccapi_upstream_attempts_total", provider="mistral") == 2
    assert not any(
        name == "ccapi_upstream_errors_total" and dict(labels)["provider"] == "openai"
        for name, labels in samples(metrics)
    )
    call = {"route": "/chat/completions", "provider": "openai", "model": "openai/gpt-4o-mini"}
    assert value(metrics, "ccapi_upstream_duration_seconds_sum", **call) == pytest.approx(2.11)


def test_a_served_stream_that_breaks_counts_as_an_upstream_error(metrics: Metrics) -> None:
    MetricsRecorder(metrics).record(record(stream=True, status=502, attempt_kinds=["stream"]))
    assert value(metrics, "ccapi_upstream_errors_total", provider="openai", kind="stream") == 1


@pytest.mark.parametrize(
    ("status", "kind", "label"),
    [
        (500, "http", "5xx"),
        (502, "http", "5xx"),
        (429, "http", "429"),
        (401, "http", "4xx"),
        (None, "connect", "connect"),
        (None, "timeout", "timeout"),
        (200, "malformed", "malformed"),
        (200, "stream", "stream"),
        (None, "surprise", "other"),
        # Attempts recorded without a kind (other routes): by status.
        (503, None, "5xx"),
        (404, None, "4xx"),
        (None, None, "other"),
    ],
)
def test_attempt_error_kind(status: int | None, kind: str | None, label: str) -> None:
    assert attempt_error_kind(status, kind) == label


def test_state_gauges_read_breakers_ledger_and_job_sources_at_scrape(metrics: Metrics) -> None:
    health = HealthBook(failure_threshold=1, reset_seconds=30)
    health.breaker("mistral").record(False, 1.0, 0.0)
    health.breaker("openai").record(True, 1.0, 0.0)
    ledger = LedgerWriter(store=None)  # type: ignore[arg-type]  # never started: nothing is written
    ledger.submit(None, {"request_id": "req_1"})
    ledger.submit(None, {"request_id": "req_2"})
    metrics.watch(health, ledger)
    assert value(metrics, "ccapi_job_queue_depth") == 0
    metrics.watch_job_queue(lambda: 3)
    metrics.watch_job_queue(lambda: 4)
    assert value(metrics, "ccapi_circuit_breaker_state", provider="mistral") == 2
    assert value(metrics, "ccapi_circuit_breaker_state", provider="openai") == 0
    assert value(metrics, "ccapi_circuit_breaker_state", provider="anthropic") == 0
    assert value(metrics, "ccapi_ledger_queue_depth") == 2
    assert value(metrics, "ccapi_ledger_lag_seconds") > 0
    assert value(metrics, "ccapi_job_queue_depth") == 7


def access_line(formatter: logging.Formatter, rec: RequestRecord) -> str:
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            captured.append(r)

    logger = logging.getLogger("ccapi.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        AccessLogRecorder().record(rec)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (line,) = captured
    return formatter.format(line)


def test_the_access_line_in_json_has_the_request_facts() -> None:
    failed = {"provider": "mistral", "status": 503, "error": "busy", "kind": "http", "latency_ms": 5.0}
    ok = {"provider": "openai", "status": 200, "error": None, "kind": None, "latency_ms": 100.0}
    line = orjson.loads(access_line(JsonFormatter(), record(attempts=[failed, ok])))
    assert line["level"] == "info" and line["logger"] == "ccapi.access" and line["msg"] == "request"
    assert line["request_id"] == "req_1" and line["account_id"] == "acct_1"
    assert (line["model"], line["provider"], line["status"]) == ("openai/gpt-4o-mini", "openai", 200)
    assert line["attempts"] == 2 and line["tried"] == "mistral:503 openai:200"
    assert (line["prompt_tokens"], line["completion_tokens"]) == (10, 20)
    assert line["cost"] == "0.0003" and line["latency_ms"] == 302.0 and line["upstream_ms"] == 105.0


def test_the_access_line_in_logfmt() -> None:
    line = access_line(LogfmtFormatter(), record())
    assert " level=info logger=ccapi.access msg=request request_id=req_1 " in line
    assert " model=openai/gpt-4o-mini provider=openai attempts=1 tried=openai:200 status=200 " in line
    assert " error_type= " in line and " stream=false" in line and " cost=0.0003 " in line


@pytest.mark.parametrize(
    ("raw", "rendered"),
    [("plain", "plain"), ("two words", '"two words"'), ('say "hi"', '"say \\"hi\\""'), ("a=b", '"a=b"'),
     ("line\nbreak", '"line\\nbreak"'), ("", '""'), (None, ""), (True, "true"), (3, "3")],
)  # fmt: skip
def test_logfmt_values_are_quoted_and_escaped_when_needed(raw: object, rendered: str) -> None:
    assert logfmt_value(raw) == rendered


def test_the_grafana_dashboard_queries_only_metrics_the_gateway_exports(metrics: Metrics) -> None:
    exported = {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in ("", "_total", "_bucket", "_sum", "_count")
    }
    dashboard = orjson.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_bytes())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bccapi_[a-z_]+", target["expr"])
    }
    assert used and used <= exported, used - exported
