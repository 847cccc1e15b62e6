"""The admin API, in process: accounts, credits, keys, the usage ledger.

Ledger rows are written with the real Store (as the ledger writer does), so
usage queries read what a gateway would have recorded.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ccapi.storage.store import Store

from .conftest import make_client
from .test_bad_input import assert_envelope

USAGE_COLUMNS = [
    "request_id", "created", "account_id", "key_id", "route", "requested_models", "model", "provider",
    "attempts", "status", "error_type", "prompt_tokens", "completion_tokens", "input_cost", "output_cost",
    "cost", "latency_ms", "ttft_ms", "stream",
]  # fmt: skip
USAGE_KEYS = set(USAGE_COLUMNS)
ACCOUNT_KEYS = {"id", "object", "name", "balance", "reserved", "available", "rpm", "tpm", "created"}
KEY_KEYS = {
    "id", "object", "account_id", "name", "prefix", "admin", "spend_limit", "spend_limit_period", "spent",
    "rpm", "tpm", "allowed_models", "expires_at", "revoked", "revoked_at", "created",
}  # fmt: skip
PAGE_KEYS = {"object", "data", "total", "limit", "offset", "has_more"}
# 2026-11-27T10:00:00Z and the next two days
DAY1, DAY2, DAY3 = 1795773600.0, 1795773600.0 + 86400, 1795773600.0 + 2 * 86400


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture()
def client(db: Path) -> Iterator[TestClient]:
    with make_client(db) as c:
        yield c


def store_of(db: Path) -> Store:
    return Store(f"sqlite:///{db}/ccapi.db")


def on_store(db: Path, call: Any) -> Any:
    """Run `call(store)` on the gateway's database, as another process would."""

    async def run() -> Any:
        store = store_of(db)
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(run())


def create_account(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/admin/accounts", json={"name": "acme", **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


def create_key(client: TestClient, account_id: str, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/admin/keys", json={"account_id": account_id, **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# -- accounts ---------------------------------------------------------------------


def test_create_account_answers_the_account(client: TestClient) -> None:
    before = int(time.time())
    r = client.post("/v1/admin/accounts", json={"name": " Acme Labs ", "credits": 12.5, "rpm": 60, "tpm": 10000})
    assert r.status_code == 200
    account = r.json()
    assert set(account) == ACCOUNT_KEYS
    assert account["id"].startswith("acct_") and account["object"] == "account"
    assert account["name"] == "Acme Labs"
    assert (account["balance"], account["reserved"], account["available"]) == (12.5, 0, 12.5)
    assert (account["rpm"], account["tpm"]) == (60, 10000)
    assert isinstance(account["created"], int) and account["created"] >= before
    assert client.get(f"/admin/accounts/{account['id']}").json() == account


def test_accounts_are_listed_in_pages_oldest_first(client: TestClient) -> None:
    ids = [create_account(client, name=f"a{i}")["id"] for i in range(5)]
    first = client.get("/admin/accounts", params={"limit": 2}).json()
    assert set(first) == PAGE_KEYS
    assert (first["object"], first["total"], first["limit"], first["offset"], first["has_more"]) == (
        "list",
        5,
        2,
        0,
        True,
    )
    assert [a["id"] for a in first["data"]] == ids[:2]
    last = client.get("/v1/admin/accounts", params={"limit": 2, "offset": 4}).json()
    assert [a["id"] for a in last["data"]] == ids[4:] and last["has_more"] is False
    assert client.get("/admin/accounts", params={"offset": 10}).json()["data"] == []


def test_patch_account_changes_only_what_is_sent_and_limits_apply_at_once(client: TestClient) -> None:
    account = create_account(client, credits=1, rpm=100)
    secret = create_key(client, account["id"])["key"]
    assert client.get("/models", headers=bearer(secret)).headers["x-ratelimit-limit-requests"] == "100"

    r = client.patch(f"/admin/accounts/{account['id']}", json={"rpm": 7, "tpm": 5000})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["rpm"], r.json()["tpm"], r.json()["balance"]) == ("acme", 7, 5000, 1)
    assert client.get("/models", headers=bearer(secret)).headers["x-ratelimit-limit-requests"] == "7"

    cleared = client.patch(f"/v1/admin/accounts/{account['id']}", json={"name": "renamed", "rpm": None}).json()
    assert (cleared["name"], cleared["rpm"], cleared["tpm"]) == ("renamed", None, 5000)


# -- credits ----------------------------------------------------------------------


def test_top_ups_and_adjustments_keep_exact_balances(client: TestClient, db: Path) -> None:
    account = create_account(client)
    path = f"/admin/accounts/{account['id']}/credits"
    first = client.post(path, json={"amount": 0.1, "reason": "first"})
    assert first.status_code == 200
    entry = first.json()
    assert set(entry) == {"id", "object", "account_id", "amount", "balance_after", "reason", "created"}
    assert (entry["object"], entry["account_id"], entry["amount"], entry["balance_after"], entry["reason"]) == (
        "credit_entry",
        account["id"],
        0.1,
        0.1,
        "first",
    )
    assert client.post(path, json={"amount": 0.2, "reason": "second"}).json()["balance_after"] == 0.3
    # A JSON number is read as written: 18 significant digits, no float in between.
    precise = client.post(path, content=b'{"amount": 12345678.0123456789, "reason": "precise"}',
                          headers={"content-type": "application/json"})  # fmt: skip
    assert precise.status_code == 200, precise.text
    adjusted = client.post(path, content=b'{"amount": -12345678.0123456789, "reason": "refund"}',
                           headers={"content-type": "application/json"}).json()  # fmt: skip
    assert adjusted["balance_after"] == 0.3 and adjusted["amount"] == -12345678.0123456789
    for _ in range(3):
        client.post(path, json={"amount": 0.0000000001, "reason": "dust"})

    assert client.get(f"/admin/accounts/{account['id']}").json()["balance"] == 0.3000000003
    stored = on_store(db, lambda store: store.get_account(account["id"]))
    assert stored.balance == Decimal("0.3000000003")


def test_an_adjustment_never_takes_the_balance_below_zero(client: TestClient) -> None:
    account = create_account(client, credits=1)
    path = f"/admin/accounts/{account['id']}/credits"
    r = client.post(path, json={"amount": -1.01, "reason": "too much"})
    assert r.status_code == 400
    assert_envelope(r.json(), "invalid_request_error", "amount", "balance_below_zero")
    assert client.post(path, json={"amount": -1, "reason": "all of it"}).json()["balance_after"] == 0
    assert client.get(f"/admin/accounts/{account['id']}").json()["balance"] == 0


def test_credit_entries_are_listed_newest_first(client: TestClient) -> None:
    account = create_account(client, credits=5)
    path = f"/v1/admin/accounts/{account['id']}/credits"
    client.post(path, json={"amount": 2, "reason": "top-up"})
    client.post(path, json={"amount": -1.5, "reason": "refund"})
    page = client.get(path).json()
    assert set(page) == PAGE_KEYS and page["total"] == 3
    assert [(e["amount"], e["balance_after"], e["reason"]) for e in page["data"]] == [
        (-1.5, 5.5, "refund"), (2, 7, "top-up"), (5, 5, "initial credits")
    ]  # fmt: skip
    second = client.get(path, params={"limit": 1, "offset": 1}).json()
    assert [e["reason"] for e in second["data"]] == ["top-up"] and second["has_more"] is True


# -- keys ---------------------------------------------------------------------------


def test_a_key_secret_is_shown_only_at_creation(client: TestClient) -> None:
    account = create_account(client, credits=1)
    created = create_key(
        client,
        account["id"],
        name="ci",
        spend_limit=2.5,
        spend_limit_period="day",
        rpm=30,
        tpm=9000,
        allowed_models=["openai/*", "anthropic/claude-*"],
        expires_at="2030-01-01T00:00:00Z",
    )
    secret = created.pop("key")
    assert set(created) == KEY_KEYS
    assert secret.startswith("sk-ccapi-") and created["prefix"] == secret[:16]
    assert created["id"].startswith("key_") and created["object"] == "api_key"
    assert (created["name"], created["admin"], created["spend_limit"], created["spend_limit_period"]) == (
        "ci",
        False,
        2.5,
        "day",
    )
    assert (created["rpm"], created["tpm"], created["spent"]) == (30, 9000, 0)
    assert created["allowed_models"] == ["openai/*", "anthropic/claude-*"]
    assert created["expires_at"] == 1893456000 and created["revoked"] is False and created["revoked_at"] is None

    got = client.get(f"/admin/keys/{created['id']}")
    assert got.json() == created and secret not in got.text
    listed = client.get("/admin/keys", params={"account_id": account["id"]})
    assert listed.json()["data"] == [created] and secret not in listed.text
    assert client.get("/models", headers=bearer(secret)).status_code == 200


def test_keys_are_listed_per_account_in_pages(client: TestClient) -> None:
    one, two = create_account(client, name="one"), create_account(client, name="two")
    ids = [create_key(client, one["id"], name=f"k{i}")["id"] for i in range(3)]
    other = create_key(client, two["id"])["id"]
    page = client.get("/admin/keys", params={"account_id": one["id"], "limit": 2}).json()
    assert set(page) == PAGE_KEYS
    assert ([k["id"] for k in page["data"]], page["total"], page["has_more"]) == (ids[:2], 3, True)
    everything = client.get("/v1/admin/keys").json()
    assert [k["id"] for k in everything["data"]] == [*ids, other] and everything["total"] == 4


def test_patch_key_sets_and_clears_fields(client: TestClient) -> None:
    account = create_account(client)
    key = create_key(client, account["id"], name="old", spend_limit=5, rpm=10, allowed_models=["openai/*"])
    path = f"/admin/keys/{key['id']}"
    r = client.patch(path, json={"name": "new", "spend_limit": 1.25, "spend_limit_period": "month", "tpm": 100})
    assert r.status_code == 200
    changed = r.json()
    assert (changed["name"], changed["spend_limit"], changed["spend_limit_period"]) == ("new", 1.25, "month")
    assert (changed["rpm"], changed["tpm"], changed["allowed_models"]) == (10, 100, ["openai/*"])

    cleared = client.patch(
        path, json={"spend_limit": None, "spend_limit_period": None, "allowed_models": None, "rpm": None}
    ).json()
    assert (cleared["spend_limit"], cleared["spend_limit_period"], cleared["allowed_models"], cleared["rpm"]) == (
        None,
        None,
        None,
        None,
    )
    assert client.patch(path, json={}).json() == cleared
    assert "key" not in cleared


def test_a_revoked_key_is_refused_at_once(client: TestClient) -> None:
    account = create_account(client, credits=1)
    key = create_key(client, account["id"])
    assert client.get("/models", headers=bearer(key["key"])).status_code == 200

    r = client.delete(f"/admin/keys/{key['id']}")
    assert r.status_code == 200
    revoked = r.json()
    assert revoked["revoked"] is True and isinstance(revoked["revoked_at"], int) and "key" not in revoked

    refused = client.get("/models", headers=bearer(key["key"]))
    assert refused.status_code == 401
    assert_envelope(refused.json(), "authentication_error", None, "key_revoked")
    again = client.delete(f"/v1/admin/keys/{key['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked["revoked_at"]


def test_admin_routes_need_an_admin_key(client: TestClient) -> None:
    account = create_account(client)
    plain = create_key(client, account["id"])["key"]
    for method, path in (("GET", "/admin/accounts"), ("POST", "/v1/admin/keys"), ("GET", "/admin/usage")):
        r = client.request(method, path, headers=bearer(plain), json={"account_id": account["id"]})
        assert r.status_code == 403, path
        assert_envelope(r.json(), "permission_error", None, "admin_required")

    operator = create_key(client, account["id"], admin=True)["key"]
    assert client.get("/admin/accounts", headers=bearer(operator)).status_code == 200
    assert client.get("/admin/accounts", headers={"Authorization": ""}).status_code == 401


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/accounts", {}, "name"),
        ("/admin/accounts", {"name": ""}, "name"),
        ("/admin/accounts", {"name": "   "}, "name"),
        ("/admin/accounts", {"name": 5}, "name"),
        ("/admin/accounts", {"name": "a" * 201}, "name"),
        ("/admin/accounts", {"name": "a", "credits": -1}, "credits"),
        ("/admin/accounts", {"name": "a", "credits": "10"}, "credits"),
        ("/admin/accounts", {"name": "a", "credits": 1e9}, "credits"),
        ("/admin/accounts", {"name": "a", "rpm": 0}, "rpm"),
        ("/admin/accounts", {"name": "a", "rpm": -5}, "rpm"),
        ("/admin/accounts", {"name": "a", "rpm": 1.5}, "rpm"),
        ("/admin/accounts", {"name": "a", "tpm": True}, "tpm"),
        ("/admin/accounts", {"name": "a", "balance": 5}, "balance"),
        ("{account}/credits", {"reason": "x"}, "amount"),
        ("{account}/credits", {"amount": 0, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": "5", "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": None, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": True, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": 0.00000000001, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": 100000000.01, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": -1e9, "reason": "x"}, "amount"),
        ("{account}/credits", {"amount": 1}, "reason"),
        ("{account}/credits", {"amount": 1, "reason": ""}, "reason"),
        ("/admin/keys", {}, "account_id"),
        ("/admin/keys", {"account_id": "{id}", "admin": "yes"}, "admin"),
        ("/admin/keys", {"account_id": "{id}", "spend_limit": -0.01}, "spend_limit"),
        ("/admin/keys", {"account_id": "{id}", "spend_limit": 5, "spend_limit_period": "week"}, "spend_limit_period"),
        ("/admin/keys", {"account_id": "{id}", "spend_limit_period": "day"}, "spend_limit_period"),
        ("/admin/keys", {"account_id": "{id}", "rpm": 0}, "rpm"),
        ("/admin/keys", {"account_id": "{id}", "tpm": -1}, "tpm"),
        ("/admin/keys", {"account_id": "{id}", "allowed_models": []}, "allowed_models"),
        ("/admin/keys", {"account_id": "{id}", "allowed_models": "openai/*"}, "allowed_models"),
        ("/admin/keys", {"account_id": "{id}", "allowed_models": ["openai/*", ""]}, "allowed_models[1]"),
        ("/admin/keys", {"account_id": "{id}", "allowed_models": ["openai/*", "opnai/*"]}, "allowed_models[1]"),
        ("/admin/keys", {"account_id": "{id}", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ("/admin/keys", {"account_id": "{id}", "expires_at": 1000}, "expires_at"),
        ("/admin/keys", {"account_id": "{id}", "expires_at": "next week"}, "expires_at"),
        ("/admin/keys", {"account_id": "{id}", "expires_at": 1893456000000}, "expires_at"),
        ("/admin/keys", {"account_id": "{id}", "secret": "mine"}, "secret"),
        ("{key}", {"admin": None}, "admin"),
        ("{key}", {"spend_limit_period": "month"}, "spend_limit_period"),
        ("{key}", {"rpm": 0}, "rpm"),
        ("{key}", {"account_id": "acct_other"}, "account_id"),
        ("{key}", {"revoked": False}, "revoked"),
        ("{account}", {"name": None}, "name"),
        ("{account}", {"rpm": "10"}, "rpm"),
        ("{account}", {"credits": 5}, "credits"),
    ],
)  # fmt: skip
def test_bad_admin_input_is_400_naming_the_field(
    client: TestClient, path: str, body: dict[str, Any], param: str
) -> None:
    account = create_account(client)
    key = create_key(client, account["id"])
    body = {k: (account["id"] if v == "{id}" else v) for k, v in body.items()}
    url = path.format(account=f"/admin/accounts/{account['id']}", key=f"/admin/keys/{key['id']}")
    method = "PATCH" if path in ("{key}", "{account}") else "POST"
    r = client.request(method, url, json=body)
    assert r.status_code == 400, r.text
    assert_envelope(r.json(), "invalid_request_error", param)


@pytest.mark.parametrize("raw", [b'{"amount": NaN, "reason": "x"}', b'{"amount": -Infinity, "reason": "x"}'])
def test_nan_and_infinity_are_400_naming_the_field(client: TestClient, raw: bytes) -> None:
    account = create_account(client)
    r = client.post(
        f"/admin/accounts/{account['id']}/credits", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert_envelope(r.json(), "invalid_request_error", "amount")


def test_bodies_get_the_contract_checks(client: TestClient) -> None:
    bad_json = client.post("/admin/accounts", content=b'{"name": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert_envelope(bad_json.json(), "invalid_request_error", None, "invalid_json")
    as_form = client.post("/admin/accounts", data={"name": "x"})
    assert as_form.status_code == 415
    not_an_object = client.post("/admin/accounts", json=["acme"])
    assert not_an_object.status_code == 400


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/admin/accounts", {"limit": 0}, "limit"),
        ("/admin/accounts", {"limit": 1001}, "limit"),
        ("/admin/accounts", {"offset": -1}, "offset"),
        ("/admin/keys", {"limit": "many"}, "limit"),
        ("/admin/usage", {"status": 99}, "status"),
        ("/admin/usage", {"format": "xml"}, "format"),
        ("/admin/usage", {"since": "yesterday"}, "since"),
        ("/admin/usage", {"until": "2026-13-01"}, "until"),
        ("/admin/usage", {"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ("/admin/usage/summary", {"group_by": "week"}, "group_by"),
        ("/admin/usage/summary", {"since": "nan"}, "since"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    client: TestClient, path: str, params: dict[str, Any], param: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert_envelope(r.json(), "invalid_request_error", param)


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "param"),
    [
        ("GET", "/admin/accounts/acct_nope", None, "account_not_found", None),
        ("PATCH", "/admin/accounts/acct_nope", {"rpm": 5}, "account_not_found", None),
        ("POST", "/admin/accounts/acct_nope/credits", {"amount": 1, "reason": "x"}, "account_not_found", None),
        ("GET", "/v1/admin/accounts/acct_nope/credits", None, "account_not_found", None),
        ("POST", "/admin/keys", {"account_id": "acct_nope"}, "account_not_found", "account_id"),
        ("GET", "/admin/keys?account_id=acct_nope", None, "account_not_found", "account_id"),
        ("GET", "/admin/keys/key_nope", None, "key_not_found", None),
        ("PATCH", "/v1/admin/keys/key_nope", {"name": "x"}, "key_not_found", None),
        ("DELETE", "/admin/keys/key_nope", None, "key_not_found", None),
    ],
)
def test_unknown_ids_are_404(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None, code: str, param: str | None
) -> None:
    r = client.request(method, path, json=body)
    assert r.status_code == 404, r.text
    assert_envelope(r.json(), "not_found_error", param, code)


# -- usage ------------------------------------------------------------------------


def ledger_row(request_id: str, created: float, **fields: Any) -> dict[str, Any]:
    model = fields.pop("model", "openai/gpt-4o-mini")
    provider = fields.pop("provider", model.split("/")[0] if model else None)
    row = {
        "request_id": request_id,
        "created": created,
        "account_id": "acct_a",
        "key_id": "key_a",
        "route": "/chat/completions",
        "requested_models": [model],
        "model": model,
        "provider": provider,
        "attempts": [{"provider": provider, "model": model, "status": 200, "error": None, "latency_ms": 80.5}],
        "status": 200,
        "error_type": None,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "input_cost": Decimal("0.0000015"),
        "output_cost": Decimal("0.000012"),
        "latency_ms": 95.25,
        "ttft_ms": None,
        "stream": False,
        **fields,
    }
    row["cost"] = row["input_cost"] + row["output_cost"]
    return row


ROWS = [
    ledger_row("req_1", DAY1),
    ledger_row("req_2", DAY1 + 60, model="anthropic/claude-sonnet-4-5", stream=True, ttft_ms=210.0),
    ledger_row("req_3", DAY2, account_id="acct_b", key_id="key_b", input_cost=Decimal("0.1"),
               output_cost=Decimal("0.2")),
    ledger_row("req_4", DAY3, status=502, error_type="upstream_error", model=None, provider=None,
               requested_models=["openai/gpt-4o-mini", "google/gemini-2.5-flash"], prompt_tokens=0,
               completion_tokens=0, input_cost=Decimal(0), output_cost=Decimal(0),
               attempts=[{"provider": "openai", "model": "openai/gpt-4o-mini", "status": 503,
                          "error": "upstream 503", "latency_ms": 12.0}]),
]  # fmt: skip


@pytest.fixture()
def ledger(db: Path, client: TestClient) -> TestClient:
    on_store(db, lambda store: store.record([], ROWS))
    return client


def test_usage_rows_are_shown_newest_first_as_the_contract_shows_them(ledger: TestClient) -> None:
    page = ledger.get("/admin/usage").json()
    assert set(page) == PAGE_KEYS and page["total"] == 4 and page["has_more"] is False
    assert [r["request_id"] for r in page["data"]] == ["req_4", "req_3", "req_2", "req_1"]
    assert all(set(r) == USAGE_KEYS for r in page["data"])
    failed, paid = page["data"][0], page["data"][1]
    assert failed["attempts"] == ROWS[3]["attempts"] and failed["model"] is None
    assert (failed["status"], failed["error_type"], failed["cost"]) == (502, "upstream_error", 0)
    assert failed["requested_models"] == ["openai/gpt-4o-mini", "google/gemini-2.5-flash"]
    assert (paid["input_cost"], paid["output_cost"], paid["cost"]) == (0.1, 0.2, 0.3)
    assert (paid["created"], paid["account_id"], paid["key_id"]) == (int(DAY2), "acct_b", "key_b")
    first = page["data"][3]
    assert (first["prompt_tokens"], first["completion_tokens"], first["latency_ms"]) == (10, 20, 95.25)
    assert (first["cost"], first["stream"], first["ttft_ms"]) == (0.0000135, False, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"account_id": "acct_b"}, ["req_3"]),
        ({"key_id": "key_a"}, ["req_4", "req_2", "req_1"]),
        ({"model": "anthropic/claude-sonnet-4-5"}, ["req_2"]),
        ({"provider": "openai"}, ["req_3", "req_1"]),
        ({"status": 502}, ["req_4"]),
        ({"since": "2026-11-28"}, ["req_4", "req_3"]),
        ({"since": str(int(DAY1) + 1), "until": "2026-11-29T09:00:00Z"}, ["req_3", "req_2"]),
        ({"until": "2026-11-28T00:00:00+00:00"}, ["req_2", "req_1"]),
        ({"limit": 2, "offset": 1}, ["req_3", "req_2"]),
    ],
)
def test_usage_filters(ledger: TestClient, params: dict[str, Any], expected: list[str]) -> None:
    page = ledger.get("/v1/admin/usage", params=params).json()
    assert [r["request_id"] for r in page["data"]] == expected


def test_usage_as_csv(ledger: TestClient) -> None:
    r = ledger.get("/admin/usage", params={"format": "csv", "limit": 3})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-total-count"] == "4"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == USAGE_COLUMNS  # the contract's fields, in its order
    assert [row["request_id"] for row in rows] == ["req_4", "req_3", "req_2"]
    failed, paid, streamed = rows
    assert failed["attempts"] == (
        '[{"provider":"openai","model":"openai/gpt-4o-mini","status":503,"error":"upstream 503","latency_ms":12.0}]'
    )
    assert failed["requested_models"] == '["openai/gpt-4o-mini","google/gemini-2.5-flash"]'
    assert (failed["model"], failed["status"], failed["cost"]) == ("", "502", "0")
    assert (paid["created"], paid["input_cost"], paid["cost"]) == (str(int(DAY2)), "0.1", "0.3")
    assert (streamed["stream"], streamed["ttft_ms"], streamed["cost"]) == ("true", "210.0", "0.0000135")


def test_an_empty_csv_still_has_its_header(client: TestClient) -> None:
    r = client.get("/admin/usage", params={"format": "csv"})
    assert r.text.splitlines() == [",".join(USAGE_COLUMNS)]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("day", [("2026-11-27", 2, 20, 40, 0.000027), ("2026-11-28", 1, 10, 20, 0.3), ("2026-11-29", 1, 0, 0, 0)]),
        ("model", [(None, 1, 0, 0, 0), ("anthropic/claude-sonnet-4-5", 1, 10, 20, 0.0000135),
                   ("openai/gpt-4o-mini", 2, 20, 40, 0.3000135)]),
        ("provider", [(None, 1, 0, 0, 0), ("anthropic", 1, 10, 20, 0.0000135), ("openai", 2, 20, 40, 0.3000135)]),
        ("key", [("key_a", 3, 20, 40, 0.000027), ("key_b", 1, 10, 20, 0.3)]),
    ],
)  # fmt: skip
def test_usage_summary(ledger: TestClient, group_by: str, expected: list[tuple[Any, ...]]) -> None:
    r = ledger.get("/admin/usage/summary", params={"group_by": group_by})
    assert r.status_code == 200
    body = r.json()
    assert (body["object"], body["group_by"]) == ("list", group_by)
    assert all(set(g) == {"group", "requests", "prompt_tokens", "completion_tokens", "cost"} for g in body["data"])
    got = [(g["group"], g["requests"], g["prompt_tokens"], g["completion_tokens"], g["cost"]) for g in body["data"]]
    assert sorted(got, key=lambda g: str(g[0])) == sorted(expected, key=lambda g: str(g[0]))


def test_usage_summary_takes_the_usage_filters(ledger: TestClient) -> None:
    body = ledger.get("/v1/admin/usage/summary", params={"account_id": "acct_a", "status": 200}).json()
    assert body["group_by"] == "day"
    assert [(g["group"], g["requests"], g["cost"]) for g in body["data"]] == [("2026-11-27", 2, 0.000027)]


def test_admin_calls_leave_no_ledger_rows(client: TestClient) -> None:
    create_account(client)
    client.get("/admin/accounts")
    assert client.get("/admin/usage").json()["total"] == 0


# -- the OpenAPI document ----------------------------------------------------------


def test_the_admin_routes_are_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    bodies = {
        ("/admin/accounts", "post"): "AccountCreateRequest",
        ("/admin/accounts/{account_id}", "patch"): "AccountUpdateRequest",
        ("/admin/accounts/{account_id}/credits", "post"): "CreditRequest",
        ("/admin/keys", "post"): "KeyCreateRequest",
        ("/admin/keys/{key_id}", "patch"): "KeyUpdateRequest",
    }
    for (path, method), model in bodies.items():
        ref = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model}" and schemas[model]["additionalProperties"] is False
    answers = {
        ("/admin/accounts", "get"): "AccountList",
        ("/admin/keys", "post"): "ApiKeyCreated",
        ("/admin/keys/{key_id}", "delete"): "ApiKeyObject",
        ("/admin/usage", "get"): "UsageList",
        ("/admin/usage/summary", "get"): "UsageSummary",
    }
    for (path, method), model in answers.items():
        content = paths[path][method]["responses"]["200"]["content"]
        assert content["application/json"]["schema"]["$ref"] == f"#/components/schemas/{model}"
        assert paths[path][method]["responses"]["403"]
    assert "text/csv" in paths["/admin/usage"]["get"]["responses"]["200"]["content"]
    assert {p["name"] for p in paths["/admin/usage"]["get"]["parameters"]} >= {
        "account_id", "key_id", "model", "provider", "status", "since", "until", "limit", "offset", "format"
    }  # fmt: skip
