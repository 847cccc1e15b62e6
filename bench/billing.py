"""The accounts-and-billing benchmark: what a real account key costs over the
master key, on SQLite and on PostgreSQL + Redis, in one run.

    bench/run-billing.sh            (or: .venv/bin/python bench/billing.py [--quick])

Same method as bench/bench.py (its functions are reused): the simulator, then
CCAPI three ways, each measured with wrk at c=1 and c=64 and streaming TTFB:
  master     the master key (ledgered, not charged): the core figure
  key-sqlite an account key with credits, RPM/TPM limits and a spend limit;
             SQLite; every request reserves, settles and writes its ledger row
  key-pg     the same on PostgreSQL + Redis (throwaway servers started here)
Targets (the issue): key-sqlite throughput at c=64 >= 80 % of master's, and
its added p50 latency at c=1 <= 1.5 ms over master's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench as b
from ccapi.storage.migrate import upgrade
from ccapi.storage.store import Store

# Limits high enough never to refuse: the limiter and the reservation still run.
ACCOUNT = {"credits": Decimal(1_000_000), "rpm": 10_000_000, "tpm": 1_000_000_000}
KEY = {"spend_limit": Decimal(1_000_000), "rpm": 10_000_000, "tpm": 1_000_000_000}


def make_key(database_url: str) -> str:
    """An account with credits and a limited key; returns the key's secret."""
    upgrade(database_url)

    async def go() -> str:
        store = Store(database_url)
        try:
            account = await store.create_account("bench", ACCOUNT["credits"], ACCOUNT["rpm"], ACCOUNT["tpm"])
            created = await store.create_key(account.id, dict(KEY))
            assert created is not None
            return created[1]
        finally:
            await store.close()

    return asyncio.run(go())


def gateway_starter(ccapi_bin: str, sim_base: str, workdir: Path, name: str, env: dict[str, str]) -> Any:
    def start() -> b.Server:
        port = b.free_port()
        full = b.base_env() | {
            "CCAPI_MASTER_KEY": b.MASTER_KEY,
            "OPENAI_API_KEY": b.SIM_KEY,
            "CCAPI_OPENAI_BASE_URL": sim_base,
            "CCAPI_LOG_LEVEL": "warning",
            **env,
        }
        return b.spawn(
            name, [ccapi_bin, "serve", "--host", b.HOST, "--port", str(port)], full, port, workdir, b.SERVER_CORE
        )

    return start


def summarize(results: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    direct_p50 = results["direct"]["c1"]["p50_us"] / 1000
    direct_ttfb = results["direct"]["stream"]["ttfb_p50_ms"]
    master = results["master"]
    rows = []
    derived: dict[str, Any] = {}
    for name in ("master", "key-sqlite", "key-pg"):
        r = results.get(name)
        if r is None:
            continue
        added = r["c1"]["p50_us"] / 1000 - direct_p50
        share = r["c64"]["rps"] / master["c64"]["rps"]
        derived[name] = {
            "rps_c64": round(r["c64"]["rps"]),
            "throughput_vs_master": round(share, 3),
            "added_p50_c1_ms": round(added, 3),
            "added_p50_c1_over_master_ms": round(added - (master["c1"]["p50_us"] / 1000 - direct_p50), 3),
            "ttfb_overhead_p50_ms": round(r["stream"]["ttfb_p50_ms"] - direct_ttfb, 3),
            "p99_c64_ms": round(r["c64"]["p99_us"] / 1000, 2),
            "errors": b._errors(r),
        }
        d = derived[name]
        rows.append(
            f"{name:<11} {d['rps_c64']:>8,} {share:>9.0%} {added:>10.3f} {d['added_p50_c1_over_master_ms']:>12.3f} "
            f"{d['ttfb_overhead_p50_ms']:>9.3f} {d['p99_c64_ms']:>9.2f}  {d['errors']}"
        )
    head = (
        f"{'target':<11} {'req/s@64':>8} {'vs master':>9} {'+p50@1 ms':>10} {'+p50 vs mstr':>12} "
        f"{'+TTFB ms':>9} {'p99@64 ms':>9}  errors"
    )
    key = derived.get("key-sqlite")
    verdicts = []
    if key:
        verdicts.append(
            f"[{'    MET' if key['throughput_vs_master'] >= 0.8 else 'NOT MET'}] key-sqlite throughput "
            f"{key['throughput_vs_master']:.0%} of master (target >= 80 %)"
        )
        verdicts.append(
            f"[{'    MET' if key['added_p50_c1_over_master_ms'] <= 1.5 else 'NOT MET'}] key-sqlite added p50 at c=1 "
            f"{key['added_p50_c1_over_master_ms']:.3f} ms over master (target <= 1.5 ms)"
        )
    return "\n".join([head, "-" * len(head), *rows, "", *verdicts]), derived


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL + Redis")
    args = ap.parse_args()
    plan = b.Plan.quick() if args.quick else b.Plan()
    plan = dataclasses.replace(plan, start_runs=1)  # start time is the core benchmark's business
    if b.LOAD_CORE is not None:
        import os

        os.sched_setaffinity(0, {b.LOAD_CORE})
    workdir = Path(tempfile.mkdtemp(prefix="ccapi-billing-bench-"))
    ccapi_bin = str(Path(sys.executable).parent / "ccapi")
    servers: list[b.Server] = []
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with b.cleanup(servers), contextlib.ExitStack() as stack:

        def start_sim() -> b.Server:
            port = b.free_port()
            return b.spawn(
                "sim",
                [ccapi_bin, "sim", "--host", b.HOST, "--port", str(port)],
                b.base_env(),
                port,
                workdir,
                b.SERVER_CORE,
            )

        results["direct"], sim = b.benchmark(
            b.Target("direct", b.SIM_KEY, b.UPSTREAM_MODEL), start_sim, plan, keep=True
        )
        servers.append(sim)
        b.set_affinity(sim.pid, b.LOAD_CORE)
        sim_base = f"http://{b.HOST}:{sim.port}/v1"

        master_db = f"sqlite:///{workdir}/master.db"
        start = gateway_starter(ccapi_bin, sim_base, workdir, "master", {"CCAPI_DATABASE_URL": master_db})
        results["master"], _ = b.benchmark(b.Target("master", b.MASTER_KEY, b.GATEWAY_MODEL), start, plan)

        key_db = f"sqlite:///{workdir}/key.db"
        secret = make_key(key_db)
        start = gateway_starter(ccapi_bin, sim_base, workdir, "key-sqlite", {"CCAPI_DATABASE_URL": key_db})
        results["key-sqlite"], _ = b.benchmark(b.Target("key-sqlite", secret, b.GATEWAY_MODEL), start, plan)

        if not args.no_pg:
            from tests.infra import postgres_server, redis_server

            pg_url = stack.enter_context(postgres_server()).url
            redis_url = stack.enter_context(redis_server()).url
            secret = make_key(pg_url)
            env = {"CCAPI_DATABASE_URL": pg_url, "CCAPI_REDIS_URL": redis_url}
            start = gateway_starter(ccapi_bin, sim_base, workdir, "key-pg", env)
            results["key-pg"], _ = b.benchmark(b.Target("key-pg", secret, b.GATEWAY_MODEL), start, plan)

    table, derived = summarize(results)
    doc = {
        "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 1),
        "machine": b.machine(),
        "plan": plan.__dict__,
        "results": results,
        "derived": derived,
    }
    b.RESULTS_DIR.mkdir(exist_ok=True)
    (b.RESULTS_DIR / "billing-latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nCCAPI billing benchmark, {doc['machine']['nproc']} x {doc['machine']['cpu_model']}")
    print(table)
    print(f"\nwrote bench/results/billing-latest.json (wall {doc['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
