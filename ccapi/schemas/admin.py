"""The admin routes' shapes: accounts, credit entries, API keys, usage rows.

Request bodies are strict and closed (an unknown field is a 400 naming it).
Money arrives as `Decimal` (the admin routes parse JSON numbers exactly, see
`ccapi.api.admin.exact_json_body`) and leaves as a JSON number.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

MONEY_PLACES = 10  # the ledger's precision (tables.Money)
MAX_MONEY = Decimal(10) ** 8
# 9999-12-31T23:59:59Z: a bigger "unix time" is a mistake (milliseconds, most likely).
MAX_UNIX_SECONDS = 253402300799


def _money(value: Any) -> Decimal:
    """A USD amount: a finite number with at most 10 decimal places, |x| <= 1e8."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("decimal_type", "Input should be a number")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise PydanticCustomError("decimal_type", "Input should be a number") from None
    if not amount.is_finite():
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    if abs(amount) > MAX_MONEY:
        raise PydanticCustomError("money_range", "Amounts are limited to 100000000 USD")
    if _decimal_places(amount) > MONEY_PLACES:
        raise PydanticCustomError("money_places", "Amounts have at most 10 decimal places")
    return amount


def _decimal_places(amount: Decimal) -> int:
    # Not normalize(): it rounds to the context's 28 digits and would hide a 29th.
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -exponent - (len(digits) - len(significant)))


def _non_negative(amount: Decimal) -> Decimal:
    if amount < 0:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 0")
    return amount


def _non_zero(amount: Decimal) -> Decimal:
    if amount == 0:
        raise PydanticCustomError("non_zero", "Input should not be zero")
    return amount


def parse_timestamp(value: Any) -> float:
    """Unix seconds (a number or a numeric string) or an ISO-8601 date/datetime
    (UTC when it names no offset) -> unix seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise PydanticCustomError("timestamp_type", "Input should be unix seconds or an ISO-8601 datetime")
    seconds: float | None = None
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise PydanticCustomError(
                    "timestamp_format", "Input should be unix seconds or an ISO-8601 datetime"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise PydanticCustomError("timestamp_range", "Input should be unix seconds between 1970 and 9999")
    return seconds


def _in_future(seconds: float) -> float:
    if seconds <= time.time():
        raise PydanticCustomError("timestamp_past", "Input should be in the future")
    return seconds


Money = Annotated[
    Decimal,
    PlainValidator(_money),
    WithJsonSchema({"type": "number", "description": "USD; at most 10 decimal places; |amount| <= 1e8"}),
]
NonNegativeMoney = Annotated[Money, AfterValidator(_non_negative)]
NonZeroMoney = Annotated[Money, AfterValidator(_non_zero)]
FutureTime = Annotated[
    float,
    PlainValidator(parse_timestamp),
    AfterValidator(_in_future),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "unix seconds or an ISO-8601 datetime (UTC unless it has an offset); in the future",
        }
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
PerMinute = Annotated[int, Field(ge=1, le=1_000_000_000)]
ModelPattern = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(description="a glob over `provider/model` ids: `openai/*`, `anthropic/claude-*`"),
]
Period = Literal["day", "month"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("not_null", "This field cannot be null")
    return value


# -- requests ---------------------------------------------------------------


class AccountCreateRequest(_Body):
    name: Name
    credits: NonNegativeMoney = Field(default=Decimal(0), description="initial credits (USD)")
    rpm: PerMinute | None = Field(default=None, description="requests per minute for the whole account")
    tpm: PerMinute | None = Field(default=None, description="tokens per minute for the whole account")


class AccountUpdateRequest(_Body):
    """Only the fields sent change; `null` removes a limit."""

    name: Name | None = None
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None

    _name_not_null = field_validator("name", mode="before")(_not_null)


class CreditRequest(_Body):
    amount: NonZeroMoney = Field(description="USD; negative for an adjustment (the balance never goes below 0)")
    reason: Reason


class KeyFields(_Body):
    """What a key may carry (create and update)."""

    name: Name | None = None
    admin: bool = False
    spend_limit: NonNegativeMoney | None = Field(default=None, description="USD; null for no limit")
    spend_limit_period: Period | None = Field(default=None, description="`day`, `month`, or null for lifetime")
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None
    allowed_models: list[ModelPattern] | None = Field(
        default=None, min_length=1, max_length=100, description="null: every model"
    )
    expires_at: FutureTime | None = Field(default=None, description="null: never")


class KeyCreateRequest(KeyFields):
    account_id: str = Field(min_length=1, max_length=40)


class KeyUpdateRequest(KeyFields):
    """Only the fields sent change; `null` removes a limit, a pattern list or the expiry."""

    _admin_not_null = field_validator("admin", mode="before")(_not_null)


# -- responses --------------------------------------------------------------


class _Page(BaseModel):
    object: Literal["list"]
    total: int
    limit: int
    offset: int
    has_more: bool


class AccountObject(BaseModel):
    id: str
    object: Literal["account"]
    name: str
    balance: float
    reserved: float = Field(description="held for requests in flight")
    available: float = Field(description="balance - reserved")
    rpm: int | None
    tpm: int | None
    created: int


class AccountList(_Page):
    data: list[AccountObject]


class CreditEntry(BaseModel):
    id: str
    object: Literal["credit_entry"]
    account_id: str
    amount: float
    balance_after: float
    reason: str
    created: int


class CreditEntryList(_Page):
    data: list[CreditEntry]


class ApiKeyObject(BaseModel):
    id: str
    object: Literal["api_key"]
    account_id: str
    name: str | None
    prefix: str = Field(description="the secret's first characters, to recognise it")
    admin: bool
    spend_limit: float | None
    spend_limit_period: Period | None
    spent: float = Field(description="spent in the current period (lifetime without a period)")
    rpm: int | None
    tpm: int | None
    allowed_models: list[str] | None
    expires_at: int | None
    revoked: bool
    revoked_at: int | None
    created: int


class ApiKeyCreated(ApiKeyObject):
    key: str = Field(description="the secret: shown in this answer only")


class ApiKeyList(_Page):
    data: list[ApiKeyObject]


class UsageAttempt(BaseModel):
    provider: str
    model: str
    status: int | None
    latency_ms: float
    error: str | None = None
    # USD this attempt delivered: the answering attempt's is the request's cost,
    # a failed or cancelled (hedged) attempt's is 0. Absent on older rows.
    cost: float | None = None


class UsageRow(BaseModel):
    request_id: str
    created: int
    account_id: str | None
    key_id: str | None
    route: str
    requested_models: list[str]
    model: str | None
    provider: str | None
    attempts: list[UsageAttempt]
    status: int
    error_type: str | None
    prompt_tokens: int
    completion_tokens: int
    input_cost: float
    output_cost: float
    cost: float
    latency_ms: float
    ttft_ms: float | None
    stream: bool


class UsageList(_Page):
    data: list[UsageRow]


GroupBy = Literal["day", "model", "provider", "key", "account"]


class UsageGroup(BaseModel):
    group: str | None = Field(description="`YYYY-MM-DD` (UTC) by day; the id or name otherwise; null for none")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class UsageSummary(BaseModel):
    object: Literal["list"]
    group_by: GroupBy
    data: list[UsageGroup]
