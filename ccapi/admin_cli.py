"""`ccapi accounts | keys | usage`: the operator's commands, run against the database.

They apply the admin API's rules (its request models and service functions),
so the CLI accepts exactly what `POST /admin/...` accepts. A running gateway
sees a change within 2 seconds (its key cache polls the database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ccapi.billing.types import ApiKey
from ccapi.config import Settings, load_settings

if TYPE_CHECKING:
    from ccapi.storage.store import Store

M = TypeVar("M", bound=BaseModel)
Action = Callable[["Store", Settings], Awaitable[int]]

# The API's field names as the CLI spells them, for error messages.
FLAGS = {
    "name": "--name",
    "credits": "--credits",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "amount": "AMOUNT",
    "reason": "--reason",
    "account_id": "--account",
    "spend_limit": "--spend-limit",
    "spend_limit_period": "--period",
    "allowed_models": "--allow",
    "expires_at": "--expires",
    "since": "--since",
    "until": "--until",
}

# -- wiring -------------------------------------------------------------------------


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, help="YAML config file (as for `ccapi serve`)")
    common.add_argument("--json", action="store_true", help="print the admin API's JSON instead of text")

    accounts = commands.add_parser("accounts", help="create, list and top up accounts").add_subparsers(
        dest="action", required=True
    )
    create = accounts.add_parser("create", parents=[common], help="create an account")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=money, default=Decimal(0), help="initial credits in USD")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute for the account")
    create.add_argument("--tpm", type=int, default=None, help="tokens per minute for the account")
    create.set_defaults(handler=accounts_create)
    listing = accounts.add_parser("list", parents=[common], help="list accounts (oldest first)")
    _paging(listing)
    listing.set_defaults(handler=accounts_list)
    topup = accounts.add_parser("topup", parents=[common], help="add credits (a negative AMOUNT adjusts down)")
    topup.add_argument("account_id", metavar="ID")
    topup.add_argument("amount", metavar="AMOUNT", type=money, help="USD")
    topup.add_argument("--reason", default=None, help="recorded with the credit entry")
    topup.set_defaults(handler=accounts_topup)

    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", parents=[common], help="create a key (prints its secret once)")
    create.add_argument("--account", required=True, help="the account's id")
    create.add_argument("--name", default=None)
    create.add_argument("--admin", action="store_true", help="the key may call /admin routes")
    create.add_argument("--spend-limit", type=money, default=None, help="USD; lifetime unless --period")
    create.add_argument("--period", choices=("day", "month"), default=None, help="the spend limit's period")
    create.add_argument("--rpm", type=int, default=None)
    create.add_argument("--tpm", type=int, default=None)
    create.add_argument(
        "--allow", nargs="+", default=None, metavar="PATTERN", help="allowed models: globs like 'openai/*'"
    )
    create.add_argument("--expires", default=None, help="ISO-8601 datetime (UTC unless an offset) or unix seconds")
    create.set_defaults(handler=keys_create)
    listing = keys.add_parser("list", parents=[common], help="list keys (oldest first)")
    listing.add_argument("--account", default=None, help="only this account's keys")
    _paging(listing)
    listing.set_defaults(handler=keys_list)
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=keys_revoke)

    usage = commands.add_parser("usage", parents=[common], help="request rows of the ledger (newest first)")
    for flag in ("--account", "--key", "--model", "--provider"):
        usage.add_argument(flag, default=None)
    usage.add_argument("--status", type=int, default=None, help="HTTP status")
    usage.add_argument("--since", default=None, help="ISO-8601 or unix seconds (inclusive)")
    usage.add_argument("--until", default=None, help="ISO-8601 or unix seconds (exclusive)")
    usage.add_argument("--csv", action="store_true", help="CSV with a header row")
    _paging(usage)
    usage.set_defaults(handler=usage_list)


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_int, default=100, help="rows to show (default 100)")
    parser.add_argument("--offset", type=non_negative_int, default=0, help="rows to skip")


def money(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run(args: argparse.Namespace, action: Action) -> int:
    """Settings as `ccapi serve` reads them, migrations, then `action` on the Store.
    Exit codes: 0 done, 1 refused (unknown id, database unreachable), 2 bad input or settings."""
    from sqlalchemy.exc import SQLAlchemyError

    from ccapi.core.errors import CCAPIError, InvalidRequestError
    from ccapi.storage.migrate import upgrade
    from ccapi.storage.store import Store

    try:
        settings = load_settings(args.config)
    except (ValidationError, ValueError) as exc:
        return fail(f"cannot use the settings: {exc}", 2)

    async def main() -> int:
        store = Store(settings.database_url)
        try:
            return await action(store, settings)
        finally:
            await store.close()

    try:
        upgrade(settings.database_url)
        return asyncio.run(main())
    except SQLAlchemyError as exc:
        return fail(f"database error: {exc}", 1)
    except InvalidRequestError as exc:
        return fail(_bad_input(exc.param, exc.message), 2)
    except CCAPIError as exc:
        return fail(exc.message, 1)


def fail(message: str, code: int) -> int:
    print(f"ccapi: {message}", file=sys.stderr)
    return code


def _bad_input(param: str | None, message: str) -> str:
    if param is None:
        return message
    flag = FLAGS.get(param.split("[", 1)[0], f"--{param.replace('_', '-')}")
    prefix = f"Invalid '{param}': "
    if message.startswith(prefix):
        return f"invalid {flag}: {message.removeprefix(prefix)}"
    return f"{flag}: {message}"


def request(model: type[M], data: dict[str, Any]) -> M:
    from ccapi.api.validation import validate_body

    return validate_body(model, {k: v for k, v in data.items() if v is not None})


def show(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


# -- accounts -----------------------------------------------------------------------


def accounts_create(args: argparse.Namespace) -> int:
    from ccapi.schemas.admin import AccountCreateRequest

    async def action(store: Store, _: Settings) -> int:
        req = request(
            AccountCreateRequest, {"name": args.name, "credits": args.credits, "rpm": args.rpm, "tpm": args.tpm}
        )
        account = await store.create_account(req.name, req.credits, req.rpm, req.tpm)
        text = (
            f"Created account {account.id} ({account.name}): balance {usd(account.balance)}, "
            f"rpm {dash(account.rpm)}, tpm {dash(account.tpm)}.\n"
            f"Next: ccapi keys create --account {account.id}"
        )
        return show(args, account.to_dict(), text)

    return run(args, action)


def accounts_list(args: argparse.Namespace) -> int:
    async def action(store: Store, _: Settings) -> int:
        accounts, total = await store.list_accounts(args.limit, args.offset)
        rows = [
            (a.id, a.name, usd(a.balance), usd(a.reserved), dash(a.rpm), dash(a.tpm), when(a.created)) for a in accounts
        ]
        text = table(("ID", "NAME", "BALANCE", "RESERVED", "RPM", "TPM", "CREATED"), rows)
        data = {"object": "list", "data": [a.to_dict() for a in accounts], "total": total}
        return show(args, data, text + footer(len(rows), total, args.offset, "accounts"))

    return run(args, action)


def accounts_topup(args: argparse.Namespace) -> int:
    from ccapi.api.admin import add_credits, render_credit
    from ccapi.schemas.admin import CreditRequest

    async def action(store: Store, _: Settings) -> int:
        reason = args.reason or (
            "adjustment (ccapi accounts topup)" if args.amount < 0 else "top-up (ccapi accounts topup)"
        )
        entry = await add_credits(
            store, args.account_id, request(CreditRequest, {"amount": args.amount, "reason": reason})
        )
        verb = "Removed" if args.amount < 0 else "Added"
        text = (
            f"{verb} {usd(abs(args.amount))} {'from' if args.amount < 0 else 'to'} {args.account_id}: "
            f"balance now {usd(entry['balance_after'])} (entry {entry['id']})."
        )
        return show(args, render_credit(entry), text)

    return run(args, action)


# -- keys -----------------------------------------------------------------------------


def keys_create(args: argparse.Namespace) -> int:
    from ccapi.api.admin import create_key
    from ccapi.catalog.catalog import Catalog
    from ccapi.schemas.admin import KeyCreateRequest

    async def action(store: Store, settings: Settings) -> int:
        fields = {
            "account_id": args.account,
            "name": args.name,
            "admin": args.admin,
            "spend_limit": args.spend_limit,
            "spend_limit_period": args.period,
            "rpm": args.rpm,
            "tpm": args.tpm,
            "allowed_models": args.allow,
            "expires_at": args.expires,
        }
        model_ids = Catalog.load(settings.catalog_files, settings.aliases).models.keys() if args.allow else ()
        key, secret = await create_key(store, request(KeyCreateRequest, fields), model_ids)
        text = (
            f"Created key {key.id} for account {key.account_id}: {describe_key(key)}.\n"
            "Secret (shown only this once; store it now):\n"
            f"{secret}"
        )
        return show(args, {**key.to_dict(), "key": secret}, text)

    return run(args, action)


def keys_list(args: argparse.Namespace) -> int:
    from ccapi.api.admin import get_account

    async def action(store: Store, _: Settings) -> int:
        if args.account is not None:
            await get_account(store, args.account, "account_id")
        keys, total = await store.list_keys(args.account, args.limit, args.offset)
        rows = [
            (
                k.id,
                k.account_id,
                dash(k.name),
                k.prefix + "…",
                "yes" if k.admin else "no",
                spend_limit(k),
                usd(k.spent),
                dash(k.rpm),
                dash(k.tpm),
                ",".join(k.allowed_models) if k.allowed_models else "*",
                when(k.expires_at),
                key_status(k),
            )
            for k in keys
        ]
        headers = ("ID", "ACCOUNT", "NAME", "PREFIX", "ADMIN", "SPEND LIMIT", "SPENT", "RPM", "TPM", "MODELS")
        text = table((*headers, "EXPIRES", "STATUS"), rows)
        data = {"object": "list", "data": [k.to_dict() for k in keys], "total": total}
        return show(args, data, text + footer(len(rows), total, args.offset, "keys"))

    return run(args, action)


def keys_revoke(args: argparse.Namespace) -> int:
    from ccapi.api.admin import get_key, revoke_key

    async def action(store: Store, _: Settings) -> int:
        before = await get_key(store, args.key_id)
        key = await revoke_key(store, args.key_id)
        if before.revoked_at is not None:
            text = f"Key {key.id} ({key.prefix}…) was already revoked on {when(key.revoked_at)}."
        else:
            text = f"Revoked key {key.id} ({key.prefix}…). Running gateways refuse it within 2 seconds."
        return show(args, key.to_dict(), text)

    return run(args, action)


# -- usage --------------------------------------------------------------------------


def usage_list(args: argparse.Namespace) -> int:
    from ccapi.api.admin import render_usage, time_filter, usage_csv

    async def action(store: Store, _: Settings) -> int:
        filters = {
            "account_id": args.account,
            "key_id": args.key,
            "model": args.model,
            "provider": args.provider,
            "status": args.status,
            "since": time_filter("since", args.since),
            "until": time_filter("until", args.until),
        }
        found, total = await store.query_usage(filters, args.limit, args.offset)
        if args.csv:
            sys.stdout.write(usage_csv(found))
            return 0
        rows = [
            (
                when(r["created"]),
                r["request_id"],
                dash(r["model"]),
                str(r["status"]),
                str(r["prompt_tokens"]),
                str(r["completion_tokens"]),
                usd(r["cost"]),
                f"{r['latency_ms']:.0f}",
                dash(r["account_id"]),
                dash(r["key_id"]),
            )
            for r in found
        ]
        headers = ("TIME (UTC)", "REQUEST ID", "MODEL", "STATUS", "IN", "OUT", "COST", "MS", "ACCOUNT", "KEY")
        data = {"object": "list", "data": [render_usage(r) for r in found], "total": total}
        return show(args, data, table(headers, rows) + footer(len(rows), total, args.offset, "requests"))

    return run(args, action)


# -- text output ----------------------------------------------------------------------


def usd(amount: Decimal) -> str:
    """At least cents, every significant digit after them (no float rounding)."""
    places = max(2, -int(amount.normalize().as_tuple().exponent)) if amount else 2
    return f"{amount:.{places}f} USD"


def dash(value: Any) -> str:
    return "-" if value is None else str(value)


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spend_limit(key: ApiKey) -> str:
    if key.spend_limit is None:
        return "-"
    return f"{usd(key.spend_limit)}/{key.spend_limit_period or 'lifetime'}"


def key_status(key: ApiKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= time.time():
        return "expired"
    return "active"


def describe_key(key: ApiKey) -> str:
    parts = [
        f"name {dash(key.name)}",
        "admin" if key.admin else "not admin",
        f"spend limit {spend_limit(key)}",
        f"rpm {dash(key.rpm)}",
        f"tpm {dash(key.tpm)}",
        f"models {', '.join(key.allowed_models) if key.allowed_models else 'all'}",
        f"expires {when(key.expires_at)}",
    ]
    return ", ".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in (headers, *rows)
    ]
    return "\n".join(lines)


def footer(shown: int, total: int, offset: int, noun: str) -> str:
    if shown == 0:
        return f"\n(no {noun})" if total == 0 else f"\n(no {noun} past offset {offset}; {total} in all)"
    more = f"; --offset {offset + shown} for more" if offset + shown < total else ""
    return f"\n({offset + 1}-{offset + shown} of {total} {noun}{more})"


# -- ccapi serve ----------------------------------------------------------------------


def first_run_hint(settings: Settings, config: str | None) -> str | None:
    """How to create the first account and key, when the database has none."""
    from ccapi.storage.store import Store

    async def count() -> int:
        store = Store(settings.database_url)
        try:
            return (await store.list_accounts(1, 0))[1]
        finally:
            await store.close()

    from sqlalchemy.exc import SQLAlchemyError

    try:
        if asyncio.run(count()):
            return None
    except SQLAlchemyError:
        return None  # the gateway reports its database itself (/health/ready)
    where = f" --config {config}" if config else ""
    return (
        "No accounts yet. Create the first account and its key (the secret is printed once):\n"
        f"  ccapi accounts create{where} --name NAME --credits 10\n"
        f"  ccapi keys create{where} --account ACCOUNT_ID\n"
        "or call POST /admin/accounts and POST /admin/keys with the master key."
    )
