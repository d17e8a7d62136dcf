"""POST /api/announce without PipeWire: what is refused, and how."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.config import AnnounceConfig
from broadcaster.web.app import make_app
from tests.unit.test_web import AUTH, make_service


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    service = make_service()
    service.config = dataclasses.replace(service.config, announce=AnnounceConfig(max_upload_mb=0.1))
    async with TestClient(TestServer(make_app(service))) as test_client:
        yield test_client


async def test_a_sound_that_is_not_one_is_a_400(client: TestClient[Any, Any]) -> None:
    reply = await client.post(
        "/api/announce", data=b"RIFF junk", headers={**AUTH, "Content-Type": "audio/wav"}
    )
    assert reply.status == 400
    assert "cannot decode" in (await reply.json())["error"]


async def test_a_sound_over_the_size_limit_is_refused(client: TestClient[Any, Any]) -> None:
    reply = await client.post(
        "/api/announce", data=b"\0" * 200_000, headers={**AUTH, "Content-Type": "audio/wav"}
    )
    assert reply.status == 413
    assert "larger than" in (await reply.json())["error"]


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b'{"text": ""}', "application/json", "text must be a non-empty string"),
        (b'{"text": "hi", "rooms": 3}', "application/json", "rooms must be a list"),
        (b'{"text": null}', "application/json", "text must be a non-empty string"),
        # An empty list named no room: it played in every room.
        (b'{"text": "hi", "rooms": []}', "application/json", "rooms names no room"),
        (b'{"text": "hi", "rooms": " , "}', "application/json", "rooms names no room"),
        (b"hello", "text/plain", "send a sound file"),
        (b"", "audio/ogg", "the body is empty"),
    ],
)
async def test_bad_requests_are_400(
    client: TestClient[Any, Any], body: bytes, kind: str, message: str
) -> None:
    reply = await client.post("/api/announce", data=body, headers={**AUTH, "Content-Type": kind})
    assert reply.status == 400, await reply.text()
    assert message in (await reply.json())["error"]


async def test_announcing_needs_the_token(client: TestClient[Any, Any]) -> None:
    reply = await client.post("/api/announce", json={"text": "hello"})
    assert reply.status == 401
