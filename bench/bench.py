"""CCAPI benchmark driver (run it through bench/run.sh, which installs what it needs).

One run starts the upstream simulator, the CCAPI gateway and the LiteLLM proxy on
free 127.0.0.1 ports and measures, for each of direct-to-simulator, CCAPI and
LiteLLM:

- start to first served request (spawn -> first 200 chat completion; median of N starts);
- non-streaming throughput at concurrency 64 and p50/p99 latency at concurrency 1 and 64 (wrk);
- streaming time to first byte (first SSE body byte) at concurrency 1 (this process, raw sockets);
- idle resident memory of the server's process tree after the load, idle.

`ccapi-w2` is CCAPI again with `--workers 2` (two worker processes, rate
limits in the database): pinned like the single process, so on a 2-core
machine both workers share the server core (the same CPU budget; on more
cores see WORKER_CORES).

CPU placement (2+ cores): the server under test runs alone on core 1; the load
generator (wrk, and this process for streaming) and, when a gateway is under
test, the simulator share core 0. See docs/benchmarks.md.

Writes bench/results/latest.json (and a timestamped copy) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LUA_SCRIPT = BENCH_DIR / "chat.lua"
LITELLM_CONFIG = BENCH_DIR / "litellm-config.yaml"
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
MASTER_KEY = "sk-bench-master"
SIM_KEY = "sk-sim"
GATEWAY_MODEL = "openai/gpt-4o-mini"  # what clients of both gateways send
UPSTREAM_MODEL = "gpt-4o-mini"  # what the gateways send the simulator; direct calls send it too
PROMPT = "Say hello to the benchmark."

TARGETS = {
    "ccapi_throughput_ratio_vs_litellm_min": 30.0,
    "ccapi_added_p50_c1_ms_max": 1.0,
    "ccapi_ttfb_overhead_p50_ms_max": 1.5,
    "ccapi_idle_rss_mb_max": 100.0,
    "ccapi_start_to_first_served_s_max": 1.5,
}
OTHER_CPU_WARN_PCT = 10.0  # foreign CPU use during a measurement above which the run is flagged


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Plan:
    warmup_s: int = 3
    c1_s: int = 5
    c64_s: int = 8
    concurrency: int = 64
    stream_warmup: int = 50
    stream_requests: int = 1000
    stream_max_s: float = 6.0
    idle_s: float = 3.0
    start_runs: int = 3
    start_timeout_s: float = 120.0
    profile_s: int = 8
    profile_rate: int = 200

    @classmethod
    def quick(cls) -> Plan:
        return cls(warmup_s=2, c1_s=2, c64_s=3, stream_warmup=20, stream_requests=300, stream_max_s=2.0, start_runs=1)


def _cores() -> tuple[int | None, int | None]:
    """(server core, load core); no pinning on a single-core machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[1], cpus[0]


SERVER_CORE, LOAD_CORE = _cores()


def _worker_cores() -> str | None:
    """The cores of `ccapi-w2`: every core but the load core (on 2 cores: the server core)."""
    cpus = sorted(os.sched_getaffinity(0))
    if LOAD_CORE is None:
        return None
    return ",".join(str(c) for c in cpus if c != LOAD_CORE)


WORKER_CORES = _worker_cores()


def pinned(core: int | str | None, cmd: list[str]) -> list[str]:
    return cmd if core is None else ["taskset", "-c", str(core), *cmd]


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids[ppid].append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def set_affinity(pid: int, core: int | None) -> None:
    """Move every thread of the process tree to one core."""
    if core is None:
        return
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), {core})


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    spawned_ns: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[int]:
        return process_tree(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its children
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def spawn(name: str, cmd: list[str], env: dict[str, str], port: int, logdir: Path, core: int | str | None) -> Server:
    log = logdir / f"{name}-{port}.log"
    with log.open("wb") as fh:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(
            pinned(core, cmd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=logdir,
        )
    return Server(name, proc, port, log, t0)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for k in list(env):
        if k.startswith(("CCAPI_", "LITELLM_")) or k in ("DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            del env[k]
    return env


# --------------------------------------------------------------------------- a minimal HTTP/1.1 client


class HTTPError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    ttfb_ns: int  # request written -> first body byte received
    total_ns: int  # request written -> last body byte received


class Conn:
    """One keep-alive HTTP/1.1 connection on a blocking socket: little overhead
    and exact timestamps for the first body byte."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.first_body_ns = 0

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise HTTPError("connection closed by the server")
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + 2 :]
        return out

    def request(self, raw: bytes) -> Reply:
        t0 = time.perf_counter_ns()
        self.sock.sendall(raw)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        while not self.buf:  # the first byte of the body
            self._fill()
        ttfb = time.perf_counter_ns() - t0
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        parts: list[bytes] = []
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers, then the empty line
                        pass
                    break
                parts.append(self._take(size))
                self._take(2)
        elif "content-length" in headers:
            parts.append(self._take(int(headers["content-length"])))
        else:
            raise HTTPError("response without a length (connection close framing)")
        total = time.perf_counter_ns() - t0
        return Reply(status, b"".join(parts), ttfb, total)


def chat_request(port: int, key: str, model: str, stream: bool) -> bytes:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        payload["stream"] = True
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nAccept: */*\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def wait_served(server: Server, raw: bytes, timeout_s: float) -> float:
    """Seconds from spawn until the first 200 chat completion (polling every 2 ms)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            conn = Conn(server.port, timeout=10)
            try:
                reply = conn.request(raw)
            finally:
                conn.close()
            if reply.status == 200:
                return (time.perf_counter_ns() - server.spawned_ns) / 1e9
            last = f"HTTP {reply.status}: {reply.body[:300]!r}"
        except (OSError, HTTPError) as exc:
            last = repr(exc)
        time.sleep(0.002)
    raise RuntimeError(f"{server.name} served no chat completion in {timeout_s} s ({last}):\n{server.log_tail()}")


# --------------------------------------------------------------------------- measurements


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def run_wrk(port: int, key: str, model: str, conns: int, seconds: int) -> dict[str, Any]:
    env = base_env() | {"BENCH_KEY": key, "BENCH_MODEL": model}
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA_SCRIPT)]
    cmd.append(f"http://{HOST}:{port}{CHAT_PATH}")
    out = subprocess.run(
        pinned(LOAD_CORE, cmd), env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            r["errors"] = sum(r[k] for k in ("non2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
            return r
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def _system_busy_seconds() -> float:
    """user + nice + system time of all cores (interrupt time left out: loopback traffic lands there)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(v) for v in fields[:3]) / os.sysconf("SC_CLK_TCK")


def _our_seconds() -> float:
    """CPU time of this process, its live children (servers) and its reaped ones (wrk)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_seconds(process_tree(os.getpid())) + kids.ru_utime + kids.ru_stime


class LoadWatch:
    """How much CPU processes that are not ours used meanwhile: a busy machine spoils the figures."""

    def __enter__(self) -> LoadWatch:
        self.t0, self.sys0, self.ours0 = time.monotonic(), _system_busy_seconds(), _our_seconds()
        self.other_cpu_pct = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        other = (_system_busy_seconds() - self.sys0) - (_our_seconds() - self.ours0)
        self.other_cpu_pct = max(0.0, 100 * other / wall)


def wait_quiet(max_wait_s: float = 90.0) -> float:
    """Wait (bounded) until other processes leave the CPUs alone for a second; returns their last use in %."""
    deadline = time.monotonic() + max_wait_s
    while True:
        with LoadWatch() as watch:
            time.sleep(1.0)
        if watch.other_cpu_pct <= OTHER_CPU_WARN_PCT or time.monotonic() > deadline:
            return watch.other_cpu_pct
        log(f"other processes use {watch.other_cpu_pct:.0f}% CPU: waiting for a quiet machine")


def quiet_point(measure: Callable[[], dict[str, Any]], tries: int = 3) -> dict[str, Any]:
    """Measure; again (up to `tries` in all) while other processes used the CPUs meanwhile. Keeps the quietest."""
    best: dict[str, Any] | None = None
    for i in range(tries):
        wait_quiet()
        r = measure()
        r["tries"] = i + 1
        if best is None or r["other_cpu_pct"] < best["other_cpu_pct"]:
            best = r
        if r["other_cpu_pct"] <= OTHER_CPU_WARN_PCT:
            break
        log(f"other processes used {r['other_cpu_pct']:.0f}% CPU during the point: measuring it again")
    assert best is not None
    return best


def wrk_point(server: Server, key: str, model: str, conns: int, seconds: int) -> dict[str, Any]:
    pids = server.tree()
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    with LoadWatch() as watch:
        r = run_wrk(server.port, key, model, conns, seconds)
    r["server_cpu_pct"] = 100 * (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
    r["other_cpu_pct"] = watch.other_cpu_pct
    return r


def measure_stream(port: int, raw: bytes, warmup: int, count: int, max_s: float) -> dict[str, Any]:
    conn = Conn(port)
    bad = 0
    ttfb: list[float] = []
    total: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(warmup):
            conn.request(raw)
        deadline = time.monotonic() + max_s
        while len(ttfb) < count and time.monotonic() < deadline:
            r = conn.request(raw)
            if r.status != 200 or b"data:" not in r.body or b"[DONE]" not in r.body:
                bad += 1
                continue
            ttfb.append(r.ttfb_ns / 1e6)
            total.append(r.total_ns / 1e6)
    finally:
        gc.enable()
        conn.close()
    if count == 0:
        return {}
    if not ttfb:
        raise RuntimeError(f"no successful stream on port {port}")
    return {
        "requests": len(ttfb),
        "errors": bad,
        "ttfb_p50_ms": pct(ttfb, 50),
        "ttfb_p99_ms": pct(ttfb, 99),
        "stream_total_p50_ms": pct(total, 50),
    }


@dataclass
class Target:
    name: str
    key: str
    model: str


def benchmark(
    target: Target, start: Any, plan: Plan, keep: bool = False, profile: Any = None
) -> tuple[dict[str, Any], Server]:
    """Start the target plan.start_runs times (the last one stays up), then measure it."""
    wait_quiet()
    starts: list[float] = []
    server: Server | None = None
    for i in range(plan.start_runs):
        server = start()
        raw = chat_request(server.port, target.key, target.model, stream=False)
        try:
            starts.append(wait_served(server, raw, plan.start_timeout_s))
        except BaseException:
            server.stop()
            raise
        if i < plan.start_runs - 1:
            server.stop()
    assert server is not None
    log(f"{target.name}: start to first served request {', '.join(f'{s:.3f}' for s in starts)} s")
    res: dict[str, Any] = {"start_to_first_served_s": sorted(starts)[len(starts) // 2], "start_runs_s": starts}
    time.sleep(1)
    res["rss_after_start_mb"] = rss_bytes(server.tree()) / 2**20
    stream_raw = chat_request(server.port, target.key, target.model, stream=True)
    try:
        log(f"{target.name}: warm-up {plan.warmup_s} s at c={plan.concurrency} + {plan.stream_warmup} streams")
        run_wrk(server.port, target.key, target.model, plan.concurrency, plan.warmup_s)
        measure_stream(server.port, stream_raw, plan.stream_warmup, 0, 0)

        def stream_point() -> dict[str, Any]:
            with LoadWatch() as watch:
                r = measure_stream(server.port, stream_raw, 5, plan.stream_requests, plan.stream_max_s)
            r["other_cpu_pct"] = watch.other_cpu_pct
            return r

        log(f"{target.name}: c=1 for {plan.c1_s} s")
        res["c1"] = quiet_point(lambda: wrk_point(server, target.key, target.model, 1, plan.c1_s))
        log(f"{target.name}: c={plan.concurrency} for {plan.c64_s} s")
        res["c64"] = quiet_point(lambda: wrk_point(server, target.key, target.model, plan.concurrency, plan.c64_s))
        log(f"{target.name}: streaming TTFB, up to {plan.stream_requests} sequential streams")
        res["stream"] = quiet_point(stream_point)
        time.sleep(plan.idle_s)
        pids = server.tree()
        res["idle_rss_mb"] = rss_bytes(pids) / 2**20
        res["idle_rss_main_mb"] = rss_bytes([server.pid]) / 2**20
        res["processes"] = len(pids)
        if profile is not None:
            res["profile"] = profile(server, target)
    except BaseException:
        server.stop()
        raise
    if not keep:
        server.stop()
    return res, server


# --------------------------------------------------------------------------- profile


COMPONENTS = {
    "ccapi": "ccapi (gateway code)",
    "fastapi": "FastAPI/Starlette",
    "starlette": "FastAPI/Starlette",
    "fastapi_offline": "FastAPI/Starlette",
    "uvicorn": "uvicorn (HTTP server)",
    "httptools": "uvicorn (HTTP server)",
    "aiohttp": "aiohttp client (upstream call)",
    "multidict": "aiohttp client (upstream call)",
    "yarl": "aiohttp client (upstream call)",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "orjson": "orjson",
    "sqlalchemy": "SQLAlchemy/aiosqlite (store)",
    "aiosqlite": "SQLAlchemy/aiosqlite (store)",
    "greenlet": "SQLAlchemy/aiosqlite (store)",
    "asyncio": "asyncio/uvloop event loop",
    "uvloop": "asyncio/uvloop event loop",
    # opentelemetry's API, as py-spy names its files (trace/__init__.py, ...): FastAPI's built-in telemetry
    "trace": "OpenTelemetry API (FastAPI telemetry)",
    "context": "OpenTelemetry API (FastAPI telemetry)",
    "metrics": "OpenTelemetry API (FastAPI telemetry)",
    "_logs": "OpenTelemetry API (FastAPI telemetry)",
    "opentelemetry": "OpenTelemetry API (FastAPI telemetry)",
}


def _component(frame: str) -> str | None:
    """The component of a Python frame 'func (path/file.py:line)'; None for a native frame."""
    m = re.search(r"\(([^()]*?)(?::\d+)?\)$", frame)
    path = m.group(1) if m else ""
    if not (path.endswith(".py") or path.startswith("<")):
        return None
    if path.startswith("asyncio/") or path == "runners.py":
        return COMPONENTS["asyncio"]
    return COMPONENTS.get(path.split("/")[0], "stdlib/other") if "/" in path else "stdlib/other"


def analyse_profile(folded: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = other_threads = 0
    for line in folded.read_text().splitlines():
        stack, _, n_str = line.rpartition(" ")
        if not stack:
            continue
        n = int(n_str)
        if "Thread._bootstrap" in stack:  # helper threads (e.g. aiosqlite's), mostly blocked: not the event loop
            other_threads += n
            continue
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        leaf = frames[-1]
        own[leaf] += n
        for f in set(frames):
            incl[f] += n
        if leaf.startswith("gc_") or "gc_collect" in leaf:
            group = "CPython cyclic GC"
        elif "libc.so" in leaf:
            group = "syscalls (socket read/write, epoll)"
        else:  # a native leaf counts for the Python code that called into it
            group = next((c for c in map(_component, reversed(frames)) if c), "native (no Python frame)")
        groups[group] += n

    def table(c: Counter[str], k: int) -> list[dict[str, Any]]:
        return [{"frame": f, "pct": round(100 * n / total, 1)} for f, n in c.most_common(k)]

    ccapi_incl = Counter({f: n for f, n in incl.items() if "(ccapi/" in f and "cli.py" not in f})
    return {
        "samples": total,
        "other_thread_samples": other_threads,
        "top_own": table(own, top),
        "by_component": table(groups, 12),
        "ccapi_inclusive": table(ccapi_incl, 12),
    }


def make_profiler(py_spy: str, plan: Plan, stamp: str) -> Any:
    def profile(server: Server, target: Target) -> dict[str, Any]:
        out = RESULTS_DIR / f"profile-{target.name}-{stamp}.folded"
        seconds = plan.profile_s
        log(f"{target.name}: py-spy --native for {seconds} s at c={plan.concurrency}")
        env = base_env() | {"BENCH_KEY": target.key, "BENCH_MODEL": target.model}
        wrk_cmd = ["wrk", "-t1", f"-c{plan.concurrency}", f"-d{seconds + 3}s", "--timeout", "10s"]
        wrk_cmd += ["-s", str(LUA_SCRIPT), f"http://{HOST}:{server.port}{CHAT_PATH}"]
        load = subprocess.Popen(pinned(LOAD_CORE, wrk_cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1)
            spy = [py_spy, "record", "--native", "--pid", str(server.pid), "--rate", str(plan.profile_rate)]
            spy += ["--duration", str(seconds), "--format", "raw", "--output", str(out)]
            run = subprocess.run(
                pinned(LOAD_CORE, spy), capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        finally:
            load.communicate(timeout=seconds + 60)
        if run.returncode != 0 or not out.exists():
            log(f"py-spy failed ({run.returncode}): {run.stderr.strip()[-500:]}")
            return {"error": run.stderr.strip()[-500:]}
        result = analyse_profile(out)
        result["folded_file"] = str(out.relative_to(ROOT))
        result["rate_hz"] = plan.profile_rate
        result["seconds"] = seconds
        return result

    return profile


def gc_activity(target: Target, start: Any, out: Path, plan: Plan) -> dict[str, Any]:
    """CPython's cyclic GC in the gateway during plan.c64_s at c=64: a separate start under bench/gc_probe.py."""
    log(f"{target.name}: GC activity (bench/gc_probe.py) for {plan.c64_s} s at c={plan.concurrency}")
    server = start(gc_probe=out)
    try:
        wait_served(server, chat_request(server.port, target.key, target.model, stream=False), plan.start_timeout_s)
        run_wrk(server.port, target.key, target.model, plan.concurrency, plan.warmup_s)

        def snapshot() -> dict[str, Any]:
            os.kill(server.pid, signal.SIGUSR1)
            time.sleep(0.3)
            line: dict[str, Any] = json.loads(out.read_text().splitlines()[-1])
            return line

        before = snapshot()
        load = run_wrk(server.port, target.key, target.model, plan.concurrency, plan.c64_s)
        after = snapshot()
    finally:
        server.stop()
    wall = after["t"] - before["t"]
    gens: dict[str, Any] = {}
    for gen in ("0", "1", "2"):
        a, b = before["gc"][gen], after["gc"][gen]
        count, secs = b["collections"] - a["collections"], b["seconds"] - a["seconds"]
        gens[f"gen{gen}"] = {
            "collections": count,
            "ms_each": 1000 * secs / count if count else 0.0,
            "pct_of_wall": 100 * secs / wall,
            "freed_objects": b["collected"] - a["collected"],
        }
    return {
        "concurrency": plan.concurrency,
        "requests": load["requests"],
        "rps": load["rps"],
        "wall_s": wall,
        "tracked_objects": after["tracked_objects"],
        "threshold": after["threshold"],
        "generations": gens,
        "total_pct_of_wall": sum(g["pct_of_wall"] for g in gens.values()),
    }


# --------------------------------------------------------------------------- reporting


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "server_core": SERVER_CORE,
        "load_core": LOAD_CORE,
    }


def versions(litellm: str) -> dict[str, str]:
    def cmd(args: list[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, cwd="/")
            return (out.stdout + out.stderr).strip()
        except OSError as exc:
            return repr(exc)

    litellm_py = str(Path(litellm).parent / "python")
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    git = cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    wrk = cmd(["wrk", "--version"]).splitlines()
    ccapi_file = cmd([sys.executable, "-c", "import ccapi; print(ccapi.__file__)"]).splitlines()[-1]
    if not Path(ccapi_file).resolve().is_relative_to(ROOT):  # CCAPI_VENV points at another installation
        git = os.environ.get("BENCH_CCAPI_LABEL") or f"not this checkout: {Path(ccapi_file).parent}"
        dirty = ""
    return {
        "ccapi_git": git + ("+dirty" if dirty else ""),
        "litellm": cmd([litellm_py, "-c", code]).splitlines()[-1],
        "wrk": wrk[0] if wrk else "",
    }


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def report(results: dict[str, dict[str, Any]], derived: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    names = [n for n in ("direct", "ccapi", "ccapi-w2", "litellm") if n in results]
    heads = {"direct": "direct (sim)", "ccapi": "CCAPI", "ccapi-w2": "CCAPI 2 workers", "litellm": "LiteLLM"}

    def get(name: str, *path: str) -> Any:
        v: Any = results[name]
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return None
            v = v[p]
        return v

    def ms(us: Any) -> Any:
        return None if us is None else us / 1000

    rows: list[tuple[str, list[str]]] = [
        ("throughput c=64 (req/s)", [fmt(get(n, "c64", "rps"), 0) for n in names]),
        ("p50 latency c=1 (ms)", [fmt(ms(get(n, "c1", "p50_us")), 3) for n in names]),
        ("p99 latency c=1 (ms)", [fmt(ms(get(n, "c1", "p99_us")), 3) for n in names]),
        ("p50 latency c=64 (ms)", [fmt(ms(get(n, "c64", "p50_us")), 2) for n in names]),
        ("p99 latency c=64 (ms)", [fmt(ms(get(n, "c64", "p99_us")), 2) for n in names]),
        ("added p50 c=1 over direct (ms)", [fmt(derived.get(f"{n}_added_p50_c1_ms"), 3) for n in names]),
        ("stream TTFB p50 c=1 (ms)", [fmt(get(n, "stream", "ttfb_p50_ms"), 3) for n in names]),
        ("stream TTFB p99 c=1 (ms)", [fmt(get(n, "stream", "ttfb_p99_ms"), 3) for n in names]),
        ("TTFB overhead p50 over direct (ms)", [fmt(derived.get(f"{n}_ttfb_overhead_p50_ms"), 3) for n in names]),
        ("idle RSS, process tree (MB)", [fmt(get(n, "idle_rss_mb"), 1) for n in names]),
        ("start to first served (s)", [fmt(get(n, "start_to_first_served_s"), 3) for n in names]),
        ("server CPU during c=64 (%)", [fmt(get(n, "c64", "server_cpu_pct"), 0) for n in names]),
        ("errors (c=1 / c=64 / stream)", [_errors(results[n]) for n in names]),
        ("other processes' CPU, max (%)", [fmt(_other_cpu(results[n]), 0) for n in names]),
    ]
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(heads[n]), *(len(r[1][i]) for r in rows)) for i, n in enumerate(names)]
    lines = [
        f"{'':{w0}}  " + "  ".join(f"{heads[n]:>{w}}" for n, w in zip(names, widths, strict=True)),
        "-" * (w0 + 2 + sum(widths) + 2 * (len(widths) - 1)),
    ]
    for label, cells in rows:
        lines.append(f"{label:{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    lines.append("")
    if "ccapi_vs_litellm_throughput" in derived:
        lines.append(f"CCAPI / LiteLLM throughput at c=64: {derived['ccapi_vs_litellm_throughput']:.1f}x")
    if "ccapi_vs_litellm_added_latency" in derived:
        lines.append(f"LiteLLM / CCAPI added p50 latency at c=1: {derived['ccapi_vs_litellm_added_latency']:.1f}x")
    busy = max((_other_cpu(r) for r in results.values()), default=0.0)
    if busy > OTHER_CPU_WARN_PCT:
        lines.append(
            f"WARNING: other processes used up to {busy:.0f}% of a core during a measurement: "
            "the machine was not quiet, run again."
        )
    lines.append("")
    for c in checks:
        verdict = "MET" if c["met"] else "NOT MET"
        lines.append(f"[{verdict:>7}] {c['what']}: {fmt(c['value'], 3)} (target {c['target']})")
    return "\n".join(lines)


def _other_cpu(r: dict[str, Any]) -> float:
    return max(float(r.get(k, {}).get("other_cpu_pct", 0.0)) for k in ("c1", "c64", "stream"))


def _errors(r: dict[str, Any]) -> str:
    return "/".join(str(r.get(k, {}).get("errors", "-")) for k in ("c1", "c64", "stream"))


def derive(results: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    d: dict[str, Any] = {}
    direct = results.get("direct")
    for name, r in results.items():
        if direct and name != "direct":
            d[f"{name}_added_p50_c1_ms"] = (r["c1"]["p50_us"] - direct["c1"]["p50_us"]) / 1000
            d[f"{name}_added_p99_c1_ms"] = (r["c1"]["p99_us"] - direct["c1"]["p99_us"]) / 1000
            d[f"{name}_ttfb_overhead_p50_ms"] = r["stream"]["ttfb_p50_ms"] - direct["stream"]["ttfb_p50_ms"]
    if "ccapi" in results and "litellm" in results:
        d["ccapi_vs_litellm_throughput"] = results["ccapi"]["c64"]["rps"] / results["litellm"]["c64"]["rps"]
        if d.get("ccapi_added_p50_c1_ms", 0) > 0:
            d["ccapi_vs_litellm_added_latency"] = d["litellm_added_p50_c1_ms"] / d["ccapi_added_p50_c1_ms"]
    checks: list[dict[str, Any]] = []

    def check(what: str, value: Any, target: str, ok: bool) -> None:
        checks.append({"what": what, "value": value, "target": target, "met": ok})

    t = TARGETS
    if "ccapi_vs_litellm_throughput" in d:
        v = d["ccapi_vs_litellm_throughput"]
        lim = t["ccapi_throughput_ratio_vs_litellm_min"]
        check("CCAPI throughput at c=64 vs LiteLLM (x)", v, f">= {lim}x", v >= lim)
    if "ccapi_added_p50_c1_ms" in d:
        v = d["ccapi_added_p50_c1_ms"]
        lim = t["ccapi_added_p50_c1_ms_max"]
        check("CCAPI added p50 latency at c=1 (ms)", v, f"<= {lim} ms", v <= lim)
        v = d["ccapi_ttfb_overhead_p50_ms"]
        lim = t["ccapi_ttfb_overhead_p50_ms_max"]
        check("CCAPI streaming TTFB overhead p50 (ms)", v, f"<= {lim} ms", v <= lim)
    if "ccapi" in results:
        v = results["ccapi"]["idle_rss_mb"]
        lim = t["ccapi_idle_rss_mb_max"]
        check("CCAPI idle RSS (MB)", v, f"<= {lim} MB", v <= lim)
        v = results["ccapi"]["start_to_first_served_s"]
        lim = t["ccapi_start_to_first_served_s_max"]
        check("CCAPI start to first served request (s)", v, f"< {lim} s", v < lim)
    return d, checks


def profile_report(p: dict[str, Any]) -> str:
    if "error" in p:
        return f"profile: py-spy failed: {p['error']}"
    lines = [
        f"CCAPI profile at c=64 (py-spy --native, {p['samples']} samples of the event-loop thread; {p['folded_file']})"
    ]
    lines.append("  by component (own time):")
    lines += [f"    {e['pct']:5.1f}%  {e['frame']}" for e in p["by_component"]]
    lines.append("  top functions by own time:")
    lines += [f"    {e['pct']:5.1f}%  {e['frame']}" for e in p["top_own"]]
    lines.append("  ccapi functions, inclusive time:")
    lines += [f"    {e['pct']:5.1f}%  {e['frame']}" for e in p["ccapi_inclusive"]]
    return "\n".join(lines)


def gc_report(g: dict[str, Any]) -> str:
    lines = [
        f"CCAPI cyclic GC at c={g['concurrency']} ({g['requests']} requests in {g['wall_s']:.1f} s, "
        f"{g['tracked_objects']:,} tracked objects, threshold {g['threshold']}): "
        f"{g['total_pct_of_wall']:.1f}% of wall time"
    ]
    for name, v in g["generations"].items():
        lines.append(
            f"  {name}: {v['collections']:5d} collections, {v['ms_each']:7.2f} ms each, "
            f"{v['pct_of_wall']:5.1f}% of wall, {v['freed_objects']} objects freed"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def cleanup(servers: list[Server]) -> Iterator[None]:
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        for s in servers:
            s.stop()
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--litellm", default=str(BENCH_DIR / ".litellm-venv/bin/litellm"), help="litellm executable")
    ap.add_argument("--py-spy", default=None, help="py-spy executable: profile CCAPI at c=64")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profile and the GC count")
    ap.add_argument("--quick", action="store_true", help="shorter points, one start each (a smoke run)")
    ap.add_argument("--targets", default="direct,ccapi,ccapi-w2,litellm", help="comma-separated subset")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and databases")
    args = ap.parse_args(argv)
    args.litellm = str(Path(args.litellm).absolute())  # the servers run in a scratch directory
    if args.py_spy:
        args.py_spy = str(Path(args.py_spy).absolute())
    plan = Plan.quick() if args.quick else Plan()
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if shutil.which("wrk") is None:
        print("bench: wrk not found (bench/run.sh installs it)", file=sys.stderr)
        return 2
    if "litellm" in wanted and not Path(args.litellm).exists():
        print(f"bench: {args.litellm} not found (bench/run.sh installs it)", file=sys.stderr)
        return 2
    if LOAD_CORE is not None:
        os.sched_setaffinity(0, {LOAD_CORE})  # this process is the streaming client
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="ccapi-bench-"))
    ccapi_bin = str(Path(sys.executable).parent / "ccapi")
    diagnose = not args.no_profile
    profiler = make_profiler(args.py_spy, plan, stamp) if args.py_spy and diagnose else None
    log(f"server core {SERVER_CORE}, load core {LOAD_CORE}; logs in {workdir}")

    servers: list[Server] = []
    results: dict[str, dict[str, Any]] = {}
    t_start = time.monotonic()
    with cleanup(servers):
        sim_holder: list[Server] = []

        def start_sim() -> Server:
            port = free_port()
            cmd = [ccapi_bin, "sim", "--host", HOST, "--port", str(port)]
            s = spawn("sim", cmd, base_env(), port, workdir, SERVER_CORE)
            sim_holder[:] = [s]
            return s

        # The simulator: measured as the "direct" target, then kept up (on the load core) for the gateways.
        direct = Target("direct", SIM_KEY, UPSTREAM_MODEL)
        if "direct" in wanted:
            results["direct"], sim = benchmark(direct, start_sim, plan, keep=True)
        else:
            sim = start_sim()
            wait_served(sim, chat_request(sim.port, SIM_KEY, UPSTREAM_MODEL, False), plan.start_timeout_s)
        servers.append(sim)
        set_affinity(sim.pid, LOAD_CORE)
        sim_base = f"http://{HOST}:{sim.port}/v1"

        n = 0
        if "ccapi" in wanted or "ccapi-w2" in wanted:

            def start_ccapi(gc_probe: Path | None = None, workers: int = 1) -> Server:
                nonlocal n
                n += 1
                port = free_port()
                env = base_env() | {
                    "CCAPI_MASTER_KEY": MASTER_KEY,
                    "OPENAI_API_KEY": SIM_KEY,
                    "CCAPI_OPENAI_BASE_URL": sim_base,
                    "CCAPI_DATABASE_URL": f"sqlite:///{workdir}/ccapi-{n}.db",  # a fresh database each start
                    "CCAPI_LOG_LEVEL": "warning",
                }
                cmd = [ccapi_bin, "serve", "--host", HOST, "--port", str(port)]
                if gc_probe is not None:
                    cmd = [sys.executable, str(BENCH_DIR / "gc_probe.py"), str(gc_probe), *cmd[1:]]
                if workers > 1:
                    cmd += ["--workers", str(workers)]
                    return spawn(f"ccapi-w{workers}", cmd, env, port, workdir, WORKER_CORES)
                return spawn("ccapi", cmd, env, port, workdir, SERVER_CORE)

        if "ccapi" in wanted:
            target = Target("ccapi", MASTER_KEY, GATEWAY_MODEL)
            results["ccapi"], _ = benchmark(target, start_ccapi, plan, profile=profiler)
            if diagnose:
                results["ccapi"]["gc"] = gc_activity(target, start_ccapi, workdir / "gc.jsonl", plan)

        if "ccapi-w2" in wanted:
            target = Target("ccapi-w2", MASTER_KEY, GATEWAY_MODEL)
            results["ccapi-w2"], _ = benchmark(target, lambda: start_ccapi(workers=2), plan)

        if "litellm" in wanted:

            def start_litellm() -> Server:
                port = free_port()
                env = base_env() | {
                    "BENCH_SIM_BASE_URL": sim_base,
                    "BENCH_SIM_API_KEY": SIM_KEY,
                    "BENCH_MASTER_KEY": MASTER_KEY,
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price map at start
                    "LITELLM_TELEMETRY_DISABLED": "true",
                    "LITELLM_LOG": "ERROR",
                }
                cmd = [args.litellm, "--config", str(LITELLM_CONFIG), "--host", HOST, "--port", str(port)]
                cmd += ["--num_workers", "1"]
                return spawn("litellm", cmd, env, port, workdir, SERVER_CORE)

            target = Target("litellm", MASTER_KEY, GATEWAY_MODEL)
            results["litellm"], _ = benchmark(target, start_litellm, plan)

    derived, checks = derive(results)
    doc = {
        "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": os.environ.get("BENCH_COMMAND", "bench/bench.py " + " ".join(sys.argv[1:])),
        "wall_s": round(time.monotonic() - t_start, 1),
        "machine": machine(),
        "versions": versions(args.litellm),
        "plan": plan.__dict__,
        "load_generator": "wrk -t1 (non-streaming); bench.py raw-socket client (streaming TTFB)",
        "results": results,
        "derived": derived,
        "targets": checks,
        "max_other_cpu_pct": max((_other_cpu(r) for r in results.values()), default=0.0),
    }
    text = json.dumps(doc, indent=2)
    (RESULTS_DIR / "latest.json").write_text(text + "\n")
    (RESULTS_DIR / f"run-{stamp}.json").write_text(text + "\n")
    m = doc["machine"]
    print(f"\nCCAPI benchmark, {m['nproc']} x {m['cpu_model']}, {doc['versions']}")
    print(report(results, derived, checks))
    if "ccapi" in results and "profile" in results["ccapi"]:
        print()
        print(profile_report(results["ccapi"]["profile"]))
    if "ccapi" in results and "gc" in results["ccapi"]:
        print()
        print(gc_report(results["ccapi"]["gc"]))
    print(f"\nwrote {(RESULTS_DIR / 'latest.json').relative_to(ROOT)} (wall {doc['wall_s']} s)")
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
