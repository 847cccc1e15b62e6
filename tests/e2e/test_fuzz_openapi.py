"""Property-based tests from the gateway's own `/openapi.json` (schemathesis).

The real gateway process, in front of the real simulator, is fuzzed over HTTP
on every documented route with valid and invalid bodies, query strings, path
parameters and headers. Every answer must be documented: no 500, a documented
status and content type, a body that matches the documented schema (the
`ErrorResponse` envelope for every error) and the documented headers.

Bounded so it runs in the suite: `CCAPI_FUZZ_EXAMPLES` (default 150) examples
per route, half of that for the model-calling routes, derandomized so a run
is reproducible. See docs/testing.md for running it longer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ccapi.app import create_app
from ccapi.config import load_settings
from tests.support import ServerProcess, run_ccapi

from .conftest import MASTER

pytestmark = pytest.mark.timeout(600)

EXAMPLES = int(os.environ.get("CCAPI_FUZZ_EXAMPLES", "150"))
# Unset: derandomized (the same examples every run). Set: explore with that seed.
SEED = os.environ.get("CCAPI_FUZZ_SEED")
# Model-calling routes reach the simulator (and write ledger rows): fewer examples.
MODEL_EXAMPLES = max(EXAMPLES // 2, 10)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MODEL_ROUTES = r"^/(chat/completions|audio/speech|images/generations|images/generate|images/edits)$"

# Real models served by the simulator, so that some generated bodies get past
# the catalog's 404 and exercise routing, billing and the response schemas.
REAL_MODELS: dict[str, list[str]] = {
    "/chat/completions": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"],
    "/audio/speech": ["openai/tts-1", "elevenlabs/eleven_turbo_v2"],
    "/images/generations": ["openai/dall-e-3", "stability/stable-image-core"],
    "/images/generate": ["google/gemini-2.5-flash-image"],
}


def _fuzz_env(sim_url: str, tmp: Any) -> dict[str, str]:
    # Healthy upstreams only: a fault-injecting one would only add latency.
    return {
        "CCAPI_MASTER_KEY": MASTER,
        "CCAPI_DATABASE_URL": f"sqlite:///{tmp}/ccapi.db",
        "CCAPI_FILES_DIR": str(tmp / "files"),
        "CCAPI_BREAKER__FAILURE_THRESHOLD": "100000",
        "CCAPI_ATTEMPT_TIMEOUT": "5",
        "CCAPI_REQUEST_TIMEOUT": "10",
        "OPENAI_API_KEY": "sk-sim-openai",
        "CCAPI_OPENAI_BASE_URL": f"{sim_url}/v1",
        "ANTHROPIC_API_KEY": "sk-sim-anthropic",
        "CCAPI_ANTHROPIC_BASE_URL": sim_url,
        "GEMINI_API_KEY": "sim-gemini",
        "CCAPI_GOOGLE_BASE_URL": sim_url,
        "STABILITY_API_KEY": "sk-sim-stability",
        "CCAPI_STABILITY_BASE_URL": sim_url,
        "ELEVENLABS_API_KEY": "sk-sim-elevenlabs",
        "CCAPI_ELEVENLABS_BASE_URL": sim_url,
    }


class Fixtures:
    """The gateway and the real objects path parameters may name."""

    def __init__(self, gateway: ServerProcess) -> None:
        self.gateway = gateway
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=30) as c:
            # The caller account pays for the account-key runs; the target
            # account and key are what admin routes may change or revoke.
            caller = c.post("/admin/accounts", json={"name": "fuzz-caller", "credits": 1_000_000}).json()
            self.account_key = c.post("/admin/keys", json={"account_id": caller["id"], "name": "fuzz"}).json()["key"]
            target = c.post("/admin/accounts", json={"name": "fuzz-target", "credits": 10}).json()
            self.target_account = target["id"]
            self.target_key = c.post("/admin/keys", json={"account_id": target["id"]}).json()["id"]


@pytest.fixture(scope="module")
def fuzz_gateway(sim: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixtures]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with run_ccapi(["serve"], env=_fuzz_env(sim.url, tmp), tmp_path=tmp, name="gateway") as server:
        yield Fixtures(server)


def _load(fixtures: Fixtures, token: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{fixtures.gateway.url}/openapi.json")
    schema.config.update(headers={"Authorization": f"Bearer {token}"}, request_timeout=30)

    @schema.hook("flatmap_body")
    def real_model(context: Any, body: Any) -> Any:
        models = REAL_MODELS.get(context.operation.path)
        if not models or not isinstance(body, dict):
            return st.just(body)
        # Hypothesis shrinks towards the first choice: the real models come first.
        return st.sampled_from([*({**body, "model": m} for m in models), body])

    @schema.hook("flatmap_path_parameters")
    def real_ids(context: Any, params: dict[str, Any] | None) -> Any:
        if not params:
            return st.just(params)
        real = dict(params)
        if "account_id" in params:
            real["account_id"] = fixtures.target_account
        if "key_id" in params:
            real["key_id"] = fixtures.target_key
        if "provider" in params and "model" in params:
            real.update(provider="openai", model="gpt-4o-mini")
        if "name" in params:
            real["name"] = "openai"
        return st.sampled_from([real, params])

    return schema


@pytest.fixture(scope="module")
def master_schema(fuzz_gateway: Fixtures) -> Any:
    return _load(fuzz_gateway, MASTER)


@pytest.fixture(scope="module")
def account_schema(fuzz_gateway: Fixtures) -> Any:
    return _load(fuzz_gateway, fuzz_gateway.account_key)


def _documented_operations() -> list[tuple[str, str]]:
    """(method, path) of every documented route, from the app's own document."""
    settings = load_settings(database_url="sqlite:///:memory:")
    doc = create_app(settings, migrate=False).openapi()
    return [(method.upper(), path) for path, item in doc["paths"].items() for method in item]


OPERATIONS = _documented_operations()
MODEL_OPERATIONS = [op for op in OPERATIONS if re.match(MODEL_ROUTES, op[1])]
OTHER_OPERATIONS = [op for op in OPERATIONS if op not in MODEL_OPERATIONS]


def _fuzz(schema: Any, method: str, path: str, examples: int) -> None:
    operation = schema[path][method]
    strategy = st.one_of(operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))

    @seed(int(SEED or 0))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def _ids(ops: list[tuple[str, str]]) -> list[str]:
    return [f"{m} {p}" for m, p in ops]


@pytest.mark.parametrize(("method", "path"), OTHER_OPERATIONS, ids=_ids(OTHER_OPERATIONS))
def test_catalog_admin_and_health_routes_answer_as_documented(master_schema: Any, method: str, path: str) -> None:
    _fuzz(master_schema, method, path, EXAMPLES)


@pytest.mark.parametrize(("method", "path"), MODEL_OPERATIONS, ids=_ids(MODEL_OPERATIONS))
def test_model_routes_answer_as_documented_for_the_master_key(master_schema: Any, method: str, path: str) -> None:
    _fuzz(master_schema, method, path, MODEL_EXAMPLES)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=_ids(OPERATIONS))
def test_every_route_answers_as_documented_for_an_account_key(account_schema: Any, method: str, path: str) -> None:
    _fuzz(account_schema, method, path, MODEL_EXAMPLES)
