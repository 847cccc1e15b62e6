import pytest

from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import GatewayTimeoutError, InvalidRequestError, UpstreamError
from ccapi.providers.adapter import http_error
from ccapi.providers.base import AttemptError
from ccapi.routing.failover import Deadline, FailoverRunner
from ccapi.routing.health import BreakerState, HealthBook

from .fakes import FakeAdapter, FakeStream, text_result

BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def models(catalog: Catalog, *ids: str) -> list[ModelInfo]:
    return [catalog.models[i] for i in ids]


def runner(adapters: dict[str, FakeAdapter], threshold: int = 5, attempt_timeout: float = 5) -> FailoverRunner:
    return FailoverRunner(adapters, HealthBook(threshold, 30), attempt_timeout)  # type: ignore[arg-type]


# What fails over and what does not, by upstream status (the contract's list).
@pytest.mark.parametrize(
    ("status", "fails_over"),
    [(408, True), (409, True), (429, True), (500, True), (502, True), (503, True), (401, True), (403, True),
     (404, True), (400, False), (422, False), (413, False)],
)  # fmt: skip
async def test_failover_by_upstream_status(catalog: Catalog, status: int, fails_over: bool) -> None:
    first = FakeAdapter(http_error("openai", status, "nope"))
    second = FakeAdapter(text_result("from mistral"))
    run = runner({"openai": first, "mistral": second})
    candidates = models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506")
    if fails_over:
        served, result = await run.complete(candidates, BODY, Deadline(10))
        assert served.model.id == "mistral/mistral-small-2506"
        assert [a.status for a in served.attempts] == [status, 200]
        assert result.choices[0]["message"]["content"] == "from mistral"
    else:
        with pytest.raises(InvalidRequestError) as err:
            await run.complete(candidates, BODY, Deadline(10))
        assert err.value.status == (413 if status == 413 else 400)
        assert "nope" in err.value.message
        assert second.calls == []


@pytest.mark.parametrize("kind", ["connect", "timeout", "malformed"])
async def test_transport_failures_fail_over(catalog: Catalog, kind: str) -> None:
    run = runner({"openai": FakeAdapter(AttemptError(kind, kind)), "mistral": FakeAdapter(text_result())})
    served, _ = await run.complete(
        models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506"), BODY, Deadline(10)
    )
    assert [a.provider for a in served.attempts] == ["openai", "mistral"]
    assert served.attempts[0].status is None and served.attempts[0].error == kind


async def test_every_candidate_failing_is_502_with_each_attempt(catalog: Catalog) -> None:
    run = runner({"openai": FakeAdapter(http_error("openai", 500, "boom")),
                  "mistral": FakeAdapter(AttemptError("connect", "refused"))})  # fmt: skip
    with pytest.raises(UpstreamError) as err:
        await run.complete(models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506"), BODY, Deadline(10))
    attempts = err.value.details["attempts"]  # type: ignore[index]
    assert [(a["provider"], a["status"]) for a in attempts] == [("openai", 500), ("mistral", None)]
    assert "boom" in err.value.message and "refused" in err.value.message


async def test_an_attempt_is_cut_by_the_attempt_timeout_then_fails_over(catalog: Catalog) -> None:
    slow = FakeAdapter(text_result("slow"))
    run = runner({"openai": slow, "mistral": FakeAdapter(text_result("fast"))}, attempt_timeout=0.05)
    # The fake adapter itself does not enforce timeouts; the real one does via call.timeout.
    served, _ = await run.complete(models(catalog, "openai/gpt-4o-mini"), BODY, Deadline(10))
    assert slow.calls[0].timeout == pytest.approx(0.05)
    assert served.attempts[0].status == 200


async def test_the_overall_deadline_is_504(catalog: Catalog) -> None:
    run = runner({"openai": FakeAdapter(AttemptError("timeout", "t")), "mistral": FakeAdapter(text_result())})
    deadline = Deadline(0.0)
    with pytest.raises(GatewayTimeoutError) as err:
        await run.complete(models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506"), BODY, deadline)
    assert err.value.status == 504


async def test_the_attempt_timeout_never_exceeds_the_deadline(catalog: Catalog) -> None:
    adapter = FakeAdapter(text_result())
    await runner({"openai": adapter}, attempt_timeout=60).complete(
        models(catalog, "openai/gpt-4o-mini"), BODY, Deadline(2)
    )
    assert adapter.calls[0].timeout <= 2


async def test_breaker_opens_after_consecutive_failures_and_probes_later(catalog: Catalog) -> None:
    failing = FakeAdapter(http_error("openai", 503, "down"))
    run = runner({"openai": failing, "mistral": FakeAdapter(text_result())}, threshold=3)
    candidates = models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506")
    for _ in range(3):
        await run.complete(candidates, BODY, Deadline(10))
    breaker = run.health.breaker("openai")
    assert breaker.state is BreakerState.OPEN
    served, _ = await run.complete(candidates, BODY, Deadline(10))
    assert [a.provider for a in served.attempts] == ["mistral"]  # skipped, not attempted
    assert len(failing.calls) == 3
    breaker.opened_at -= 31  # the reset time has passed: one probe goes through
    failing.outcomes = [text_result("back")]
    served, result = await run.complete(candidates, BODY, Deadline(10))
    assert served.model.provider.name == "openai"
    assert result.choices[0]["message"]["content"] == "back"
    assert breaker.state is BreakerState.CLOSED


async def test_a_refused_translation_moves_on_without_an_attempt(catalog: Catalog) -> None:
    refusing = FakeAdapter(InvalidRequestError("n > 1 is not supported", param="n"))
    run = runner({"anthropic": refusing, "openai": FakeAdapter(text_result())})
    served, _ = await run.complete(
        models(catalog, "anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"), BODY, Deadline(10)
    )
    assert [a.provider for a in served.attempts] == ["openai"]
    with pytest.raises(InvalidRequestError) as err:
        await runner({"anthropic": refusing}).complete(
            models(catalog, "anthropic/claude-haiku-4-5"), BODY, Deadline(10)
        )
    assert err.value.param == "n"


async def test_stream_fails_over_before_the_first_fragment(catalog: Catalog) -> None:
    broken = FakeStream([{"choices": []}], fail_after=0)
    good = FakeStream([{"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}])
    run = runner({"openai": FakeAdapter(broken), "mistral": FakeAdapter(good)})
    served = await run.open_stream(
        models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506"), BODY, Deadline(10)
    )
    assert served.model.provider.name == "mistral"
    assert served.first == good.fragments[0]
    assert broken.closed
    assert [a.status for a in served.attempts] == [None, 200]


async def test_stream_first_byte_timeout_fails_over(catalog: Catalog) -> None:
    good = FakeStream([{"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}])
    run = runner({"openai": FakeAdapter(1.0), "mistral": FakeAdapter(good)}, attempt_timeout=0.05)
    served = await run.open_stream(
        models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506"), BODY, Deadline(10)
    )
    assert served.model.provider.name == "mistral"
    assert "no stream event within" in (served.attempts[0].error or "")
