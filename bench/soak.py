"""Soak test: one gateway process under mixed traffic for N minutes; does it leak?

Starts `ccapi sim` and `ccapi serve` (SQLite in a temporary directory) on free
127.0.0.1 ports, creates three accounts' keys, then keeps `--concurrency`
clients busy with a mix of:

- non-streaming and streaming completions (master key and an account's key);
- failovers (`models`: a provider the simulator answers 503 for, then a healthy one);
- clients that disconnect after the first stream event;
- 402s (an account with almost no credit) and 429s (a key limited to 5 rpm).

Every 30 s it prints the gateway's resident memory (VmRSS), its open file
descriptors (/proc/PID/fd) and the latency of `GET /health`, polled every
100 ms beside the load: the route does nothing, so its latency is the
event loop's lag as a client sees it. At the end it stops the gateway
(SIGTERM) and compares the ledger's rows with the requests the gateway
answered (each carries its own `x-request-id`).

Pass criteria (printed): RSS growth after the first minute < 10 %, no growth
of open file descriptors after the first minute (a few of slack for pooled
connections), ledger rows == requests answered, and exit code 0.

    .venv/bin/python bench/soak.py                 # 10 minutes
    .venv/bin/python bench/soak.py --minutes 2     # a short check

Not part of the test suite. Figures: docs/benchmarks.md ("Soak").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

HOST = "127.0.0.1"
MASTER = "sk-soak-master"
MESSAGES = [{"role": "user", "content": "Tell me about soak tests."}]
CHAT: dict[str, object] = {"model": "openai/gpt-4o-mini", "messages": MESSAGES}
FAILOVER: dict[str, object] = {"models": ["mistral/mistral-large-4", "openai/gpt-4o-mini"], "messages": MESSAGES}
SAMPLE_SECONDS = 30.0
HEALTH_EVERY = 0.1
FD_SLACK = 4
RSS_GROWTH_MAX = 0.10


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "ccapi.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {within}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Tally:
    answered: set[str] = field(default_factory=set)  # request ids the gateway answered
    outcomes: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    health_ms: list[float] = field(default_factory=list)


async def one_request(
    client: httpx.AsyncClient, n: int, keys: dict[str, str], tally: Tally, rng: random.Random
) -> None:
    kind = rng.choices(
        ["complete", "stream", "failover", "disconnect", "402", "429"], weights=[30, 25, 15, 10, 10, 10]
    )[0]
    secret = {"402": keys["poor"], "429": keys["limited"]}.get(kind, keys["rich"] if n % 2 else MASTER)
    body = {**(FAILOVER if kind == "failover" else CHAT), "max_tokens": rng.randint(5, 60)}
    stream = kind in ("stream", "disconnect") or (kind == "failover" and n % 2 == 0)
    request_id = f"soak-{n}"
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": request_id}
    try:
        async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": stream}, headers=headers) as r:
            tally.answered.add(request_id)
            if kind == "disconnect" and r.status_code == 200:
                async for _ in r.aiter_raw():
                    break  # leave mid-stream: the connection is closed under the gateway
                tally.outcomes["disconnect"] += 1
                return
            await r.aread()
            tally.outcomes[f"{kind} {r.status_code}"] += 1
    except httpx.TransportError as exc:
        tally.unanswered += 1
        tally.outcomes[f"{kind} transport error {exc.__class__.__name__}"] += 1


async def client_loop(
    base: str, keys: dict[str, str], tally: Tally, stop_at: float, seed: int, counter: list[int]
) -> None:
    rng = random.Random(seed)
    # A fresh connection now and then, as real clients have (keep-alive pools come and go).
    while time.monotonic() < stop_at:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(200):
                if time.monotonic() >= stop_at:
                    return
                counter[0] += 1
                await one_request(client, counter[0], keys, tally, rng)


async def health_loop(base: str, tally: Tally, stop_at: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            await client.get("/health")
            tally.health_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(HEALTH_EVERY)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


async def monitor(
    pid: int, tally: Tally, started: float, stop_at: float, samples: list[tuple[float, float, int]]
) -> None:
    print(f"{'t (s)':>6} {'RSS MB':>8} {'fds':>5} {'health p50/p99/max ms':>24} {'answered':>9}")
    while True:
        now = time.monotonic()
        lag, tally.health_ms = tally.health_ms, []
        sample = (now - started, rss_mb(pid), open_fds(pid))
        samples.append(sample)
        lags = f"{percentile(lag, 50):.1f}/{percentile(lag, 99):.1f}/{max(lag, default=0):.1f}"
        print(f"{sample[0]:6.0f} {sample[1]:8.1f} {sample[2]:5d} {lags:>24} {len(tally.answered):9d}", flush=True)
        if now >= stop_at:
            return
        await asyncio.sleep(min(SAMPLE_SECONDS, max(stop_at - now, 0.5)))


async def make_keys(db_url: str) -> dict[str, str]:
    from ccapi.storage.store import Store

    store = Store(db_url)
    try:
        rich = await store.create_account("soak-rich", Decimal("100000"), None, None)
        poor = await store.create_account("soak-poor", Decimal("0.0000001"), None, None)
        keys = {}
        for name, account, fields in (("rich", rich, {}), ("poor", poor, {}), ("limited", rich, {"rpm": 5})):
            created = await store.create_key(account.id, fields)
            assert created is not None
            keys[name] = created[1]
        return keys
    finally:
        await store.close()


def ledger_rows(db: Path) -> tuple[int, set[str]]:
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("select request_id from usage where request_id like 'soak-%'")]
    return len(ids), set(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ccapi-soak-"))
    db = tmp / "ccapi.db"
    sim_port, gw_port = free_port(), free_port()
    sim_url, base = f"http://{HOST}:{sim_port}", f"http://{HOST}:{gw_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCAPI_") and not k.endswith("_API_KEY")}
    sim = start(["sim", "--port", str(sim_port)], env, tmp / "sim.log")
    gateway: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"{sim_url}/_sim/stats", sim)
        gw_env = {
            **env,
            "CCAPI_MASTER_KEY": MASTER,
            "CCAPI_DATABASE_URL": f"sqlite:///{db}",
            "CCAPI_LOG_LEVEL": "warning",
            "CCAPI_BREAKER__FAILURE_THRESHOLD": "1000000",  # keep failing over, never skip the faulty provider
            "OPENAI_API_KEY": "sk-sim",
            "CCAPI_OPENAI_BASE_URL": f"{sim_url}/v1",
            "MISTRAL_API_KEY": "sk-sim",
            "CCAPI_MISTRAL_BASE_URL": f"{sim_url}/_fault/status=503/v1",
        }
        gateway = start(["serve", "--port", str(gw_port)], gw_env, tmp / "gateway.log")
        wait_http(f"{base}/health", gateway)
        keys = asyncio.run(make_keys(f"sqlite:///{db}"))
        print(f"soak: {args.minutes:g} min, {args.concurrency} clients, gateway pid {gateway.pid}, files in {tmp}")

        tally = Tally()
        samples: list[tuple[float, float, int]] = []

        async def run() -> None:
            started = time.monotonic()
            stop_at = started + args.minutes * 60
            counter = [0]
            await asyncio.gather(
                monitor(gateway.pid, tally, started, stop_at, samples),
                health_loop(base, tally, stop_at),
                *(client_loop(base, keys, tally, stop_at, seed, counter) for seed in range(args.concurrency)),
            )

        asyncio.run(run())
        gateway.send_signal(signal.SIGTERM)
        code = gateway.wait(60)
        rows, row_ids = ledger_rows(db)
    finally:
        for proc in (gateway, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)

    print("\noutcomes:", ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items())))
    after_first_minute = [s for s in samples if s[0] >= 60] or samples
    base_rss, end_rss = after_first_minute[0][1], samples[-1][1]
    base_fds, end_fds = after_first_minute[0][2], samples[-1][2]
    growth = (end_rss - base_rss) / base_rss
    checks = {
        f"RSS growth after the first minute {growth:+.1%} ({base_rss:.1f} -> {end_rss:.1f} MB) < 10 %": growth
        < RSS_GROWTH_MAX,
        f"open fds after the first minute {base_fds} -> {end_fds} (slack {FD_SLACK})": end_fds <= base_fds + FD_SLACK,
        f"ledger rows {rows} == requests answered {len(tally.answered)} (ids match, none twice)": rows
        == len(tally.answered)
        and row_ids == tally.answered,
        f"exit code after SIGTERM {code} == 0": code == 0,
    }
    if tally.unanswered:
        print(f"note: {tally.unanswered} requests got no answer (transport errors)")
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if all(checks.values()):
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    print(f"logs and database kept in {tmp}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
