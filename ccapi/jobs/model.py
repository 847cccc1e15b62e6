"""A job as stored, and the contract's `MultimodalImageGenerationResponse`
rendered from it (the answer to a submission, a poll and a webhook)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ccapi.files.store import FileStore

ACTIVE = ("pending", "running")
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(slots=True)
class Job:
    id: str
    request_id: str
    account_id: str | None
    key_id: str | None
    route: str
    model: str
    provider: str
    operation: str
    request: dict[str, Any]
    inputs: list[dict[str, Any]] | None
    base_url: str
    status: str
    reservation_id: str | None
    reserved: Decimal
    created: float
    started: float | None = None
    finished: float | None = None
    claim: int = 0
    owner: str | None = None
    lease_until: float | None = None
    runs: int = 0
    upstream: dict[str, Any] | None = None
    # [{"file_id", "content_type", "revised_prompt", "seed"}]
    result: list[dict[str, Any]] | None = None
    images: int = 0
    cost: Decimal = Decimal(0)
    error: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] | None = None
    webhook_url: str | None = None
    webhook_state: str | None = None
    webhook_attempts: int = 0
    webhook_next_at: float | None = None

    @property
    def response_format(self) -> str:
        params = self.request.get("parameters")
        fmt = params.get("response_format") if isinstance(params, dict) else self.request.get("response_format")
        return fmt if fmt in ("url", "b64_json") else "url"


def poll_path(job_id: str) -> str:
    return f"/images/jobs/{job_id}"


async def render_job(job: Job, files: FileStore, base_url: str, estimated_time: float | None = None) -> dict[str, Any]:
    """The job in the contract's shape; links signed afresh for `base_url`."""
    data: list[dict[str, Any]] = []
    as_b64 = job.response_format == "b64_json"
    for image in job.result or []:
        b64 = None
        if as_b64:
            raw = await files.read(image["file_id"])
            b64 = base64.b64encode(raw).decode() if raw is not None else None
        data.append(
            {
                "url": None if as_b64 else files.signed_url(image["file_id"], base_url),
                "b64_json": b64,
                "revised_prompt": image.get("revised_prompt"),
                "seed": image.get("seed"),
            }
        )
    return {
        "id": job.id,
        "created": int(job.created),
        "model": job.model,
        "status": job.status,
        "execution": {"mode": "async", "operation": job.operation, "provider": job.provider},
        "data": data,
        "poll_url": poll_path(job.id),
        "estimated_time": estimated_time if job.status in ACTIVE else None,
        "error": job.error,
        "usage": {"images": job.images, "cost": float(job.cost)},
    }
