"""The transport and cover routes without snapserver: validation and refusals.

(The way to the player, through a real snapserver and controlscript, is
tests/integration/test_transport.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.web import api
from broadcaster.web.app import make_app
from tests.unit import test_transport
from tests.unit.test_web import AUTH, make_service

# test_transport's player (it can do all but go back and seek), paused elsewhere in another song.
PROPS: dict[str, Any] = {
    **test_transport.PROPS,
    "playbackStatus": "paused",
    "position": 12.0,
    "metadata": {"title": "Song", "artist": ["Someone"], "duration": 200.0},
}


def status(props: dict[str, Any], art: str = "") -> dict[str, Any]:
    meta = {**props.get("metadata", {}), **({"artUrl": art} if art else {})}
    return {
        "groups": [],
        "streams": [
            {
                "id": "app",
                "status": "idle",
                "uri": {"raw": "pipe:///tmp/app"},
                "properties": {**props, "metadata": meta},
            },
            {"id": "plain", "status": "idle", "uri": {"raw": "pipe:///tmp/plain"}},
        ],
    }


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(make_service()))) as test_client:
        yield test_client


def use(client: TestClient[Any, Any], server_status: dict[str, Any]) -> None:
    snap = client.app[api.SERVICE].snap
    snap.status = server_status
    snap.players.update(server_status)


async def post(client: TestClient[Any, Any], stream: str, body: Any) -> tuple[int, str]:
    reply = await client.post(f"/api/streams/{stream}/control", json=body, headers=AUTH)
    return reply.status, (await reply.json())["error"]


async def test_state_carries_each_streams_player(client: TestClient[Any, Any]) -> None:
    use(client, status(PROPS, art="file:///tmp/cover.png"))
    streams = {
        s["id"]: s for s in (await (await client.get("/api/state", headers=AUTH)).json())["streams"]
    }
    player = streams["app"]["player"]
    assert player["title"] == "Song"
    assert player["position"] == 12.0
    assert player["can"]["next"] is True
    assert player["can"]["previous"] is False
    assert player["art"].startswith("/api/streams/app/art?v=")
    assert streams["plain"]["player"]["status"] == "stopped"
    assert not any(streams["plain"]["player"]["can"].values())


async def test_bad_commands_are_400_and_what_the_player_cannot_409(
    client: TestClient[Any, Any],
) -> None:
    assert (await post(client, "app", {"command": "play"}))[0] == 503  # not connected yet
    use(client, status(PROPS))
    assert (await post(client, "app", {}))[0] == 400
    code, error = await post(client, "app", {"command": "rewind"})
    assert code == 400
    assert "command must be one of play, pause" in error
    assert (await post(client, "app", {"command": "seek", "seconds": "ten"}))[0] == 400
    assert (await post(client, "app", {"command": "seek", "seconds": True}))[0] == 400
    # JSON from Python's parser may hold NaN/Infinity: snapserver cannot parse them
    # back and never answers (a 504 after 5 s); a negative position is no position.
    for bad in ("NaN", "Infinity", "-Infinity"):
        reply = await client.post(
            "/api/streams/app/control",
            data=f'{{"command": "seek", "seconds": {bad}}}',
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert reply.status == 400, bad
        assert "seconds must be a finite number" in (await reply.json())["error"]
    # Beyond MPRIS's 64-bit microseconds the player could not be told it.
    code, error = await post(client, "app", {"command": "seek", "seconds": 1e300})
    assert (code, error) == (400, "seconds must be a finite number of seconds, not 1e+300")
    code, error = await post(client, "app", {"command": "position", "seconds": -5})
    assert (code, error) == (400, "position needs seconds from 0 up, not -5")
    assert (await post(client, "nowhere", {"command": "play"}))[0] == 404
    assert await post(client, "app", {"command": "previous"}) == (
        409,
        "the player of stream 'app' cannot go back to the previous track now",
    )
    assert await post(client, "app", {"command": "seek", "seconds": 5}) == (
        409,
        "the player of stream 'app' cannot seek now",
    )
    seekable = {**PROPS, "canSeek": True}
    use(client, status(seekable))
    for raw in ("NaN", "Infinity", "1e400", "1e303"):
        reply = await client.post(
            "/api/streams/app/control",
            data=f'{{"command": "seek", "seconds": {raw}}}',
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert reply.status == 400, raw
    use(client, status(PROPS))
    code, error = await post(client, "plain", {"command": "play"})
    assert code == 409
    assert "has no player to control" in error
    # Allowed: it would be sent, but the control connection is down.
    assert (await post(client, "app", {"command": "next"}))[0] == 503


async def test_covers(client: TestClient[Any, Any], tmp_path: Path) -> None:
    image = tmp_path / "c.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    use(client, status(PROPS, art=image.as_uri()))
    reply = await client.get("/api/streams/app/art", headers=AUTH)
    assert reply.status == 200
    assert reply.content_type == "image/png"
    assert (await client.get("/api/streams/app/art")).status == 401  # behind the token
    assert (await client.get("/api/streams/plain/art", headers=AUTH)).status == 404
    use(client, status(PROPS, art="https://example.invalid/c.jpg"))
    assert (await client.get("/api/streams/app/art", headers=AUTH)).status == 404  # linked only
    use(client, status(PROPS, art=(tmp_path).as_uri()))
    assert (await client.get("/api/streams/app/art", headers=AUTH)).status == 403
