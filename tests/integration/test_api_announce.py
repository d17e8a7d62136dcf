"""POST /api/announce on a running service, heard in a real room.

The service captures the music app (660 Hz) through the API; an uploaded
sound (1000 Hz) is announced over it: the room hears it at full level with
the music 12 dB down, and the music back afterwards, as with the command.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.service import Service
from broadcaster.web.app import make_app
from tests.integration.test_announce import (
    AMPLITUDE,
    ANNOUNCE_HZ,
    MUSIC_HZ,
    analyse,
    audio_since,
)
from tests.integration.test_api import _connected, service_config
from tests.integration.test_pipeline import SECOND, fresh_audio, make_tone, wait_for_tone
from tests.support.pipewire import PipeWireSession
from tests.support.procs import await_until
from tests.support.signal import db
from tests.support.snapserver import House

pytestmark = pytest.mark.integration


async def test_an_uploaded_sound_is_announced_over_a_capture(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_stream_house: House,
) -> None:
    pw_session.play(make_tone(tmp_path / "music.wav", MUSIC_HZ, 48000), "MusicApp")
    bell = make_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 48000, seconds=2).read_bytes()
    service = Service(service_config(two_stream_house.server), env=pw_session.env)
    async with TestClient(TestServer(make_app(service, publish=False))) as client:
        await await_until(_connected(service), 20, "the service to reach snapserver")
        started = await client.post("/api/captures", json={"app": "MusicApp", "stream": "Main"})
        assert started.status == 201, await started.text()
        await asyncio.to_thread(wait_for_tone, two_stream_house.room, MUSIC_HZ, 40)
        await asyncio.to_thread(fresh_audio, two_stream_house.room, 1.2)
        offset = two_stream_house.room.size() - SECOND
        reply = await client.post(
            "/api/announce",
            data=bell,
            headers={"Content-Type": "audio/wav"},
            timeout=aiohttp.ClientTimeout(total=60),
        )
        assert reply.status == 200, await reply.text()
        body = await reply.json()
        assert body["sinks"] == ["broadcaster.musicapp"]
        assert body["seconds"] > 2
        audio = await asyncio.to_thread(
            audio_since, two_stream_house.room, offset, 2.5, two_stream_house.room.size()
        )
    heard = analyse(audio)
    assert heard.announcement == pytest.approx(db(AMPLITUDE), abs=1)
    assert heard.music_during == pytest.approx(heard.music_before - 12, abs=1)
    assert heard.music_after == pytest.approx(heard.music_before, abs=1)
    assert heard.back_after_s <= 1.0
