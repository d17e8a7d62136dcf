"""The HTTP API against a real snapserver 0.26 with two real snapclients.

The service runs in-process behind aiohttp's test server; every change made
through the API is checked on snapserver over its own control port (the
test's independent view), and every change made on snapserver directly must
reach the live-updates socket.  Captures run a real Broadcast in a private
PipeWire session in ``test_capture_plays_app_into_its_stream``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.config import Config, SnapserverConfig, WebConfig
from broadcaster.service import Service
from broadcaster.web.app import make_app
from tests.support.procs import await_until
from tests.support.snapserver import House, SnapServer

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


def service_config(server: SnapServer, token: str = "") -> Config:
    return Config(
        server=f"127.0.0.1:{server.control_port}",
        timeout=5.0,
        snapserver=SnapserverConfig(mode="never"),
        web=WebConfig(token=token, publish=False),
    )


@pytest.fixture
async def client(
    two_stream_house: House,
) -> AsyncIterator[TestClient[Any, Any]]:
    service = Service(service_config(two_stream_house.server, TOKEN))
    async with TestClient(TestServer(make_app(service, publish=False))) as test_client:
        await await_until(_connected(service), 20, "the service to reach snapserver")
        yield test_client


async def ok(client: TestClient[Any, Any], method: str, path: str, body: Any) -> Any:
    """``method`` ``path`` with ``body`` (authorized): the reply's JSON, once it is a 200."""
    reply = await client.request(method, path, json=body, headers=AUTH)
    assert reply.status == 200, await reply.text()
    return await reply.json()


def _connected(service: Service) -> Any:
    async def check() -> bool:
        return service.snap.connected and len(service.snap.view().rooms) == 2

    return check


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_lists_rooms_groups_streams(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    rooms = await (await client.get("/api/rooms", headers=AUTH)).json()
    assert sorted(r["id"] for r in rooms) == ["room1", "room2"]
    streams = await (await client.get("/api/streams", headers=AUTH)).json()
    assert [s["id"] for s in streams] == ["Main", "Second"]
    groups = await (await client.get("/api/groups", headers=AUTH)).json()
    truth = two_stream_house.server.status()["groups"]
    assert sorted(g["id"] for g in groups) == sorted(g["id"] for g in truth)
    state = await (await client.get("/api/state", headers=AUTH)).json()
    assert state["connected"] is True
    assert state["slots"] == ["Main", "Second"]
    health = await client.get("/api/health", headers=AUTH)
    assert health.status == 200
    assert (await health.json())["snapserver"]["connected"] is True


async def test_volume_mute_and_name_reach_snapserver(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    room = await ok(client, "PUT", "/api/rooms/room1/volume", {"percent": 37})
    assert room["volume"] == 37
    assert two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"] == 37

    await ok(client, "PUT", "/api/rooms/room2/mute", {"muted": True})
    assert two_stream_house.server.clients()["room2"]["config"]["volume"]["muted"] is True

    await ok(client, "PUT", "/api/rooms/room2/name", {"name": "Kitchen"})
    assert two_stream_house.server.clients()["room2"]["config"]["name"] == "Kitchen"
    # ...and the room can now be named by its name.
    reply = await client.get("/api/rooms/Kitchen", headers=AUTH)
    assert (await reply.json())["id"] == "room2"


async def test_group_stream_and_members_reach_snapserver(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    group = two_stream_house.server.clients()["room1"]
    group_id = next(
        g["id"]
        for g in two_stream_house.server.status()["groups"]
        if any(c["id"] == "room1" for c in g["clients"])
    )
    await ok(client, "PUT", f"/api/groups/{group_id}/stream", {"stream": "Second"})
    assert (
        next(g for g in two_stream_house.server.status()["groups"] if g["id"] == group_id)[
            "stream_id"
        ]
        == "Second"
    )

    await ok(client, "PUT", f"/api/groups/{group_id}/rooms", {"rooms": ["room1", "room2"]})
    members = {
        c["id"]
        for g in two_stream_house.server.status()["groups"]
        if g["id"] == group_id
        for c in g["clients"]
    }
    assert members == {"room1", "room2"}
    assert group["id"] == "room1"


async def test_latency_group_volume_and_party_reach_snapserver(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    await ok(client, "PUT", "/api/rooms/room1/latency", {"latency_ms": 120})
    assert two_stream_house.server.clients()["room1"]["config"]["latency"] == 120
    # A room behind the others plays earlier: a negative latency, as calibration sets.
    room = await ok(client, "PUT", "/api/rooms/room1/latency", {"latency_ms": -250})
    assert room["latency"] == -250
    assert two_stream_house.server.clients()["room1"]["config"]["latency"] == -250
    # Beyond the stream buffer (400 ms here) snapserver keeps its buffer: the reply says so.
    room = await ok(client, "PUT", "/api/rooms/room1/latency", {"latency_ms": 900})
    assert room["latency"] == two_stream_house.server.clients()["room1"]["config"]["latency"] == 400
    reply = await client.put("/api/rooms/room1/latency", json={"latency_ms": -10001}, headers=AUTH)
    assert reply.status == 400
    assert "-10000 to 10000" in (await reply.json())["error"]
    assert two_stream_house.server.clients()["room1"]["config"]["latency"] == 400
    reply = await client.put("/api/rooms/room1/latency", json={"latency_ms": None}, headers=AUTH)
    assert reply.status == 400
    assert (await reply.json())["error"] == "the body needs latency_ms"

    # Party: both rooms in one group on "Second".
    await ok(client, "POST", "/api/party", {"stream": "Second"})
    groups = [g for g in two_stream_house.server.status()["groups"] if g["clients"]]
    assert len(groups) == 1
    assert {c["id"] for c in groups[0]["clients"]} == {"room1", "room2"}
    assert groups[0]["stream_id"] == "Second"

    # Group volume scales the rooms proportionally (snapweb): 80/40 at 60 -> 30 halves both.
    group_id = groups[0]["id"]
    for room, percent in (("room1", 80), ("room2", 40)):
        await ok(client, "PUT", f"/api/rooms/{room}/volume", {"percent": percent})
    await ok(client, "PUT", f"/api/groups/{group_id}/volume", {"percent": 30})
    clients = two_stream_house.server.clients()
    assert clients["room1"]["config"]["volume"]["percent"] == 40
    assert clients["room2"]["config"]["volume"]["percent"] == 20

    reply = await client.put(f"/api/groups/{group_id}/volume", json={"percent": 101}, headers=AUTH)
    assert reply.status == 400
    reply = await client.post("/api/party", json={"stream": "Nope"}, headers=AUTH)
    assert reply.status == 404


async def test_bad_input_gets_clear_4xx(client: TestClient[Any, Any]) -> None:
    cases: list[tuple[str, str, Any, int, str]] = [
        ("PUT", "/api/rooms/nosuch/volume", {"percent": 10}, 404, "no room 'nosuch'"),
        ("PUT", "/api/rooms/room1/volume", {"percent": 101}, 400, "percent must be an integer"),
        ("PUT", "/api/rooms/room1/volume", {"percent": -1}, 400, "0 to 100"),
        ("PUT", "/api/rooms/room1/volume", {"percent": True}, 400, "percent"),
        ("PUT", "/api/rooms/room1/volume", {}, 400, "needs percent or muted"),
        ("PUT", "/api/rooms/room1/mute", {"muted": "yes"}, 400, "true or false"),
        ("PUT", "/api/rooms/room1/name", {"name": "a\x00b"}, 400, "without control characters"),
        ("PUT", "/api/rooms/room1/name", {"name": "a\nb"}, 400, "without control characters"),
        ("PUT", "/api/groups/nosuch/stream", {"stream": "Main"}, 404, "no group"),
        ("DELETE", "/api/captures/99", None, 404, "no capture '99'"),
        ("GET", "/api/captures/99", None, 404, "no capture"),
    ]
    for method, path, body, status, text in cases:
        reply = await client.request(method, path, json=body, headers=AUTH)
        data = await reply.json()
        assert reply.status == status, (path, body, data)
        assert text in data["error"], (path, body, data)
    malformed = await client.put(
        "/api/rooms/room1/volume",
        data=b"{percent: 3",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert malformed.status == 400
    assert "not valid JSON" in (await malformed.json())["error"]
    groups = await (await client.get("/api/groups", headers=AUTH)).json()
    reply = await client.put(
        f"/api/groups/{groups[0]['id']}/stream", json={"stream": "Nope"}, headers=AUTH
    )
    assert reply.status == 404
    assert "no stream 'Nope'" in (await reply.json())["error"]


async def test_token_is_required_for_changes_and_events(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    before = two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"]
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        reply = await client.put("/api/rooms/room1/volume", json={"percent": 3}, headers=headers)
        assert reply.status == 401
        assert "token" in (await reply.json())["error"]
    assert two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"] == before
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/events")
    assert refused.value.status == 401
    ws = await client.ws_connect(f"/api/events?token={TOKEN}")
    first = await ws.receive_json(timeout=10)
    assert first["type"] == "state"
    await ws.close()
    # With a token set, reads need it too (web.public_reads opens them).
    assert (await client.get("/api/rooms")).status == 401
    assert (await client.get("/api/rooms", headers=AUTH)).status == 200


async def test_changes_on_snapserver_reach_the_events_socket(
    client: TestClient[Any, Any], two_stream_house: House
) -> None:
    ws = await client.ws_connect(f"/api/events?token={TOKEN}")
    try:
        first = await ws.receive_json(timeout=10)
        assert {r["id"] for r in first["rooms"]} == {"room1", "room2"}
        # Someone else (the snapcast app, the CLI) changes a volume on snapserver.
        await asyncio.to_thread(
            two_stream_house.server.rpc,
            "Client.SetVolume",
            {"id": "room2", "volume": {"percent": 23, "muted": False}},
        )
        async with asyncio.timeout(15):
            while True:
                message = await ws.receive_json()
                if message["type"] != "server":
                    continue
                room = next(r for r in message["rooms"] if r["id"] == "room2")
                if room["volume"] == 23:
                    break
    finally:
        await ws.close()


async def test_metrics_are_prometheus_text(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/metrics", headers=AUTH)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await reply.text()
    assert "# TYPE broadcaster_up gauge" in text
    assert "broadcaster_up 1" in text
    assert 'broadcaster_room_volume_percent{room="room1",' in text


async def test_snapserver_restart_and_hang_are_survived(
    two_stream_house: House,
) -> None:
    config = dataclasses.replace(service_config(two_stream_house.server, TOKEN), timeout=1.0)
    service = Service(config)
    async with TestClient(TestServer(make_app(service, publish=False))) as client:
        await await_until(_connected(service), 20, "the service to reach snapserver")
        ws = await client.ws_connect(f"/api/events?token={TOKEN}")
        try:
            assert (await ws.receive_json(timeout=10))["connected"] is True

            # A hung snapserver: requests fail with 504 after the deadline, not hang.
            await asyncio.to_thread(two_stream_house.server.pause)
            try:
                started = asyncio.get_running_loop().time()
                reply = await client.put(
                    "/api/rooms/room1/volume", json={"percent": 50}, headers=AUTH
                )
                assert reply.status == 504
                assert "did not answer" in (await reply.json())["error"]
                assert asyncio.get_running_loop().time() - started < 5
            finally:
                await asyncio.to_thread(two_stream_house.server.resume)

            # A restarted snapserver: the page hears it go and come back.
            await asyncio.to_thread(two_stream_house.server.stop)
            await _wait_connected(ws, False)
            down = await client.put("/api/rooms/room1/volume", json={"percent": 5}, headers=AUTH)
            assert down.status == 503
            await asyncio.to_thread(two_stream_house.server.start)
            await _wait_connected(ws, True)
        finally:
            await ws.close()
        await await_until(_connected(service), 30, "the rooms to come back")
        await ok(client, "PUT", "/api/rooms/room1/volume", {"percent": 44})
        assert two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"] == 44


async def _wait_connected(ws: aiohttp.ClientWebSocketResponse, connected: bool) -> None:
    async with asyncio.timeout(30):
        while True:
            message = await ws.receive_json()
            if message["type"] == "server" and message["connected"] is connected:
                return


async def test_scenes_save_restore_delete(tmp_path: Path, two_stream_house: House) -> None:
    from broadcaster.scenes import SceneStore
    from broadcaster.web import scenes_api

    service = Service(service_config(two_stream_house.server, TOKEN))
    app = make_app(service, publish=False)
    app[scenes_api.STORE] = SceneStore(tmp_path / "scenes.json")
    async with TestClient(TestServer(app)) as client:
        await await_until(_connected(service), 20, "the service to reach snapserver")
        await client.put("/api/rooms/room1/volume", json={"percent": 61}, headers=AUTH)
        saved = await client.post("/api/scenes", json={"name": "evening"}, headers=AUTH)
        assert saved.status == 201, await saved.text()
        assert (await saved.json())["rooms"] == 2
        listed = await (await client.get("/api/scenes", headers=AUTH)).json()
        assert [s["name"] for s in listed] == ["evening"]

        await client.put("/api/rooms/room1/volume", json={"percent": 5}, headers=AUTH)
        assert two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"] == 5
        restored = await client.put("/api/scenes/evening/restore", headers=AUTH)
        assert restored.status == 200, await restored.text()
        assert (await restored.json())["missing_rooms"] == []
        assert (await restored.json())["missing_streams"] == []
        assert two_stream_house.server.clients()["room1"]["config"]["volume"]["percent"] == 61

        async def page_view_updated() -> bool:
            return service.snap.room("room1").volume == 61

        await await_until(page_view_updated, 10, "the service's view to follow the restore")
        missing = await client.put("/api/scenes/nope/restore", headers=AUTH)
        assert missing.status == 404
        assert "no scene 'nope'" in (await missing.json())["error"]
        bad = await client.post("/api/scenes", json={"name": "a/b"}, headers=AUTH)
        assert bad.status == 400
        gone = await client.delete("/api/scenes/evening", headers=AUTH)
        assert gone.status == 200
        assert await (await client.get("/api/scenes", headers=AUTH)).json() == []
