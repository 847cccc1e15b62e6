"""The chat service leaves a record for every request, bugs and cancellations included."""

from __future__ import annotations

import asyncio
import time

import pytest

from ccapi.api.deps import Principal
from ccapi.catalog.catalog import Catalog
from ccapi.core.types import RequestRecord
from ccapi.routing.chat import ChatService
from ccapi.routing.failover import FailoverRunner
from ccapi.routing.health import HealthBook
from ccapi.schemas.chat import ChatCompletionRequest

from .fakes import FakeAdapter

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Records:
    def __init__(self) -> None:
        self.seen: list[RequestRecord] = []

    def record(self, rec: RequestRecord) -> None:
        self.seen.append(rec)


def service(adapter: FakeAdapter, records: Records) -> ChatService:
    health = HealthBook(5, 30)
    return ChatService(
        catalog=Catalog.load(),
        configured={"openai": True},
        how_to_configure={},
        runner=FailoverRunner({"openai": adapter}, health, 5),  # type: ignore[dict-item]
        health=health,
        recorder=records,
        request_timeout=10,
        max_models=10,
    )


def new_record() -> RequestRecord:
    return RequestRecord("req_1", "/chat/completions", time.time(), None, None, [], None, None, [], 0, None)


MASTER = Principal(key_id=None, account_id=None, is_admin=True, is_master=True)


async def test_a_bug_still_leaves_a_500_record() -> None:
    records = Records()
    chat = service(FakeAdapter(RuntimeError("boom")), records)
    with pytest.raises(RuntimeError):
        await chat.handle(ChatCompletionRequest.model_validate(BODY), BODY, new_record(), MASTER)
    assert [(r.status, r.error_type) for r in records.seen] == [(500, "internal_error")]


async def test_a_cancelled_request_still_leaves_a_503_shutting_down_record() -> None:
    # Only a stop past its grace period cancels a request's task.
    records = Records()
    chat = service(FakeAdapter(5.0), records)  # the upstream hangs
    task = asyncio.create_task(chat.handle(ChatCompletionRequest.model_validate(BODY), BODY, new_record(), MASTER))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(r.status, r.error_type) for r in records.seen] == [(503, "provider_unavailable")]
