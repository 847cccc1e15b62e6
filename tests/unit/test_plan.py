import pytest

from ccapi.catalog.catalog import Catalog
from ccapi.core.errors import InvalidRequestError, NotFoundError, ProviderUnavailableError
from ccapi.routing.plan import Needs, plan_candidates, requested_names, resolve_all


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(aliases={"fast": "groq/openai/gpt-oss-20b"})


ALL = {
    "openai": True, "anthropic": True, "google": True, "mistral": True, "groq": True,
    "openrouter": True, "elevenlabs": True,
}  # fmt: skip
NO_NEEDS = Needs()
HOW = {name: f"set {name.upper()}_API_KEY" for name in ALL}


def plan(catalog: Catalog, names: list[str], needs: Needs = NO_NEEDS, configured=ALL, open_=frozenset()):  # type: ignore[no-untyped-def]
    resolved = resolve_all(catalog, requested_names(names[0] if names else None, names[1:]))
    return plan_candidates(resolved, needs, configured, HOW, open_)


def test_model_is_tried_before_models(catalog: Catalog) -> None:
    assert requested_names("a/b", ["c/d", "e/f"]) == [("a/b", "model"), ("c/d", "models[0]"), ("e/f", "models[1]")]
    ids = [m.id for m in plan(catalog, ["openai/gpt-4o-mini", "mistral/mistral-small-2506"]).candidates]
    assert ids == ["openai/gpt-4o-mini", "mistral/mistral-small-2506"]


def test_a_model_listed_twice_is_tried_twice(catalog: Catalog) -> None:
    ids = [m.id for m in plan(catalog, ["openai/gpt-4o-mini", "openai/gpt-4o-mini"]).candidates]
    assert ids == ["openai/gpt-4o-mini", "openai/gpt-4o-mini"]


def test_bare_name_and_alias_resolve_through_the_catalog(catalog: Catalog) -> None:
    assert catalog.resolve("gpt-4o-mini") == ["openai/gpt-4o-mini"]
    assert catalog.resolve("fast") == ["groq/openai/gpt-oss-20b"]


@pytest.mark.parametrize(
    ("name", "param", "code"),
    [
        ("openai/gpt-does-not-exist", "model", "model_not_found"),
        ("nosuch/model", "model", "provider_not_found"),
        ("no-such-bare-model", "model", "model_not_found"),
    ],
)
def test_unknown_names_are_404_naming_the_param(catalog: Catalog, name: str, param: str, code: str) -> None:
    with pytest.raises(NotFoundError) as err:
        catalog.resolve(name, param)
    assert (err.value.code, err.value.param, err.value.status) == (code, param, 404)


def test_unknown_entry_in_models_names_its_index(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError) as err:
        resolve_all(catalog, requested_names("openai/gpt-4o-mini", ["openai/gpt-4o-mini", "x/y"]))
    assert err.value.param == "models[1]"


def test_unconfigured_providers_are_skipped(catalog: Catalog) -> None:
    configured = {**ALL, "openai": False}
    result = plan(catalog, ["openai/gpt-4o-mini", "mistral/mistral-small-2506"], configured=configured)
    assert [m.id for m in result.candidates] == ["mistral/mistral-small-2506"]
    assert result.skipped == [("openai/gpt-4o-mini", "provider openai is not configured")]


def test_all_unconfigured_is_503_naming_the_variable(catalog: Catalog) -> None:
    with pytest.raises(ProviderUnavailableError) as err:
        plan(catalog, ["openai/gpt-4o-mini"], configured={})
    assert err.value.status == 503
    assert "set OPENAI_API_KEY" in err.value.message


def test_open_breaker_skips_and_all_open_is_503(catalog: Catalog) -> None:
    result = plan(catalog, ["openai/gpt-4o-mini", "mistral/mistral-small-2506"], open_=frozenset({"openai"}))
    assert [m.id for m in result.candidates] == ["mistral/mistral-small-2506"]
    with pytest.raises(ProviderUnavailableError) as err:
        plan(catalog, ["openai/gpt-4o-mini"], open_=frozenset({"openai"}))
    assert "circuit open" in err.value.message


def test_a_parameter_no_candidate_can_take_is_400(catalog: Catalog) -> None:
    tts = "elevenlabs/eleven_turbo_v2"
    with pytest.raises(InvalidRequestError) as err:
        plan(catalog, [tts])
    assert err.value.param == "model"
    sonar_tools = Needs(tools=True)
    chat_no_tools = [m.id for m in catalog.models.values() if m.entry.type == "chat" and not m.entry.function_calling]
    with pytest.raises(InvalidRequestError) as err:
        plan(catalog, chat_no_tools[:1], sonar_tools, configured={n: True for n in catalog.providers})
    assert err.value.param == "tools"


def test_candidates_that_cannot_take_the_request_are_skipped(catalog: Catalog) -> None:
    result = plan(catalog, ["elevenlabs/eleven_turbo_v2", "openai/gpt-4o-mini"])
    assert [m.id for m in result.candidates] == ["openai/gpt-4o-mini"]


def test_needs_are_read_from_the_body() -> None:
    body = {
        "stream": True,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        ],
    }
    assert Needs.of(body) == Needs(stream=True, tools=True, images=True, system=True)
    assert Needs.of({"messages": [{"role": "user", "content": "hi"}]}) == Needs()
