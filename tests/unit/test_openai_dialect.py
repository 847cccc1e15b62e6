import pytest

from ccapi.catalog.schema import ProviderQuirks
from ccapi.core.errors import InvalidRequestError
from ccapi.providers.base import UpstreamCall
from ccapi.providers.openai_compat import OpenAIDialect, OpenAIStreamTranslator

BODY = {"model": "openai/gpt-4o-mini", "models": ["x/y"], "messages": [{"role": "user", "content": "hi"}]}


def call(**body: object) -> UpstreamCall:
    return UpstreamCall(body={**BODY, **body}, upstream_model="gpt-4o-mini", timeout=5, idle_timeout=5)


def test_our_fields_are_replaced_and_unknown_fields_pass_through() -> None:
    out = OpenAIDialect(ProviderQuirks()).body(call(vendor_knob=3), stream=False)
    assert out == {"model": "gpt-4o-mini", "messages": BODY["messages"], "vendor_knob": 3}


@pytest.mark.parametrize(
    ("quirks", "body", "expected"),
    [
        (ProviderQuirks(), {"max_tokens": 5}, {"max_tokens": 5}),
        (ProviderQuirks(), {"max_completion_tokens": 5}, {"max_tokens": 5}),
        (ProviderQuirks(max_tokens_field="max_completion_tokens"), {"max_tokens": 5}, {"max_completion_tokens": 5}),
        (ProviderQuirks(drop_params=("seed", "user")), {"seed": 1, "user": "u"}, {}),
        (ProviderQuirks(rename_params={"seed": "random_seed"}), {"seed": 1}, {"random_seed": 1}),
    ],
)
def test_quirks_are_applied(quirks: ProviderQuirks, body: dict[str, object], expected: dict[str, object]) -> None:
    out = OpenAIDialect(quirks).body(call(**body), stream=False)
    assert {k: v for k, v in out.items() if k not in ("model", "messages")} == expected


def test_streams_always_ask_for_usage_unless_the_provider_refuses_it() -> None:
    out = OpenAIDialect(ProviderQuirks()).body(call(stream=True), stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    out = OpenAIDialect(ProviderQuirks(no_stream_options=True)).body(
        call(stream=True, stream_options={"include_usage": True}), stream=True
    )
    assert "stream_options" not in out


def test_single_choice_providers_refuse_n() -> None:
    with pytest.raises(InvalidRequestError) as err:
        OpenAIDialect(ProviderQuirks(single_choice=True)).body(call(n=2), stream=False)
    assert err.value.param == "n"


def test_stream_translator_takes_the_usage_out() -> None:
    translator = OpenAIStreamTranslator()
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    assert translator.feed(None, chunk) == [{"choices": chunk["choices"]}]
    usage_only = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                       "prompt_tokens_details": {"cached_tokens": 2}}}  # fmt: skip
    assert translator.feed(None, usage_only) == []
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (3, 1)
    assert translator.usage.cached_tokens == 2
