"""The web page in a real headless Chromium against a real snapserver and rooms.

``broadcaster serve`` (the real CLI, a child process) serves the page; Chromium
loads it and is driven over the DevTools protocol.  A mouse click on a room's
volume slider must change that room's volume on snapserver; a volume change
made on snapserver by someone else must show on the page without a reload.
Screenshots are written to each test's tmp dir (the one with a capture playing
also to docs/screenshot.png when ``BROADCASTER_UPDATE_SCREENSHOT=1``).  Another
test types an app's name into the page and broadcasts it (real PipeWire), and
one makes this browser a room with "Play here".

(The outside change is made with the real CLI, ``broadcaster room volume``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_pipeline import make_tone, wait_for_tone
from tests.support.browser import DevTools
from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, await_until, port_open, wait_until
from tests.support.snapserver import House, SnapServer, serve_against

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOKEN = "page-test-token"


@contextlib.contextmanager
def serving(tmp_path: Path, server: SnapServer, base_env: Mapping[str, str]) -> Iterator[int]:
    """``broadcaster serve`` on a loopback port it picks itself (``--port 0``: no other
    test can take it between picking and listening), talking to the test's snapserver."""
    env = {k: v for k, v in base_env.items() if not k.startswith("BROADCASTER_")}
    env.update(
        PYTHONUNBUFFERED="1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),  # scenes: never the user's own
        BROADCASTER_WEB_TOKEN=TOKEN,
        # The browser room's /stream relays to snapserver's stream port.
        BROADCASTER_SNAPSERVER_STREAM_PORT=str(server.stream_port),
    )
    proc = Proc(
        [sys.executable, "-m", "broadcaster", "-vv", *serve_against(server, 0)],
        tmp_path / "serve.log",
        env,
    )

    def listening() -> str:
        """The port serve says it listens on, "exited", or "" (not yet)."""
        if not proc.alive():
            return "exited"
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", proc.log_path.read_text())
        return found.group(1) if found else ""

    try:
        answer = wait_until(listening, 30, "broadcaster serve to listen")
        assert answer != "exited", proc.log_tail()
        port = int(answer)
        assert port_open(port)
        yield port
    finally:
        code = proc.stop(timeout=15)
        assert code == 0, f"serve exited {code}:\n{proc.log_tail()}"


@pytest.fixture
def serve(
    tmp_path: Path,
    two_stream_house: House,
) -> Iterator[int]:
    with serving(tmp_path, two_stream_house.server, os.environ) as port:
        yield port


async def _open(page: DevTools, port: int) -> None:
    await page.navigate(f"http://127.0.0.1:{port}/#token={TOKEN}")

    async def rooms_shown() -> bool:
        count = await page.evaluate("document.querySelectorAll('.room').length")
        return bool(count == 2)

    await await_until(rooms_shown, 30, "the page to show both rooms")


async def test_slider_changes_snapserver_and_outside_changes_show_live(
    tmp_path: Path,
    two_stream_house: House,
    serve: int,
    page: DevTools,
) -> None:
    await asyncio.to_thread(
        two_stream_house.server.rpc,
        "Client.SetVolume",
        {"id": "room1", "volume": {"percent": 90, "muted": False}},
    )
    for room, name in (("room1", "Living room"), ("room2", "Kitchen")):
        await asyncio.to_thread(
            two_stream_house.server.rpc, "Client.SetName", {"id": room, "name": name}
        )
    await _open(page, serve)

    # A click at 25% of room1's slider sets room1's volume on snapserver to about 25.
    rect = await page.evaluate(
        "JSON.stringify(document.querySelector('.room[data-room=\"room1\"] .room-volume')"
        ".getBoundingClientRect())"
    )
    box = json.loads(rect)
    await page.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)

    def room1_volume() -> int:
        return int(two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"])

    volume = await asyncio.to_thread(
        wait_until,
        lambda: room1_volume() if 15 <= room1_volume() <= 35 else 0,
        20,
        "room1's volume near 25 on snapserver",
    )
    assert 15 <= volume <= 35

    # Someone else changes room2 with the CLI: the page follows without a reload.
    marker = await page.evaluate("window.__marker = 'same page'")
    address = f"127.0.0.1:{two_stream_house.server.control_port}"
    for argv in (["room", "volume", "room2", "7"], ["room", "mute", "room2"]):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "broadcaster", *argv, "--server", address],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    async def room2_updated() -> bool:
        value = await page.evaluate(
            "(() => { const r = document.querySelector('.room[data-room=\"room2\"]');"
            " return r.querySelector('.room-volume').value + '/' +"
            " r.querySelector('.room-mute').getAttribute('aria-pressed'); })()"
        )
        return bool(value == "7/true")

    await await_until(room2_updated, 20, "room2's new volume and mute on the page")
    assert await page.evaluate("window.__marker") == marker == "same page"

    # Grouping from the page: room2 joins room1's group, then leaves it again.
    def group_of(room: str) -> str:
        return str(
            next(
                g["id"]
                for g in two_stream_house.server.status()["groups"]
                if any(c["id"] == room for c in g["clients"])
            )
        )

    def same_group() -> bool:
        return group_of("room1") == group_of("room2")

    assert not await asyncio.to_thread(same_group)
    target = await asyncio.to_thread(group_of, "room1")
    await page.evaluate(_choose("room2", target))
    await asyncio.to_thread(wait_until, same_group, 20, "room2 in room1's group")

    await page.wait_for(
        '!!document.querySelector(\'.group:has(.room[data-room="room1"]) '
        '.room[data-room="room2"]\')',
        20,
        "the page to show room2 with room1",
    )
    await page.evaluate(_choose("room2", "\u0000new"))
    await asyncio.to_thread(wait_until, lambda: not same_group(), 20, "room2 in a group of its own")

    png = await page.screenshot(tmp_path / "page.png")
    assert png.startswith(b"\x89PNG")
    assert len(png) > 5000


def _choose(room: str, group: str) -> str:
    """JavaScript choosing ``group`` in a room's group menu, as a user's pick would."""
    return (
        f"(() => {{ const s = document.querySelector('.room[data-room=\"{room}\"] .room-group');"
        f" s.value = {json.dumps(group)}; s.dispatchEvent(new Event('change')); }})()"
    )


def _update_docs_screenshot(path: Path) -> None:
    if os.environ.get("BROADCASTER_UPDATE_SCREENSHOT"):
        shutil.copyfile(path, REPO / "docs" / "screenshot.png")


async def test_play_here_joins_the_tapped_group_on_the_default_stream(
    two_stream_house: House,
    serve: int,
    page: DevTools,
) -> None:
    """As a newcomer meets it: both rooms in groups of their own, both playing
    snapserver's default stream, like the new browser room's own group."""
    if not (REPO / "broadcaster" / "web" / "static" / "player" / "player.js").exists():
        pytest.skip("the browser room (static/player/) is not installed")
    group = await asyncio.to_thread(_group_of, two_stream_house.server, "room1")
    assert {
        g["stream_id"] for g in (await asyncio.to_thread(two_stream_house.server.status))["groups"]
    } == {"Main"}
    await _open(page, serve)

    await page.wait_for(
        '!!document.querySelector(\'.group:has(.room[data-room="room1"]) '
        ".play-here:not([hidden])')",
        20,
        "the Play here button",
    )
    await page.click_selector('.group:has(.room[data-room="room1"]) .play-here')

    def browser_in_group() -> str:
        members = [
            c
            for g in two_stream_house.server.status()["groups"]
            if g["id"] == group
            for c in g["clients"]
        ]
        found = [c["id"] for c in members if c["id"].startswith("browser-") and c["connected"]]
        return found[0] if found else ""

    browser_id = await asyncio.to_thread(
        wait_until, browser_in_group, 30, "this browser in room1's group on snapserver"
    )

    async def button_says_stop() -> bool:
        pressed = await page.evaluate(
            "document.querySelector('.group:has(.room[data-room=\"room1\"]) .play-here')"
            ".getAttribute('aria-pressed')"
        )
        return bool(pressed == "true")

    await await_until(button_says_stop, 20, "the tapped group's button to say Stop")

    # The group's volume reaches the browser room as it reaches room1.
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.put(
            f"http://127.0.0.1:{serve}/api/groups/{group}/volume",
            json={"percent": 30},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()

    def browser_volume() -> int:
        return int(two_stream_house.server.clients()[browser_id]["config"]["volume"]["percent"])

    await asyncio.to_thread(
        wait_until, lambda: browser_volume() == 30, 20, "the group volume on the browser room"
    )

    async def player_volume() -> bool:
        return bool(await page.evaluate("window.player.settings.volume") == 30)

    await await_until(player_volume, 20, "the browser's player to apply volume 30")
    assert page.errors == [], page.errors


def _group_of(server: SnapServer, room: str) -> str:
    return str(
        next(
            g["id"] for g in server.status()["groups"] if any(c["id"] == room for c in g["clients"])
        )
    )


async def test_broadcast_an_app_from_the_page(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_stream_house: House,
    page: DevTools,
) -> None:
    """Type an app's name, tap Broadcast: the capture plays, its meter moves, a room hears it."""
    for room, name in (("room1", "Living room"), ("room2", "Kitchen")):
        await asyncio.to_thread(
            two_stream_house.server.rpc, "Client.SetName", {"id": room, "name": name}
        )
    tone = make_tone(tmp_path / "tone.wav", 440, 48000)
    await asyncio.to_thread(pw_session.play_on_speakers, tone, "Radio")
    with serving(tmp_path, two_stream_house.server, pw_session.env) as port:
        await _open(page, port)
        await page.evaluate(
            "document.querySelector('#capture-app').value = 'Radio'; "
            "document.querySelector('#capture-form button[type=submit]').click()"
        )

        async def capture_playing() -> bool:
            found = await page.evaluate(
                "(() => { const c = document.querySelector('.capture');"
                " return c && c.querySelector('.state').textContent + '/' +"
                " c.querySelector('.meter > div').style.width; })()"
            )
            if not found:
                return False
            state, width = str(found).split("/")
            return state == "playing" and float(width.rstrip("%") or 0) > 20

        await await_until(capture_playing, 40, "the capture playing with a moving meter")
        await asyncio.to_thread(wait_for_tone, two_stream_house.room, 440, 40)

        async def now_playing() -> bool:
            text = await page.evaluate("document.querySelector('#now').textContent")
            return "Radio" in str(text)

        await await_until(now_playing, 20, "Radio under now playing")
        # No MPRIS player behind this stream: no transport buttons, no position.
        assert await page.evaluate(
            "(() => { const n = document.querySelector('.now');"
            " return getComputedStyle(n.querySelector('.now-buttons')).display === 'none'"
            " && getComputedStyle(n.querySelector('.now-time')).display === 'none'; })()"
        )
        await page.screenshot(tmp_path / "capture.png")
        await asyncio.to_thread(_update_docs_screenshot, tmp_path / "capture.png")
        await page.evaluate("document.querySelector('.capture button').click()")

        async def no_capture() -> bool:
            return not await page.evaluate("!!document.querySelector('.capture')")

        await await_until(no_capture, 30, "the capture gone from the page")
        await asyncio.to_thread(
            wait_until,
            lambda: pw_session.stream_sinks("Radio") == ["speakers"],
            15,
            "Radio back on the speakers",
        )
