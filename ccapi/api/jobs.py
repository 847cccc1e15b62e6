"""GET /images/jobs/{id} (the job's latest state) and DELETE (cancel it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ccapi.api.deps import Principal, authenticated, gateway_of, public_base_url
from ccapi.api.responses import json_response
from ccapi.core.errors import ConflictError, NotFoundError
from ccapi.jobs.model import TERMINAL, Job, render_job
from ccapi.schemas.errors import ErrorResponse
from ccapi.schemas.multimodal import MultimodalImageGenerationResponse

router = APIRouter(tags=["Images"])

_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (401, 404, 500)}


async def _visible_job(request: Request, principal: Principal, job_id: str) -> Job:
    """The job, when this key may see it: its own account's (the master key sees all)."""
    job = await gateway_of(request).jobs.get(job_id) if job_id.startswith("imgjob_") else None
    if job is None or not (principal.is_master or job.account_id == principal.account_id):
        raise NotFoundError(f"No job {job_id!r}.", code="job_not_found", param="id")
    return job


async def _answer(request: Request, job: Job) -> Response:
    gateway = gateway_of(request)
    estimate = await gateway.images.estimated_time(job.model) if job.status not in TERMINAL else None
    return json_response(await render_job(job, gateway.files, public_base_url(request), estimate))


@router.get(
    "/images/jobs/{job_id}",
    summary="Get an image job",
    description="The job's latest state; links are signed afresh on every poll.",
    responses={200: {"model": MultimodalImageGenerationResponse}, **_ERRORS},
)
async def get_job(job_id: str, request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Response:
    return await _answer(request, await _visible_job(request, principal, job_id))


@router.delete(
    "/images/jobs/{job_id}",
    summary="Cancel an image job",
    description="Cancels a pending or running job (its reserved credit is released). A finished job is a 409 "
    "with code `job_finished`.",
    responses={200: {"model": MultimodalImageGenerationResponse}, 409: {"model": ErrorResponse}, **_ERRORS},
)
async def cancel_job(
    job_id: str, request: Request, principal: Annotated[Principal, Depends(authenticated)]
) -> Response:
    job = await _visible_job(request, principal, job_id)
    if job.status in TERMINAL or not await gateway_of(request).runner.cancel(job):
        raise ConflictError(
            f"The job has already ended ({job.status}); only a pending or running job can be cancelled.",
            code="job_finished",
            param="id",
        )
    return await _answer(request, job)
