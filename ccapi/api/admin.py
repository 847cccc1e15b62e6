"""The admin API: accounts, credits, keys and the usage ledger (admin keys only).

Routes validate, call one service function and render. The service functions
take the Store (and the catalog's model ids where patterns are checked), so
the operator CLI (`ccapi.admin_cli`) applies the same rules to the database
directly. Every change is one Store call, hence one transaction.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ccapi.api.deps import admin, gateway_of, json_body
from ccapi.api.openapi import request_body
from ccapi.api.pages import Limit, Offset, page
from ccapi.api.responses import json_response
from ccapi.api.validation import validate_body
from ccapi.billing.keys import compile_patterns
from ccapi.billing.types import Account, ApiKey
from ccapi.core.errors import InvalidRequestError, NotFoundError
from ccapi.schemas.admin import (
    AccountCreateRequest,
    AccountList,
    AccountObject,
    AccountUpdateRequest,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyObject,
    CreditEntry,
    CreditEntryList,
    CreditRequest,
    GroupBy,
    KeyCreateRequest,
    KeyUpdateRequest,
    UsageList,
    UsageSummary,
    parse_timestamp,
)
from ccapi.schemas.errors import ErrorResponse
from ccapi.storage.store import Store

router = APIRouter(
    prefix="/admin",
    tags=["Admin"],
    dependencies=[Depends(admin)],
    responses={status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 415)},
)

USAGE_FIELDS = (
    "request_id",
    "created",
    "account_id",
    "key_id",
    "route",
    "requested_models",
    "model",
    "provider",
    "attempts",
    "status",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "input_cost",
    "output_cost",
    "cost",
    "latency_ms",
    "ttft_ms",
    "stream",
)
MONEY_FIELDS = ("input_cost", "output_cost", "cost")


# -- the body, with exact numbers ----------------------------------------------


async def exact_json_body(request: Request) -> Any:
    """The JSON body with fractions as `Decimal`, as written: money never passes
    through a binary float. `json_body` makes the contract's 415/413/400 checks
    over the same bytes (Starlette keeps them once read)."""
    declared = request.headers.get("content-length")
    if not (declared and declared.isdigit() and int(declared) > gateway_of(request).settings.max_body_bytes):
        await request.body()
    refused: InvalidRequestError | None = None
    try:
        await json_body(request)
    except InvalidRequestError as exc:
        if exc.code != "invalid_json":
            raise
        refused = exc
    constants: list[str] = []
    try:
        data = json.loads(await request.body(), parse_float=Decimal, parse_constant=lambda c: _constant(c, constants))
    except (ValueError, RecursionError):
        raise refused or InvalidRequestError("The request body is not valid JSON.", code="invalid_json") from None
    # NaN and Infinity are not JSON, but Python's json module writes them: the
    # field's validation names them instead of a bare "invalid JSON".
    if refused is not None and not constants:
        raise refused
    return data


def _constant(name: str, seen: list[str]) -> Decimal:
    seen.append(name)
    return Decimal(name)


# -- rendering ----------------------------------------------------------------


def render_credit(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["id"],
        "object": "credit_entry",
        "account_id": entry["account_id"],
        "amount": float(entry["amount"]),
        "balance_after": float(entry["balance_after"]),
        "reason": entry["reason"],
        "created": int(entry["created"]),
    }


def render_usage(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row[name] for name in USAGE_FIELDS}
    out["created"] = int(row["created"])
    for name in MONEY_FIELDS:
        out[name] = float(row[name])
    return out


def usage_csv(rows: list[dict[str, Any]]) -> str:
    """Ledger rows (as the Store gives them) as CSV with a header row; lists as JSON text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(USAGE_FIELDS)
    for row in rows:
        writer.writerow([_csv_cell(name, row[name]) for name in USAGE_FIELDS])
    return buffer.getvalue()


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "created":
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # no exponent, no float drift
    if isinstance(value, list | dict | bool):
        return orjson.dumps(value).decode()
    return str(value)


def render_group(group_by: str, group: dict[str, Any]) -> dict[str, Any]:
    name = group["group"]
    if group_by == "day" and name is not None:
        name = datetime.fromtimestamp(float(name), UTC).strftime("%Y-%m-%d")
    return {**group, "group": name, "cost": float(group["cost"])}


# -- services -----------------------------------------------------------------


def account_not_found(account_id: str, param: str | None = None) -> NotFoundError:
    return NotFoundError(f"No account {account_id!r}.", code="account_not_found", param=param)


def key_not_found(key_id: str) -> NotFoundError:
    return NotFoundError(f"No API key {key_id!r}.", code="key_not_found")


async def get_account(store: Store, account_id: str, param: str | None = None) -> Account:
    account = await store.get_account(account_id)
    if account is None:
        raise account_not_found(account_id, param)
    return account


async def update_account(store: Store, account_id: str, req: AccountUpdateRequest) -> Account:
    account = await store.update_account(account_id, req.model_dump(include=req.model_fields_set))
    if account is None:
        raise account_not_found(account_id)
    return account


async def add_credits(store: Store, account_id: str, req: CreditRequest) -> dict[str, Any]:
    try:
        entry = await store.add_credits(account_id, req.amount, req.reason)
    except ValueError:
        account = await get_account(store, account_id)
        raise InvalidRequestError(
            f"An adjustment of {req.amount} would take the balance ({account.balance}) below zero.",
            code="balance_below_zero",
            param="amount",
        ) from None
    if entry is None:
        raise account_not_found(account_id)
    return entry


def check_key_fields(fields: dict[str, Any], model_ids: Collection[str]) -> None:
    """The rules that span fields or need the catalog (pydantic checked the rest)."""
    if fields.get("spend_limit_period") is not None and fields.get("spend_limit") is None:
        raise InvalidRequestError(
            "A spend_limit_period needs a spend_limit (send null for both to remove the limit).",
            code="invalid_value",
            param="spend_limit_period",
        )
    patterns = fields.get("allowed_models") or []
    for i, (pattern, compiled) in enumerate(zip(patterns, compile_patterns(patterns), strict=True)):
        if not any(compiled.match(model_id) for model_id in model_ids):
            raise InvalidRequestError(
                f"The pattern {pattern!r} matches no model in the catalog (ids are `provider/model`).",
                code="invalid_value",
                param=f"allowed_models[{i}]",
            )


async def create_key(store: Store, req: KeyCreateRequest, model_ids: Collection[str]) -> tuple[ApiKey, str]:
    fields = req.model_dump(exclude={"account_id"})
    check_key_fields(fields, model_ids)
    created = await store.create_key(req.account_id, fields)
    if created is None:
        raise account_not_found(req.account_id, "account_id")
    return created


async def get_key(store: Store, key_id: str) -> ApiKey:
    key = await store.get_key(key_id)
    if key is None:
        raise key_not_found(key_id)
    return key


async def update_key(store: Store, key_id: str, req: KeyUpdateRequest, model_ids: Collection[str]) -> ApiKey:
    key = await get_key(store, key_id)
    changes = req.model_dump(include=req.model_fields_set)
    current = {"spend_limit": key.spend_limit, "spend_limit_period": key.spend_limit_period}
    check_key_fields({**current, **changes}, model_ids)
    updated = await store.update_key(key_id, changes) if changes else key
    if updated is None:
        raise key_not_found(key_id)
    return updated


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Idempotent: a revoked key keeps its first revocation time."""
    key = await get_key(store, key_id)
    if key.revoked_at is not None:
        return key
    revoked = await store.update_key(key_id, {"revoked_at": time.time()})
    if revoked is None:
        raise key_not_found(key_id)
    return revoked


def time_filter(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise InvalidRequestError(f"Invalid '{name}': {exc}.", code="invalid_value", param=name) from None


def usage_filters(
    account_id: Annotated[str | None, Query(min_length=1)] = None,
    key_id: Annotated[str | None, Query(min_length=1)] = None,
    model: Annotated[str | None, Query(min_length=1, description="`provider/model`")] = None,
    provider: Annotated[str | None, Query(min_length=1)] = None,
    status: Annotated[int | None, Query(ge=100, le=599, description="HTTP status of the request")] = None,
    since: Annotated[
        str | None, Query(description="unix seconds or ISO-8601 (UTC unless an offset); inclusive")
    ] = None,
    until: Annotated[
        str | None, Query(description="unix seconds or ISO-8601 (UTC unless an offset); exclusive")
    ] = None,
) -> dict[str, Any]:
    filters = {"account_id": account_id, "key_id": key_id, "model": model, "provider": provider, "status": status}
    start, end = time_filter("since", since), time_filter("until", until)
    if start is not None and end is not None and end <= start:
        raise InvalidRequestError("'until' must be later than 'since'.", code="invalid_value", param="until")
    return {**filters, "since": start, "until": end}


UsageFilters = Annotated[dict[str, Any], Depends(usage_filters)]


# -- accounts -----------------------------------------------------------------


@router.post(
    "/accounts",
    response_model=AccountObject,
    summary="Create an account",
    description="Answers 200 with the account (as OpenAI's create routes do).",
    openapi_extra=request_body(AccountCreateRequest),
)
async def create_account_route(request: Request) -> Response:
    req = validate_body(AccountCreateRequest, await exact_json_body(request))
    gateway = gateway_of(request)
    account = await gateway.store.create_account(req.name, req.credits, req.rpm, req.tpm)
    gateway.keys.put_account(account.id, account.rpm, account.tpm)
    return json_response(account.to_dict())


@router.get("/accounts", response_model=AccountList, summary="List accounts (oldest first)")
async def list_accounts_route(request: Request, limit: Limit = 100, offset: Offset = 0) -> Response:
    accounts, total = await gateway_of(request).store.list_accounts(limit, offset)
    return json_response(page([a.to_dict() for a in accounts], total, limit, offset))


@router.get("/accounts/{account_id}", response_model=AccountObject, summary="Get an account")
async def get_account_route(request: Request, account_id: str) -> Response:
    return json_response((await get_account(gateway_of(request).store, account_id)).to_dict())


@router.patch(
    "/accounts/{account_id}",
    response_model=AccountObject,
    summary="Update an account's name or limits",
    openapi_extra=request_body(AccountUpdateRequest),
)
async def update_account_route(request: Request, account_id: str) -> Response:
    req = validate_body(AccountUpdateRequest, await exact_json_body(request))
    gateway = gateway_of(request)
    account = await update_account(gateway.store, account_id, req)
    gateway.keys.put_account(account.id, account.rpm, account.tpm)  # this instance at once; others poll
    return json_response(account.to_dict())


@router.post(
    "/accounts/{account_id}/credits",
    response_model=CreditEntry,
    summary="Top up, or adjust with a negative amount",
    description="The balance never goes below zero: such an adjustment is a 400 naming `amount`.",
    openapi_extra=request_body(CreditRequest),
)
async def add_credits_route(request: Request, account_id: str) -> Response:
    req = validate_body(CreditRequest, await exact_json_body(request))
    return json_response(render_credit(await add_credits(gateway_of(request).store, account_id, req)))


@router.get(
    "/accounts/{account_id}/credits",
    response_model=CreditEntryList,
    summary="An account's credit entries (newest first)",
)
async def list_credits_route(request: Request, account_id: str, limit: Limit = 100, offset: Offset = 0) -> Response:
    store = gateway_of(request).store
    await get_account(store, account_id)
    entries, total = await store.list_credits(account_id, limit, offset)
    return json_response(page([render_credit(e) for e in entries], total, limit, offset))


# -- keys -----------------------------------------------------------------------


@router.post(
    "/keys",
    response_model=ApiKeyCreated,
    summary="Create an API key",
    description="`key`, the secret, is in this answer only; later reads show its `prefix`.",
    openapi_extra=request_body(KeyCreateRequest),
)
async def create_key_route(request: Request) -> Response:
    req = validate_body(KeyCreateRequest, await exact_json_body(request))
    gateway = gateway_of(request)
    key, secret = await create_key(gateway.store, req, gateway.catalog.models.keys())
    gateway.keys.put(key)
    return json_response({**key.to_dict(), "key": secret})


@router.get("/keys", response_model=ApiKeyList, summary="List API keys (oldest first)")
async def list_keys_route(
    request: Request,
    account_id: Annotated[str | None, Query(min_length=1, description="only this account's keys")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    store = gateway_of(request).store
    if account_id is not None:
        await get_account(store, account_id, "account_id")
    keys, total = await store.list_keys(account_id, limit, offset)
    return json_response(page([k.to_dict() for k in keys], total, limit, offset))


@router.get("/keys/{key_id}", response_model=ApiKeyObject, summary="Get an API key")
async def get_key_route(request: Request, key_id: str) -> Response:
    return json_response((await get_key(gateway_of(request).store, key_id)).to_dict())


@router.patch(
    "/keys/{key_id}",
    response_model=ApiKeyObject,
    summary="Update an API key's name, role or limits",
    openapi_extra=request_body(KeyUpdateRequest),
)
async def update_key_route(request: Request, key_id: str) -> Response:
    req = validate_body(KeyUpdateRequest, await exact_json_body(request))
    gateway = gateway_of(request)
    key = await update_key(gateway.store, key_id, req, gateway.catalog.models.keys())
    gateway.keys.put(key)  # this instance at once; others within 2 seconds
    return json_response(key.to_dict())


@router.delete(
    "/keys/{key_id}", response_model=ApiKeyObject, summary="Revoke an API key", description="Answers the revoked key."
)
async def revoke_key_route(request: Request, key_id: str) -> Response:
    gateway = gateway_of(request)
    key = await revoke_key(gateway.store, key_id)
    gateway.keys.put(key)
    return json_response(key.to_dict())


# -- usage ----------------------------------------------------------------------


@router.get(
    "/usage",
    response_model=UsageList,
    summary="Ledger rows (newest first)",
    description="Model-calling requests, not credit entries. `format=csv` answers `text/csv` "
    "(header row; `requested_models` and `attempts` as JSON text).",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def list_usage_route(
    request: Request,
    filters: UsageFilters,
    limit: Limit = 100,
    offset: Offset = 0,
    format: Literal["json", "csv"] = "json",
) -> Response:
    rows, total = await gateway_of(request).store.query_usage(filters, limit, offset)
    if format == "csv":
        return Response(
            usage_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="usage.csv"', "x-total-count": str(total)},
        )
    return json_response(page([render_usage(r) for r in rows], total, limit, offset))


@router.get("/usage/summary", response_model=UsageSummary, summary="Usage aggregates: requests, tokens, cost")
async def usage_summary_route(request: Request, filters: UsageFilters, group_by: GroupBy = "day") -> Response:
    groups = await gateway_of(request).store.usage_summary(group_by, filters)
    data = [render_group(group_by, g) for g in groups]
    return json_response({"object": "list", "group_by": group_by, "data": data})
