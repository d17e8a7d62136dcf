"""The page on a phone: a 360 x 740 screen in headless Chromium.

A real snapserver with two real snapclient rooms and a stream whose
controlscript follows a real MPRIS test player (with a cover), under
``broadcaster serve``.  Everything is done by taps and typing on the page:
a room's latency and name, the group volume, saving a scene, a party,
restoring the scene.  Each change is checked on snapserver.  The page must
not be wider than the screen.  With ``BROADCASTER_UPDATE_SCREENSHOT=1`` the
screenshot becomes docs/phone.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tools
from tests.integration.test_transport import DEADLINE, png, remote
from tests.support import browser
from tests.support.browser import DevTools
from tests.support.mpris_player import SessionBus, TestPlayer
from tests.support.procs import await_until, wait_until
from tests.support.snapserver import SnapClient, SnapServer, StreamSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 360, 740


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[DevTools]:
    require_tools(browser.missing_tools())
    async with browser.chromium(tmp_path, window=f"{WIDTH},{HEIGHT}") as tools:
        await tools.phone(WIDTH, HEIGHT)
        yield tools


def client(server: SnapServer, room: str) -> dict[str, Any]:
    return dict(server.clients()[room])


def group_of(server: SnapServer, room: str) -> str:
    for group in server.status()["groups"]:
        if any(c["id"] == room for c in group["clients"]):
            return str(group["id"])
    return ""


def room_sel(room: str, inner: str) -> str:
    return f'.room[data-room="{room}"] {inner}'


async def test_a_phone_changes_latency_name_and_restores_a_scene(
    tmp_path: Path,
    session_bus: SessionBus,
    phone: DevTools,
) -> None:
    cover = tmp_path / "cover.png"
    cover.write_bytes(png(48, 48))
    player = TestPlayer(session_bus, "music", tmp_path, art_url=cover.as_uri())
    with remote(tmp_path, session_bus, {"app": player}) as house:
        server = house.server
        rooms = [SnapClient(server, f"room{i}", tmp_path / f"room{i}.raw") for i in (1, 2)]
        try:
            for room in rooms:
                room.start()
            await asyncio.to_thread(
                wait_until, lambda: len(server.clients()) == 2, DEADLINE, "both rooms"
            )
            for room_id, name in (("room1", "Living room"), ("room2", "Bedroom")):
                await asyncio.to_thread(server.rpc, "Client.SetName", {"id": room_id, "name": name})
            await _drive(tmp_path, house.port, server, phone)
        finally:
            for room in rooms:
                room.stop()


async def _drive(tmp_path: Path, port: int, server: SnapServer, page: DevTools) -> None:
    from tests.integration.test_web_page import TOKEN

    await page.navigate(f"http://127.0.0.1:{port}/#token={TOKEN}")

    await page.wait_for(
        "document.querySelectorAll('.room').length === 2"
        " && !!document.querySelector('.now[data-stream=app] .now-art')?.naturalWidth",
        30,
        "both rooms and the player's cover on the page",
    )

    # Nothing wider than the screen: no sideways scrolling on a phone.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide on a {WIDTH} px screen"

    # A room's latency: open its settings, type, leave the field.
    await page.click_selector(room_sel("room1", ".room-more summary"))
    await page.type_into(room_sel("room1", ".room-latency"), "120")
    await asyncio.to_thread(
        wait_until,
        lambda: client(server, "room1")["config"]["latency"] == 120,
        DEADLINE,
        "room1's latency 120 on snapserver",
    )

    # A room's name.
    await page.click_selector(room_sel("room2", ".room-more summary"))
    await page.type_into(room_sel("room2", ".room-rename"), "Kitchen")
    await asyncio.to_thread(
        wait_until,
        lambda: client(server, "room2")["config"]["name"] == "Kitchen",
        DEADLINE,
        "room2 renamed on snapserver",
    )

    async def renamed() -> bool:
        text = await page.evaluate(
            f"document.querySelector('{room_sel('room2', '.room-name')}').textContent"
        )
        return bool(text == "Kitchen")

    await await_until(renamed, DEADLINE, "the new name on the page")
    group1 = await asyncio.to_thread(group_of, server, "room1")
    group2 = await asyncio.to_thread(group_of, server, "room2")
    assert group1 != group2
    await asyncio.to_thread(
        server.rpc, "Client.SetVolume", {"id": "room2", "volume": {"percent": 60, "muted": False}}
    )

    # Save the setup as a scene.
    await page.type_into("#scene-name", "evening")
    await page.click_selector("#scene-form button[type=submit]")

    await page.wait_for(
        "!!document.querySelector('.scene[data-scene=evening]')",
        DEADLINE,
        "the scene listed on the page",
    )

    # Party from the page: one group with both rooms; then other changes.
    await page.click_selector("#party-form button[type=submit]")
    await asyncio.to_thread(
        wait_until,
        lambda: group_of(server, "room1") == group_of(server, "room2"),
        DEADLINE,
        "both rooms in one group",
    )
    await asyncio.to_thread(
        server.rpc, "Client.SetVolume", {"id": "room2", "volume": {"percent": 10, "muted": False}}
    )
    await asyncio.to_thread(server.rpc, "Client.SetLatency", {"id": "room1", "latency": 0})

    # The group volume slider moves both rooms (snapweb's proportional way).
    await page.wait_for(
        "document.querySelectorAll('.group').length === 1",
        DEADLINE,
        "the party's one group on the page",
    )
    box = await page.evaluate(
        "(() => { const e = document.querySelector('.group-volume');"
        " e.scrollIntoView({block: 'center', behavior: 'instant'});"
        " const r = e.getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; })()"
    )
    await page.click(box[0] + box[2] * 0.9, box[1] + box[3] / 2)
    await asyncio.to_thread(
        wait_until,
        lambda: client(server, "room2")["config"]["volume"]["percent"] > 50,
        DEADLINE,
        "the group volume raising room2",
    )

    # Restore the scene: groups, volumes and latency come back.
    await page.click_selector(".scene[data-scene=evening] .scene-restore")

    def restored() -> bool:
        return (
            group_of(server, "room1") != group_of(server, "room2")
            and client(server, "room1")["config"]["latency"] == 120
            and client(server, "room2")["config"]["volume"]["percent"] == 60
        )

    await asyncio.to_thread(wait_until, restored, DEADLINE, "the scene restored on snapserver")

    await page.wait_for(
        "document.querySelectorAll('.group').length === 2",
        DEADLINE,
        "the restored groups on the page",
    )
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide on a {WIDTH} px screen"
    assert page.errors == [], page.errors

    await page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "phone.png"
    png_bytes = await page.screenshot(shot)
    assert png_bytes.startswith(b"\x89PNG")
    if os.environ.get("BROADCASTER_UPDATE_SCREENSHOT"):
        await asyncio.to_thread(shutil.copyfile, shot, REPO / "docs" / "phone.png")


LONG = {
    "room1": "Kitchen-Downstairs-Near-The-Window-Speaker-Left-Channel",
    "room2": "Office" + "x" * 120,
}


async def test_long_names_stay_within_a_phone_screen(
    tmp_path: Path, snap_tools: None, phone: DevTools
) -> None:
    """Room, group and stream names as long as snapserver takes them (no spaces
    to break at) wrap or shrink: the page never scrolls sideways."""
    from tests.integration.test_web_page import TOKEN, serving

    stream = "Spotify-in-the-living-room-on-the-big-speakers-downstairs"
    base = tmp_path / "snap"
    server = SnapServer(base, [StreamSpec(stream, path=base / "fifo")])
    server.start()
    rooms = [SnapClient(server, room, tmp_path / f"{room}.raw") for room in LONG]
    try:
        for room in rooms:
            room.start()
        await asyncio.to_thread(wait_until, lambda: len(server.clients()) == 2, DEADLINE, "rooms")
        for room_id, name in LONG.items():
            await asyncio.to_thread(server.rpc, "Client.SetName", {"id": room_id, "name": name})
        group = await asyncio.to_thread(group_of, server, "room1")
        await asyncio.to_thread(server.rpc, "Group.SetName", {"id": group, "name": "G" * 80})
        with serving(tmp_path, server, os.environ) as port:
            await phone.navigate(f"http://127.0.0.1:{port}/#token={TOKEN}")

            async def named() -> bool:
                text = await phone.evaluate(
                    f"document.querySelector('{room_sel('room2', '.room-name')}')?.textContent"
                )
                return bool(text == LONG["room2"])

            await await_until(named, 30, "the long names on the page")
            wide = await phone.evaluate(
                "[...document.querySelectorAll('body *')]"
                f".filter((e) => e.getBoundingClientRect().right > {WIDTH} + 0.5)"
                ".map((e) => `${e.tagName}.${e.className}`)"
            )
            width = await phone.evaluate("document.documentElement.scrollWidth")
            await phone.screenshot(tmp_path / "long-names.png")
            assert wide == [], f"wider than the {WIDTH} px screen ({width} px): {wide}"
            assert width == WIDTH
            assert phone.errors == [], phone.errors
    finally:
        for room in rooms:
            room.stop()
        server.stop()
