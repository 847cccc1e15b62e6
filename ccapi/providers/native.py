"""Dialects for providers with their own wire format: URLs and headers here,
translation in their pure modules (anthropic.py, gemini.py)."""

from __future__ import annotations

from typing import Any

from ccapi.core.types import ChatResult
from ccapi.providers import anthropic, gemini
from ccapi.providers.base import StreamTranslator, UpstreamCall

# Anthropic requires max_tokens; used when neither the client nor the catalog says.
ANTHROPIC_DEFAULT_MAX_TOKENS = 4096


class AnthropicDialect:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return f"{base_url}/v1/messages"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-api-key": api_key or "",
            "anthropic-version": anthropic.ANTHROPIC_VERSION,
        }

    def body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]:
        body = anthropic.build_request(
            call.body,
            call.upstream_model,
            default_max_tokens=call.max_output_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
        )
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    def parse(self, data: Any) -> ChatResult:
        return anthropic.parse_response(data)

    def translator(self, call: UpstreamCall) -> StreamTranslator:
        return anthropic.stream_translator_for(call.body)

    def error_message(self, status: int, data: Any) -> str:
        return anthropic.error_message(status, data)


class GeminiDialect:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        if stream:
            return f"{base_url}/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse"
        return f"{base_url}/v1beta/models/{upstream_model}:generateContent"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"content-type": "application/json", "x-goog-api-key": api_key or ""}

    def body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]:
        return gemini.build_request(call.body, call.upstream_model)

    def parse(self, data: Any) -> ChatResult:
        return gemini.parse_response(data)

    def translator(self, call: UpstreamCall) -> StreamTranslator:
        return gemini.GeminiStreamTranslator()

    def error_message(self, status: int, data: Any) -> str:
        return gemini.error_message(status, data)
