"""The OpenAI wire format, spoken by most providers; quirks come from the catalog."""

from __future__ import annotations

from typing import Any

from ccapi.catalog.schema import ProviderQuirks
from ccapi.core.errors import InvalidRequestError
from ccapi.core.types import ChatResult, Usage
from ccapi.providers.base import StreamError, UpstreamCall

# Fields that are ours, never the upstream's.
_OURS = ("model", "models")


def usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens") or 0
    completion = data.get("completion_tokens") or 0
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cached_tokens=prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None,
        reasoning_tokens=completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None,
    )


class OpenAIDialect:
    def __init__(self, quirks: ProviderQuirks) -> None:
        self.quirks = quirks

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return f"{base_url}/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    def body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]:
        body = {k: v for k, v in call.body.items() if k not in _OURS}
        body["model"] = call.upstream_model
        quirks = self.quirks
        if quirks.single_choice and (body.get("n") or 1) > 1:
            raise InvalidRequestError("This provider returns one choice only; 'n' must be 1.", param="n")
        for name in quirks.drop_params:
            body.pop(name, None)
        for ours, theirs in quirks.rename_params.items():
            if ours in body:
                body[theirs] = body.pop(ours)
        # One output limit, in the field this provider wants.
        limit = body.pop("max_completion_tokens", None) or body.pop("max_tokens", None)
        if limit is not None:
            body[quirks.max_tokens_field] = limit
        if quirks.no_stream_options:
            body.pop("stream_options", None)
        if stream:
            body["stream"] = True
            if not quirks.no_stream_options:
                # Always ask for usage: every stream is billed, whether or not
                # the client wants to see it (stripped again if not).
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                body["stream_options"] = options
        return body

    def parse(self, data: Any) -> ChatResult:
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise ValueError("the answer has no `choices` list")
        usage = usage_from(data.get("usage")) or Usage()
        extra = {k: data[k] for k in ("system_fingerprint", "service_tier") if data.get(k) is not None}
        return ChatResult(choices=data["choices"], usage=usage, extra=extra)

    def translator(self, call: UpstreamCall) -> OpenAIStreamTranslator:
        return OpenAIStreamTranslator()

    def error_message(self, status: int, data: Any) -> str:
        return openai_error_message(data)


def openai_error_message(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("message"):
            return str(data["message"])
    return ""


class OpenAIStreamTranslator:
    """OpenAI chunks are already ours; take the usage out of them."""

    def __init__(self) -> None:
        self.usage = Usage()

    def feed(self, event: str | None, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, dict):
            raise ValueError("a stream event is not a JSON object")
        if data.get("error") is not None:
            raise StreamError(openai_error_message(data) or "the upstream reported an error")
        usage = usage_from(data.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = data.get("choices")
        if not choices:
            return []
        fragment: dict[str, Any] = {"choices": choices}
        if data.get("system_fingerprint"):
            fragment["system_fingerprint"] = data["system_fingerprint"]
        return [fragment]
