"""The official OpenAI SDK, pointed at the gateway, works as against OpenAI."""

from __future__ import annotations

import json

import openai
import pytest

from tests.support import ServerProcess

from .conftest import MASTER

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture()
def sdk(gateway: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0)


@pytest.fixture()
def async_sdk(gateway: ServerProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"])
def test_sync_completion(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi"}])
    assert completion.model == model
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    extra = completion.model_extra or {}
    assert extra["provider"] == model.split("/")[0]
    assert completion.usage.model_extra and completion.usage.model_extra["input_cost"] > 0


async def test_async_completion_and_stream(async_sdk: openai.AsyncOpenAI) -> None:
    completion = await async_sdk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}]
    )
    text = completion.choices[0].message.content
    stream = await async_sdk.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(parts) == text
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"])
def test_sync_stream(sdk: openai.OpenAI, model: str) -> None:
    with sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}], stream=True
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"])
def test_tools_round_trip(sdk: openai.OpenAI, model: str) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "sample"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


def test_streamed_tool_call_deltas(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="anthropic/claude-haiku-4-5",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert (name, json.loads(arguments), finish) == ("get_weather", {"city": "sample"}, "tool_calls")


def test_models_list(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert "openai/gpt-4o-mini" in ids and "anthropic/claude-haiku-4-5" in ids
    assert len(ids) == 100  # the first page (default limit)


@pytest.mark.parametrize(
    ("kwargs", "exception", "status"),
    [
        ({"model": "openai/not-a-model"}, openai.NotFoundError, 404),
        ({"model": "openai/gpt-4o-mini", "temperature": 7}, openai.BadRequestError, 400),
        ({"model": "mistral/mistral-large-4"}, openai.InternalServerError, 502),
        ({"model": "groq/openai/gpt-oss-120b"}, openai.BadRequestError, 400),
    ],
)
def test_error_statuses_raise_the_sdk_exception_classes(
    sdk: openai.OpenAI, kwargs: dict[str, object], exception: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(exception) as err:
        sdk.chat.completions.create(messages=[{"role": "user", "content": "hi"}], **kwargs)  # type: ignore[call-overload]
    assert err.value.status_code == status
    assert isinstance(err.value.body, dict) and {"message", "type", "code", "param", "details"} <= set(err.value.body)


def test_a_wrong_key_raises_authentication_error(gateway: ServerProcess) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
