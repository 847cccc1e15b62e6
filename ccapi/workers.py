"""`ccapi serve --workers N`: N worker processes serving one port (pre-fork).

The parent has loaded the settings, built the app once (to refuse a bad
configuration before anything starts) and run the migrations (once, whatever
N). It then binds the port and forks the workers; it serves nothing itself.
Forking, rather than spawning fresh interpreters, keeps start-up fast: the
workers inherit the imported modules instead of importing them again.

Each worker builds its own app, so its own Gateway: its connection pools,
key cache, credit leases (a worker is one more instance), circuit breakers
and job runner. Each listens on its own SO_REUSEPORT socket, so the kernel
spreads connections evenly over the workers (one shared socket would let the
first worker to wake take most of them); the parent keeps the port bound
meanwhile, so a worker that restarts finds it free.

Signals: SIGTERM or SIGINT to the parent is passed to every worker once;
each drains its requests and flushes its ledger (uvicorn's graceful shutdown,
as with one process); the parent exits 0 when they all did. A second signal
is passed on too (uvicorn then stops at once). Workers run in their own
process group, so a terminal's Ctrl-C reaches them once, through the parent;
a worker whose parent dies stops gracefully on its own. A worker that dies
while serving is replaced; one that fails to start stops them all (exit 3,
as uvicorn's own start-up failure).

Metrics (prometheus-client's multiprocess mode): the parent points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the first fork (its own
temporary one, removed at exit, unless the operator set one: that one is
emptied of its `*.db` files at start, as prometheus-client requires) and
calls `worker_exited(pid)` for every worker that ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccapi.config import Settings

log = logging.getLogger("ccapi.workers")

# uvicorn's exit code when the app fails to start.
STARTUP_FAILURE = 3
# After a stop signal, workers get their graceful timeout plus this before SIGKILL.
KILL_MARGIN_SECONDS = 10.0
# A worker that dies sooner than this after its start is replaced only after this long.
RESPAWN_DELAY_SECONDS = 1.0
_POLL_SECONDS = 0.1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def listening_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)  # uvicorn's default backlog
    sock.set_inheritable(True)
    return sock


@dataclass
class Supervisor:
    settings: Settings
    # Runs in a worker, once forked: builds the app and serves `sock` until
    # told to stop; returns the worker's exit code.
    serve: Callable[[socket.socket], int]
    graceful_seconds: float
    port: int = 0  # the port bound, once bound (the settings' may be 0: any free port)
    children: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (slot, started)
    stopping_since: float | None = None
    exit_code: int = 0

    def run(self) -> int:
        guard = listening_socket(self.settings.host, self.settings.port, listen=False)
        self.port = int(guard.getsockname()[1])
        cleanup = metrics_directory()
        try:
            with _signals_blocked():
                for sig in _STOP_SIGNALS:
                    signal.signal(sig, self._on_stop_signal)
                for slot in range(self.settings.workers):
                    self._spawn(slot, guard)
            log.info("serving on %s:%d with %d workers", self.settings.host, self.port, self.settings.workers)
            self._supervise(guard)
            return self.exit_code
        finally:
            guard.close()
            cleanup()

    def _spawn(self, slot: int, guard: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            guard.close()
            os._exit(self._worker())
        self.children[pid] = (slot, time.monotonic())
        log.info("worker %d started (pid %d)", slot, pid)

    def _worker(self) -> int:
        code = 1
        try:
            os.setpgid(0, 0)
            for sig in _STOP_SIGNALS:
                # Uvicorn re-raises the stop signal once it has drained: a
                # graceful stop is a success, so that ends in exit code 0.
                signal.signal(sig, lambda *_: None)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            _stop_with_parent(os.getppid())
            code = self.serve(listening_socket(self.settings.host, self.port, listen=True))
        except SystemExit as exc:  # uvicorn's own exit on a failed start-up
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        return code

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        self._signal_children(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    def _signal_children(self, sig: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _supervise(self, guard: socket.socket) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if self.stopping_since is not None and (
                    time.monotonic() - self.stopping_since > self.graceful_seconds + KILL_MARGIN_SECONDS
                ):
                    log.error("workers did not stop in time; killing them")
                    self._signal_children(signal.SIGKILL)
                    self.stopping_since = time.monotonic()  # once per period
                    self.exit_code = 1
                time.sleep(_POLL_SECONDS)
                continue
            if pid not in self.children:
                continue
            slot, started = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            worker_exited(pid)
            if self.stopping_since is not None:
                if code != 0:
                    log.warning("worker %d (pid %d) ended with %d", slot, pid, code)
                    self.exit_code = self.exit_code or 1
                continue
            if code == STARTUP_FAILURE:
                log.error("worker %d (pid %d) failed to start; stopping", slot, pid)
                self.exit_code = STARTUP_FAILURE
                self.stopping_since = time.monotonic()
                self._signal_children(signal.SIGTERM)
                continue
            log.error("worker %d (pid %d) ended with %d while serving; starting another", slot, pid, code)
            if time.monotonic() - started < RESPAWN_DELAY_SECONDS:
                time.sleep(RESPAWN_DELAY_SECONDS)
            with _signals_blocked():
                if self.stopping_since is None:
                    self._spawn(slot, guard)


@contextlib.contextmanager
def _signals_blocked() -> Any:
    """No stop signal handled between a fork and the worker's own handlers."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _stop_with_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL, a crash) drains and stops, rather than serve on unsupervised."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ccapi-parent-watch", daemon=True).start()


def metrics_directory() -> Callable[[], None]:
    """Set PROMETHEUS_MULTIPROC_DIR for the workers (see the module's docstring);
    returns what to do at exit."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's: prometheus-client requires a clean directory
            stale.unlink()
        return lambda: None
    created = tempfile.mkdtemp(prefix="ccapi-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return lambda: shutil.rmtree(created, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """A worker ended: its live gauges leave the shared metrics files."""
    from ccapi.observability.metrics import worker_exited as metrics_worker_exited

    metrics_worker_exited(pid)
