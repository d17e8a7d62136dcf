"""The page as a new user meets it: no snapclient yet, a fresh browser.

``broadcaster serve`` (the real CLI) over a real snapserver with one stream
and no room at all: the page loads without a console error (its icon
included) and offers "Play here", which makes this browser the first room.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_web_page import TOKEN, serving
from tests.support.browser import DevTools
from tests.support.procs import wait_until
from tests.support.snapserver import SnapServer, StreamSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_house(tmp_path: Path, snap_tools: None) -> Iterator[SnapServer]:
    """snapserver's first start: one stream, no room ever connected."""
    base = tmp_path / "snap"
    server = SnapServer(base, [StreamSpec("Main", path=base / "fifo-main")])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def serve_empty(tmp_path: Path, empty_house: SnapServer) -> Iterator[int]:
    with serving(tmp_path, empty_house, os.environ) as port:
        yield port


async def test_no_rooms_yet_play_here_makes_the_first_room(
    empty_house: SnapServer, serve_empty: int, page: DevTools
) -> None:
    assert await asyncio.to_thread(empty_house.clients) == {}
    await page.navigate(f"http://127.0.0.1:{serve_empty}/#token={TOKEN}")

    await page.wait_for(
        "!!document.querySelector('#play-first:not([hidden])')",
        30,
        "'Play here' on the page with no rooms",
    )
    await page.click_selector("#play-first")

    def first_room() -> str:
        for group in empty_house.status()["groups"]:
            for client in group["clients"]:
                if client["id"].startswith("browser-") and client["connected"]:
                    return str(group["stream_id"])
        return ""

    stream = await asyncio.to_thread(wait_until, first_room, 30, "this browser as the first room")
    assert stream == "Main"

    await page.wait_for(
        "!!document.querySelector('.room[data-room^=\"browser-\"]') &&"
        " document.querySelector('.play-here').getAttribute('aria-pressed') === 'true'",
        20,
        "the page to list this browser as a playing room",
    )
    await page.evaluate("1")  # collect what the console said meanwhile
    assert page.errors == [], page.errors


async def test_page_loads_without_console_errors_and_has_an_icon(
    serve_empty: int, page: DevTools
) -> None:
    await page.navigate(f"http://127.0.0.1:{serve_empty}/#token={TOKEN}")

    await page.wait_for(
        "document.querySelector('#link')?.dataset.state === 'up'", 30, "the page to connect"
    )
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(f"http://127.0.0.1:{serve_empty}/favicon.ico") as reply,
    ):
        assert reply.status == 200
        assert reply.content_type == "image/svg+xml"
        assert b"<svg" in await reply.read()
    await page.evaluate("1")
    assert page.errors == [], page.errors
