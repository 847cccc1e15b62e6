"""Fetch a URL the user gave us (an input image, a webhook target) safely.

- http and https only;
- no private, loopback, link-local, multicast or reserved address, checked
  on the address actually connected to: the check lives in the connector's
  DNS resolver, so it applies to every hop of a redirect and a name cannot
  resolve to a public address for the check and a private one for the
  connection (DNS rebinding);
- a size limit (read in chunks, stopped at the limit), a time limit, and the
  content type checked against what the caller expects.

`CCAPI_ALLOW_PRIVATE_URLS=true` lifts the address rule (local development and
tests). URLs an upstream provider returns are the provider's, not the
user's; callers fetch them with `allow_private=True`.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from ccapi.core.errors import InvalidRequestError

MAX_REDIRECTS = 3


class UnsafeURLError(InvalidRequestError):
    """The URL may not be fetched (scheme, address, size, type or time)."""


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global excludes private, loopback, link-local, shared (100.64/10),
    # reserved and documentation ranges; multicast is refused on top.
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the default resolver, then drops every non-public address."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to private or reserved addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str


async def fetch(
    url: str,
    *,
    param: str,
    allow_private: bool,
    max_bytes: int,
    time_limit: float,
    accept_prefix: str = "image/",
) -> Fetched:
    """The body of `url`, or UnsafeURLError (400 naming `param`)."""
    connector_args: dict[str, Any] = {} if allow_private else {"resolver": PublicOnlyResolver()}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(**connector_args),
            timeout=aiohttp.ClientTimeout(total=time_limit),
        ) as session:
            # Redirects are followed here, not by aiohttp: a literal IP address
            # never reaches the resolver, so each hop is checked first.
            for _ in range(MAX_REDIRECTS + 1):
                _check(url, param, allow_private)
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                        url = str(resp.url.join(URL(resp.headers["location"])))
                        continue
                    return await _read(resp, url, param, max_bytes, accept_prefix)
            raise UnsafeURLError(f"Too many redirects from {_short(url)}.", code="fetch_failed", param=param)
    except UnsafeURLError:
        raise
    except TimeoutError:
        raise UnsafeURLError(f"Fetching {_short(url)} took too long.", code="fetch_timeout", param=param) from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = "it resolves to a private or reserved address" if "private or reserved" in str(exc) else str(exc)
        raise UnsafeURLError(f"Could not fetch {_short(url)}: {reason}.", code="fetch_failed", param=param) from None


async def check_target(url: str, *, param: str, allow_private: bool) -> None:
    """400 unless `url` may be called (a webhook target): http(s), and every
    address its name resolves to is public (unless private ones are allowed).
    The delivery connects through PublicOnlyResolver as well."""
    _check(url, param, allow_private)
    host = urlsplit(url).hostname or ""
    if allow_private or _is_literal_ip(host):
        return
    resolver = PublicOnlyResolver()
    try:
        await resolver.resolve(host, 0)
    except OSError as exc:
        reason = "it resolves to a private or reserved address" if "private or reserved" in str(exc) else str(exc)
        raise UnsafeURLError(f"The URL cannot be used: {reason}.", code="unsafe_url", param=param) from None
    finally:
        await resolver.close()


def _check(url: str, param: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError(f"Only http(s) URLs can be fetched: {_short(url)}.", code="unsafe_url", param=param)
    if not allow_private and _is_literal_ip(parts.hostname) and not address_allowed(parts.hostname):
        raise UnsafeURLError(
            f"The URL points to a private or reserved address: {_short(url)}.", code="unsafe_url", param=param
        )


async def _read(resp: aiohttp.ClientResponse, url: str, param: str, max_bytes: int, accept_prefix: str) -> Fetched:
    if resp.status >= 400:
        raise UnsafeURLError(f"Fetching {_short(url)} answered HTTP {resp.status}.", code="fetch_failed", param=param)
    if not resp.content_type.startswith(accept_prefix):
        raise UnsafeURLError(
            f"{_short(url)} is {resp.content_type!r}, not {accept_prefix}*.", code="wrong_content_type", param=param
        )
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise UnsafeURLError(f"{_short(url)} is larger than {max_bytes} bytes.", code="too_large", param=param)
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > max_bytes:
            raise UnsafeURLError(f"{_short(url)} is larger than {max_bytes} bytes.", code="too_large", param=param)
    return Fetched(bytes(data), resp.content_type)


def _is_literal_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
