"""Upstream error texts reach error bodies, the ledger and the logs: strip
anything in them that looks like a credential first. (OpenAI's 401 echoes a
masked key, `sk-proj-****abcd`; a proxy in front of a provider may echo more.)"""

from __future__ import annotations

import re

_TOKENS = re.compile(
    r"\bsk-[A-Za-z0-9_*.\-]{6,}"  # OpenAI-style keys, masked or not (sk-, sk-proj-, sk-ant-)
    r"|\bBearer\s+[A-Za-z0-9_*.\-~+/=]{6,}",  # an echoed Authorization header
    re.IGNORECASE,
)
_LABELLED = re.compile(
    r"\b((?:api[_-]?key|key|token|secret)(?:\s+provided)?\s*[=:]\s*)[A-Za-z0-9_*.\-~+/]{6,}", re.IGNORECASE
)


def redact_secrets(text: str) -> str:
    return _LABELLED.sub(r"\1[redacted]", _TOKENS.sub("[redacted]", text))
