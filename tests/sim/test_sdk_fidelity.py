"""The official SDKs pointed straight at a real `ccapi sim` process.

If openai, anthropic and google-genai parse what the simulator sends, then its
wire formats are the real ones (as far as the SDKs can tell); the assertions
check values (text, usage, tool names/arguments, error classes), not merely the
absence of exceptions. The second half drives the fault grammar over the wire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.support import ServerProcess, run_ccapi

pytestmark = pytest.mark.timeout(60)

# The documented content rules: 12 words from the fixed list, 1 word = 1 token;
# prompt tokens = words + 4 per message.
DEFAULT_TEXT = "the quick brown fox jumps over a lazy dog while seven silver"
HELLO: Any = [{"role": "user", "content": "hello there simulator"}]  # 3 words + 4 = 7 prompt tokens
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "detail": {"type": "object", "properties": {"hourly": {"type": "boolean"}}, "required": ["hourly"]},
    },
    "required": ["city", "unit", "detail"],
}
WEATHER_ARGS = {"city": "sample", "unit": "celsius", "detail": {"hourly": True}}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]


class City(pydantic.BaseModel):
    name: str
    population: int
    tags: list[str]
    capital: bool


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with run_ccapi(["sim"], tmp_path=tmp_path_factory.mktemp("sim"), name="sim") as server:
        yield server


@pytest.fixture(scope="module")
def oai(sim: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-sim", base_url=f"{sim.url}/v1", max_retries=0)


@pytest.fixture(scope="module")
def claude(sim: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-sim", base_url=sim.url, max_retries=0)


@pytest.fixture(scope="module")
def gem(sim: ServerProcess) -> genai.Client:
    return genai.Client(api_key="sim-key", http_options=genai_types.HttpOptions(base_url=sim.url))


def first_text(content: Any) -> str:
    """The text of the first content block, which must be a text block."""
    block = content[0]
    assert block.type == "text"
    return str(block.text)


def names(calls: Any) -> list[str]:
    """Function names of OpenAI tool calls."""
    return [c.function.name for c in calls or []]


def stats(sim: ServerProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.url}/_sim/stats").json())


def get_weather(city: str, unit: str) -> str:
    """Weather for a city (a function the genai SDK turns into a declaration)."""
    return f"sunny in {city} ({unit})"


# --- OpenAI ---------------------------------------------------------------


def test_openai_plain(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == DEFAULT_TEXT
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (7, 12, 19)
    assert r.usage.prompt_tokens_details is not None and r.usage.prompt_tokens_details.cached_tokens == 0


def test_openai_stream_with_usage_matches_non_streaming(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # include_usage: every chunk but the last has usage null; the last has no choices.
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 12)


def test_openai_stream_without_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_openai_async_client(sim: ServerProcess) -> None:
    client = openai.AsyncOpenAI(api_key="sk-sim", base_url=f"{sim.url}/v1", max_retries=0)
    async with client:
        r = await client.chat.completions.create(model="gpt-4.1", messages=HELLO)
        assert r.choices[0].message.content == DEFAULT_TEXT
        stream = await client.chat.completions.create(
            model="gpt-4.1",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in parts if c.choices) == DEFAULT_TEXT
        assert parts[-1].usage is not None and parts[-1].usage.total_tokens == 19


def test_openai_tool_call_then_tool_result(oai: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny and mild"})
    second = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == DEFAULT_TEXT
    assert second.choices[0].message.tool_calls is None


def test_openai_streamed_tool_call_is_assembled_by_the_sdk(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=OPENAI_TOOLS
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == WEATHER_ARGS
    assert final.choices[0].finish_reason == "tool_calls"
    # Arguments arrive as several fragments after a first delta with empty arguments.
    assert sum(1 for e in events if e.type == "tool_calls.function.arguments.delta") > 3


def test_openai_forced_and_parallel_tool_choice(oai: openai.OpenAI) -> None:
    forced = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "time?"}],
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = forced.choices[0].message.tool_calls
    assert names(calls) == ["get_time"]
    assert calls is not None and calls[0].model_dump()["function"]["arguments"] == "{}"

    parallel = oai.chat.completions.create(
        model="gpt-4o-mini@parallel=1", messages=[{"role": "user", "content": "both?"}], tools=OPENAI_TOOLS
    )
    calls = parallel.choices[0].message.tool_calls
    assert calls is not None and names(calls) == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2

    serial = oai.chat.completions.create(
        model="gpt-4o-mini@parallel=1",
        messages=[{"role": "user", "content": "both?"}],
        tools=OPENAI_TOOLS,
        parallel_tool_calls=False,
    )
    assert names(serial.choices[0].message.tool_calls) == ["get_weather"]

    none = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], tools=OPENAI_TOOLS, tool_choice="none"
    )
    assert none.choices[0].message.content == DEFAULT_TEXT


def test_openai_max_tokens_caps_with_length(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_completion_tokens=3)
    assert r.choices[0].message.content == "the quick brown"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    legacy = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=2)
    assert legacy.choices[0].message.content == "the quick"


def test_openai_n_choices_and_tokens_fault(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini@tokens=4", messages=HELLO, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content == "the quick brown fox"
    assert r.choices[1].message.content == "over a lazy dog"  # choice i starts at word 5*i
    assert r.usage is not None and r.usage.completion_tokens == 8


def test_openai_structured_outputs(oai: openai.OpenAI) -> None:
    parsed = oai.chat.completions.parse(model="gpt-4o-mini", messages=HELLO, response_format=City)
    assert parsed.choices[0].message.parsed == City(name="sample", population=1, tags=["sample"], capital=True)
    obj = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        response_format={"type": "json_object"},
    )
    assert json.loads(obj.choices[0].message.content or "") == {"result": "sample"}


def test_openai_error_statuses_raise_the_sdk_classes(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as rate:
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            extra_headers={"x-sim-fault": "status=429,retry_after=7"},
        )
    assert rate.value.response.headers["retry-after"] == "7"
    assert rate.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o-mini@status=503", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="gpt-4o-mini@status=404", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert bad.value.param == "messages"


def test_openai_in_stream_error_raises_api_error(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini@stream_error_after=3",
        messages=HELLO,
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="server had an error"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "the quick"


def test_openai_reset_and_cut_raise_connection_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-4o-mini@reset=1", messages=HELLO)
    stream = oai.chat.completions.create(model="gpt-4o-mini@cut_after=3", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


def test_openai_models_list(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o-mini" in ids


# --- Anthropic ------------------------------------------------------------


def test_anthropic_plain(claude: anthropic.Anthropic) -> None:
    m = claude.messages.create(model="claude-haiku-4-5", max_tokens=256, system="be brief", messages=HELLO)
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-haiku-4-5"
    assert m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]
    assert first_text(m.content) == DEFAULT_TEXT
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    # system prompt: 2 words + 4, message: 3 words + 4
    assert (m.usage.input_tokens, m.usage.output_tokens) == (13, 12)
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0
    assert m.usage.cache_creation is not None and m.usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_anthropic_stream_final_message_equals_non_streaming(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=HELLO)
    event_types = []
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=HELLO) as stream:
        for event in stream:
            event_types.append(event.type)
        final = stream.get_final_message()
    assert first_text(final.content) == first_text(plain.content) == DEFAULT_TEXT
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (plain.usage.input_tokens, 12)
    assert event_types[0] == "message_start" and event_types[-1] == "message_stop"
    assert "content_block_start" in event_types and "content_block_stop" in event_types


def test_anthropic_raw_stream_event_sequence(sim: ServerProcess) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-haiku-4-5@tokens=2", "max_tokens": 50, "stream": True, "messages": HELLO}
    text = httpx.post(f"{sim.url}/v1/messages", json=body, headers=headers).text
    names = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_tool_use_and_tool_result(claude: anthropic.Anthropic) -> None:
    tools: Any = [
        {"name": "get_weather", "description": "weather", "input_schema": WEATHER_SCHEMA},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    ]
    m = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=256,
        tools=tools,
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert m.stop_reason == "tool_use"
    assert [b.type for b in m.content] == ["tool_use"]
    block = m.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather" and block.id.startswith("toolu_")
    assert block.input == WEATHER_ARGS

    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=256, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "tool_use" and streamed.content[0].input == WEATHER_ARGS
    assert streamed.usage.output_tokens == m.usage.output_tokens

    history: Any = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]},
    ]
    follow = claude.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=tools, messages=history)
    assert follow.stop_reason == "end_turn"
    assert follow.content[0].type == "text" and follow.content[0].text == DEFAULT_TEXT

    forced = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=256,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "x"}],
    )
    assert forced.content[0].type == "tool_use" and forced.content[0].name == "get_time"
    assert forced.content[0].input == {"tz": "sample"}  # no required list -> all properties


def test_anthropic_max_tokens_and_structured_output(claude: anthropic.Anthropic) -> None:
    capped = claude.messages.create(model="claude-haiku-4-5", max_tokens=2, messages=HELLO)
    assert capped.stop_reason == "max_tokens"
    assert first_text(capped.content) == "the quick"
    parsed = claude.messages.parse(model="claude-haiku-4-5", max_tokens=500, messages=HELLO, output_format=City)
    assert parsed.parsed_output == City(name="sample", population=1, tags=["sample"], capital=True)


def test_anthropic_cached_tokens_fault_reports_cache_reads(claude: anthropic.Anthropic) -> None:
    m = claude.messages.create(model="claude-haiku-4-5@cached_tokens=5", max_tokens=64, messages=HELLO)
    # Anthropic reports cache reads apart from input_tokens (7 prompt tokens in all).
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens) == (2, 5)


def test_anthropic_errors(claude: anthropic.Anthropic, sim: ServerProcess) -> None:
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model="claude-haiku-4-5@status=529", max_tokens=64, messages=HELLO)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": overloaded.value.response.json()["request_id"],
    }
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=HELLO,
            extra_headers={"x-sim-fault": "status=429"},
        )
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        with claude.messages.stream(
            model="claude-haiku-4-5@stream_error_after=4",
            max_tokens=64,
            messages=HELLO,
        ) as stream:
            for _ in stream:
                pass
    no_max_tokens = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": "claude-haiku-4-5", "messages": HELLO},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    missing_version = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HELLO},
        headers={"x-api-key": "k"},
    )
    assert missing_version.status_code == 400
    assert missing_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


async def test_anthropic_async_stream(sim: ServerProcess) -> None:
    client = anthropic.AsyncAnthropic(api_key="k", base_url=sim.url, max_retries=0)
    async with client:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HELLO) as stream:
            texts = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(texts) == DEFAULT_TEXT
    assert final.usage.output_tokens == 12


# --- Gemini ---------------------------------------------------------------


def test_gemini_generate_content(gem: genai.Client) -> None:
    r = gem.models.generate_content(model="gemini-2.5-flash", contents="hello there simulator")
    assert r.text == DEFAULT_TEXT
    assert r.candidates is not None and r.candidates[0].finish_reason == genai_types.FinishReason.STOP
    usage = r.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (7, 12, 19)
    assert r.model_version == "gemini-2.5-flash"


def test_gemini_stream_matches_non_streaming(gem: genai.Client) -> None:
    chunks = list(gem.models.generate_content_stream(model="gemini-2.5-flash", contents="hello there simulator"))
    assert len(chunks) == 12
    assert "".join(c.text or "" for c in chunks) == DEFAULT_TEXT
    last = chunks[-1]
    assert last.candidates is not None and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (7, 12)
    assert len({c.response_id for c in chunks}) == 1


def test_gemini_function_calling(gem: genai.Client) -> None:
    config = genai_types.GenerateContentConfig(
        tools=[get_weather],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    r = gem.models.generate_content(model="gemini-2.5-flash", contents="weather in Rome?", config=config)
    assert r.function_calls is not None and len(r.function_calls) == 1
    call = r.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == {"city": "sample", "unit": "sample"}
    assert r.candidates is not None and r.candidates[0].finish_reason == genai_types.FinishReason.STOP

    streamed = [c for c in gem.models.generate_content_stream(model="gemini-2.5-flash", contents="w?", config=config)]
    assert [fc.name for c in streamed for fc in (c.function_calls or [])] == ["get_weather"]

    history = [
        genai_types.Content(role="user", parts=[genai_types.Part(text="weather in Rome?")]),
        r.candidates[0].content,
        genai_types.Content(
            role="user",
            parts=[genai_types.Part.from_function_response(name="get_weather", response={"result": "sunny"})],
        ),
    ]
    follow = gem.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
    assert follow.function_calls is None
    assert follow.text == DEFAULT_TEXT


def test_gemini_json_output_and_limits(gem: genai.Client) -> None:
    r = gem.models.generate_content(
        model="gemini-2.5-flash",
        contents="a city",
        config=genai_types.GenerateContentConfig(response_mime_type="application/json", response_schema=City),
    )
    assert r.parsed == City(name="sample", population=1, tags=["sample"], capital=True)
    capped = gem.models.generate_content(
        model="gemini-2.5-flash",
        contents="x",
        config=genai_types.GenerateContentConfig(max_output_tokens=3, candidate_count=2),
    )
    assert capped.candidates is not None and len(capped.candidates) == 2
    assert capped.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    assert capped.text == "the quick brown"


def test_gemini_errors(gem: genai.Client, sim: ServerProcess) -> None:
    with pytest.raises(genai_errors.ClientError) as rate:
        gem.models.generate_content(model="gemini-2.5-flash@status=429,retry_after=3", contents="x")
    assert (rate.value.code, rate.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(genai_errors.ServerError) as unavailable:
        gem.models.generate_content(model="gemini-2.5-flash@status=503", contents="x")
    assert unavailable.value.status == "UNAVAILABLE"
    received = []
    with pytest.raises(genai_errors.ServerError):
        for chunk in gem.models.generate_content_stream(model="gemini-2.5-flash@stream_error_after=2", contents="x"):
            received.append(chunk.text)
    assert received == ["the", " quick"]
    no_key = httpx.post(
        f"{sim.url}/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": [{"parts": [{"text": "x"}]}]}
    )
    assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_gemini_async_stream(gem: genai.Client) -> None:
    stream = await gem.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="hello there simulator")
    texts = [c.text async for c in stream]
    assert "".join(t or "" for t in texts) == DEFAULT_TEXT


def test_gemini_raw_framings(sim: ServerProcess) -> None:
    url = f"{sim.url}/v1beta/models/gemini-2.5-flash@tokens=2:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    sse = httpx.post(url, params={"alt": "sse", "key": "k"}, json=body)
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = sse.text.split("\r\n\r\n")
    assert events[-1] == "" and all(e.startswith("data: ") for e in events[:-1])
    assert [json.loads(e[6:])["candidates"][0]["content"]["parts"][0]["text"] for e in events[:-1]] == ["the", " quick"]
    array = httpx.post(url, params={"key": "k"}, json=body)
    assert array.headers["content-type"].startswith("application/json")
    objects = array.json()
    assert isinstance(objects, list) and len(objects) == 2
    assert objects[-1]["usageMetadata"]["candidatesTokenCount"] == 2
    models = httpx.get(f"{sim.url}/v1beta/models", headers={"x-goog-api-key": "k"}).json()
    assert "models/gemini-2.5-flash" in [m["name"] for m in models["models"]]


# --- faults over the wire -----------------------------------------------------


def test_unknown_fault_key_is_a_400_in_each_wire_format(sim: ServerProcess) -> None:
    oai = httpx.post(
        f"{sim.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HELLO},
        headers={"authorization": "Bearer k", "x-sim-fault": "bogus=1"},
    )
    assert oai.status_code == 400
    assert "'bogus'" in oai.json()["error"]["message"] and oai.json()["error"]["param"] == "bogus"
    ant = httpx.post(
        f"{sim.url}/_fault/nope=2/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HELLO},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert ant.status_code == 400 and "'nope'" in ant.json()["error"]["message"]
    gem = httpx.post(f"{sim.url}/v1beta/models/gemini-2.5-flash@zzz=1:generateContent?key=k", json={"contents": []})
    assert gem.status_code == 400 and gem.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_missing_auth_is_rejected_per_provider(sim: ServerProcess) -> None:
    oai = httpx.post(f"{sim.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert oai.status_code == 401 and oai.json()["error"]["type"] == "invalid_request_error"
    ant = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HELLO},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert ant.status_code == 401 and ant.json()["error"]["type"] == "authentication_error"


def test_fault_prefix_in_base_url_and_precedence(sim: ServerProcess) -> None:
    prefixed = openai.OpenAI(api_key="k", base_url=f"{sim.url}/_fault/status=503/v1", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        prefixed.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # header beats path, model suffix beats header
    with pytest.raises(openai.RateLimitError):
        prefixed.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            extra_headers={"x-sim-fault": "status=429"},
        )
    with pytest.raises(openai.NotFoundError):
        prefixed.chat.completions.create(
            model="gpt-4o-mini@status=404",
            messages=HELLO,
            extra_headers={"x-sim-fault": "status=429"},
        )
    healthy = openai.OpenAI(api_key="k", base_url=f"{sim.url}/_fault/tokens=2/v1", max_retries=0)
    r = healthy.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert r.choices[0].message.content == "the quick"
    encoded = httpx.post(
        f"{sim.url}/_fault/content_type=text%2Fplain/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HELLO},
        headers={"authorization": "Bearer k"},
    )
    assert encoded.headers["content-type"] == "text/plain"
    assert encoded.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT


def test_fail_times_then_success_and_stats(sim: ServerProcess, oai: openai.OpenAI) -> None:
    httpx.post(f"{sim.url}/_sim/reset")
    flaky = "gpt-4o-mini@status=500,fail_times=2,id=test_fail_times"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model=flaky, messages=HELLO)
    assert oai.chat.completions.create(model=flaky, messages=HELLO).choices[0].message.content == DEFAULT_TEXT
    # A different id has its own counter.
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o-mini@status=500,fail_times=2,id=other", messages=HELLO)
    prefixed = httpx.post(
        f"{sim.url}/_fault/tokens=1/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HELLO},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert prefixed.status_code == 200
    counted = stats(sim)
    assert counted["requests"] == 5
    assert counted["by_path"] == {"/v1/chat/completions": 4, "/v1/messages": 1}
    assert counted["fail_counters"]["fail_times=2,id=test_fail_times,status=500"] == 3
    reset = httpx.post(f"{sim.url}/_sim/reset").json()
    assert reset == {"requests": 0, "by_path": {}, "fail_counters": {}, "bfl_submissions": {}}


def test_latency_and_chunk_delay(sim: ServerProcess, oai: openai.OpenAI) -> None:
    started = time.monotonic()
    oai.chat.completions.create(model="gpt-4o-mini@latency_ms=200", messages=HELLO)
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    stream = oai.chat.completions.create(
        model="gpt-4o-mini@tokens=3,chunk_delay_ms=50",
        messages=HELLO,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "the quick brown"
    # role + 3 words + finish + [DONE] = 6 events, 5 gaps
    assert time.monotonic() - started >= 0.25


def test_malformed_and_non_streaming_cut(sim: ServerProcess) -> None:
    headers = {"authorization": "Bearer k"}
    body = {"model": "gpt-4o-mini@malformed=1", "messages": HELLO}
    broken = httpx.post(f"{sim.url}/v1/chat/completions", json=body, headers=headers)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)
    streamed = httpx.post(
        f"{sim.url}/v1/chat/completions",
        json={**body, "stream": True, "model": "gpt-4o-mini@malformed=1,tokens=1"},
        headers=headers,
    )
    data_lines = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert data_lines[-1] == "data: [DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data_lines[1][6:])
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            f"{sim.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini@cut_after=10", "messages": HELLO},
            headers=headers,
        )


@pytest.fixture(scope="module")
def configured_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("configured-sim")
    config = tmp / "sim.yaml"
    config.write_text("fault: tokens=2,latency_ms=1\n")
    with run_ccapi(["sim", "--config", str(config)], tmp_path=tmp, name="configured-sim") as server:
        yield server


def test_config_default_fault_has_lowest_precedence(configured_sim: ServerProcess) -> None:
    client = openai.OpenAI(api_key="k", base_url=f"{configured_sim.url}/v1", max_retries=0)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert r.choices[0].message.content == "the quick"
    r = client.chat.completions.create(model="gpt-4o-mini@tokens=3", messages=HELLO)
    assert r.choices[0].message.content == "the quick brown"
    assert "ccapi sim listening on http://127.0.0.1:" in configured_sim.output()
