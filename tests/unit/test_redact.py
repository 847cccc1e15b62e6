"""Credentials in upstream error texts never reach our answers, ledger or logs."""

from __future__ import annotations

import pytest

from ccapi.core.redact import redact_secrets


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Incorrect API key provided: sk-proj-****************abcd. You can find your API key at x.", "You can find"),
        ("Incorrect API key provided: sk-ant-api03-AbCdEf123456.", "Incorrect API key provided"),
        ("proxy said: Authorization Bearer eyJhbGciOi.payload.sig rejected", "rejected"),
        ("bad request: api_key=abcdef123456 is revoked", "is revoked"),
        ("invalid token: ghp_abcdefghijkl", "invalid"),
    ],
)
def test_a_credential_in_an_upstream_message_is_redacted(text: str, kept: str) -> None:
    redacted = redact_secrets(text)
    assert "[redacted]" in redacted and kept in redacted
    for secret in ("abcd", "AbCdEf123456", "eyJhbGciOi", "abcdef123456", "ghp_abcdefghijkl"):
        if secret in text:
            assert secret not in redacted


@pytest.mark.parametrize(
    "text",
    ["Rate limit reached for gpt-4o-mini in organization org-1 on tokens.", "The model `gpt-9` does not exist", ""],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact_secrets(text) == text
