"""The web layer without snapserver: input validation, tokens, errors, the page,
metrics text and snapserver status flattening (through aiohttp's test client)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.config import Config, SnapserverConfig, WebConfig
from broadcaster.errors import (
    BusyError,
    ControlConnectionError,
    ControlTimeoutError,
    NotFoundError,
    ServerReplyError,
    SnapserverError,
)
from broadcaster.rooms import ServerStatus
from broadcaster.scenes import Scene, SceneStore
from broadcaster.service import Service
from broadcaster.web import api, metrics, scenes_api
from broadcaster.web.app import make_app
from broadcaster.web.auth import BadRequest, status_for
from broadcaster.web.publish import SERVICE_TYPE, announcements
from tests.support.procs import free_port
from tests.unit.test_service import StandIn, pipes_status

TOKEN = "unit-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

STATUS: dict[str, Any] = {
    "server": {
        "server": {"host": {"name": "box"}, "snapserver": {"version": "0.26.0"}},
        "groups": [
            {
                "id": "g1",
                "name": "",
                "stream_id": "Main",
                "muted": False,
                "clients": [
                    {
                        "id": "kitchen-id",
                        "connected": True,
                        "host": {"name": "kitchen-host"},
                        "config": {
                            "name": "Kitchen",
                            "latency": 20,
                            "volume": {"percent": 40, "muted": True},
                        },
                    },
                    {
                        "id": "den-id",
                        "connected": False,
                        "host": {"name": "den"},
                        "config": {"name": "", "volume": {"percent": 100, "muted": False}},
                    },
                ],
            }
        ],
        "streams": [
            {
                "id": "Main",
                "status": "playing",
                "uri": {"raw": "pipe:///tmp/f?name=Main", "scheme": "pipe", "path": "/tmp/f"},
                "properties": {"metadata": {"title": "Song", "artist": ["A", "B"]}},
            }
        ],
    }
}


def test_the_api_flattens_rooms_groups_streams() -> None:
    view = ServerStatus.from_json(STATUS)
    kitchen, den = (api.room_json(room) for room in view.rooms)
    assert (kitchen["id"], kitchen["name"], kitchen["volume"], kitchen["muted"]) == (
        "kitchen-id",
        "Kitchen",
        40,
        True,
    )
    assert (kitchen["group"], kitchen["latency"], kitchen["connected"]) == ("g1", 20, True)
    assert (den["name"], den["connected"]) == ("den", False)  # no name set: the host name
    assert api.group_json(view.groups[0])["rooms"] == ["kitchen-id", "den-id"]
    stream = api.stream_json(view.streams[0])
    assert stream["title"] == "Song"
    assert stream["artist"] == "A, B"


def test_error_statuses() -> None:
    assert status_for(NotFoundError("x")) == 404
    assert status_for(BadRequest("x")) == 400
    assert status_for(BusyError("x")) == 409
    assert status_for(ControlConnectionError("x")) == 503
    assert status_for(ControlTimeoutError("x")) == 504
    assert status_for(ServerReplyError("x")) == 502
    assert status_for(SnapserverError("x")) == 500


async def test_rooms_over_http_are_found_like_in_the_cli() -> None:
    """By id, name or host name, ignoring case; an ambiguous name is a 400 that says so."""
    service = make_service()
    async with TestClient(TestServer(make_app(service))) as client:
        service.snap.status = STATUS["server"]
        for key in ("kitchen-id", "Kitchen", "kitchen", "kitchen-host", "KITCHEN-HOST"):
            reply = await client.get(f"/api/rooms/{key}", headers=AUTH)
            assert reply.status == 200, key
            assert (await reply.json())["id"] == "kitchen-id"
        group = await client.put(
            "/api/groups/KITCHEN/mute", json={"muted": True}, headers=AUTH
        )  # the room's group; the control connection is down: 503, not 404
        assert group.status == 503
        missing = await client.get("/api/rooms/attic", headers=AUTH)
        assert missing.status == 404
        assert "no room 'attic'" in (await missing.json())["error"]

        twins = copy.deepcopy(STATUS["server"])
        twins["groups"][0]["clients"][1]["config"]["name"] = "KITCHEN"
        service.snap.status = twins
        exact = await client.get("/api/rooms/Kitchen", headers=AUTH)
        assert (await exact.json())["id"] == "kitchen-id"
        for reply in (
            await client.get("/api/rooms/kitchen", headers=AUTH),
            await client.put("/api/rooms/kitchen/volume", json={"percent": 10}, headers=AUTH),
        ):
            assert reply.status == 400
            error = (await reply.json())["error"]
            assert "ambiguous" in error
            assert "kitchen-id" in error
            assert "den-id" in error


async def test_a_saved_scene_by_its_name(tmp_path: Path) -> None:
    """``GET /api/scenes/{scene}``: the scene as saved; an unknown one is a 404 naming the saved."""
    app = make_app(make_service())
    app[scenes_api.STORE] = store = SceneStore(tmp_path / "scenes.json")
    scene = Scene.capture("evening", ServerStatus.from_json(STATUS))
    store.save(scene)
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/api/scenes/evening", headers=AUTH)
        assert reply.status == 200
        assert Scene.from_json(await reply.json()) == scene
        missing = await client.get("/api/scenes/morning", headers=AUTH)
        assert missing.status == 404
        assert "(saved: 'evening')" in (await missing.json())["error"]


def make_service(token: str = TOKEN) -> Service:
    def factory(target: Any, config: Config, env: Any) -> StandIn:
        return StandIn(target, config)

    config = Config(
        server=f"127.0.0.1:{free_port()}",  # nothing answers: the control plane stays down
        snapserver=SnapserverConfig(mode="never"),
        web=WebConfig(token=token, publish=False),
    )
    return Service(config, runner_factory=factory)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    service = make_service()
    async with TestClient(TestServer(make_app(service))) as test_client:
        yield test_client


async def test_page_and_assets_are_served(client: TestClient[Any, Any]) -> None:
    page = await client.get("/")
    assert page.status == 200
    html = await page.text()
    assert '<script src="/static/app.js"' in html
    assert 'name="viewport"' in html
    for asset in ("/static/app.js", "/static/style.css"):
        assert (await client.get(asset)).status == 200
    assert (await client.get("/static/nope.js")).status == 404


async def test_changes_need_the_token(client: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope-nope-nope"}, {"Authorization": TOKEN}):
        reply = await client.post("/api/captures", json={"app": "x"}, headers=headers)
        assert reply.status == 401, headers
        assert "token" in (await reply.json())["error"]
    reply = await client.post(f"/api/captures?token={TOKEN}", json={"app": "x"})
    assert reply.status != 401
    assert (await client.get("/api/state", headers=AUTH)).status == 200


async def test_bad_bodies_are_400(client: TestClient[Any, Any]) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"{nope", "not valid JSON"),
        (b'{"app": "\xff\xfe"}', "not valid JSON"),  # invalid UTF-8
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "needs app or pid"),
        (b'{"app": 3}', "app must be a non-empty string"),
        (b'{"pid": -4}', "pid must be an integer"),
        (b'{"app": "x", "pid": 4}', "not both"),
    ]
    for body, message in cases:
        reply = await client.post(
            "/api/captures", data=body, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert reply.status == 400, body
        assert message in (await reply.json())["error"], body
    huge = await client.post(
        "/api/captures",
        data=b"x" * 100_000,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert huge.status == 413


async def test_a_null_value_is_a_missing_one(client: TestClient[Any, Any]) -> None:
    """``{"muted": null}`` is not an unmute, and ``{"percent": null}`` not a no-op 200."""
    cases = [
        ("put", "/api/rooms/kitchen/volume", {"percent": None}, "needs percent or muted"),
        ("put", "/api/rooms/kitchen/volume", {"percent": None, "muted": None}, "needs percent"),
        ("put", "/api/rooms/kitchen/mute", {"muted": None}, "needs muted"),
        ("put", "/api/groups/g1/mute", {"muted": None}, "needs muted"),
        ("post", "/api/captures", {"app": None}, "needs app or pid"),
    ]
    for method, path, body, message in cases:
        reply = await client.request(method, path, json=body, headers=AUTH)
        assert reply.status == 400, (path, body)
        assert message in (await reply.json())["error"], (path, body)


async def test_rooms_when_snapserver_is_down_are_503(client: TestClient[Any, Any]) -> None:
    reply = await client.put("/api/rooms/kitchen/volume", json={"percent": 3}, headers=AUTH)
    assert reply.status == 503
    assert "not connected to snapserver" in (await reply.json())["error"]
    health = await client.get("/api/health", headers=AUTH)
    assert health.status == 503
    assert (await health.json())["snapserver"]["connected"] is False
    unknown = await client.get("/api/nothing-here", headers=AUTH)
    assert unknown.status == 404
    assert "error" in await unknown.json()


async def test_captures_and_their_live_updates(client: TestClient[Any, Any]) -> None:
    service = client.app[api.SERVICE]
    service.snap.status = pipes_status("Main")
    ws = await client.ws_connect(f"/api/events?token={TOKEN}")
    try:
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "state"
        assert first["captures"] == []
        assert first["slots"] == ["Main"]
        reply = await client.post("/api/captures", json={"app": "spotify"}, headers=AUTH)
        assert reply.status == 201
        created = await reply.json()
        assert (created["app"], created["stream"]) == ("spotify", "Main")
        busy = await client.post("/api/captures", json={"app": "other"}, headers=AUTH)
        assert busy.status == 409
        async with asyncio.timeout(5):
            while True:
                message = await ws.receive_json()
                if message["type"] == "captures" and message["captures"]:
                    assert message["captures"][0]["id"] == created["id"]
                    break
        gone = await client.delete(f"/api/captures/{created['id']}", headers=AUTH)
        assert gone.status == 200
        listed = await client.get("/api/captures", headers=AUTH)
        assert (await listed.json())["captures"] == []
    finally:
        await ws.close()


async def test_events_socket_needs_the_token(client: TestClient[Any, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/events?token=wrong")
    assert refused.value.status == 401


async def test_metrics_text_format() -> None:
    service = make_service()
    service.snap.status = STATUS["server"]
    service.snap.connected = True
    service.snap.status = {**STATUS["server"], "streams": pipes_status("Main")["streams"]}
    capture = await service.start_capture('we"ird')
    await asyncio.sleep(0)
    capture.runner.status.capture.bytes_captured = 48000 * 4
    capture.runner.status.delivery.chunks_dropped = 3
    text = metrics.render(service)
    lines = text.splitlines()
    assert "# TYPE broadcaster_frames_captured_total counter" in lines
    assert "# TYPE broadcaster_level_dbfs gauge" in lines
    labels = '{capture="1",app="we\\"ird",stream="Main"}'
    assert f"broadcaster_frames_captured_total{labels} 48000" in lines
    assert f"broadcaster_chunks_dropped_total{labels} 3" in lines
    assert f"broadcaster_level_dbfs{labels} -Inf" in lines
    assert f"broadcaster_capture_latency_seconds{labels} 0.1" in lines
    assert 'broadcaster_room_volume_percent{room="kitchen-id",name="Kitchen"} 40' in lines
    assert "broadcaster_up 1" in lines
    for line in lines:
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2
    await service.stop()


def test_announcements() -> None:
    service = make_service("")
    service.snap.host = "192.0.2.1"  # a snapserver elsewhere announces itself
    only_us = announcements(service, avahi_running=False)
    assert [a.type for a in only_us] == [SERVICE_TYPE]
    assert only_us[0].port == 1788
    assert only_us[0].properties["auth"] == "none"
    service.managed = object()  # type: ignore[assignment]
    types = [a.type for a in announcements(service, avahi_running=False)]
    assert "_snapcast._tcp.local." in types
    # snapserver's control is on loopback: announcing it would point at nothing.
    assert "_snapcast-jsonrpc._tcp.local." not in types
    assert "_snapcast-http._tcp.local." not in types
    service.config = dataclasses.replace(
        service.config, snapserver=SnapserverConfig(lan_control=True)
    )
    types = [a.type for a in announcements(service, avahi_running=False)]
    assert "_snapcast-jsonrpc._tcp.local." in types
    assert [a.type for a in announcements(service, avahi_running=True)] == [SERVICE_TYPE]


async def test_without_a_token_other_web_pages_cannot_drive_it() -> None:
    service = make_service("")
    async with TestClient(TestServer(make_app(service))) as open_client:
        # DNS rebinding: a page's own name resolved to 127.0.0.1.
        rebound = await open_client.get("/api/state", headers={"Host": "evil.example:1788"})
        assert rebound.status == 403
        assert "web.hosts" in (await rebound.json())["error"]
        for host in ("localhost:1788", "127.0.0.1", "[::1]:1788"):
            assert (await open_client.get("/api/state", headers={"Host": host})).status == 200
        # A cross-site "simple" POST (text/plain, no preflight) is refused.
        simple = await open_client.post(
            "/api/captures", data=b'{"app": "x"}', headers={"Content-Type": "text/plain"}
        )
        assert simple.status == 400
        assert "Content-Type: application/json" in (await simple.json())["error"]
