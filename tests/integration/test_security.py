"""What the service exposes, checked on the real processes (docs/security.md).

The managed snapserver's control (tcp and http JSON-RPC, unauthenticated)
listens on loopback only, its stream port on every address, and a browser
room still plays through broadcaster's own ``/stream``.  Listening sockets are
read from /proc/net/tcp*, so no packet leaves loopback.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broadcaster.config import Config, SnapserverConfig, WebConfig
from broadcaster.pipewire import PipeWire
from broadcaster.service import Service
from broadcaster.web.app import make_app
from tests.conftest import require_tools
from tests.integration.test_pipeline import make_tone
from tests.support import browser
from tests.support.pipewire import PipeWireSession
from tests.support.procs import await_until, free_ports, wait_until

pytestmark = pytest.mark.integration

HELLO = Path(__file__).parents[1] / "js" / "fixtures" / "hello.bin"
PLAYER_DIR = Path(__file__).parents[2] / "broadcaster" / "web" / "static" / "player"


def listening(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port``."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(".".join(str(b) for b in reversed(raw)))
                else:
                    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                    found.add(b"".join(words).hex())
    return found


async def test_managed_snapserver_keeps_control_on_loopback_and_browser_rooms_play(
    tmp_path: Path, snap_tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    stream, control, http = free_ports(3)
    config = Config(
        snapserver=SnapserverConfig(
            mode="always",
            stream_port=stream,
            control_port=control,
            http_port=http,
            datadir=str(tmp_path / "data"),
            codec="pcm",
        ),
        web=WebConfig(publish=False, slots=1),
    )
    service = Service(config, env={"XDG_STATE_HOME": str(tmp_path / "state")})
    async with (
        TestServer(make_app(service)) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http_client,
    ):
        assert service.managed is not None
        assert listening(control) == {"127.0.0.1"}
        # Not even on loopback: a page in a browser here could post JSON-RPC to it.
        assert listening(http) == set()
        assert listening(stream) & {"0.0.0.0", "0" * 32}  # the rooms' port: every address

        async def connected() -> bool:
            return service.snap.connected

        await await_until(connected, 15, "the service to follow its snapserver")
        url = f"ws://127.0.0.1:{server.port}/stream"
        async with http_client.ws_connect(url) as ws:
            await ws.send_bytes(HELLO.read_bytes())
            first = await ws.receive(timeout=10)
            assert first.type == aiohttp.WSMsgType.BINARY
            assert int.from_bytes(first.data[:2], "little") == 3  # ServerSettings
            assert "bufferMs" in json.loads(first.data[30:])


async def test_demo_player_never_sends_the_token_to_another_origin(tmp_path: Path) -> None:
    """demo.html?url=ws://elsewhere/ must not hand the stored token to elsewhere."""
    require_tools(browser.missing_tools())
    seen: list[str] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        return web.Response(status=404)

    elsewhere = web.Application()
    elsewhere.router.add_route("*", "/{tail:.*}", record)
    page = web.Application()
    page.router.add_static("/player/", PLAYER_DIR)
    async with (
        TestServer(elsewhere, host="127.0.0.1") as other,
        TestServer(page, host="127.0.0.1") as origin,
        browser.chromium(tmp_path) as tab,
    ):
        query = urlencode({"token": "secret-token", "url": f"ws://127.0.0.1:{other.port}/x"})
        await tab.navigate(f"http://127.0.0.1:{origin.port}/player/demo.html?{query}")

        await tab.wait_for("window.demoReady === true", 30, "the demo page to load")
        await tab.click_selector("#play")

        async def settled() -> str | None:
            state = str(await tab.evaluate("document.getElementById('state').textContent"))
            return state if seen or state in ("refused", "error", "reconnecting") else None

        state = await await_until(settled, 30, "the demo page to refuse (or use) the url")
        assert seen == [], f"the page sent {seen} to another origin"
        assert state == "refused"
        message = str(await tab.evaluate("document.getElementById('message').textContent"))
        assert f"127.0.0.1:{origin.port}" in message


async def test_a_sink_named_like_an_option_is_still_a_sink_name(
    tmp_path: Path, pw_session: PipeWireSession
) -> None:
    """pw-metadata gets "--" before its arguments: "-dash" is a sink, not an option."""
    tone = make_tone(tmp_path / "t.wav", 440, 48000, seconds=60)
    await asyncio.to_thread(pw_session.play_on_speakers, tone, "DashApp")
    pw_session.load_null_sink("-dash")
    await asyncio.to_thread(wait_until, lambda: "-dash" in pw_session.sinks(), 10, "the sink")
    pipewire = PipeWire(env=pw_session.env)
    graph = await pipewire.graph()
    stream = next(s for s in graph.streams if s.app_name == "DashApp")
    await pipewire.move(stream, "-dash")
    await asyncio.to_thread(
        wait_until, lambda: pw_session.stream_sinks("DashApp") == ["-dash"], 15, "the move"
    )
