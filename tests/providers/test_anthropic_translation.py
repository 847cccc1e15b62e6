"""Table-driven tests for the pure OpenAI <-> Anthropic Messages translation."""

from __future__ import annotations

from typing import Any

import pytest

from ccapi.core.errors import InvalidRequestError
from ccapi.core.types import Usage
from ccapi.providers.anthropic import (
    ANTHROPIC_VERSION,
    JSON_TOOL_NAME,
    AnthropicStreamTranslator,
    StreamError,
    build_request,
    error_message,
    parse_response,
    stream_translator_for,
)
from ccapi.providers.base import AttemptError

MISSING = object()
HI = [{"role": "user", "content": "hi"}]
USER_HI = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
JSON_TOOL = {
    "name": JSON_TOOL_NAME,
    "description": "Give your complete answer as a JSON object: the input of this tool is the answer.",
    "input_schema": {"type": "object"},
}
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def build(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", HI)
    return build_request(body, "claude-test-1", default_max_tokens=1024)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def tool_use(block_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": block_id, "name": name, "input": value}


# --------------------------------------------------------------------------- request: top level


def test_targets_api_version_2026_10_21() -> None:
    assert ANTHROPIC_VERSION == "2026-10-21"


def test_minimal_request_is_exactly_model_max_tokens_messages() -> None:
    assert build() == {
        "model": "claude-test-1",
        "max_tokens": 1024,
        "messages": [USER_HI],
    }


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ({"max_tokens": 50}, "max_tokens", 50),
        ({"max_completion_tokens": 70}, "max_tokens", 70),
        ({"max_completion_tokens": 70, "max_tokens": 50}, "max_tokens", 70),
        ({"max_tokens": None}, "max_tokens", 1024),
        ({"stop": "END"}, "stop_sequences", ["END"]),
        ({"stop": ["a", "", "b"]}, "stop_sequences", ["a", "b"]),
        ({"stop": []}, "stop_sequences", MISSING),
        ({"stop": None}, "stop_sequences", MISSING),
        ({"user": "user-42"}, "metadata", {"user_id": "user-42"}),
        (
            {"user": "u", "safety_identifier": "hash-1"},
            "metadata",
            {"user_id": "hash-1"},
        ),
        ({"user": ""}, "metadata", MISSING),
        ({"stream": True}, "stream", True),
        ({"stream": False}, "stream", MISSING),
        ({"response_format": {"type": "text"}}, "output_config", MISSING),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": SCHEMA, "strict": True},
                }
            },
            "output_config",
            {"format": {"type": "json_schema", "schema": SCHEMA}},
        ),
        (
            {"messages": [{"role": "system", "content": "Be brief."}, *HI]},
            "system",
            "Be brief.",
        ),
        ({}, "system", MISSING),
    ],
)
def test_top_level_mapping(extra: dict[str, Any], key: str, expected: Any) -> None:
    request = build(**extra)
    if expected is MISSING:
        assert key not in request
    else:
        assert request[key] == expected


@pytest.mark.parametrize(
    "dropped",
    [
        {"temperature": 0.2},
        {"temperature": 1.7},
        {"top_p": 0.5},
        {"seed": 7},
        {"presence_penalty": 0.5},
        {"frequency_penalty": -1.0},
        {"stream_options": {"include_usage": True}},
        {"service_tier": "flex"},
        {"store": True},
        {"metadata": {"team": "a"}},
        {"prediction": {"type": "content", "content": "x"}},
        {"prompt_cache_key": "k"},
        {"reasoning_effort": "high"},
        {"verbosity": "low"},
        {"n": 1},
        {"logprobs": False},
        {"top_logprobs": 0},
        {"logit_bias": {}},
        {"modalities": ["text"]},
        {"parallel_tool_calls": False},  # without tools there is nothing to map it to
        {"tool_choice": "none"},  # without tools Anthropic must not get a tool_choice
        {"some_future_field": {"x": 1}},
    ],
)
def test_dropped_parameters_leave_no_trace(dropped: dict[str, Any]) -> None:
    assert build(**dropped) == build()


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
    ],
)
def test_refused_parameters_name_their_param(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build(**extra)
    assert caught.value.param == param
    assert caught.value.status == 400
    assert f"`{param}`" in caught.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        (
            {
                "tools": [
                    WEATHER_TOOL,
                    {"type": "function", "function": {"name": JSON_TOOL_NAME}},
                ]
            },
            "tools[1].function.name",
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "grammar"}}, "response_format.type"),
    ],
)
def test_refused_tool_and_format_shapes(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build(**extra)
    assert caught.value.param == param


# --------------------------------------------------------------------------- request: messages


ASSISTANT_CALLS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        call("call_1", "get_weather", '{"city":"Paris"}'),
        call("call_2", "get_time", ""),
    ],
}
TOOL_USES = {
    "role": "assistant",
    "content": [
        tool_use("call_1", "get_weather", {"city": "Paris"}),
        tool_use("call_2", "get_time", {}),
    ],
}


@pytest.mark.parametrize(
    ("messages", "system", "expected"),
    [
        pytest.param(
            [
                {"role": "system", "content": "A"},
                {"role": "developer", "content": [text("B1"), text("B2")]},
                *HI,
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": "C"},
                {"role": "user", "content": "again"},
            ],
            "A\n\nB1B2\n\nC",
            [
                USER_HI,
                {"role": "assistant", "content": [text("hello")]},
                {"role": "user", "content": [text("again")]},
            ],
            id="every-system-and-developer-message-hoisted-in-order",
        ),
        pytest.param(
            [{"role": "system", "content": ""}, *HI],
            MISSING,
            [USER_HI],
            id="empty-system-dropped",
        ),
        pytest.param(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [text("b")]},
            ],
            MISSING,
            [{"role": "user", "content": [text("a"), text("b")]}],
            id="consecutive-user-merged",
        ),
        pytest.param(
            [
                *HI,
                {"role": "assistant", "content": "x"},
                {"role": "assistant", "content": "y"},
                *HI,
            ],
            MISSING,
            [
                USER_HI,
                {"role": "assistant", "content": [text("x"), text("y")]},
                USER_HI,
            ],
            id="consecutive-assistant-merged",
        ),
        pytest.param(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": ""},
                {"role": "user", "content": "b"},
            ],
            MISSING,
            [{"role": "user", "content": [text("a"), text("b")]}],
            id="empty-text-skipped",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [
                        text("look"),
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "https://x.test/cat.png",
                                "detail": "high",
                            },
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0K"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/webp;base64,UklGR"},
                        },
                    ],
                }
            ],
            MISSING,
            [
                {
                    "role": "user",
                    "content": [
                        text("look"),
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://x.test/cat.png"},
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0K",
                            },
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "/9j/4AAQ",
                            },
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/webp",
                                "data": "UklGR",
                            },
                        },
                    ],
                }
            ],
            id="images-url-and-base64",
        ),
        pytest.param(
            [
                *HI,
                ASSISTANT_CALLS,
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [text("12:00")]},
                {"role": "user", "content": "thanks"},
            ],
            MISSING,
            [
                USER_HI,
                TOOL_USES,
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": "18C",
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": "12:00",
                        },
                        text("thanks"),
                    ],
                },
            ],
            id="tool-results-one-user-turn",
        ),
        pytest.param(
            [
                *HI,
                {
                    "role": "assistant",
                    "content": "checking",
                    "tool_calls": [call("c", "get_time", "{}")],
                },
                {"role": "user", "content": "hurry"},
                {"role": "tool", "tool_call_id": "c", "content": ""},
            ],
            MISSING,
            [
                USER_HI,
                {
                    "role": "assistant",
                    "content": [text("checking"), tool_use("c", "get_time", {})],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "c"},
                        text("hurry"),
                    ],
                },
            ],
            id="tool-result-moved-before-text-and-empty-result-has-no-content",
        ),
        pytest.param(
            [
                *HI,
                {
                    "role": "assistant",
                    "content": [
                        text("The answer is "),
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
            ],
            MISSING,
            [USER_HI, {"role": "assistant", "content": [text("The answer is")]}],
            id="final-assistant-prefill-trailing-whitespace-trimmed",
        ),
        pytest.param(
            [*HI, {"role": "assistant", "content": "  \n"}],
            MISSING,
            [USER_HI],
            id="whitespace-only-final-assistant-removed",
        ),
        pytest.param(
            [{"role": "assistant", "content": "How can I help?"}, *HI],
            MISSING,
            [{"role": "assistant", "content": [text("How can I help?")]}, USER_HI],
            id="assistant-first-passed-through",
        ),
    ],
)
def test_messages(messages: list[dict[str, Any]], system: Any, expected: list[dict[str, Any]]) -> None:
    request = build(messages=messages)
    assert request["messages"] == expected
    if system is MISSING:
        assert "system" not in request
    else:
        assert request["system"] == system


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "ftp://x/cat.png"}}],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png,rawbytes"},
                        }
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                *HI,
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="},
                        }
                    ],
                },
            ],
            "messages[1].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "x", "format": "wav"},
                        }
                    ],
                }
            ],
            "messages[0].content[0].type",
        ),
        (
            [*HI, {"role": "assistant", "tool_calls": [call("c", "f", "[1, 2]")]}],
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            [*HI, {"role": "assistant", "tool_calls": [call("c", "f", '{"cut off')]}],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
    ],
)
def test_message_refusals_name_the_offending_field(messages: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build(messages=messages)
    assert caught.value.param == param


# --------------------------------------------------------------------------- request: tools


@pytest.mark.parametrize(
    ("openai_tool", "anthropic_tool"),
    [
        (WEATHER_TOOL, ANTHROPIC_WEATHER_TOOL),
        (
            {"type": "function", "function": {"name": "ping"}},
            {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        ),
        (
            {
                "type": "function",
                "function": {
                    "name": "p",
                    "parameters": {"properties": {"x": {"type": "integer"}}},
                },
            },
            {
                "name": "p",
                "input_schema": {
                    "type": "object",
                    "properties": {"x": {"type": "integer"}},
                },
            },
        ),
        (
            {
                "type": "function",
                "function": {"name": "s", "parameters": SCHEMA, "strict": True},
            },
            {"name": "s", "input_schema": SCHEMA, "strict": True},
        ),
    ],
)
def test_tool_definitions(openai_tool: dict[str, Any], anthropic_tool: dict[str, Any]) -> None:
    assert build(tools=[openai_tool])["tools"] == [anthropic_tool]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        (None, None, MISSING),
        (None, True, MISSING),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", None, {"type": "auto"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("required", True, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice(tool_choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    request = build(**body)
    assert request["tools"] == [ANTHROPIC_WEATHER_TOOL]
    if expected is MISSING:
        assert "tool_choice" not in request
    else:
        assert request["tool_choice"] == expected


JSON_OBJECT = {"type": "json_object"}
FORCED_JSON = {
    "type": "tool",
    "name": JSON_TOOL_NAME,
    "disable_parallel_tool_use": True,
}


@pytest.mark.parametrize(
    ("extra", "tools", "tool_choice", "output_config"),
    [
        ({"response_format": JSON_OBJECT}, [JSON_TOOL], FORCED_JSON, MISSING),
        (
            {"response_format": JSON_OBJECT, "tools": [WEATHER_TOOL]},
            [ANTHROPIC_WEATHER_TOOL, JSON_TOOL],
            {"type": "any"},
            MISSING,
        ),
        (
            {
                "response_format": JSON_OBJECT,
                "tools": [WEATHER_TOOL],
                "tool_choice": "auto",
                "parallel_tool_calls": False,
            },
            [ANTHROPIC_WEATHER_TOOL, JSON_TOOL],
            {"type": "any", "disable_parallel_tool_use": True},
            MISSING,
        ),
        (
            {
                "response_format": JSON_OBJECT,
                "tools": [WEATHER_TOOL],
                "tool_choice": "none",
            },
            [ANTHROPIC_WEATHER_TOOL, JSON_TOOL],
            FORCED_JSON,
            MISSING,
        ),
        (
            {
                "response_format": JSON_OBJECT,
                "tools": [WEATHER_TOOL],
                "tool_choice": "required",
            },
            [ANTHROPIC_WEATHER_TOOL],
            {"type": "any"},
            MISSING,
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            [JSON_TOOL],
            FORCED_JSON,
            MISSING,
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": SCHEMA},
                },
                "tools": [WEATHER_TOOL],
            },
            [ANTHROPIC_WEATHER_TOOL],
            MISSING,
            {"format": {"type": "json_schema", "schema": SCHEMA}},
        ),
    ],
)
def test_json_modes(extra: dict[str, Any], tools: Any, tool_choice: Any, output_config: Any) -> None:
    request = build(**extra)
    for key, expected in (
        ("tools", tools),
        ("tool_choice", tool_choice),
        ("output_config", output_config),
    ):
        if expected is MISSING:
            assert key not in request
        else:
            assert request[key] == expected


def test_build_request_does_not_mutate_the_body() -> None:
    body = {
        "messages": [*HI, {"role": "assistant", "content": "ok "}],
        "tools": [WEATHER_TOOL],
        "response_format": JSON_OBJECT,
    }
    snapshot = repr(body)
    build_request(body, "m", default_max_tokens=5)
    assert repr(body) == snapshot


# --------------------------------------------------------------------------- response


def message(content: list[dict[str, Any]], stop_reason: str | None = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-1",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
        **extra,
    }


WEATHER_CALL = {
    "id": "toolu_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":[1,2]}'},
}


@pytest.mark.parametrize(
    ("content", "stop_reason", "expected_message", "finish_reason"),
    [
        (
            [text("Hello")],
            "end_turn",
            {"role": "assistant", "content": "Hello"},
            "stop",
        ),
        (
            [text("Hel"), text("lo")],
            "end_turn",
            {"role": "assistant", "content": "Hello"},
            "stop",
        ),
        ([], "end_turn", {"role": "assistant", "content": ""}, "stop"),
        (
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "x"},
                text("Hi"),
            ],
            "end_turn",
            {"role": "assistant", "content": "Hi"},
            "stop",
        ),
        (
            [tool_use("toolu_1", "get_weather", {"city": "Paris", "days": [1, 2]})],
            "tool_use",
            {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
            "tool_calls",
        ),
        (
            [
                text("Checking."),
                tool_use("toolu_1", "get_weather", {"city": "Paris", "days": [1, 2]}),
            ],
            "tool_use",
            {"role": "assistant", "content": "Checking.", "tool_calls": [WEATHER_CALL]},
            "tool_calls",
        ),
        (
            [tool_use("toolu_9", JSON_TOOL_NAME, {"answer": "é", "n": [1, 2]})],
            "tool_use",
            {"role": "assistant", "content": '{"answer":"é","n":[1,2]}'},
            "stop",
        ),
        (
            [
                tool_use("toolu_9", JSON_TOOL_NAME, {"a": 1}),
                tool_use("toolu_1", "get_weather", {"city": "Paris", "days": [1, 2]}),
            ],
            "tool_use",
            {"role": "assistant", "content": '{"a":1}', "tool_calls": [WEATHER_CALL]},
            "tool_calls",
        ),
    ],
)
def test_parse_response_message(
    content: list[dict[str, Any]],
    stop_reason: str,
    expected_message: dict[str, Any],
    finish_reason: str,
) -> None:
    result = parse_response(message(content, stop_reason))
    assert result.choices == [
        {
            "index": 0,
            "message": expected_message,
            "finish_reason": finish_reason,
            "logprobs": None,
        }
    ]


FINISH_REASONS = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("pause_turn", "stop"),
    ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"),
    ("refusal", "content_filter"),
    ("some_new_reason", "stop"),
    (None, "stop"),
]


@pytest.mark.parametrize(("stop_reason", "finish_reason"), FINISH_REASONS)
def test_parse_response_finish_reason(stop_reason: str | None, finish_reason: str) -> None:
    assert parse_response(message([text("x")], stop_reason)).choices[0]["finish_reason"] == finish_reason


def test_refusal_explanation_becomes_message_refusal() -> None:
    data = message(
        [text("I can't")],
        "refusal",
        stop_details={
            "type": "refusal",
            "category": "cyber",
            "explanation": "Could enable malware.",
        },
    )
    choice = parse_response(data).choices[0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {
        "role": "assistant",
        "content": "I can't",
        "refusal": "Could enable malware.",
    }


USAGE_CASES = [
    pytest.param({"input_tokens": 10, "output_tokens": 5}, Usage(10, 5), id="plain"),
    pytest.param(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 300,
        },
        Usage(
            prompt_tokens=2310,
            completion_tokens=5,
            cached_tokens=2000,
            cache_creation_tokens=300,
        ),
        id="cache-read-and-write",
    ),
    pytest.param(
        {
            "input_tokens": 7,
            "output_tokens": 1,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
        Usage(
            prompt_tokens=7,
            completion_tokens=1,
            cached_tokens=0,
            cache_creation_tokens=0,
        ),
        id="cache-zero-is-reported-not-none",
    ),
    pytest.param(
        {
            "input_tokens": 3,
            "output_tokens": 900,
            "output_tokens_details": {"thinking_tokens": 850},
        },
        Usage(prompt_tokens=3, completion_tokens=900, reasoning_tokens=850),
        id="thinking-tokens",
    ),
    pytest.param(None, Usage(), id="missing"),
]


@pytest.mark.parametrize(("raw", "expected"), USAGE_CASES)
def test_parse_response_usage(raw: Any, expected: Usage) -> None:
    usage = parse_response({**message([text("x")]), "usage": raw}).usage
    assert usage == expected
    assert usage.total_tokens == expected.prompt_tokens + expected.completion_tokens


@pytest.mark.parametrize("data", [{}, {"content": "text"}, ["not", "a", "dict"]])
def test_parse_response_rejects_garbage(data: Any) -> None:
    with pytest.raises(AttemptError) as caught:
        parse_response(data)
    assert caught.value.kind == "malformed"


# --------------------------------------------------------------------------- stream


def feed_all(
    events: list[tuple[str, dict[str, Any]]],
    translator: AnthropicStreamTranslator | None = None,
) -> list[dict[str, Any]]:
    translator = translator or AnthropicStreamTranslator()
    out: list[dict[str, Any]] = []
    for name, data in events:
        out += translator.feed(name, data)
    return out


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def ev(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return data["type"], data


def message_start(usage: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev(
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-test-1",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        }
    )


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str | None, usage: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        }
    )


PING = ev({"type": "ping"})
MESSAGE_STOP = ev({"type": "message_stop"})
ROLE = chunk({"role": "assistant", "content": ""})


def test_stream_text_sequence() -> None:
    translator = stream_translator_for({"messages": HI, "stream": True})
    events = [
        message_start(
            {
                "input_tokens": 25,
                "output_tokens": 1,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 0,
            }
        ),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        block_delta(0, {"type": "text_delta", "text": "Hello"}),
        block_delta(0, {"type": "text_delta", "text": "!"}),
        block_stop(0),
        message_delta("end_turn", {"output_tokens": 15}),
        MESSAGE_STOP,
    ]
    assert feed_all(events, translator) == [
        ROLE,
        chunk({"content": "Hello"}),
        chunk({"content": "!"}),
        chunk({}, "stop"),
    ]
    assert translator.usage == Usage(
        prompt_tokens=125,
        completion_tokens=15,
        cached_tokens=100,
        cache_creation_tokens=0,
    )


def test_stream_parallel_tool_calls_numbered_from_zero() -> None:
    translator = AnthropicStreamTranslator()
    events = [
        message_start({"input_tokens": 400, "output_tokens": 2}),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Two cities."}),
        block_delta(0, {"type": "signature_delta", "signature": "EqQB"}),
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        block_delta(1, {"type": "text_delta", "text": "Checking both."}),
        block_stop(1),
        block_start(2, {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}),
        block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"city": '}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        block_stop(2),
        PING,
        block_start(3, {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}}),
        block_delta(3, {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'}),
        block_stop(3),
        message_delta(
            "tool_use",
            {"output_tokens": 120, "output_tokens_details": {"thinking_tokens": 40}},
        ),
        MESSAGE_STOP,
    ]

    def start(i: int, call_id: str) -> dict[str, Any]:
        return chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        )

    def args(i: int, partial: str) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": i, "function": {"arguments": partial}}]})

    assert feed_all(events, translator) == [
        ROLE,
        chunk({"content": "Checking both."}),
        start(0, "toolu_A"),
        args(0, '{"city": '),
        args(0, '"Paris"}'),
        start(1, "toolu_B"),
        args(1, '{"city": "Oslo"}'),
        chunk({}, "tool_calls"),
    ]
    assert translator.usage == Usage(prompt_tokens=400, completion_tokens=120, reasoning_tokens=40)


def test_stream_json_mode_tool_streams_as_content() -> None:
    events = [
        message_start({"input_tokens": 9, "output_tokens": 1}),
        block_start(
            0,
            {"type": "tool_use", "id": "toolu_J", "name": JSON_TOOL_NAME, "input": {}},
        ),
        block_delta(0, {"type": "input_json_delta", "partial_json": '{"answer"'}),
        block_delta(0, {"type": "input_json_delta", "partial_json": ': "42"}'}),
        block_stop(0),
        message_delta("tool_use", {"output_tokens": 12}),
        MESSAGE_STOP,
    ]
    assert feed_all(events) == [
        ROLE,
        chunk({"content": '{"answer"'}),
        chunk({"content": ': "42"}'}),
        chunk({}, "stop"),
    ]


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [fr for fr in FINISH_REASONS if fr[0] is not None])
def test_stream_finish_reason(stop_reason: str, finish_reason: str) -> None:
    events = [
        message_start({"input_tokens": 1, "output_tokens": 1}),
        message_delta(stop_reason, {"output_tokens": 2}),
    ]
    assert feed_all(events) == [ROLE, chunk({}, finish_reason)]


def test_stream_usage_cumulative_message_delta_overrides_start() -> None:
    translator = AnthropicStreamTranslator()
    feed_all(
        [
            message_start(
                {
                    "input_tokens": 50,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 1000,
                }
            ),
            message_delta(
                "end_turn",
                {
                    "input_tokens": 50,
                    "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 1000,
                    "output_tokens": 30,
                },
            ),
        ],
        translator,
    )
    assert translator.usage == Usage(
        prompt_tokens=1050,
        completion_tokens=30,
        cached_tokens=0,
        cache_creation_tokens=1000,
    )


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("ping", {"type": "ping"}),
        ("ping", {}),
        ("message_stop", {"type": "message_stop"}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("brand_new_event", {"type": "brand_new_event", "x": 1}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "citations_delta", "citation": {}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "server_tool_use"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": None},
                "usage": {"output_tokens": 3},
            },
        ),
        (None, "not json"),
    ],
)
def test_stream_events_without_output(event: str | None, data: Any) -> None:
    translator = AnthropicStreamTranslator()
    translator.feed("message_start", message_start({"input_tokens": 1, "output_tokens": 1})[1])
    assert translator.feed(event, data) == []


def test_stream_error_event_raises_stream_error() -> None:
    translator = AnthropicStreamTranslator()
    translator.feed(*message_start({"input_tokens": 1, "output_tokens": 1}))
    with pytest.raises(StreamError) as caught:
        translator.feed(
            "error",
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            },
        )
    assert caught.value.message == "overloaded_error: Overloaded"
    assert caught.value.error_type == "overloaded_error"


def test_stream_error_event_without_details() -> None:
    with pytest.raises(StreamError) as caught:
        AnthropicStreamTranslator().feed("error", {})
    assert caught.value.message == "Anthropic sent an error event without details"
    assert caught.value.error_type is None


def test_stream_translators_are_independent() -> None:
    first = stream_translator_for({"messages": HI})
    second = stream_translator_for({"messages": HI})
    first.feed(*message_start({"input_tokens": 5, "output_tokens": 1}))
    assert first is not second
    assert second.usage == Usage()
    assert second.feed(*message_start({"input_tokens": 5, "output_tokens": 1})) == [ROLE]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "data", "expected"),
    [
        (
            529,
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            },
            "overloaded_error: Overloaded",
        ),
        (
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "max_tokens: too big",
                },
                "request_id": "req_1",
            },
            "invalid_request_error: max_tokens: too big (request_id req_1)",
        ),
        (
            401,
            '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
            "authentication_error: invalid x-api-key",
        ),
        (
            429,
            b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}',
            "rate_limit_error: slow down",
        ),
        (
            502,
            "<html>\n  <body>Bad   Gateway</body>\n</html>",
            "<html> <body>Bad Gateway</body> </html>",
        ),
        (500, {"error": {"message": "boom"}}, "boom"),
        (500, {"error": {"type": "api_error"}}, "api_error"),
        (500, {"error": "plain string"}, "plain string"),
        (503, "", "Anthropic returned HTTP 503"),
        (503, None, "Anthropic returned HTTP 503"),
        (503, ["list"], "Anthropic returned HTTP 503"),
        (503, {"error": {}}, "Anthropic returned HTTP 503"),
        (503, {"error": {"type": 5, "message": ["x"]}}, "Anthropic returned HTTP 503"),
        (503, b"\xff\xfe", "\ufffd\ufffd"),
    ],
)
def test_error_message(status: int, data: Any, expected: str) -> None:
    assert error_message(status, data) == expected
