"""Play, pause, skip and the cover, from the API, the CLI and the page.

A real MPRIS player (the test player, its own process) on a private session
bus; a real snapserver 0.26 whose stream ``app`` runs the controlscript
following it; ``broadcaster serve`` (the real CLI) over that snapserver; the
page in headless Chromium; the CLI as a child process.  Every command is
checked where it lands (the player's own log of calls) and on the page,
without a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import require_tools
from tests.integration.test_control import cli
from tests.integration.test_controlscript import wrapper
from tests.integration.test_pipeline import make_tone
from tests.integration.test_web_page import TOKEN, serving
from tests.support import snapserver
from tests.support.browser import DevTools
from tests.support.mpris_player import MpvPlayer, SessionBus, TestPlayer, mpv_missing
from tests.support.pipewire import PipeWireSession
from tests.support.procs import await_until, free_port, wait_until
from tests.support.snapserver import SnapServer, StreamSpec

pytestmark = pytest.mark.integration

DEADLINE = 20.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png(width: int, height: int) -> bytes:
    """A small real PNG (RGB, a gradient) of the given size."""
    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 170))
            for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class Remote:
    server: SnapServer
    port: int
    players: Mapping[str, TestPlayer | MpvPlayer]


@contextlib.contextmanager
def remote(
    tmp_path: Path,
    bus: SessionBus,
    players: Mapping[str, TestPlayer | MpvPlayer],
    env: Mapping[str, str] | None = None,
) -> Iterator[Remote]:
    """snapserver with one controlscript stream per player (plus a plain one), and serve."""
    require_tools(snapserver.missing_tools())
    for test_player in players.values():
        test_player.start()
    specs = [
        StreamSpec(
            stream,
            path=tmp_path / f"{stream}.fifo",
            extra={"controlscript": str(wrapper(tmp_path, bus, "--player", p.name))},
        )
        for stream, p in players.items()
    ]
    specs.append(StreamSpec("plain", path=tmp_path / "plain.fifo"))
    server = SnapServer(tmp_path / "snapserver", specs)
    server.start()
    try:
        for stream in players:
            wait_until(lambda: _props(server, stream).get("canControl"), DEADLINE, "a player")  # noqa: B023
        with serving(tmp_path, server, os.environ if env is None else env) as port:
            yield Remote(server, port, players)
    finally:
        server.stop()
        for test_player in players.values():
            test_player.stop()


def _props(server: SnapServer, stream: str) -> dict[str, Any]:
    for entry in server.status()["streams"]:
        if entry["id"] == stream:
            return dict(entry.get("properties", {}))
    return {}


async def control(port: int, stream: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
        http.post(
            f"http://127.0.0.1:{port}/api/streams/{stream}/control", json=body, headers=AUTH
        ) as reply,
    ):
        return reply.status, dict(await reply.json())


def cover_file(tmp_path: Path) -> str:
    """A small PNG cover on disk, as a file:// URL (so no page links a remote one)."""
    art = tmp_path / "cover.png"
    art.write_bytes(png(4, 4))
    return art.as_uri()


async def open_page(page: DevTools, port: int, stream: str = "app") -> None:
    await page.navigate(f"http://127.0.0.1:{port}/#token={TOKEN}")

    await page.wait_for(
        f"!!document.querySelector('.now[data-stream={stream}]')",
        30,
        f"the page to show {stream}'s player",
    )


async def card_state(page: DevTools, stream: str = "app") -> dict[str, Any]:
    return dict(
        await page.evaluate(
            f"""(() => {{ const el = document.querySelector('.now[data-stream={stream}]');
            const q = (s) => el.querySelector(s);
            return {{ status: el.dataset.status, title: q('.title').textContent,
              toggle: q('.now-toggle').getAttribute('aria-label'),
              next: !q('.now-next').disabled, previous: !q('.now-previous').disabled,
              seek: !q('.now-seek').disabled, art: q('.now-art').naturalWidth,
              artShown: !q('.now-art').hidden, pos: q('.now-pos').textContent,
              dur: q('.now-dur').textContent }}; }})()"""
        )
    )


async def page_shows(page: DevTools, what: str, **want: Any) -> dict[str, Any]:
    async def matches() -> dict[str, Any]:
        found = await card_state(page)
        return found if all(found.get(k) == v for k, v in want.items()) else {}

    try:
        return await await_until(matches, DEADLINE, what)
    except AssertionError as err:
        raise AssertionError(f"{err}: {await card_state(page)}") from None


def calls(player: TestPlayer, name: str) -> int:
    return player.calls().count(name)


async def reaches(player: TestPlayer, name: str, count: int) -> None:
    await asyncio.to_thread(
        wait_until, lambda: calls(player, name) >= count, DEADLINE, f"{name} x{count} at the player"
    )


async def test_pause_play_and_skip_from_api_cli_and_page(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    player = TestPlayer(session_bus, "testapp", tmp_path, art_url=cover_file(tmp_path))
    with remote(tmp_path, session_bus, {"app": player}) as house:
        await open_page(page, house.port)
        await page.evaluate("window.__marker = 'same page'")
        # The test player starts paused on its first track: no previous track.
        shown = await page_shows(page, "the paused first track", status="paused")
        assert shown["title"] == "First Light"
        assert shown["toggle"] == "Play"
        assert shown["next"]
        assert not shown["previous"]
        assert shown["seek"]
        assert shown["dur"] == "3:00"
        status, body = await control(house.port, "app", {"command": "previous"})
        assert status == 409
        assert "previous track" in body["error"]

        # From the API.
        status, body = await control(house.port, "app", {"command": "play"})
        assert (status, body) == (200, {"stream": "app", "command": "play"})
        await reaches(player, "Play", 1)
        await page_shows(page, "playing after the API's play", status="playing", toggle="Pause")
        status, _ = await control(house.port, "app", {"command": "pause"})
        assert status == 200
        await reaches(player, "Pause", 1)
        await page_shows(page, "paused after the API's pause", status="paused", toggle="Play")

        # From the CLI (the only stream with a player, without naming it).
        done = await asyncio.to_thread(cli, house.server, "play", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["stream"] == "app"
        await reaches(player, "Play", 2)
        await page_shows(page, "playing after the CLI's play", status="playing")
        done = await asyncio.to_thread(cli, house.server, "pause", "app")
        assert done.returncode == 0, done.stderr
        assert "pause: sent to stream app" in done.stdout
        await reaches(player, "Pause", 2)
        await page_shows(page, "paused after the CLI's pause", status="paused")

        # From the page's own button: a real click.
        await page.click_selector(".now[data-stream=app] .now-toggle")
        await reaches(player, "PlayPause", 1)
        await page_shows(page, "playing after the page's button", status="playing", toggle="Pause")
        await page.click_selector(".now[data-stream=app] .now-toggle")
        await reaches(player, "PlayPause", 2)
        await page_shows(page, "paused after the page's button", status="paused")

        # Next and previous reach the player; the page follows the track.
        status, _ = await control(house.port, "app", {"command": "next"})
        assert status == 200
        await reaches(player, "Next", 1)
        await page_shows(page, "the next track", title="Second Wind", previous=True)
        done = await asyncio.to_thread(cli, house.server, "previous")
        assert done.returncode == 0, done.stderr
        await reaches(player, "Previous", 1)
        await page_shows(page, "the previous track", title="First Light", previous=False)
        await page.click_selector(".now[data-stream=app] .now-next")
        await reaches(player, "Next", 2)
        await page_shows(page, "the next track from the page", title="Second Wind")

        # The position slider: SetPosition at the player, the position on the page.
        await page.evaluate(
            "(() => { const s = document.querySelector('.now[data-stream=app] .now-seek');"
            " s.value = '42'; s.dispatchEvent(new Event('change')); })()"
        )
        await reaches(player, "SetPosition", 1)
        await page_shows(page, "the new position", pos="0:42")

        # The CLI says what it cannot do, in one line.
        done = await asyncio.to_thread(cli, house.server, "next", "plain")
        assert done.returncode == 1
        assert done.stderr.startswith("broadcaster: error: stream 'plain' has no player")
        # Its source line (like snapserver's own default stream) has no controlscript.
        assert "its snapserver source has no controlscript" in done.stderr
        assert await page.evaluate("window.__marker") == "same page"
        await page.screenshot(tmp_path / "transport.png")
        assert page.errors == [], page.errors


async def test_the_position_moves_on_while_a_capture_plays(
    tmp_path: Path,
    pw_session: PipeWireSession,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    """The newcomer's case: the app is captured into the stream and its player
    plays.  The capture's level meter updates the page once a second; the
    position keeps moving between the player's own reports."""
    player = TestPlayer(session_bus, "testapp", tmp_path, art_url=cover_file(tmp_path))
    tone = make_tone(tmp_path / "tone.wav", 440, 48000, seconds=120)
    await asyncio.to_thread(pw_session.play_on_speakers, tone, "Radio")
    with remote(tmp_path, session_bus, {"app": player}, pw_session.env) as house:
        await open_page(page, house.port)  # serve is connected to snapserver
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
            http.post(
                f"http://127.0.0.1:{house.port}/api/captures",
                json={"app": "Radio", "stream": "app"},
                headers=AUTH,
            ) as reply,
        ):
            assert reply.status in (200, 201), await reply.text()
        assert (await control(house.port, "app", {"command": "play"}))[0] == 200
        await page_shows(page, "playing", status="playing")

        await page.wait_for(
            "document.querySelector('.capture .state')?.textContent === 'playing'",
            40,
            "the capture playing (its meter updating)",
        )

        def seconds(text: str) -> int:
            minutes, secs = text.split(":")
            return int(minutes) * 60 + int(secs)

        start = seconds((await card_state(page))["pos"])

        async def moved_on() -> bool:
            return seconds((await card_state(page))["pos"]) >= start + 3

        try:
            await await_until(moved_on, 8, "the position to move on 3 s")
        except AssertionError as err:
            raise AssertionError(f"{err}: {start} s, now {await card_state(page)}") from None
        assert page.errors == [], page.errors


async def test_a_player_that_cannot_seek(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    art = cover_file(tmp_path)
    player = TestPlayer(session_bus, "stiff", tmp_path, can_seek=False, art_url=art)
    with remote(tmp_path, session_bus, {"app": player}) as house:
        await open_page(page, house.port)
        shown = await page_shows(page, "the player's card", title="First Light")
        assert not shown["seek"], "the position slider of a player that cannot seek"
        assert shown["next"]
        for body in ({"command": "seek", "seconds": 10}, {"command": "position", "seconds": 10}):
            status, reply = await control(house.port, "app", body)
            assert status == 409
            assert reply["error"] == "the player of stream 'app' cannot seek now"
        assert calls(player, "Seek") == calls(player, "SetPosition") == 0


async def test_cover_art_from_a_local_file_is_served_and_nothing_else(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    cover = tmp_path / "covers" / "cover art.png"
    cover.parent.mkdir()
    cover.write_bytes(png(7, 5))
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    remote_png = png(9, 4)
    fetched_by: list[str] = []

    async def remote_cover(request: web.Request) -> web.Response:
        fetched_by.append(request.headers.get("User-Agent", ""))
        return web.Response(body=remote_png, content_type="image/png")

    app = web.Application()
    app.router.add_get("/remote.png", remote_cover)
    runner = web.AppRunner(app)
    await runner.setup()
    art_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", art_port).start()
    remote_url = f"http://127.0.0.1:{art_port}/remote.png"
    players = {
        "app": TestPlayer(session_bus, "artful", tmp_path, art_url=cover.as_uri()),
        "text": TestPlayer(session_bus, "texty", tmp_path, art_url=notes.as_uri()),
        "gone": TestPlayer(session_bus, "gone", tmp_path, art_url=(tmp_path / "no.png").as_uri()),
        "linked": TestPlayer(session_bus, "linked", tmp_path, art_url=remote_url),
    }
    try:
        await _check_covers(tmp_path, session_bus, page, players, cover, notes)
        # A remote cover is linked: the browser fetches it, broadcaster never does.
        assert fetched_by
        assert all("Chrome" in agent for agent in fetched_by), fetched_by
    finally:
        await runner.cleanup()


async def _check_covers(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
    players: dict[str, TestPlayer],
    cover: Path,
    notes: Path,
) -> None:
    cover_png = await asyncio.to_thread(cover.read_bytes)
    with remote(tmp_path, session_bus, players) as house:
        # The Snapcast apps see the cover in snapserver's own status.
        meta = (await asyncio.to_thread(_props, house.server, "app"))["metadata"]
        assert meta["artUrl"] == cover.as_uri()

        await open_page(page, house.port)
        shown = await page_shows(page, "the cover on the page", art=7, artShown=True)
        assert shown["title"] == "First Light"
        assert (
            await page.evaluate(
                "document.querySelector('.now[data-stream=app] .now-art').naturalHeight"
            )
            == 5
        )

        base = f"http://127.0.0.1:{house.port}/api/streams"
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10), headers=AUTH
        ) as http:
            async with http.get(f"{base}/app/art") as reply:
                assert reply.status == 200
                assert reply.content_type == "image/png"
                assert await reply.read() == cover_png
            # The route names no file: asking for another one gets the announced cover or nothing.
            async with http.get(f"{base}/app/art?path=/etc/passwd") as reply:
                assert await reply.read() == cover_png
            async with http.get(f"{base}/app/art/..%2F..%2Fetc%2Fpasswd") as reply:
                assert reply.status == 404
            # A player announcing a file that is not an image: refused, not read out.
            async with http.get(f"{base}/text/art") as reply:
                assert reply.status == 403
                assert "not a PNG, JPEG, GIF or WebP" in (await reply.json())["error"]
            async with http.get(f"{base}/gone/art") as reply:
                assert reply.status == 404
            async with http.get(f"{base}/plain/art") as reply:
                assert reply.status == 404
            async with http.get(f"{base}/app") as reply:
                assert reply.status in (404, 405)
            async with http.get(f"{base}") as reply:
                streams = {s["id"]: s for s in await reply.json()}
        assert streams["app"]["player"]["art"].startswith("/api/streams/app/art?v=")
        assert streams["text"]["player"]["art_url"] == notes.as_uri()
        assert streams["plain"]["player"]["art"] is None
        assert streams["linked"]["player"]["art"] == players["linked"].options[-1]
        await open_page(page, house.port, "linked")

        async def remote_shown() -> bool:
            width = await page.evaluate(
                "document.querySelector('.now[data-stream=linked] .now-art').naturalWidth"
            )
            return bool(width == 9)

        await await_until(remote_shown, DEADLINE, "the linked cover on the page")
        await page.screenshot(tmp_path / "cover.png")
        # The refused covers fail to load (and are hidden); nothing else does.
        unexpected = [e for e in page.errors if not ("/text/art" in e or "/gone/art" in e)]
        assert unexpected == [], page.errors


RECORD_MEDIA_ACTIONS = """
window.__mediaActions = {};
if (navigator.mediaSession) {
  const set = navigator.mediaSession.setActionHandler.bind(navigator.mediaSession);
  navigator.mediaSession.setActionHandler = (action, handler) => {
    window.__mediaActions[action] = handler;
    set(action, handler);
  };
}
"""

MEDIA_SESSION = """(() => { const s = navigator.mediaSession, m = s.metadata;
  return m ? { title: m.title, artist: m.artist, album: m.album, state: s.playbackState,
    art: m.artwork.length ? m.artwork[0].src : "",
    actions: Object.keys(window.__mediaActions).filter((a) => window.__mediaActions[a]) }
  : { state: s.playbackState }; })()"""


async def test_browser_room_media_session_drives_the_stream(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    """This browser as the first room: the lock screen's metadata and buttons
    (the Media Session) follow and drive the stream it plays."""
    player = TestPlayer(session_bus, "testapp", tmp_path, art_url=cover_file(tmp_path))
    with remote(tmp_path, session_bus, {"app": player}) as house:
        # Headless Chromium has no lock screen: record the handlers the page sets.
        await page.call("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_MEDIA_ACTIONS})
        await open_page(page, house.port)

        await page.wait_for(
            "!!document.querySelector('#play-first:not([hidden])')",
            DEADLINE,
            "'Play here' on the page with no rooms",
        )
        await page.click_selector("#play-first")

        async def session(**want: Any) -> dict[str, Any]:
            found = dict(await page.evaluate(MEDIA_SESSION))
            return found if all(found.get(k) == v for k, v in want.items()) else {}

        shown = await await_until(
            lambda: session(title="First Light", state="paused"), DEADLINE, "the media session"
        )
        assert shown["artist"] == "Test Artist"
        assert shown["album"] == "Test Album"
        assert f"127.0.0.1:{house.port}/api/streams/app/art?v=" in shown["art"]
        assert f"token={TOKEN}" in shown["art"]  # the lock screen fetches it without headers
        assert set(shown["actions"]) == {"play", "pause", "nexttrack"}  # no previous track

        await page.evaluate("window.__mediaActions.play()")
        await reaches(player, "Play", 1)
        await await_until(lambda: session(state="playing"), DEADLINE, "playing on the lock screen")
        await page.evaluate("window.__mediaActions.nexttrack()")
        await reaches(player, "Next", 1)
        shown = await await_until(
            lambda: session(title="Second Wind"), DEADLINE, "the next track on the lock screen"
        )
        assert "previoustrack" in shown["actions"]
        await page.evaluate("window.__mediaActions.pause()")
        await reaches(player, "Pause", 1)
        await await_until(lambda: session(state="paused"), DEADLINE, "paused on the lock screen")
        # The silent media element that earns a phone's lock-screen controls plays.
        assert await page.evaluate("[...document.querySelectorAll('audio')].length === 0"), (
            "the silent element is not in the document"
        )
        assert page.errors == [], page.errors


async def test_a_real_player_mpv_paused_and_played_with_its_cover(
    tmp_path: Path,
    session_bus: SessionBus,
    page: DevTools,
) -> None:
    """mpv with mpv-mpris (Debian's packages) instead of the test player: its own
    cover file beside the music, its own idea of playing and seeking."""
    require_tools(mpv_missing())
    music = tmp_path / "music"
    music.mkdir()
    (music / "cover.png").write_bytes(png(30, 20))
    song = music / "song.wav"
    rate = 8000
    frames = rate * 120  # two minutes of silence, 8 kHz mono
    song.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + frames * 2)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", frames * 2)
        + bytes(frames * 2)
    )
    mpv = MpvPlayer(session_bus, song, tmp_path)
    with remote(tmp_path, session_bus, {"music": mpv}) as house:
        meta = (await asyncio.to_thread(_props, house.server, "music"))["metadata"]
        assert meta["artUrl"] == (music / "cover.png").as_uri()

        await open_page(page, house.port, "music")

        async def card(**want: Any) -> dict[str, Any]:
            found = await card_state(page, "music")
            return found if all(found.get(k) == v for k, v in want.items()) else {}

        shown = await await_until(
            lambda: card(status="paused", art=30), DEADLINE, "mpv paused, with its cover"
        )
        assert shown["title"] == "song.wav"
        assert shown["dur"] == "2:00"

        def playback() -> str:
            return str(_props(house.server, "music").get("playbackStatus"))

        status, _ = await control(house.port, "music", {"command": "play"})
        assert status == 200
        await asyncio.to_thread(
            wait_until, lambda: playback() == "playing", DEADLINE, "mpv playing"
        )
        await await_until(lambda: card(status="playing"), DEADLINE, "playing on the page")
        done = await asyncio.to_thread(cli, house.server, "pause", "music")
        assert done.returncode == 0, done.stderr
        await asyncio.to_thread(wait_until, lambda: playback() == "paused", DEADLINE, "mpv paused")
        await await_until(lambda: card(status="paused"), DEADLINE, "paused on the page")
        status, _ = await control(house.port, "music", {"command": "position", "seconds": 75})
        assert status == 200
        # mpv lands on a nearby frame it can seek to (74.83 s was seen).
        await asyncio.to_thread(
            wait_until,
            lambda: abs(float(_props(house.server, "music").get("position", 0)) - 75) < 1,
            DEADLINE,
            "mpv's position near 75 s",
        )

        async def near_75() -> bool:
            return (await card_state(page, "music"))["pos"] in ("1:14", "1:15")

        await await_until(near_75, DEADLINE, "mpv near 1:15 on the page")
        assert page.errors == [], page.errors
