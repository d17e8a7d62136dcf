"""The newcomer's first capture, with no configuration: the player follows.

``broadcaster serve`` captures an app (a real PipeWire client) into a stream
whose controlscript is given no player (snapserver starts it with no
arguments of ours, as in production): the capture tells it which app to
follow, and ``broadcaster pause`` without a STREAM reaches that app's MPRIS
player.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import require_tools
from tests.integration.test_control import cli
from tests.integration.test_pipeline import make_tone
from tests.integration.test_transport import AUTH, DEADLINE, _props, reaches
from tests.integration.test_web_page import serving
from tests.support import snapserver
from tests.support.mpris_player import SessionBus, TestPlayer
from tests.support.pipewire import PipeWireSession
from tests.support.procs import wait_until
from tests.support.snapserver import SnapServer, StreamSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def controlscript(tmp_path: Path, bus: SessionBus, env: dict[str, str]) -> Path:
    """What snapserver runs: the controlscript with the session's environment
    (snapserver inherits it from broadcaster) and no arguments of ours."""
    script = tmp_path / "controlscript"
    script.write_text(
        "#!/bin/sh\n"
        f"export DBUS_SESSION_BUS_ADDRESS={shlex.quote(bus.address)}\n"
        f"export PYTHONPATH={shlex.quote(str(REPO))}\n"
        f"export XDG_RUNTIME_DIR={shlex.quote(env['XDG_RUNTIME_DIR'])}\n"
        f'exec {shlex.quote(sys.executable)} -m broadcaster.controlscript "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


async def test_the_first_capture_gives_its_stream_the_apps_player(
    tmp_path: Path,
    pw_session: PipeWireSession,
    session_bus: SessionBus,
) -> None:
    require_tools(snapserver.missing_tools())
    player = TestPlayer(session_bus, "radio", tmp_path)
    player.start()
    tone = make_tone(tmp_path / "tone.wav", 440, 48000, seconds=120)
    await asyncio.to_thread(pw_session.play_on_speakers, tone, "radio")
    script = controlscript(tmp_path, session_bus, pw_session.env)
    base = tmp_path / "snap"
    server = SnapServer(
        base,
        [StreamSpec("broadcaster", path=base / "fifo", extra={"controlscript": str(script)})],
    )
    server.start()
    try:
        assert not _props(server, "broadcaster").get("canControl"), "a player before any capture"
        with serving(tmp_path, server, pw_session.env) as port:
            await asyncio.to_thread(
                wait_until,
                lambda: _health(port),
                DEADLINE,
                "serve connected to snapserver",
            )
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
                http.post(
                    f"http://127.0.0.1:{port}/api/captures", json={"app": "radio"}, headers=AUTH
                ) as reply,
            ):
                assert reply.status in (200, 201), await reply.text()
            await asyncio.to_thread(
                wait_until,
                lambda: _props(server, "broadcaster").get("canControl"),
                DEADLINE,
                "the captured app's player on its stream",
            )
            done = await asyncio.to_thread(cli, server, "play")
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("play: sent to stream broadcaster (First Light")
            await reaches(player, "Play", 1)
    finally:
        server.stop()
        player.stop()


def _health(port: int) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/health", headers=AUTH)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
