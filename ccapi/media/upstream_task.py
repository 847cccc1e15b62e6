"""Submit-then-poll upstreams (Black Forest Labs, ...) inside a job.

A job's runner sets `UPSTREAM_TASK` around its call. A wire function that
submits a task upstream saves the upstream's task reference with `save` as
soon as it has one; when the job is run again after its gateway died
(`resume` is that saved reference), the wire polls the task it already
submitted instead of submitting (and paying for) a second one. Outside a job
(a synchronous request) the variable is None: submit, then poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class UpstreamTaskHooks:
    resume: dict[str, Any] | None
    save: Callable[[dict[str, Any]], Awaitable[None]]


UPSTREAM_TASK: ContextVar[UpstreamTaskHooks | None] = ContextVar("ccapi_upstream_task", default=None)
