from pathlib import Path

import pytest
from pydantic import ValidationError

from ccapi.catalog.catalog import Catalog
from ccapi.config import load_settings
from ccapi.providers.registry import resolve_providers

ROOT = Path(__file__).parents[2]


def test_the_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = load_settings(ROOT / "ccapi.example.yaml")
    assert settings.breaker.failure_threshold == 5
    assert settings.aliases["default-chat"] == "openai/gpt-4o-mini"
    Catalog.load(settings.catalog_files, settings.aliases)


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("attempt_timeout: 5\nbreaker:\n  reset_seconds: 9\n")
    monkeypatch.setenv("CCAPI_ATTEMPT_TIMEOUT", "7")
    settings = load_settings(config)
    assert settings.attempt_timeout == 7 and settings.breaker.reset_seconds == 9


@pytest.mark.parametrize("text", ["attempt_timeout: -1\n", "breaker:\n  failure_treshold: 3\n", "port: http\n"])
def test_bad_settings_stop_the_start(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ValidationError):
        load_settings(config)


def test_provider_keys_and_base_urls_come_from_config_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("providers:\n  mistral:\n    api_key: from-file\n    base_url: http://file/v1\n")
    settings = load_settings(config)
    environ = {
        "OPENAI_API_KEY": "from-env",
        "CCAPI_OPENAI_BASE_URL": "http://sim/v1",
        "CCAPI_MISTRAL_BASE_URL": "http://env/v1",
    }
    providers = resolve_providers(Catalog.load(), settings, environ)
    assert (providers["openai"].api_key, providers["openai"].base_url) == ("from-env", "http://sim/v1")
    assert (providers["mistral"].api_key, providers["mistral"].base_url) == ("from-file", "http://env/v1")
    assert providers["anthropic"].configured is False
    assert providers["anthropic"].how_to_configure() == "set ANTHROPIC_API_KEY"
    assert providers["ollama"].configured is True  # keyless
