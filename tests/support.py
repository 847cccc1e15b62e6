"""Start the real processes (gateway, simulator) on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


@contextmanager
def run_ccapi(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health",
    tmp_path: Path,
    name: str = "server",
    timeout: float = 20,
) -> Iterator[ServerProcess]:
    """Run `ccapi <args> --port <free>` and wait until `ready_path` answers."""
    port = free_port()
    log = tmp_path / f"{name}-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not _is_provider_env(k)}
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "ccapi.cli", *args, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path)
    server = ServerProcess(proc, port, log)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {timeout}s:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


def _is_provider_env(name: str) -> bool:
    # Tests never inherit real provider credentials or overrides from the shell.
    return name.startswith("CCAPI_") or name.endswith("_API_KEY")
