"""User-given URLs are fetched safely: scheme, address (every redirect hop),
size, type and time are checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ccapi.files.fetch import UnsafeURLError, address_allowed, fetch

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


@pytest.fixture()
async def server() -> AsyncIterator[str]:
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"\0" * 5000, content_type="image/png")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=PNG, content_type="image/png")

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def to_image(_: web.Request) -> web.Response:
        raise web.HTTPFound("/image.png")

    app = web.Application()
    app.router.add_get("/image.png", image)
    app.router.add_get("/page", html)
    app.router.add_get("/big.png", big)
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/to-image", to_image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def get(url: str, allow_private: bool = False, **kw: object) -> bytes:
    args = {"param": "contents[1].image.url", "allow_private": allow_private, "max_bytes": 1000, "time_limit": 1.0}
    args.update(kw)
    return (await fetch(url, **args)).data  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://192.168.1.1/x.png",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0.0.0.0/x.png",
        "http://localhost/x.png",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "gopher://127.0.0.1:6379/_INFO",
        "not a url",
    ],
)
async def test_unsafe_urls_are_refused_naming_the_param(url: str) -> None:
    with pytest.raises(UnsafeURLError) as err:
        await get(url)
    assert err.value.status == 400 and err.value.param == "contents[1].image.url"


async def test_a_redirect_to_a_private_address_is_refused(server: str) -> None:
    # The first hop is allowed here (the test server is on loopback), the second is checked anyway.
    with pytest.raises(UnsafeURLError) as err:
        await fetch(f"{server}/to-metadata", param="p", allow_private=False, max_bytes=1000, time_limit=1.0)
    assert "private or reserved" in err.value.message


async def test_operator_may_allow_private_addresses(server: str) -> None:
    assert await get(f"{server}/image.png", allow_private=True) == PNG
    assert await get(f"{server}/to-image", allow_private=True) == PNG


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/page", "wrong_content_type"),
        ("/big.png", "too_large"),
        ("/slow.png", "fetch_timeout"),
        ("/nope.png", "fetch_failed"),
    ],
)
async def test_type_size_time_and_status_are_checked(server: str, path: str, code: str) -> None:
    with pytest.raises(UnsafeURLError) as err:
        await get(f"{server}{path}", allow_private=True)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("100.64.0.1", False),
     ("fe80::1", False), ("::ffff:10.0.0.1", False), ("224.0.0.1", False)],
)  # fmt: skip
def test_address_rule(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed
