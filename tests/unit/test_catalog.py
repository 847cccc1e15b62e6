from pathlib import Path

import pytest

from ccapi.catalog.catalog import Catalog, CatalogError

GOOD_EXTRA = """
provider:
  name: acme
  display_name: Acme AI
  is_fundamental: true
  website: https://acme.test
  api: openai
  base_url: http://127.0.0.1:9999/v1
  key_env: ACME_API_KEY
models:
  - id: acme-1
    display_name: Acme 1
    type: chat
    input_modalities: [text]
    output_modalities: [text]
    context_length: 8192
    max_output_tokens: 1024
    streaming: true
    pricing: {input_cost_per_million: 1, output_cost_per_million: 2, source: https://acme.test/p, checked: 2026-11-01}
"""


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load()


def test_shipped_catalog_has_every_promised_provider(shipped: Catalog) -> None:
    chat = [m for m in shipped.models.values() if m.entry.type == "chat"]
    assert len(chat) >= 80
    providers = {m.provider.name for m in chat}
    assert len(providers) >= 12
    assert {"image", "tts"} <= {m.entry.type for m in shipped.models.values()}


def test_every_price_names_its_source_and_date(shipped: Catalog) -> None:
    for info in shipped.models.values():
        assert info.entry.pricing.source.startswith("http"), info.id
        assert info.entry.pricing.checked.year >= 2026, info.id


def test_is_fundamental_marks_labs_not_hosts(shipped: Catalog) -> None:
    labs = {"openai", "anthropic", "google", "mistral", "xai", "deepseek"}
    hosts = {"groq", "together", "fireworks", "openrouter", "cerebras", "ollama", "vllm", "perplexity"}
    assert all(shipped.providers[p].is_fundamental for p in labs)
    assert not any(shipped.providers[p].is_fundamental for p in hosts - {"perplexity"})


def test_an_operator_file_extends_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "acme.yaml"
    extra.write_text(GOOD_EXTRA)
    override = tmp_path / "openai.yaml"
    override.write_text(
        Path(__file__).parents[2].joinpath("ccapi/catalog/data/openai.yaml").read_text()
        .replace("input_cost_per_million: 0.15\n", "input_cost_per_million: 0.2\n", 1)
    )  # fmt: skip
    catalog = Catalog.load([extra, override])
    assert catalog.models["acme/acme-1"].summary["ccapi"]["pricing"]["input_cost_per_million"] == 1.0
    assert catalog.models["openai/gpt-4o-mini"].summary["ccapi"]["pricing"]["input_cost_per_million"] == 0.2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("streaming: true", "streaming: sometimes"), "entry models[acme-1].streaming"),
        (("source: https://acme.test/p, ", ""), "entry models[acme-1].pricing.source"),
        (("type: chat", "type: hologram"), "entry models[acme-1].type"),
        (("api: openai", "api: carrier-pigeon"), "entry provider.api"),
        (("    context_length: 8192\n", "    context_length: 8192\n    colour: blue\n"), "models[acme-1].colour"),
    ],
)
def test_a_bad_entry_names_file_entry_and_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    bad = tmp_path / "acme.yaml"
    bad.write_text(GOOD_EXTRA.replace(*change))
    with pytest.raises(CatalogError) as err:
        Catalog.load([bad])
    assert str(bad) in str(err.value) and message in str(err.value)


def test_broken_yaml_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("provider: [unclosed\n")
    with pytest.raises(CatalogError, match=r"broken\.yaml: not valid YAML"):
        Catalog.load([bad])


def test_an_alias_to_nothing_stops_the_start() -> None:
    with pytest.raises(CatalogError, match="alias 'x'"):
        Catalog.load(aliases={"x": "openai/nope"})
