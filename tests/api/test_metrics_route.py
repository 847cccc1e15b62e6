"""GET /metrics in process: admin keys only, and every HTTP route by its template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from .conftest import make_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("metrics")) as c:
        yield c


def http_requests(client: TestClient) -> dict[tuple[str, str, str], float]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name == "ccapi_http_requests_total":
                out[(s.labels["route"], s.labels["method"], s.labels["status"])] = s.value
    return out


def test_metrics_without_a_key_is_401_in_the_envelope(client: TestClient) -> None:
    r = client.get("/metrics", headers={"Authorization": ""})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    r = client.get("/v1/metrics", headers={"Authorization": "Bearer sk-wrong"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_metrics_with_an_account_key_is_403_and_with_an_admin_key_200(client: TestClient) -> None:
    account = client.post("/admin/accounts", json={"name": "metrics"}).json()
    user = client.post("/admin/keys", json={"account_id": account["id"]}).json()["key"]
    r = client.get("/metrics", headers={"Authorization": f"Bearer {user}"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "admin_required"
    admin = client.post("/admin/keys", json={"account_id": account["id"], "admin": True}).json()["key"]
    r = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    assert "# TYPE ccapi_requests_total counter" in r.text


def test_http_requests_are_counted_by_route_template(client: TestClient) -> None:
    before = http_requests(client)
    assert client.get("/models/openai/gpt-4o-mini").status_code == 200
    assert client.get("/v1/models/anthropic/claude-haiku-4-5").status_code == 200
    assert client.get("/no/such/route/abc123").status_code == 404
    bad_json = client.post("/chat/completions", content=b"{", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    after = http_requests(client)

    def delta(*key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta("/models/{provider}/{model}", "GET", "200") == 2
    assert delta("unmatched", "GET", "404") == 1
    assert delta("/chat/completions", "POST", "400") == 1
    assert not any("abc123" in route or "gpt-4o" in route for route, _, _ in after)
