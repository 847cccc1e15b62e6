"""Table-driven tests for the OpenAI <-> Gemini translation (ccapi.providers.gemini).

Every built request and every response fixture is also validated against
google-genai's own pydantic types (extra="forbid", camelCase aliases), so a
misspelt Gemini field fails here rather than upstream.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import types

from ccapi.core.errors import InvalidRequestError
from ccapi.core.types import Usage
from ccapi.providers.gemini import (
    DUMMY_THOUGHT_SIGNATURE,
    GeminiStreamTranslator,
    MalformedResponseError,
    StreamError,
    build_request,
    error_message,
    parse_response,
)

PNG_B64 = "iVBORw0KGgo="
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOL_DECL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parametersJsonSchema": TOOL["function"]["parameters"],
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
USER_HI = {"role": "user", "content": "hi"}
CONTENTS_HI = [{"role": "user", "parts": [{"text": "hi"}]}]


def assert_valid_request(request: dict[str, Any]) -> None:
    """Every field is one the google-genai SDK knows (it forbids extras)."""
    allowed = {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
    }
    assert set(request) <= allowed
    for content in request["contents"]:
        types.Content.model_validate(content)
    if "systemInstruction" in request:
        types.Content.model_validate(request["systemInstruction"])
    for tool in request.get("tools", []):
        types.Tool.model_validate(tool)
    if "toolConfig" in request:
        types.ToolConfig.model_validate(request["toolConfig"])
    if "generationConfig" in request:
        types.GenerationConfig.model_validate(request["generationConfig"])


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages or [USER_HI]), **fields}


def call(call_id: str, name: str, args: str, signature: str | None = None) -> dict[str, Any]:
    tool_call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": args},
    }
    if signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


def image(url: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}],
    }


def file_data(mime: str, uri: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"fileData": {"mimeType": mime, "fileUri": uri}}]}]


# --------------------------------------------------------------------------
# build_request: messages
# --------------------------------------------------------------------------

MESSAGE_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("user string", [USER_HI], {"contents": CONTENTS_HI}),
    (
        "system and developer go to systemInstruction in order",
        [
            {"role": "system", "content": "Be brief."},
            USER_HI,
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        ],
        {
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "No emoji."}]},
            "contents": CONTENTS_HI,
        },
    ),
    (
        "assistant becomes model",
        [
            USER_HI,
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ],
        {
            "contents": [
                *CONTENTS_HI,
                {"role": "model", "parts": [{"text": "hello"}]},
                {"role": "user", "parts": [{"text": "bye"}]},
            ]
        },
    ),
    (
        "consecutive user messages merge into one turn",
        [USER_HI, {"role": "user", "name": "bob", "content": "there"}],
        {"contents": [{"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]}]},
    ),
    (
        "user text parts, empty ones skipped",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": ""},
                ],
            }
        ],
        {"contents": [{"role": "user", "parts": [{"text": "a"}]}]},
    ),
    (
        "empty assistant message is skipped",
        [USER_HI, {"role": "assistant", "content": ""}],
        {"contents": CONTENTS_HI},
    ),
    (
        "image data URL -> inlineData",
        [image(f"data:image/png;base64,{PNG_B64}")],
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}],
                }
            ]
        },
    ),
    (
        "image https .png -> fileData image/png",
        [image("https://x.test/a/cat.png")],
        {"contents": file_data("image/png", "https://x.test/a/cat.png")},
    ),
    (
        "image extension read from the path, not the query",
        [image("https://x.test/cat.JPG?w=200&fmt=.png")],
        {"contents": file_data("image/jpeg", "https://x.test/cat.JPG?w=200&fmt=.png")},
    ),
    (
        "image .webp",
        [image("https://x.test/cat.webp")],
        {"contents": file_data("image/webp", "https://x.test/cat.webp")},
    ),
    (
        "image without extension defaults to image/jpeg",
        [image("https://cdn.x.test/img/12345")],
        {"contents": file_data("image/jpeg", "https://cdn.x.test/img/12345")},
    ),
    (
        "input_audio -> inlineData audio/mp3",
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": "AAAA", "format": "mp3"},
                    }
                ],
            }
        ],
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "audio/mp3", "data": "AAAA"}}],
                }
            ]
        },
    ),
    (
        "file data URL -> inlineData",
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,JVBE"},
                    }
                ],
            }
        ],
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}],
                }
            ]
        },
    ),
    (
        "file raw base64 typed by filename",
        [
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_data": "JVBE", "filename": "a.PDF"}}],
            }
        ],
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}],
                }
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [c[1:] for c in MESSAGE_CASES],
    ids=[c[0] for c in MESSAGE_CASES],
)
def test_messages(messages: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    request = build_request(body(*messages), "gemini-x")
    assert request == expected
    assert_valid_request(request)


# ---- tool-call history ----

TOOL_HISTORY_CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "parallel calls: one model turn, dummy signature on the first call only, results "
        + "merged into one user turn with names recovered",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("c1", "get_weather", '{"city": "Paris"}'),
                    call("c2", "get_time", ""),
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "c2",
                "content": [{"type": "text", "text": "noon"}],
            },
        ],
        [
            *CONTENTS_HI,
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "id": "c1",
                            "name": "get_weather",
                            "args": {"city": "Paris"},
                        },
                        "thoughtSignature": DUMMY_THOUGHT_SIGNATURE,
                    },
                    {"functionCall": {"id": "c2", "name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "c1",
                            "name": "get_weather",
                            "response": {"output": "18C"},
                        }
                    },
                    {
                        "functionResponse": {
                            "id": "c2",
                            "name": "get_time",
                            "response": {"output": "noon"},
                        }
                    },
                ],
            },
        ],
    ),
    (
        "signature from extra_content is sent back instead of the dummy; text kept first",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [call("c1", "get_time", "{}", signature="U0lH")],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        ],
        [
            *CONTENTS_HI,
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {
                        "functionCall": {"id": "c1", "name": "get_time", "args": {}},
                        "thoughtSignature": "U0lH",
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "c1",
                            "name": "get_time",
                            "response": {"output": "noon"},
                        }
                    }
                ],
            },
        ],
    ),
    (
        "reused id (call_0 in two turns) resolves to the latest call's name",
        [
            USER_HI,
            {"role": "assistant", "tool_calls": [call("call_0", "get_time", "{}")]},
            {"role": "tool", "tool_call_id": "call_0", "content": "noon"},
            {
                "role": "assistant",
                "tool_calls": [call("call_0", "get_weather", '{"city":"Rome"}')],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "20C"},
        ],
        [
            *CONTENTS_HI,
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "id": "call_0",
                            "name": "get_time",
                            "args": {},
                        },
                        "thoughtSignature": DUMMY_THOUGHT_SIGNATURE,
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_0",
                            "name": "get_time",
                            "response": {"output": "noon"},
                        }
                    }
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "id": "call_0",
                            "name": "get_weather",
                            "args": {"city": "Rome"},
                        },
                        "thoughtSignature": DUMMY_THOUGHT_SIGNATURE,
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_0",
                            "name": "get_weather",
                            "response": {"output": "20C"},
                        }
                    }
                ],
            },
        ],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [c[1:] for c in TOOL_HISTORY_CASES],
    ids=[c[0] for c in TOOL_HISTORY_CASES],
)
def test_tool_history(messages: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    request = build_request(body(*messages, tools=[TOOL, TIME_TOOL]), "gemini-x")
    assert request["contents"] == expected
    assert_valid_request(request)


# --------------------------------------------------------------------------
# build_request: tools, tool_choice, generationConfig, drops
# --------------------------------------------------------------------------

FIELD_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "tools -> functionDeclarations with parametersJsonSchema; no parameters -> none",
        {"tools": [TOOL, TIME_TOOL]},
        {"tools": [{"functionDeclarations": [TOOL_DECL, {"name": "get_time"}]}]},
    ),
    (
        "tool_choice none",
        {"tools": [TOOL], "tool_choice": "none"},
        {
            "tools": [{"functionDeclarations": [TOOL_DECL]}],
            "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        },
    ),
    (
        "tool_choice none without tools adds nothing",
        {"tool_choice": "none"},
        {},
    ),
    (
        "tool_choice auto",
        {"tools": [TOOL], "tool_choice": "auto"},
        {
            "tools": [{"functionDeclarations": [TOOL_DECL]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        },
    ),
    (
        "tool_choice required -> ANY",
        {"tools": [TOOL], "tool_choice": "required"},
        {
            "tools": [{"functionDeclarations": [TOOL_DECL]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
    ),
    (
        "named tool_choice -> ANY + allowedFunctionNames",
        {
            "tools": [TOOL, TIME_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
        {
            "tools": [{"functionDeclarations": [TOOL_DECL, {"name": "get_time"}]}],
            "toolConfig": {
                "functionCallingConfig": {
                    "mode": "ANY",
                    "allowedFunctionNames": ["get_time"],
                }
            },
        },
    ),
    (
        "allowed_tools auto -> VALIDATED",
        {
            "tools": [TOOL, TIME_TOOL],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
        },
        {
            "tools": [{"functionDeclarations": [TOOL_DECL, {"name": "get_time"}]}],
            "toolConfig": {
                "functionCallingConfig": {
                    "mode": "VALIDATED",
                    "allowedFunctionNames": ["get_weather"],
                }
            },
        },
    ),
    (
        "allowed_tools required -> ANY",
        {
            "tools": [TOOL],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
        },
        {
            "tools": [{"functionDeclarations": [TOOL_DECL]}],
            "toolConfig": {
                "functionCallingConfig": {
                    "mode": "ANY",
                    "allowedFunctionNames": ["get_weather"],
                }
            },
        },
    ),
    (
        "parallel_tool_calls false is fine when tool_choice is none",
        {"tools": [TOOL], "tool_choice": "none", "parallel_tool_calls": False},
        {
            "tools": [{"functionDeclarations": [TOOL_DECL]}],
            "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        },
    ),
    (
        "sampling parameters",
        {"temperature": 0.2, "top_p": 0.9, "seed": 7},
        {"generationConfig": {"temperature": 0.2, "topP": 0.9, "seed": 7}},
    ),
    ("max_tokens", {"max_tokens": 100}, {"generationConfig": {"maxOutputTokens": 100}}),
    (
        "max_completion_tokens wins over max_tokens",
        {"max_tokens": 100, "max_completion_tokens": 50},
        {"generationConfig": {"maxOutputTokens": 50}},
    ),
    ("stop string", {"stop": "END"}, {"generationConfig": {"stopSequences": ["END"]}}),
    (
        "stop list",
        {"stop": ["a", "b"]},
        {"generationConfig": {"stopSequences": ["a", "b"]}},
    ),
    ("n > 1 -> candidateCount", {"n": 3}, {"generationConfig": {"candidateCount": 3}}),
    ("n = 1 is the default", {"n": 1}, {}),
    (
        "penalties",
        {"presence_penalty": 0.5, "frequency_penalty": -0.5},
        {"generationConfig": {"presencePenalty": 0.5, "frequencyPenalty": -0.5}},
    ),
    (
        "zero penalties are left out",
        {"presence_penalty": 0, "frequency_penalty": 0.0},
        {},
    ),
    (
        "logprobs + top_logprobs",
        {"logprobs": True, "top_logprobs": 3},
        {"generationConfig": {"responseLogprobs": True, "logprobs": 3}},
    ),
    (
        "logprobs alone",
        {"logprobs": True},
        {"generationConfig": {"responseLogprobs": True}},
    ),
    ("top_logprobs without logprobs is dropped", {"top_logprobs": 3}, {}),
    ("response_format text", {"response_format": {"type": "text"}}, {}),
    (
        "response_format json_object",
        {"response_format": {"type": "json_object"}},
        {"generationConfig": {"responseMimeType": "application/json"}},
    ),
    (
        "response_format json_schema -> responseJsonSchema verbatim",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "pet",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": ["string", "null"]}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                },
            }
        },
        {
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"name": {"type": ["string", "null"]}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            }
        },
    ),
    (
        "harmless fields are dropped",
        {
            "user": "u1",
            "stream": True,
            "stream_options": {"include_usage": True},
            "metadata": {"a": "b"},
            "store": False,
            "service_tier": "auto",
            "reasoning_effort": "low",
            "prediction": {"type": "content", "content": "x"},
            "logit_bias": {},
            "parallel_tool_calls": True,
            "modalities": ["text"],
            "some_vendor_field": 1,
            "temperature": None,
            "stop": None,
        },
        {},
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected_extra"),
    [c[1:] for c in FIELD_CASES],
    ids=[c[0] for c in FIELD_CASES],
)
def test_fields(fields: dict[str, Any], expected_extra: dict[str, Any]) -> None:
    request = build_request(body(**fields), "gemini-x")
    assert request == {"contents": CONTENTS_HI, **expected_extra}
    assert_valid_request(request)


# --------------------------------------------------------------------------
# build_request: refusals
# --------------------------------------------------------------------------

REFUSAL_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("logit_bias", body(logit_bias={"50256": -100}), "logit_bias"),
    ("legacy functions", body(functions=[{"name": "f"}]), "functions"),
    ("legacy function_call", body(function_call="auto"), "function_call"),
    (
        "parallel_tool_calls false with tools",
        body(tools=[TOOL], parallel_tool_calls=False),
        "parallel_tool_calls",
    ),
    ("audio modality", body(modalities=["text", "audio"]), "modalities"),
    ("audio output", body(audio={"voice": "alloy", "format": "wav"}), "audio"),
    ("web search", body(web_search_options={}), "web_search_options"),
    (
        "non-function tool",
        body(tools=[{"type": "custom", "custom": {"name": "x"}}]),
        "tools[0]",
    ),
    (
        "named tool_choice not in tools",
        body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
        "tool_choice",
    ),
    ("tool_choice required without tools", body(tool_choice="required"), "tool_choice"),
    (
        "unknown response_format",
        body(response_format={"type": "grammar"}),
        "response_format",
    ),
    (
        "file_id",
        body(
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_id": "file-1"}}],
            }
        ),
        "messages[0].content[0].file.file_id",
    ),
    (
        "file raw base64 of unknown type",
        body(
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_data": "AAAA"}}],
            }
        ),
        "messages[0].content[0].file.file_data",
    ),
    (
        "non-base64 data URL",
        body(image("data:image/png,rawbytes")),
        "messages[0].content[0].image_url.url",
    ),
    (
        "unknown content part",
        body(
            {
                "role": "user",
                "content": [{"type": "video_url", "video_url": {"url": "x"}}],
            }
        ),
        "messages[0].content[0]",
    ),
    (
        "input_audio in an unsupported format",
        body(
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": "AA", "format": "ogg"},
                    }
                ],
            }
        ),
        "messages[0].content[0].input_audio.format",
    ),
    (
        "tool arguments not JSON",
        body(
            USER_HI,
            {"role": "assistant", "tool_calls": [call("c1", "get_time", "{oops")]},
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool arguments not an object",
        body(
            USER_HI,
            {"role": "assistant", "tool_calls": [call("c1", "get_time", "[1, 2]")]},
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool result for an unknown call",
        body(USER_HI, {"role": "tool", "tool_call_id": "ghost", "content": "x"}),
        "messages[1].tool_call_id",
    ),
    ("only system messages", body({"role": "system", "content": "hi"}), "messages"),
]


@pytest.mark.parametrize(
    ("request_body", "param"),
    [c[1:] for c in REFUSAL_CASES],
    ids=[c[0] for c in REFUSAL_CASES],
)
def test_refusals(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_request(request_body, "gemini-x")
    assert info.value.param == param
    assert info.value.status == 400
    assert info.value.message


# --------------------------------------------------------------------------
# parse_response
# --------------------------------------------------------------------------


def candidate(parts: list[dict[str, Any]] | None, finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = dict(extra)
    if parts is not None:
        c["content"] = {"role": "model", "parts": parts}
    if finish:
        c["finishReason"] = finish
    return c


def response(*candidates: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"candidates": list(candidates), "modelVersion": "gemini-x"}
    if usage is not None:
        data["usageMetadata"] = usage
    types.GenerateContentResponse.model_validate(data)
    return data


def msg(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return message


def choice(index: int, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "index": index,
        "message": message,
        "finish_reason": finish,
        "logprobs": None,
    }


def out_call(call_id: str, name: str, arguments: str, signature: str | None = None) -> dict[str, Any]:
    tool_call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    if signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


RESPONSE_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "text parts joined",
        response(candidate([{"text": "Hel"}, {"text": "lo"}])),
        [choice(0, msg("Hello"), "stop")],
    ),
    (
        "thought parts left out",
        response(candidate([{"text": "pondering", "thought": True}, {"text": "42"}])),
        [choice(0, msg("42"), "stop")],
    ),
    (
        "function calls get call_<n> ids, JSON arguments, finish tool_calls, signature kept",
        response(
            candidate(
                [
                    {"text": "", "thought": True},
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Zürich"},
                        },
                        "thoughtSignature": "U0lH",
                    },
                    {"functionCall": {"name": "get_time"}},
                ]
            )
        ),
        [
            choice(
                0,
                msg(
                    None,
                    [
                        out_call("call_0", "get_weather", '{"city": "Zürich"}', "U0lH"),
                        out_call("call_1", "get_time", "{}"),
                    ],
                ),
                "tool_calls",
            )
        ],
    ),
    (
        "Gemini's own call id is kept; text alongside calls kept",
        response(
            candidate(
                [
                    {"text": "On it."},
                    {"functionCall": {"id": "fc-9", "name": "get_time", "args": {}}},
                ]
            )
        ),
        [choice(0, msg("On it.", [out_call("fc-9", "get_time", "{}")]), "tool_calls")],
    ),
    (
        "MAX_TOKENS with a call stays length",
        response(candidate([{"functionCall": {"name": "get_time"}}], "MAX_TOKENS")),
        [choice(0, msg(None, [out_call("call_0", "get_time", "{}")]), "length")],
    ),
    (
        "safety stop without content",
        response(candidate(None, "SAFETY")),
        [choice(0, msg(None), "content_filter")],
    ),
    (
        "empty STOP gives empty string",
        response(candidate([], "STOP")),
        [choice(0, msg(""), "stop")],
    ),
    (
        "several candidates; index 0 omitted as proto3 JSON does",
        response(
            candidate([{"text": "A"}]),
            candidate([{"text": "B"}], "MAX_TOKENS", index=1),
        ),
        [choice(0, msg("A"), "stop"), choice(1, msg("B"), "length")],
    ),
    (
        "candidates out of order are sorted by index",
        response(candidate([{"text": "B"}], index=1), candidate([{"text": "A"}], index=0)),
        [choice(0, msg("A"), "stop"), choice(1, msg("B"), "stop")],
    ),
]


@pytest.mark.parametrize(
    ("data", "choices"),
    [c[1:] for c in RESPONSE_CASES],
    ids=[c[0] for c in RESPONSE_CASES],
)
def test_parse_response(data: dict[str, Any], choices: list[dict[str, Any]]) -> None:
    assert parse_response(data).choices == choices


FINISH_CASES = [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("CONTINUATION", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("LANGUAGE", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"),
    ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
    ("IMAGE_RECITATION", "content_filter"),
    ("MODEL_ARMOR", "content_filter"),
    ("OTHER", "stop"),
    ("MALFORMED_FUNCTION_CALL", "stop"),
    ("UNEXPECTED_TOOL_CALL", "stop"),
    ("TOO_MANY_TOOL_CALLS", "stop"),
    ("MISSING_THOUGHT_SIGNATURE", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"),
    ("SOMETHING_NEW_IN_2027", "stop"),
]


@pytest.mark.parametrize(("gemini", "openai"), FINISH_CASES)
def test_finish_reason_map(gemini: str, openai: str) -> None:
    data = {"candidates": [candidate([{"text": "x"}], gemini)]}
    assert parse_response(data).choices[0]["finish_reason"] == openai


USAGE_CASES: list[tuple[str, dict[str, Any] | None, Usage]] = [
    ("absent", None, Usage(0, 0, None, None, None)),
    (
        "plain",
        {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        Usage(10, 5, None, None, None),
    ),
    (
        "thinking billed as output",
        {
            "promptTokenCount": 10,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 20,
            "totalTokenCount": 35,
        },
        Usage(10, 25, None, None, 20),
    ),
    (
        "cache hit and tool-use prompt",
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 80,
            "toolUsePromptTokenCount": 7,
            "candidatesTokenCount": 3,
            "totalTokenCount": 110,
        },
        Usage(107, 3, 80, None, None),
    ),
]


@pytest.mark.parametrize(("metadata", "usage"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_usage(metadata: dict[str, Any] | None, usage: Usage) -> None:
    result = parse_response(response(candidate([{"text": "x"}]), usage=metadata))
    assert result.usage == usage


def test_blocked_prompt() -> None:
    data = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    types.GenerateContentResponse.model_validate(data)
    result = parse_response(data)
    assert result.choices == [choice(0, msg(None), "content_filter")]
    assert result.usage == Usage(prompt_tokens=9)


def test_logprobs() -> None:
    data = response(
        candidate(
            [{"text": "Hi"}],
            logprobsResult={
                "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}],
                "topCandidates": [
                    {
                        "candidates": [
                            {"token": "Hi", "logProbability": -0.1},
                            {"token": "Yo", "logProbability": -2.5},
                        ]
                    }
                ],
            },
        )
    )
    assert parse_response(data).choices[0]["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                    {"token": "Yo", "logprob": -2.5, "bytes": [89, 111]},
                ],
            }
        ],
        "refusal": None,
    }


@pytest.mark.parametrize(
    "data",
    [{}, {"candidates": []}, {"candidates": "x"}, ["not", "a", "dict"]],
    ids=["empty", "no candidates", "candidates not a list", "list"],
)
def test_malformed_response(data: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_response(data)


def test_tool_calls_round_trip_with_signature() -> None:
    """What parse_response hands out, build_request takes back unchanged."""
    answer = parse_response(
        response(
            candidate(
                [
                    {
                        "functionCall": {"name": "get_time", "args": {}},
                        "thoughtSignature": "U0lH",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                ]
            )
        )
    )
    message = answer.choices[0]["message"]
    request = build_request(
        body(
            USER_HI,
            message,
            {"role": "tool", "tool_call_id": "call_0", "content": "noon"},
            {"role": "tool", "tool_call_id": "call_1", "content": "5C"},
            tools=[TOOL, TIME_TOOL],
        ),
        "gemini-x",
    )
    model_turn = request["contents"][1]
    assert model_turn["parts"] == [
        {
            "functionCall": {"id": "call_0", "name": "get_time", "args": {}},
            "thoughtSignature": "U0lH",
        },
        {
            "functionCall": {
                "id": "call_1",
                "name": "get_weather",
                "args": {"city": "Oslo"},
            }
        },
    ]
    assert [p["functionResponse"]["name"] for p in request["contents"][2]["parts"]] == [
        "get_time",
        "get_weather",
    ]
    assert_valid_request(request)


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------


def chunk(*candidates: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    data = response(*candidates, usage=usage)
    data["responseId"] = "r1"
    return data


def frag(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


ROLE = {"role": "assistant", "content": ""}

STREAM_CASES: list[tuple[str, list[dict[str, Any]], list[list[dict[str, Any]]], Usage]] = [
    (
        "text over three chunks, usage on every chunk, latest wins",
        [
            chunk(
                candidate([{"text": "Hel"}], None),
                usage={"promptTokenCount": 4, "totalTokenCount": 4},
            ),
            chunk(candidate([{"text": "lo"}], None)),
            chunk(
                candidate([{"text": "!"}], "STOP"),
                usage={
                    "promptTokenCount": 4,
                    "candidatesTokenCount": 3,
                    "thoughtsTokenCount": 2,
                    "totalTokenCount": 9,
                },
            ),
        ],
        [
            [frag(0, ROLE), frag(0, {"content": "Hel"})],
            [frag(0, {"content": "lo"})],
            [frag(0, {"content": "!"}), frag(0, {}, "stop")],
        ],
        Usage(4, 5, None, None, 2),
    ),
    (
        "two parallel functionCalls in one chunk",
        [
            chunk(
                candidate(
                    [
                        {
                            "functionCall": {
                                "name": "get_weather",
                                "args": {"city": "Paris"},
                            },
                            "thoughtSignature": "U0lH",
                        },
                        {"functionCall": {"name": "get_time", "args": {}}},
                    ],
                    "STOP",
                ),
                usage={
                    "promptTokenCount": 8,
                    "candidatesTokenCount": 6,
                    "totalTokenCount": 14,
                },
            )
        ],
        [
            [
                frag(0, ROLE),
                frag(
                    0,
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                **out_call("call_0", "get_weather", '{"city": "Paris"}', "U0lH"),
                            }
                        ]
                    },
                ),
                frag(
                    0,
                    {"tool_calls": [{"index": 1, **out_call("call_1", "get_time", "{}")}]},
                ),
                frag(0, {}, "tool_calls"),
            ]
        ],
        Usage(8, 6),
    ),
    (
        "text, then a call in a later chunk, then a bare finish chunk",
        [
            chunk(candidate([{"text": "Let me check."}], None)),
            chunk(candidate([{"functionCall": {"id": "fc-1", "name": "get_time"}}], None)),
            chunk(candidate([], "STOP")),
        ],
        [
            [frag(0, ROLE), frag(0, {"content": "Let me check."})],
            [
                frag(
                    0,
                    {"tool_calls": [{"index": 0, **out_call("fc-1", "get_time", "{}")}]},
                )
            ],
            [frag(0, {}, "tool_calls")],
        ],
        Usage(),
    ),
    (
        "thought parts and empty signature-only text are not streamed",
        [
            chunk(candidate([{"text": "hmm", "thought": True}], None)),
            chunk(candidate([{"text": "Yes."}, {"text": "", "thoughtSignature": "U0lH"}], "STOP")),
        ],
        [
            [frag(0, ROLE)],
            [frag(0, {"content": "Yes."}), frag(0, {}, "stop")],
        ],
        Usage(),
    ),
    (
        "two candidates interleaved",
        [
            chunk(
                candidate([{"text": "A"}], None),
                candidate([{"text": "B"}], None, index=1),
            ),
            chunk(
                candidate([{"text": "a"}], "STOP"),
                candidate([{"text": "b"}], "MAX_TOKENS", index=1),
            ),
        ],
        [
            [
                frag(0, ROLE),
                frag(0, {"content": "A"}),
                frag(1, ROLE),
                frag(1, {"content": "B"}),
            ],
            [
                frag(0, {"content": "a"}),
                frag(0, {}, "stop"),
                frag(1, {"content": "b"}),
                frag(1, {}, "length"),
            ],
        ],
        Usage(),
    ),
    (
        "safety stop mid-stream",
        [chunk(candidate([{"text": "Well"}], None)), chunk(candidate(None, "SAFETY"))],
        [
            [frag(0, ROLE), frag(0, {"content": "Well"})],
            [frag(0, {}, "content_filter")],
        ],
        Usage(),
    ),
    (
        "blocked prompt: promptFeedback only",
        [
            {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
            }
        ],
        [[frag(0, ROLE), frag(0, {}, "content_filter")]],
        Usage(3, 0),
    ),
    (
        "usage-only trailing chunk",
        [
            chunk(candidate([{"text": "ok"}], "STOP")),
            {"usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}},
        ],
        [[frag(0, ROLE), frag(0, {"content": "ok"}), frag(0, {}, "stop")], []],
        Usage(2, 1),
    ),
]


@pytest.mark.parametrize(
    ("chunks", "expected", "usage"),
    [c[1:] for c in STREAM_CASES],
    ids=[c[0] for c in STREAM_CASES],
)
def test_stream(chunks: list[dict[str, Any]], expected: list[list[dict[str, Any]]], usage: Usage) -> None:
    translator = GeminiStreamTranslator()
    assert [translator.feed(None, c) for c in chunks] == expected
    assert translator.usage == usage


def test_stream_arguments_are_valid_json() -> None:
    translator = GeminiStreamTranslator()
    fragments = translator.feed(
        None,
        chunk(candidate([{"functionCall": {"name": "f", "args": {"a": [1, {"b": None}]}}}])),
    )
    arguments = fragments[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"a": [1, {"b": None}]}


def test_stream_logprobs_ride_on_the_content_fragment() -> None:
    translator = GeminiStreamTranslator()
    fragments = translator.feed(
        None,
        chunk(
            candidate(
                [{"text": "Hi"}],
                None,
                logprobsResult={
                    "chosenCandidates": [{"token": "Hi", "logProbability": -0.5}],
                    "topCandidates": [],
                },
            )
        ),
    )
    assert fragments[1]["choices"][0] == {
        "index": 0,
        "delta": {"content": "Hi"},
        "finish_reason": None,
        "logprobs": {
            "content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}],
            "refusal": None,
        },
    }


STREAM_ERROR_CASES: list[tuple[str, Any, str, int | None, str | None]] = [
    (
        "google error object",
        {
            "error": {
                "code": 429,
                "message": "Quota exceeded.",
                "status": "RESOURCE_EXHAUSTED",
            }
        },
        "Quota exceeded. (RESOURCE_EXHAUSTED)",
        429,
        "RESOURCE_EXHAUSTED",
    ),
    ("error as a string", {"error": "boom"}, "Gemini stream error: 'boom'", None, None),
    (
        "error without message",
        {"error": {"code": 500}},
        "Gemini stream error.",
        500,
        None,
    ),
    (
        "chunk not an object",
        ["x"],
        "Gemini stream sent a chunk that is not a JSON object.",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("data", "message", "code", "status"),
    [c[1:] for c in STREAM_ERROR_CASES],
    ids=[c[0] for c in STREAM_ERROR_CASES],
)
def test_stream_error(data: Any, message: str, code: int | None, status: str | None) -> None:
    translator = GeminiStreamTranslator()
    with pytest.raises(StreamError) as info:
        translator.feed(None, data)
    assert (info.value.message, info.value.code, info.value.status) == (
        message,
        code,
        status,
    )


# --------------------------------------------------------------------------
# error_message
# --------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, int, Any, str]] = [
    (
        "google body",
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}],
            }
        },
        "API key not valid. (INVALID_ARGUMENT)",
    ),
    (
        "wrapped in a list",
        503,
        [{"error": {"code": 503, "message": "Overloaded.", "status": "UNAVAILABLE"}}],
        "Overloaded. (UNAVAILABLE)",
    ),
    ("message without status", 500, {"error": {"message": "Internal."}}, "Internal."),
    ("error as string", 502, {"error": "bad gateway"}, "bad gateway"),
    ("top-level message", 404, {"message": "Not Found"}, "Not Found"),
    ("plain text", 502, "  <html>Bad Gateway</html> ", "<html>Bad Gateway</html>"),
    ("long text is cut", 500, "x" * 900, "x" * 500),
    ("null", 500, None, "Gemini API returned HTTP 500."),
    ("empty list", 429, [], "Gemini API returned HTTP 429."),
    ("list of garbage", 429, [1, 2], "Gemini API returned HTTP 429."),
    ("number", 418, 12, "Gemini API returned HTTP 418."),
    (
        "empty error message",
        400,
        {"error": {"message": " "}},
        "Gemini API returned HTTP 400.",
    ),
]


@pytest.mark.parametrize(
    ("status", "data", "expected"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_error_message(status: int, data: Any, expected: str) -> None:
    assert error_message(status, data) == expected
