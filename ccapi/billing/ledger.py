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

from ccapi.storage.store import Settlement, Store

log = logging.getLogger("ccapi.ledger")

FLUSH_SECONDS = 0.05
BATCH_ROWS = 500
# Failed attempts of a whole batch before its entries are written one by one.
SPLIT_AFTER_ATTEMPTS = 3


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

    async def close(self) -> None:
        """Write everything still queued, then stop."""
        self._closing = True
        if self._task is not None:
            await self._queue.join()
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
            except Exception:
                # The database is briefly unavailable: keep the batch and retry.
                # A batch is one transaction, so a retry never writes twice.
                log.exception("ledger write failed (attempt %d); retrying in %.1fs", attempt, delay)
            if attempt == SPLIT_AFTER_ATTEMPTS and len(batch) > 1:
                # Still failing: maybe one entry is the problem, not the database.
                # Write the rest one by one so that it cannot hold the others up.
                for item in batch:
                    await self._write_one(item)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _write_one(self, item: tuple[Settlement | None, dict[str, Any] | None]) -> None:
        for _ in range(SPLIT_AFTER_ATTEMPTS):
            try:
                await self._commit([item])
                return
            except Exception:
                await asyncio.sleep(0.1)
        row = item[1] or {}
        log.error("ledger entry for request %s could not be written; it is dropped", row.get("request_id"))
        self.dropped += 1

    async def _commit(self, batch: list[tuple[Settlement | None, dict[str, Any] | None]]) -> None:
        rows = [r for _, r in batch if r is not None]
        await self.store.record([s for s, _ in batch if s is not None], rows)
        self.written += len(rows)
