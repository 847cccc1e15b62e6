import asyncio
import time

import pytest

from ccapi.catalog.catalog import Catalog, ModelInfo
from ccapi.core.errors import GatewayTimeoutError, InvalidRequestError, UpstreamError
from ccapi.providers.adapter import http_error
from ccapi.providers.base import AttemptError, ttft_missed
from ccapi.routing.failover import Deadline, FailoverRunner
from ccapi.routing.health import BreakerState, HealthBook
from ccapi.routing.latency import CandidateLatency

from .fakes import Delayed, FakeAdapter, FakeStream, text_result

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


def one_fragment(text: str = "ok") -> FakeStream:
    return FakeStream([{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}])


OPENAI_THEN_MISTRAL = ("openai/gpt-4o-mini", "mistral/mistral-small-2506")


async def test_stream_first_token_past_the_ttft_deadline_fails_over(catalog: Catalog) -> None:
    slow = FakeAdapter(Delayed(1.0, one_fragment("slow")))
    run = runner({"openai": slow, "mistral": FakeAdapter(one_fragment("fast"))})
    limits = [CandidateLatency(ttft=0.05), CandidateLatency(ttft=0.05)]
    served = await run.open_stream(models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), limits)
    assert served.model.provider.name == "mistral"
    first = served.attempts[0]
    assert first.status is None and "time-to-first-token deadline of 50 ms" in (first.error or "")
    assert slow.cancelled == 1


async def test_every_candidate_missing_the_ttft_deadline_is_502(catalog: Catalog) -> None:
    run = runner(
        {"openai": FakeAdapter(Delayed(1.0, one_fragment())), "mistral": FakeAdapter(Delayed(1.0, one_fragment()))}
    )
    with pytest.raises(UpstreamError) as err:
        await run.open_stream(
            models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(ttft=0.03)] * 2
        )
    assert err.value.status == 502
    assert [a["status"] for a in err.value.details["attempts"]] == [None, None]  # type: ignore[index]


async def test_a_whole_answer_gets_its_ttft_as_a_first_byte_deadline(catalog: Catalog) -> None:
    adapter = FakeAdapter(text_result())
    await runner({"openai": adapter}).complete(
        models(catalog, "openai/gpt-4o-mini"), BODY, Deadline(10), [CandidateLatency(ttft=0.25)]
    )
    assert adapter.calls[0].first_byte_timeout == 0.25
    # A deadline no shorter than the attempt's own timeout adds nothing.
    await runner({"openai": adapter}, attempt_timeout=0.1).complete(
        models(catalog, "openai/gpt-4o-mini"), BODY, Deadline(10), [CandidateLatency(ttft=0.25)]
    )
    assert adapter.calls[1].first_byte_timeout is None


@pytest.mark.parametrize("asked", [True, False])
async def test_only_the_operators_ttft_deadline_counts_against_a_provider(catalog: Catalog, asked: bool) -> None:
    run = runner(
        {"openai": FakeAdapter(ttft_missed("openai", 0.1)), "mistral": FakeAdapter(text_result())}, threshold=1
    )
    limits = [CandidateLatency(ttft=0.1, ttft_asked=asked)] * 2
    served, _ = await run.complete(models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), limits)
    assert served.model.provider.name == "mistral"
    expected = BreakerState.CLOSED if asked else BreakerState.OPEN
    assert run.health.breaker("openai").state is expected


async def test_hedge_starts_the_next_candidate_and_the_first_answer_wins(catalog: Catalog) -> None:
    slow = FakeAdapter(Delayed(2.0, text_result("slow")))
    fast = FakeAdapter(Delayed(0.02, text_result("fast")))
    run = runner({"openai": slow, "mistral": fast})
    began = time.monotonic()
    served, result = await run.complete(
        models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(hedge=0.1)] * 2
    )
    elapsed = time.monotonic() - began
    assert 0.1 <= elapsed < 0.5
    assert result.choices[0]["message"]["content"] == "fast"
    assert [(a.provider, a.status) for a in served.attempts] == [("mistral", 200), ("openai", None)]
    loser = served.attempts[1]
    assert loser.error == "cancelled: mistral/mistral-small-2506 answered first" and loser.cost == 0
    assert slow.cancelled == 1
    assert run.health.breaker("openai").state is BreakerState.CLOSED and not run.health.breaker("openai").probing


async def test_no_hedge_when_the_first_answers_in_time(catalog: Catalog) -> None:
    second = FakeAdapter(text_result("never"))
    run = runner({"openai": FakeAdapter(Delayed(0.01, text_result())), "mistral": second})
    served, _ = await run.complete(
        models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(hedge=0.2)] * 2
    )
    assert [a.provider for a in served.attempts] == ["openai"] and second.calls == []


async def test_a_hedged_stream_loser_is_closed(catalog: Catalog) -> None:
    late = one_fragment("late")
    slow = FakeAdapter(Delayed(0.3, late))
    run = runner({"openai": slow, "mistral": FakeAdapter(Delayed(0.01, one_fragment("fast")))})
    served = await run.open_stream(
        models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(hedge=0.05)] * 2
    )
    assert served.first == {"choices": [{"index": 0, "delta": {"content": "fast"}, "finish_reason": "stop"}]}
    assert slow.cancelled == 1 and [a.status for a in served.attempts] == [200, None]


async def test_a_failure_during_a_hedge_is_replaced_at_once(catalog: Catalog) -> None:
    slow = FakeAdapter(Delayed(2.0, text_result("slow")))
    failing = FakeAdapter(Delayed(0.01, http_error("mistral", 503, "down")))
    third = FakeAdapter(Delayed(0.01, text_result("third")))
    run = runner({"openai": slow, "mistral": failing, "anthropic": third})
    candidates = models(catalog, "openai/gpt-4o-mini", "mistral/mistral-small-2506", "anthropic/claude-haiku-4-5")
    began = time.monotonic()
    served, result = await run.complete(candidates, BODY, Deadline(10), [CandidateLatency(hedge=0.1)] * 3)
    assert time.monotonic() - began < 0.5
    assert result.choices[0]["message"]["content"] == "third"
    assert [(a.provider, a.status) for a in served.attempts] == [("mistral", 503), ("anthropic", 200), ("openai", None)]


async def test_a_client_error_during_a_hedge_cancels_the_rest(catalog: Catalog) -> None:
    slow = FakeAdapter(Delayed(2.0, text_result("slow")))
    run = runner({"openai": slow, "mistral": FakeAdapter(Delayed(0.01, http_error("mistral", 400, "bad")))})
    with pytest.raises(InvalidRequestError):
        await run.complete(
            models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(hedge=0.05)] * 2
        )
    assert slow.cancelled == 1


async def test_the_deadline_during_a_hedge_is_504_and_cancels_both(catalog: Catalog) -> None:
    a, b = FakeAdapter(Delayed(2.0, text_result())), FakeAdapter(Delayed(2.0, text_result()))
    run = runner({"openai": a, "mistral": b})
    with pytest.raises(GatewayTimeoutError) as err:
        await run.complete(
            models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(0.2), [CandidateLatency(hedge=0.05)] * 2
        )
    assert len(err.value.details["attempts"]) == 2  # type: ignore[index]
    assert a.cancelled == b.cancelled == 1


async def test_a_cancelled_request_cancels_its_hedged_attempts(catalog: Catalog) -> None:
    a, b = FakeAdapter(Delayed(2.0, text_result())), FakeAdapter(Delayed(2.0, text_result()))
    run = runner({"openai": a, "mistral": b})
    task = asyncio.create_task(
        run.complete(models(catalog, *OPENAI_THEN_MISTRAL), BODY, Deadline(10), [CandidateLatency(hedge=0.02)] * 2)
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.cancelled == b.cancelled == 1
