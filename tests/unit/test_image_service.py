"""The image service leaves a ledger record and gives the hold back for every
request, a bug in a provider call or a cancelled request included."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ccapi.api.deps import Principal
from ccapi.catalog.catalog import Catalog
from ccapi.core.types import RequestRecord
from ccapi.files.store import FileStore
from ccapi.media import image_service
from ccapi.media.image_service import ImageService
from ccapi.routing.health import HealthBook
from ccapi.schemas.images import LegacyImageGenerationRequest

REQUEST = LegacyImageGenerationRequest.model_validate(
    {"model": "stability/stable-diffusion-xl-1024-v1-0", "prompt": "x", "size": "1024x1024"}
)
ACCOUNT = Principal(key_id="key_1", account_id="acct_1", is_admin=False)


class Billing:
    """Records what the service asks of billing."""

    def __init__(self) -> None:
        self.settled: list[tuple[Any, RequestRecord]] = []

    def allowed(self, principal: Principal, candidates: list[Any]) -> list[Any]:
        return candidates

    async def admit_cost(self, principal: Principal, needed: Any, tokens: int = 0) -> Any:
        return SimpleNamespace(hold=("hold", needed()), headers={})

    def settle(self, admission: Any, record: RequestRecord) -> None:
        self.settled.append((admission, record))


class Records:
    def __init__(self) -> None:
        self.seen: list[RequestRecord] = []

    def record(self, rec: RequestRecord) -> None:
        self.seen.append(rec)


def service(billing: Billing, records: Records, tmp_path: Path) -> ImageService:
    stability = SimpleNamespace(configured=True, base_url="http://127.0.0.1:9", api_key="k")
    return ImageService(
        catalog=Catalog.load(),
        providers={"stability": stability},  # type: ignore[dict-item]
        health=HealthBook(5, 30),
        billing=billing,  # type: ignore[arg-type]
        files=FileStore(tmp_path, 60),
        jobs=None,  # type: ignore[arg-type]
        recorder=records,
        attempt_timeout=5,
        request_timeout=10,
        job_hold_ttl=60,
    )


def new_record() -> RequestRecord:
    return RequestRecord("req_1", "/images/generations", time.time(), "key_1", "acct_1", [], None, None, [], 0, None)


async def test_a_bug_in_the_provider_call_gives_the_hold_back_and_leaves_a_500_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(image_service, "call_images", broken)
    billing, records = Billing(), Records()
    with pytest.raises(RuntimeError):
        await service(billing, records, tmp_path).handle(REQUEST, new_record(), ACCOUNT, "http://gw")
    assert [(r.status, r.error_type, r.cost) for r in records.seen] == [(500, "internal_error", 0)]
    [(admission, record)] = billing.settled
    assert admission.hold[0] == "hold" and record.status == 500


async def test_a_cancelled_request_gives_the_hold_back_and_leaves_its_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = asyncio.Event()

    async def slow(*_: Any) -> Any:
        started.set()
        await asyncio.sleep(60)

    monkeypatch.setattr(image_service, "call_images", slow)
    billing, records = Billing(), Records()
    task = asyncio.create_task(service(billing, records, tmp_path).handle(REQUEST, new_record(), ACCOUNT, "http://gw"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.status for r in records.seen] == [500]
    assert len(billing.settled) == 1
