"""The ledger writer: settlements and usage rows, batched off the request path.

A request hands its record over and returns; a background task writes
batches (every 50 ms, or at 500 rows) in one transaction each. Reservations
stay held until their settlement is written, so batching never lets spending
outrun the balance. A graceful stop drains the queue (`close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from ccapi.storage.errors import database_unavailable
from ccapi.storage.store import Settlement, Store

log = logging.getLogger("ccapi.ledger")

FLUSH_SECONDS = 0.05
BATCH_ROWS = 500
# Failed attempts of a whole batch before its entries are written one by one.
SPLIT_AFTER_ATTEMPTS = 3
# How long a stop waits for the queue to be written.
CLOSE_SECONDS = 15.0


class LedgerWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[tuple[Settlement | None, dict[str, Any] | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0
        self.dropped = 0
        # When each entry not yet written was submitted, oldest first (the
        # queue is FIFO and a batch is taken from its head), for `lag`.
        self._submitted: deque[float] = deque()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ccapi-ledger")

    def submit(self, settlement: Settlement | None, row: dict[str, Any] | None) -> None:
        self._queue.put_nowait((settlement, row))
        self._submitted.append(time.monotonic())

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def lag(self) -> float:
        """Seconds the oldest entry not yet written has waited (0 when none)."""
        return time.monotonic() - self._submitted[0] if self._submitted else 0.0

    async def close(self, within: float = CLOSE_SECONDS) -> None:
        """Write everything still queued (for at most `within` seconds: the
        database may be down), then stop."""
        self._closing = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), within)
            except TimeoutError:
                log.error("stopping with %d ledger entries unwritten: the database is unavailable", self.pending)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            if not self._closing:
                await asyncio.sleep(FLUSH_SECONDS)
            while len(batch) < BATCH_ROWS and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            for _ in batch:
                if self._submitted:
                    self._submitted.popleft()
                self._queue.task_done()

    async def _write(self, batch: list[tuple[Settlement | None, dict[str, Any] | None]]) -> None:
        delay, attempt = 0.1, 0
        while True:
            attempt += 1
            try:
                await self._commit(batch)
                return
            except Exception as exc:
                # Keep the batch and retry: a batch is one transaction, so a
                # retry never writes twice. While the database is unreachable
                # the rows wait, however long it takes.
                if database_unavailable(exc):
                    if attempt == 1 or attempt % 20 == 0:
                        log.warning("ledger write failed: the database is unavailable (%s); retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                log.exception("ledger write failed (attempt %d); retrying in %.1fs", attempt, delay)
            if attempt >= SPLIT_AFTER_ATTEMPTS and len(batch) > 1:
                # Still failing: maybe one entry is the problem, not the database.
                # Write the rest one by one so that it cannot hold the others up.
                for item in batch:
                    await self._write_one(item)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _write_one(self, item: tuple[Settlement | None, dict[str, Any] | None]) -> None:
        failures = 0
        while failures < SPLIT_AFTER_ATTEMPTS:
            try:
                await self._commit([item])
                return
            except Exception as exc:
                if database_unavailable(exc):
                    await asyncio.sleep(1.0)  # not this entry's fault: it waits with the rest
                    continue
                failures += 1
                await asyncio.sleep(0.1)
        row = item[1] or {}
        log.error("ledger entry for request %s could not be written; it is dropped", row.get("request_id"))
        self.dropped += 1

    async def _commit(self, batch: list[tuple[Settlement | None, dict[str, Any] | None]]) -> None:
        rows = [r for _, r in batch if r is not None]
        await self.store.record([s for s, _ in batch if s is not None], rows)
        self.written += len(rows)
