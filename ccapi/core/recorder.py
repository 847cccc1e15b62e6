"""Where finished requests go: the access log, the metrics, and (through
billing) the usage ledger all take the same `RequestRecord`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from ccapi.core.types import RequestRecord

access_log = logging.getLogger("ccapi.access")


class Recorder(Protocol):
    def record(self, rec: RequestRecord) -> None:
        """Take the record without blocking the request path."""
        ...


class Recorders:
    """Hands each record to several recorders, in order."""

    def __init__(self, recorders: Sequence[Recorder]) -> None:
        self.recorders = tuple(recorders)

    def record(self, rec: RequestRecord) -> None:
        for recorder in self.recorders:
            recorder.record(rec)


class AccessLogRecorder:
    """One structured line per model-calling request (JSON or logfmt: the
    log handler's formatter renders `fields`; see observability/logs.py).

    Only ids and counts: never a key, a prompt or an upstream's message."""

    def record(self, rec: RequestRecord) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info("request", extra={"fields": access_fields(rec)})


def access_fields(rec: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": rec.request_id,
        "route": rec.route,
        "account_id": rec.account_id,
        "key_id": rec.key_id,
        "model": rec.model,
        "provider": rec.provider,
        "attempts": len(rec.attempts),
        # Each attempt as provider:status (provider:error when no status came back).
        "tried": " ".join(_attempt_text(a) for a in rec.attempts),
        "status": rec.status,
        "error_type": rec.error_type,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "cost": str(rec.cost),
        "latency_ms": round(rec.latency_ms, 2),
        "upstream_ms": round(rec.upstream_latency_ms, 2) if rec.attempts else None,
        "ttft_ms": round(rec.ttft_ms, 2) if rec.ttft_ms is not None else None,
        "stream": rec.stream,
    }


def _attempt_text(attempt: dict[str, Any]) -> str:
    outcome = attempt.get("status") or "error"
    return f"{attempt.get('provider')}:{outcome}"
