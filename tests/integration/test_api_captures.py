"""Captures started and stopped through the API, with real PipeWire and snapserver.

Two apps play tones; the API starts a capture of each into its own stream of
one snapserver, each room listens to one stream, and each room must hear its
app.  Stopping a capture through the API puts its app back on the speakers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.nowplaying import PlayerMatch, read_target
from broadcaster.service import Service
from broadcaster.web.app import make_app
from tests.integration.test_api import service_config
from tests.integration.test_pipeline import make_tone, wait_for_tone
from tests.support.pipewire import PipeWireSession
from tests.support.procs import await_until, wait_until
from tests.support.snapserver import House, SnapServer

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """broadcaster's runtime directory for these tests: never the user's own.

    A capture tells its stream's controlscript which app it plays through a
    file in the runtime directory of broadcaster's own environment (where the
    snapserver it runs, and so the controlscript, looks), not the PipeWire
    session's.
    """
    base = tmp_path / "run"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return base / "broadcaster"


async def test_two_apps_into_two_streams_then_stop_restores(
    tmp_path: Path,
    runtime: Path,
    pw_session: PipeWireSession,
    two_stream_house: House,
) -> None:
    pw_session.play(make_tone(tmp_path / "a.wav", 440, 48000), "AppA")
    pw_session.play(make_tone(tmp_path / "b.wav", 1000, 48000), "AppB")
    wait_until(
        lambda: pw_session.stream_sinks("AppA") == pw_session.stream_sinks("AppB") == ["speakers"],
        15,
        "both apps playing on the speakers",
    )
    config = service_config(two_stream_house.server)
    config = dataclasses.replace(config, timeout=10.0)
    service = Service(config, env=pw_session.env)
    async with TestClient(TestServer(make_app(service, publish=False))) as client:
        await await_until(_rooms(service), 20, "the service to see both rooms")
        room2_group = service.snap.room("room2").group_id
        if room2_group == service.snap.room("room1").group_id:
            # Give room2 a group of its own, then point it at the second stream.
            await client.put(f"/api/groups/{room2_group}/rooms", json={"rooms": ["room1"]})
            room2_group = service.snap.room("room2").group_id
        reply = await client.put(f"/api/groups/{room2_group}/stream", json={"stream": "Second"})
        assert reply.status == 200, await reply.text()

        one = await client.post("/api/captures", json={"app": "AppA"})
        assert one.status == 201, await one.text()
        two = await client.post("/api/captures", json={"app": "AppB"})
        assert two.status == 201, await two.text()
        first, second = await one.json(), await two.json()
        assert (first["stream"], second["stream"]) == ("Main", "Second")
        await asyncio.to_thread(
            wait_until,
            lambda: read_target("Main", runtime) == PlayerMatch("AppA", None),
            10,
            "AppA named to Main's controlscript in the test's runtime directory",
        )
        # A third capture: see test_a_capture_beyond_the_slots_gets_a_stream_of_its_own_...
        again = await client.post("/api/captures", json={"app": "AppA"})
        assert again.status == 409

        await asyncio.to_thread(wait_for_tone, two_stream_house.room, 440, 40)
        await asyncio.to_thread(wait_for_tone, two_stream_house.rooms[1], 1000, 40)

        described = await (await client.get(f"/api/captures/{first['id']}")).json()
        assert described["state"] == "playing"
        # The native path: PipeWire writes the pipe, the meter reads the sink's monitor.
        assert described["path"] == "native"
        await await_until(_level(client, first["id"]), 10, "a level on the meter")
        metrics = await (await client.get("/metrics")).text()
        assert f'broadcaster_frames_captured_total{{capture="{first["id"]}",app="AppA"' in metrics

        gone = await client.delete(f"/api/captures/{first['id']}")
        assert gone.status == 200
        await asyncio.to_thread(
            wait_until,
            lambda: pw_session.stream_sinks("AppA") == ["speakers"],
            15,
            "AppA back on the speakers",
        )
        listed = await (await client.get("/api/captures")).json()
        assert [c["id"] for c in listed["captures"]] == [second["id"]]
    # The app's shutdown stopped the other capture too.
    await asyncio.to_thread(
        wait_until,
        lambda: pw_session.stream_sinks("AppB") == ["speakers"],
        15,
        "AppB back on the speakers",
    )


def _stream_ids(server: SnapServer) -> list[str]:
    return [str(stream["id"]) for stream in server.status()["streams"]]


async def test_a_capture_beyond_the_slots_gets_a_stream_of_its_own_where_the_server_allows(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_stream_house: House,
) -> None:
    """snapserver 0.31 adds streams at run time (Stream.AddStream): a third
    capture into a two-slot server gets a stream of its own, which a room can
    listen to and which goes away with the capture.  0.26 cannot: 409."""
    for app, freq in (("AppA", 440), ("AppB", 1000), ("AppC", 1500)):
        pw_session.play(make_tone(tmp_path / f"{app}.wav", freq, 48000), app)
    wait_until(
        lambda: all(pw_session.stream_sinks(app) for app in ("AppA", "AppB", "AppC")),
        15,
        "the three apps playing",
    )
    service = Service(
        dataclasses.replace(service_config(two_stream_house.server), timeout=10.0),
        env=pw_session.env,
    )
    async with TestClient(TestServer(make_app(service, publish=False))) as client:
        await await_until(_rooms(service), 20, "the service to see both rooms")
        for app in ("AppA", "AppB"):
            reply = await client.post("/api/captures", json={"app": app})
            assert reply.status == 201, await reply.text()
        third = await client.post("/api/captures", json={"app": "AppC"})
        if two_stream_house.server.version_info() < (0, 31):
            assert third.status == 409, await third.text()
            assert "in use" in (await third.json())["error"]
            assert service.can_add_streams is False
            return
        assert third.status == 201, await third.text()
        capture = await third.json()
        extra = capture["stream"]
        assert extra not in ("Main", "Second")
        assert extra in _stream_ids(two_stream_house.server)
        group = service.snap.room("room1").group_id
        reply = await client.put(f"/api/groups/{group}/stream", json={"stream": extra})
        assert reply.status == 200, await reply.text()
        await asyncio.to_thread(wait_for_tone, two_stream_house.room, 1500, 40)

        gone = await client.delete(f"/api/captures/{capture['id']}")
        assert gone.status == 200
        await asyncio.to_thread(
            wait_until,
            lambda: extra not in _stream_ids(two_stream_house.server),
            10,
            f"{extra} removed",
        )


def _rooms(service: Service) -> Any:
    async def check() -> bool:
        return service.snap.connected and len(service.snap.view().rooms) == 2

    return check


def _level(client: TestClient[Any, Any], key: str) -> Any:
    async def check() -> bool:
        data = await (await client.get(f"/api/captures/{key}")).json()
        return data["level"]["rms_db"] is not None and data["level"]["rms_db"] > -20

    return check
