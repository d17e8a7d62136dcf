"""The browser as a Snapcast room, in a real headless Chromium against a real snapserver.

A tiny aiohttp server (in the test) serves ``static/player/`` and mounts the
stream proxy (``broadcaster.web.stream_proxy``) with a token; the demo page
plays what snapserver sends over the proxied ``/stream`` WebSocket.  A
known tone goes into snapserver's pipe through :class:`PipeDelivery`; the
page's AnalyserNode (before the destination) must show the tone's frequency.
The browser must show up in Server.GetStatus in the chosen stream's group
with its name, fall silent when the server sets its volume to 0 or mutes it,
and play again without a reload after snapserver is killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from broadcaster.audio import AudioFormat
from broadcaster.delivery import PipeDelivery
from broadcaster.web import stream_proxy
from tests.conftest import require_tools
from tests.integration.test_web_page import TOKEN, serving
from tests.support import browser
from tests.support.browser import DevTools
from tests.support.procs import await_until, wait_until
from tests.support.snapserver import House, SnapClient, SnapServer, StreamSpec

pytestmark = pytest.mark.integration

T = TypeVar("T")

PLAYER_DIR = Path(__file__).resolve().parents[2] / "broadcaster" / "web" / "static" / "player"

TONE_HZ = 1000.0
RATE = 48000


# --- audio into snapserver ----------------------------------------------------------


def tone(freq: float = TONE_HZ, rate: int = RATE) -> Callable[[int], bytes]:
    """20 ms chunks of a sine at ``freq``, s16 stereo at ``rate``, from a frame index."""

    def chunk(start: int) -> bytes:
        t = np.arange(start, start + rate // 50) / rate
        mono = (np.sin(2 * np.pi * freq * t) * 0.5 * 32767).astype("<i2")
        return np.repeat(mono, 2).tobytes()

    return chunk


tone_chunk = tone()


@contextlib.asynccontextmanager
async def feed(
    path: Path, make: Callable[[int], bytes], rate: int = RATE
) -> AsyncIterator[PipeDelivery]:
    """Real-time pcm into snapserver's pipe (PipeDelivery), paced by the monotonic clock."""
    fmt = AudioFormat(rate, 2, "s16")
    delivery = PipeDelivery(str(path), audio_format=fmt, buffer_ms=100)

    async def pace() -> None:
        start = time.monotonic()
        frame = 0
        while True:
            while frame < (time.monotonic() - start + 0.04) * rate:
                delivery.write(make(frame))
                frame += rate // 50
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(delivery.run()), asyncio.create_task(pace())]
    try:
        yield delivery
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the page's origin --------------------------------------------------------------


@contextlib.asynccontextmanager
async def page_server(server: SnapServer) -> AsyncIterator[int]:
    """The player's files and the stream proxy (token required) on one free port."""
    app = web.Application()
    app.router.add_static("/player/", PLAYER_DIR)
    stream_proxy.add_routes(
        app, "127.0.0.1", server.stream_port, lambda r: r.query.get("token") == TOKEN
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # the port the OS gives: nobody else's
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture
def room_on_tone(tmp_path: Path, snap_tools: None) -> Iterator[House]:
    """snapserver with two pcm pipe streams and one snapclient room playing 'tone'.

    'other' (listed first, so a new client's group plays it) runs at 44.1 kHz.
    """
    server = SnapServer(
        tmp_path / "srv",
        [
            StreamSpec("other", path=tmp_path / "other.fifo", extra={"sampleformat": "44100:16:2"}),
            StreamSpec("tone", path=tmp_path / "tone.fifo"),
        ],
        buffer_ms=600,
    )
    server.start()
    room = SnapClient(server, "room1", tmp_path / "room1.pcm")
    room.start()
    try:
        wait_until(lambda: "room1" in server.clients(), 20, "room1 to connect")
        group = group_of(server, "room1")
        server.rpc("Group.SetStream", {"id": group["id"], "stream_id": "tone"})
        yield House(server, (room,))
    finally:
        room.stop()
        server.stop()


def group_of(server: SnapServer, client_id: str) -> dict[str, Any]:
    for group in server.status()["groups"]:
        if any(c["id"] == client_id for c in group["clients"]):
            return dict(group)
    return {}


# --- what the page renders ----------------------------------------------------------

ANALYSIS = """(() => {
  const p = window.player;
  if (!p || !p.analyser) return null;
  const a = p.analyser;
  const bins = new Float32Array(a.frequencyBinCount);
  a.getFloatFrequencyData(bins);
  let peak = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
  const wave = new Float32Array(a.fftSize);
  a.getFloatTimeDomainData(wave);
  let sum = 0;
  for (const v of wave) sum += v * v;
  return { hz: peak * p.ctx.sampleRate / a.fftSize, rms: Math.sqrt(sum / wave.length),
           state: p.state.state, message: p.state.message, ctx: p.ctx.state,
           stats: p.describe(), id: p.clientId };
})()"""


async def analysis(page: DevTools) -> dict[str, Any]:
    return dict(await page.evaluate(ANALYSIS) or {})


async def hears_tone(page: DevTools) -> dict[str, Any] | None:
    a = await analysis(page)
    if a and abs(a["hz"] - TONE_HZ) < 15 and a["rms"] > 0.05:
        return a
    return None


async def silent(page: DevTools) -> dict[str, Any] | None:
    a = await analysis(page)
    return a if a and a["rms"] < 1e-4 else None


async def until(
    page: DevTools, condition: Callable[[], Awaitable[T | None]], timeout: float, what: str
) -> T:
    """await_until, with the page's state and console in the failure message."""
    try:
        value = await await_until(condition, timeout, what)
    except AssertionError as err:
        state = await page.evaluate(
            "JSON.stringify({text: document.body.innerText,"
            " player: window.player && window.player.describe()})"
        )
        raise AssertionError(f"{err}\npage: {state}\nconsole: {page.console[-10:]}") from None
    assert value is not None
    return value


async def open_demo(page: DevTools, port: int, server: SnapServer, **extra: str) -> None:
    query = {
        "token": TOKEN,
        "stream": "tone",
        "name": "Test browser",
        "jsonrpc": f"ws://127.0.0.1:{server.http_port}/jsonrpc",
        **extra,
    }
    await page.navigate(f"http://127.0.0.1:{port}/player/demo.html?{urlencode(query)}")

    await page.wait_for("window.demoReady === true", 30, "the demo page to load")
    await page.click_selector("#play")  # a real tap: the AudioContext starts inside it


# --- tests --------------------------------------------------------------------------


async def test_browser_room_plays_joins_obeys_volume_and_survives_restart(
    tmp_path: Path, room_on_tone: House
) -> None:
    require_tools(browser.missing_tools())
    async with (
        feed(tmp_path / "tone.fifo", tone_chunk),
        page_server(room_on_tone.server) as port,
        browser.chromium(tmp_path) as page,
    ):
        await open_demo(page, port, room_on_tone.server)
        heard = await until(page, lambda: hears_tone(page), 60, "the page to render the tone")
        assert heard is not None
        client_id = heard["id"]
        await page.evaluate("window.__marker = 'same page'")

        # A room like any other: in the 'tone' group, beside room1, with its name.
        def joined() -> bool:
            group = group_of(room_on_tone.server, client_id)
            names = {c["id"]: c["config"]["name"] for c in group.get("clients", [])}
            return (
                group.get("stream_id") == "tone"
                and "room1" in names
                and names.get(client_id) == "Test browser"
            )

        await asyncio.to_thread(wait_until, joined, 30, "the browser in the tone group, named")

        # Volume 0 on the server silences it; 100 brings the tone back.
        await asyncio.to_thread(
            room_on_tone.server.rpc,
            "Client.SetVolume",
            {"id": client_id, "volume": {"percent": 0, "muted": False}},
        )
        await until(page, lambda: silent(page), 20, "silence at volume 0")
        await asyncio.to_thread(
            room_on_tone.server.rpc,
            "Client.SetVolume",
            {"id": client_id, "volume": {"percent": 100, "muted": False}},
        )
        await until(page, lambda: hears_tone(page), 20, "the tone back at volume 100")

        # Muted: snapserver sends no chunks at all; unmuted, playback resumes.
        await asyncio.to_thread(
            room_on_tone.server.rpc,
            "Client.SetVolume",
            {"id": client_id, "volume": {"muted": True}},
        )
        await until(page, lambda: silent(page), 20, "silence while muted")
        await asyncio.to_thread(
            room_on_tone.server.rpc,
            "Client.SetVolume",
            {"id": client_id, "volume": {"muted": False}},
        )
        await until(page, lambda: hears_tone(page), 20, "the tone back after unmuting")

        # snapserver killed and restarted: the page reconnects by itself.
        connects = (await analysis(page))["stats"]["connects"]
        await asyncio.to_thread(room_on_tone.server.kill)
        await await_until(
            lambda: _state_is(page, "reconnecting"), 20, "the page to notice snapserver is gone"
        )
        await until(page, lambda: silent(page), 20, "silence while snapserver is down")
        await asyncio.to_thread(room_on_tone.server.start)

        async def reconnected() -> dict[str, Any] | None:
            heard = await hears_tone(page)
            return heard if heard and heard["stats"]["connects"] > connects else None

        await until(page, reconnected, 60, "the tone after the restart")
        assert await page.evaluate("window.__marker") == "same page", "the page was reloaded"
        # (A SIGKILLed snapserver may forget room1's last group change: only
        # the browser's own group is checked.)
        await asyncio.to_thread(
            wait_until,
            lambda: group_of(room_on_tone.server, client_id).get("stream_id") == "tone",
            30,
            "the browser back in a group playing 'tone'",
        )

        png = await page.screenshot(tmp_path / "browser-room.png")
        assert png.startswith(b"\x89PNG")


async def _state_is(page: DevTools, state: str) -> bool:
    return (await analysis(page)).get("state") == state


async def test_stream_change_at_another_rate_and_phone_lock(
    tmp_path: Path, room_on_tone: House
) -> None:
    """The group's stream changes to 44.1 kHz: a new CodecHeader, another tone.
    The context suspended (a locked phone) and the page visible again: it resumes."""
    require_tools(browser.missing_tools())
    async with (
        feed(tmp_path / "tone.fifo", tone_chunk),
        feed(tmp_path / "other.fifo", tone(440.0, 44100), rate=44100),
        page_server(room_on_tone.server) as port,
        browser.chromium(tmp_path) as page,
    ):
        await open_demo(page, port, room_on_tone.server)
        heard = await until(page, lambda: hears_tone(page), 60, "the page to render the tone")
        assert heard is not None
        group = await asyncio.to_thread(group_of, room_on_tone.server, heard["id"])
        await asyncio.to_thread(
            room_on_tone.server.rpc, "Group.SetStream", {"id": group["id"], "stream_id": "other"}
        )

        async def hears_440() -> dict[str, Any] | None:
            a = await analysis(page)
            return a if a and abs(a["hz"] - 440) < 15 and a["rms"] > 0.05 else None

        await until(page, hears_440, 30, "the 44.1 kHz stream's 440 Hz tone")
        rate = await page.evaluate("window.player.format.sampleRate")
        assert rate == 44100

        resyncs = (await analysis(page))["stats"]["resyncs"]
        await page.evaluate("window.player.ctx.suspend()", await_promise=True)
        await until(page, lambda: _context_is(page, "suspended"), 10, "a suspended context")
        await page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        await until(page, lambda: _context_is(page, "running"), 10, "the context resumed")

        async def replayed() -> dict[str, Any] | None:
            heard = await hears_440()
            return heard if heard and heard["stats"]["resyncs"] > resyncs else None

        # Laid out afresh (a new clock offset, a resync), not the stale schedule.
        await until(page, replayed, 30, "the tone after the phone is unlocked")


async def _context_is(page: DevTools, state: str) -> bool:
    return bool(await page.evaluate("window.player.ctx.state") == state)


@pytest.fixture
def serve(tmp_path: Path, room_on_tone: House) -> Iterator[int]:
    """``broadcaster serve`` (the real CLI) on a free port, with a token, over the house."""
    with serving(tmp_path, room_on_tone.server, os.environ) as port:
        yield port


async def test_served_by_broadcaster_serve_one_origin(
    tmp_path: Path, room_on_tone: House, serve: int
) -> None:
    """The page, the stream socket (proxied) and the group join (the API) on one origin."""
    require_tools(browser.missing_tools())
    async with feed(tmp_path / "tone.fifo", tone_chunk), browser.chromium(tmp_path) as page:
        await page.navigate(
            f"http://127.0.0.1:{serve}/static/player/demo.html?stream=tone&name=Phone#token={TOKEN}"
        )

        await page.wait_for("window.demoReady === true", 30, "the demo page from broadcaster serve")
        await page.click_selector("#play")
        heard = await until(page, lambda: hears_tone(page), 60, "the tone through the proxy")
        assert heard is not None
        client_id = heard["id"]

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def room_in_tone_group() -> bool:
                async with http.get(
                    f"http://127.0.0.1:{serve}/api/state",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as reply:
                    state: dict[str, Any] = await reply.json()
                room = next((r for r in state["rooms"] if r["id"] == client_id), None)
                group: dict[str, Any] = next(
                    (g for g in state["groups"] if room and g["id"] == room["group"]), {}
                )
                return bool(
                    room
                    and room["name"] == "Phone"
                    and group.get("stream") == "tone"
                    and "room1" in group.get("rooms", [])
                )

            await await_until(room_in_tone_group, 30, "the API to list the room in tone's group")
            # Without the token the stream socket is refused, as the live-updates socket is.
            async with http.get(f"http://127.0.0.1:{serve}/stream") as reply:
                assert reply.status == 401
        await page.screenshot(tmp_path / "served.png")


async def test_flac_stream_says_it_cannot_be_decoded(tmp_path: Path, snap_tools: None) -> None:
    require_tools(browser.missing_tools())
    server = SnapServer(
        tmp_path / "srv", [StreamSpec("tone", path=tmp_path / "tone.fifo", codec="flac")]
    )
    server.start()
    try:
        async with (
            feed(tmp_path / "tone.fifo", tone_chunk),
            page_server(server) as port,
            browser.chromium(tmp_path) as page,
        ):
            await open_demo(page, port, server)

            async def message() -> str:
                text = await page.evaluate("document.getElementById('message').textContent")
                return str(text or "")

            text = await until(page, message, 30, "a message about the codec")
            assert "flac" in text
            assert "codec=pcm" in text
            assert (await analysis(page))["state"] == "unsupported"
            await page.screenshot(tmp_path / "flac.png")
    finally:
        server.stop()


async def test_proxy_needs_the_token_and_relays_frames(tmp_path: Path, snap_tools: None) -> None:
    server = SnapServer(tmp_path / "srv", [StreamSpec("tone", path=tmp_path / "tone.fifo")])
    server.start()
    hello = (PLAYER_DIR.parents[3] / "tests" / "js" / "fixtures" / "hello.bin").read_bytes()
    try:
        async with (
            page_server(server) as port,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            url = f"http://127.0.0.1:{port}/stream"
            async with http.get(url) as reply:
                assert reply.status == 401
                assert "token" in (await reply.json())["error"]
            async with http.ws_connect(f"{url}?token={TOKEN}") as ws:
                await ws.send_bytes(hello)
                first = await ws.receive(timeout=10)
                assert first.type == aiohttp.WSMsgType.BINARY
                assert int.from_bytes(first.data[:2], "little") == 3  # ServerSettings
                settings = json.loads(first.data[30:])
                assert settings["bufferMs"] == 400
            server.stop()
            async with http.get(f"{url}?token={TOKEN}", headers=_ws_headers()) as reply:
                assert reply.status == 503
    finally:
        server.stop()


def _ws_headers() -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


# --- the offset to a snapclient room (a figure for docs/performance.md) -------------

CLICK_EVERY = RATE // 2  # frames between clicks: 500 ms
CLICK_FRAMES = 48  # 1 ms


def click_train(enabled: asyncio.Event) -> Callable[[int], bytes]:
    """Silence until ``enabled``, then a 1 ms pulse every 500 ms of stream time."""

    def chunk(start: int) -> bytes:
        frames = np.arange(start, start + RATE // 50)
        on = enabled.is_set() & ((frames % CLICK_EVERY) < CLICK_FRAMES)
        mono = np.where(on, 0.9 * 32767, 0).astype("<i2")
        return np.repeat(mono, 2).tobytes()

    return chunk


PROBE = """(() => {
  const p = window.player, ctx = p.ctx;
  const sp = ctx.createScriptProcessor(256, 1, 1);
  const probe = { clicks: [], last: -1 };
  sp.onaudioprocess = (e) => {
    const d = e.inputBuffer.getChannelData(0);
    for (let i = 0; i < d.length; i++) {
      if (d[i] > 0.3) {
        const t = e.playbackTime + i / ctx.sampleRate;
        if (t - probe.last > 0.2) { probe.last = t; probe.clicks.push(t); }
        break;
      }
    }
  };
  p.analyser.connect(sp);
  sp.connect(ctx.destination);
  probe.node = sp;
  window.probe = probe;
  // A click at a known context time through the same path: the probe's own delay.
  const at = ctx.currentTime + 0.3;
  const b = ctx.createBuffer(1, 48, ctx.sampleRate);
  b.getChannelData(0).fill(0.9);
  const s = ctx.createBufferSource();
  s.buffer = b;
  s.connect(p.gain);
  s.start(at);
  return at;
})()"""

# Context times of detected clicks -> wall-clock ms at which the browser outputs them.
OUTPUT_TIMES = """(() => {
  const ctx = window.player.ctx, s = ctx.getOutputTimestamp();
  return window.probe.clicks.map(
    (t) => performance.timeOrigin + s.performanceTime + (t - s.contextTime) * 1000);
})()"""


class FileWatch:
    """When each byte of a snapclient file player's output was written (polled every ms)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: list[tuple[float, int]] = []
        self._stop = False

    def run(self) -> None:
        last = -1
        while not self._stop:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != last:
                self.samples.append((time.time(), size))
                last = size
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop = True

    def block_of(self, offset: int) -> tuple[float, int] | None:
        """When the write holding byte ``offset`` happened, and where that write began.

        (stdio may split one 50 ms write in two, microseconds apart: a write
        begins where the file stood 25 ms before it.)
        """
        for when, size in self.samples:
            if size > offset:
                start = max((s for t, s in self.samples if t < when - 0.025), default=0)
                return when, start
        return None


def snapclient_clicks(room: SnapClient, watch: FileWatch) -> list[float]:
    """Wall-clock times at which the file player's clicks are "heard".

    snapclient's file player writes 50 ms every 50 ms, asking for audio heard
    10 ms after the write; a click at byte B of a block written at T is heard
    at T + 10 ms + (its offset in the block).
    """
    raw = np.frombuffer(room.out.read_bytes(), dtype="<i2").reshape(-1, 2)[:, 0]
    loud = np.flatnonzero(raw > 0.3 * 32767)
    onsets = [int(f) for i, f in enumerate(loud) if i == 0 or f - loud[i - 1] > RATE // 5]
    times = []
    for frame in onsets:
        offset = frame * 4
        block = watch.block_of(offset)
        if block is not None:
            written, start = block
            times.append(written + 0.010 + (offset - start) / 4 / RATE)
    return times


@pytest.mark.measure
async def test_offset_to_a_snapclient_room_is_measured(tmp_path: Path, room_on_tone: House) -> None:
    """A figure, not a timed assertion: written to offset.json in the test's tmp dir."""
    require_tools(browser.missing_tools())
    enabled = asyncio.Event()
    async with (
        feed(tmp_path / "tone.fifo", click_train(enabled)),
        page_server(room_on_tone.server) as port,
        browser.chromium(tmp_path) as page,
    ):
        await open_demo(page, port, room_on_tone.server)
        await until(page, lambda: _state_is(page, "playing"), 60, "the page to play")
        at = await page.evaluate(PROBE)
        await until(
            page, lambda: page.evaluate("window.probe.clicks.length"), 10, "the probe's own click"
        )
        bias = (await page.evaluate("window.probe.clicks[0]")) - at
        await page.evaluate("window.probe.clicks = []")

        watch = FileWatch(room_on_tone.room.out)
        watcher = asyncio.create_task(asyncio.to_thread(watch.run))
        try:
            enabled.set()
            await until(
                page,
                lambda: page.evaluate("window.probe.clicks.length >= 20"),
                60,
                "20 clicks in the browser",
            )
            await asyncio.sleep(1.5)  # the snapclient room's last click, 10 s of clicks
        finally:
            watch.stop()
            await watcher
        before = time.time()
        chrome_now = await page.evaluate("performance.timeOrigin + performance.now()")
        clock_skew = chrome_now / 1000 - (before + time.time()) / 2
        browser_times = [t / 1000 - bias - clock_skew for t in await page.evaluate(OUTPUT_TIMES)]
        stats = (await analysis(page))["stats"]

    room_times = snapclient_clicks(room_on_tone.room, watch)
    pairs = []
    for b in browser_times:
        nearest = min(room_times, key=lambda r: abs(r - b), default=None)
        if nearest is not None and abs(nearest - b) < 0.25:
            pairs.append((b - nearest) * 1000)
    assert len(pairs) >= 10, f"too few clicks paired: {browser_times} / {room_times}"
    figure = {
        "median_ms": float(np.median(pairs)),
        "min_ms": min(pairs),
        "max_ms": max(pairs),
        "clicks": len(pairs),
        "probe_bias_ms": bias * 1000,
        "clock_skew_ms": clock_skew * 1000,
        "each_ms": [round(p, 2) for p in pairs],
        "player": stats,
    }
    (tmp_path / "offset.json").write_text(json.dumps(figure, indent=1))
