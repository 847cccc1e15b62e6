"""Where finished requests go. The access log is the first consumer; the usage
ledger (accounts and billing) plugs in behind the same protocol."""

from __future__ import annotations

import logging
from typing import Protocol

import orjson

from ccapi.core.types import RequestRecord

access_log = logging.getLogger("ccapi.access")


class Recorder(Protocol):
    def record(self, rec: RequestRecord) -> None:
        """Take the record without blocking the request path."""
        ...


class AccessLogRecorder:
    """One structured JSON line per model-calling request."""

    def record(self, rec: RequestRecord) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info(
            orjson.dumps(
                {
                    "request_id": rec.request_id,
                    "route": rec.route,
                    "account_id": rec.account_id,
                    "model": rec.model,
                    "provider": rec.provider,
                    "attempts": len(rec.attempts),
                    "status": rec.status,
                    "error_type": rec.error_type,
                    "prompt_tokens": rec.prompt_tokens,
                    "completion_tokens": rec.completion_tokens,
                    "cost": str(rec.cost),
                    "latency_ms": round(rec.latency_ms, 2),
                    "ttft_ms": round(rec.ttft_ms, 2) if rec.ttft_ms is not None else None,
                    "stream": rec.stream,
                }
            ).decode()
        )
