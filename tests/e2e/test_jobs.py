"""Asynchronous image jobs through the real gateway and simulator processes:
202 and polling to success, failure and cancellation with their ledger rows
and balances, signed webhooks (retried until a 2xx), visibility per account,
and a gateway killed mid-job whose job still ends exactly once after restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from ccapi.jobs.store import JobStore
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER, gateway_env
from .test_billing import Accounts, wait_for_rows

SECRET = "whsec-test-secret"
FAST = {"model": "stability/stable-diffusion-xl-1024-v1-0", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"}
SLOW = {
    "model": "openai/dall-e-3",
    "prompt": "a slow lighthouse",
    "size": "1024x1024",
    "quality": "standard",
}  # $0.04, answers in 1.5 s
FAILING = {"model": "google/gemini-3-pro-image", "contents": [{"text": "a failing lighthouse"}], "async": True}


class Receiver:
    """A webhook receiver on 127.0.0.1: records each delivery; answers 500 to the first `fail_first`."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.fail_first = fail_first
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.add_routes([web.post("/hook", self._hook)])
        self._runner = web.AppRunner(app)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10)

    async def _hook(self, request: web.Request) -> web.Response:
        self.deliveries.append((await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        if len(self.deliveries) <= self.fail_first:
            return web.Response(status=500)
        return web.Response(status=204)

    def for_job(self, job_id: str, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [orjson.loads(body) for body, _ in self.deliveries if orjson.loads(body)["id"] == job_id]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return [orjson.loads(body) for body, _ in self.deliveries if orjson.loads(body)["id"] == job_id]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def job_env(sim_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = gateway_env(
        sim_url,
        CCAPI_DATABASE_URL=f"sqlite:///{tmp}/ccapi.db",
        CCAPI_FILES_DIR=str(tmp / "files"),
        CCAPI_ALLOW_PRIVATE_URLS="true",
        CCAPI_WEBHOOK_SECRET=SECRET,
        STABILITY_API_KEY="sk-sim-stability",
        CCAPI_STABILITY_BASE_URL=sim_url,
        CCAPI_OPENAI_BASE_URL=f"{sim_url}/_fault/latency_ms=1500/v1",
        CCAPI_GOOGLE_BASE_URL=f"{sim_url}/_fault/status=500",
        CCAPI_ATTEMPT_TIMEOUT="10",
        CCAPI_JOBS__POLL_INTERVAL="0.2",
        CCAPI_JOBS__LEASE_SECONDS="1.5",
    )
    return {**env, **extra}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hooks = Receiver(fail_first=1)
    yield hooks
    hooks.close()


@pytest.fixture(scope="module")
def jobs_gw(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Accounts]]:
    tmp = tmp_path_factory.mktemp("jobs")
    with run_ccapi(["serve"], env=job_env(sim.url, tmp), tmp_path=tmp, name="gateway-jobs") as gw:
        yield gw, Accounts(f"sqlite:///{tmp}/ccapi.db")


def submit(gw: ServerProcess, key: str, body: dict[str, Any], path: str = "/images/generations") -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def poll(gw: ServerProcess, key: str, job_id: str) -> httpx.Response:
    return httpx.get(f"{gw.url}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def wait_until(gw: ServerProcess, key: str, job_id: str, statuses: tuple[str, ...], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = poll(gw, key, job_id).json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def signature_ok(body: bytes, headers: dict[str, str]) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-ccapi-signature", ""), expected)


def test_an_async_request_is_a_job_polled_to_success_then_webhooked_once(
    jobs_gw: tuple[ServerProcess, Accounts], receiver: Receiver
) -> None:
    gw, accounts = jobs_gw
    account = accounts.account("1.00")
    _, key = accounts.key(account)
    resp = submit(gw, key, {**FAST, "async": True, "webhook_url": receiver.url})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert set(job) == {
        "id", "created", "model", "status", "execution", "data", "poll_url", "estimated_time", "error", "usage"
    }  # fmt: skip
    assert job["status"] == "pending" and job["data"] == [] and job["error"] is None
    assert job["poll_url"] == f"/images/jobs/{job['id']}" == resp.headers["location"]
    assert job["execution"] == {"mode": "async", "operation": "text-to-image", "provider": "stability"}
    assert "x-ratelimit-limit-requests" not in resp.headers or resp.headers["x-ratelimit-limit-requests"]

    done = wait_until(gw, key, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["usage"] == {"images": 2, "cost": 0.004}
    assert done["poll_url"] == job["poll_url"] and done["estimated_time"] is None
    for datum in done["data"]:
        image = httpx.get(datum["url"], timeout=10)  # a signed link: no bearer header
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    [row] = wait_for_rows(accounts, 1, account_id=account)
    assert (row["route"], row["status"], row["cost"]) == ("/images/generations", 200, Decimal("0.004"))
    assert accounts.balance(account) == (Decimal("0.996"), 0)

    # The receiver refused the first delivery: it came again (with backoff) and was accepted.
    deliveries = receiver.for_job(job["id"], count=2)
    assert len(deliveries) == 2 and all(d["status"] == "succeeded" for d in deliveries)
    raw = [(body, headers) for body, headers in receiver.deliveries if orjson.loads(body)["id"] == job["id"]]
    assert all(signature_ok(body, headers) for body, headers in raw)
    assert not signature_ok(raw[0][0] + b" ", raw[0][1])
    time.sleep(1.5)
    assert len(receiver.for_job(job["id"], count=3, timeout=0.1)) == 2  # never again once accepted

    # The model now has history: a new job carries an estimate.
    again = submit(gw, key, {**FAST, "async": True}).json()
    assert isinstance(again["estimated_time"], float) and again["estimated_time"] >= 0


def test_a_failed_job_has_an_error_object_costs_nothing_and_is_webhooked(
    jobs_gw: tuple[ServerProcess, Accounts], receiver: Receiver
) -> None:
    gw, accounts = jobs_gw
    account = accounts.account("1.00")
    _, key = accounts.key(account)
    resp = submit(gw, key, {**FAILING, "webhook_url": receiver.url}, path="/images/generate")
    assert resp.status_code == 202, resp.text
    done = wait_until(gw, key, resp.json()["id"], ("succeeded", "failed"))
    assert done["status"] == "failed" and done["data"] == []
    assert done["error"]["type"] == "upstream_error" and "HTTP 500" in done["error"]["message"]
    assert set(done["error"]) == {"message", "type", "code", "param", "details"}
    [row] = wait_for_rows(accounts, 1, account_id=account)
    assert (row["route"], row["status"], row["error_type"], row["cost"]) == (
        "/images/generate",
        502,
        "upstream_error",
        Decimal(0),
    )
    assert accounts.balance(account) == (Decimal("1.00"), 0)
    [delivered] = receiver.for_job(done["id"])
    assert delivered["status"] == "failed"


def test_cancel_releases_the_hold_and_a_finished_job_is_a_409(jobs_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = jobs_gw
    account = accounts.account("1.00")
    _, key = accounts.key(account)
    job = submit(gw, key, {**SLOW, "async": True}).json()
    assert accounts.run(lambda s: s.get_account(account)).reserved == Decimal("0.04")
    headers = {"Authorization": f"Bearer {key}"}
    cancelled = httpx.delete(f"{gw.url}/images/jobs/{job['id']}", headers=headers, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["data"] == []
    again = httpx.delete(f"{gw.url}/images/jobs/{job['id']}", headers=headers, timeout=10)
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "invalid_request_error"
    assert again.json()["error"]["code"] == "job_finished"
    time.sleep(2)  # the upstream's (slow) answer arrives and is dropped
    assert poll(gw, key, job["id"]).json()["status"] == "cancelled"
    [row] = wait_for_rows(accounts, 1, account_id=account)
    assert (row["status"], row["error_type"], row["cost"]) == (499, "cancelled", Decimal(0))
    assert accounts.balance(account) == (Decimal("1.00"), 0)


def test_a_key_sees_only_its_own_accounts_jobs(jobs_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, accounts = jobs_gw
    owner, other = accounts.account("1.00"), accounts.account("1.00")
    _, owner_key = accounts.key(owner)
    _, same_account_key = accounts.key(owner)
    _, other_key = accounts.key(other)
    job = submit(gw, owner_key, {**FAST, "async": True}).json()
    assert poll(gw, same_account_key, job["id"]).status_code == 200
    assert poll(gw, MASTER, job["id"]).status_code == 200
    for key, job_id in ((other_key, job["id"]), (owner_key, "imgjob_000000000000000000000000"), (owner_key, "x")):
        resp = poll(gw, key, job_id)
        assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
        gone = httpx.delete(f"{gw.url}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
        assert gone.status_code == 404
    assert httpx.get(f"{gw.url}/images/jobs/{job['id']}").status_code == 401
    wait_until(gw, owner_key, job["id"], ("succeeded",))


def test_bad_job_submissions_are_400s_naming_the_field(jobs_gw: tuple[ServerProcess, Accounts]) -> None:
    gw, _ = jobs_gw
    for body, param in (
        ({**FAST, "async": True, "webhook_url": "file:///etc/passwd"}, "webhook_url"),
        ({**FAST, "async": True, "webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({**FAST, "webhook_url": "https://example.com/hook"}, "webhook_url"),  # webhooks are for jobs
        ({**FAST, "async": True, "n": 0}, "n"),
        ({**FAST, "async": True, "size": "3x3"}, "size"),
    ):
        resp = submit(gw, MASTER, body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == param


def test_a_gateway_killed_mid_job_finishes_it_exactly_once_after_restart(
    sim: ServerProcess, tmp_path: Path, receiver: Receiver
) -> None:
    env = job_env(sim.url, tmp_path, CCAPI_OPENAI_BASE_URL=f"{sim.url}/_fault/latency_ms=2500/v1")
    accounts = Accounts(f"sqlite:///{tmp_path}/ccapi.db")
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-crash") as gw:
        account = accounts.account("1.00")
        _, key = accounts.key(account)
        job = submit(gw, key, {**SLOW, "async": True, "webhook_url": receiver.url}).json()
        assert wait_until(gw, key, job["id"], ("running",))["status"] == "running"
        time.sleep(0.3)
        gw.stop(signal.SIGKILL)  # no graceful hand-back: the lease must lapse
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-restarted") as gw:
        done = wait_until(gw, key, job["id"], ("succeeded", "failed"), timeout=30)
        assert done["status"] == "succeeded", done
        assert done["usage"] == {"images": 1, "cost": 0.04}
        [row] = wait_for_rows(accounts, 1, account_id=account)
        assert (row["status"], row["cost"]) == (200, Decimal("0.04"))
        time.sleep(1)
        assert len(wait_for_rows(accounts, 2, account_id=account)) == 1  # still one row
        assert accounts.balance(account) == (Decimal("0.96"), 0)
        stored = accounts.run(lambda s: JobStore(s).get(job["id"]))
        assert stored.runs == 2 and stored.status == "succeeded"
        assert [d["status"] for d in receiver.for_job(job["id"])] == ["succeeded"]


def test_sigterm_hands_a_running_job_back_and_the_next_start_finishes_it(sim: ServerProcess, tmp_path: Path) -> None:
    env = job_env(sim.url, tmp_path, CCAPI_JOBS__LEASE_SECONDS="60")
    accounts = Accounts(f"sqlite:///{tmp_path}/ccapi.db")
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-term") as gw:
        job = submit(gw, MASTER, {**SLOW, "async": True}).json()
        assert wait_until(gw, MASTER, job["id"], ("running",))["status"] == "running"
        assert gw.stop(signal.SIGTERM) == 0
    stored = accounts.run(lambda s: JobStore(s).get(job["id"]))
    assert stored.status == "pending"  # handed back, not stuck behind a 60 s lease
    with run_ccapi(["serve"], env=env, tmp_path=tmp_path, name="gateway-term-restarted") as gw:
        done = wait_until(gw, MASTER, job["id"], ("succeeded", "failed"), timeout=15)
        assert done["status"] == "succeeded", done
        [row] = wait_for_rows(accounts, 1, route="/images/generations")
        assert row["status"] == 200 and row["account_id"] is None
