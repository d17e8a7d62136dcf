"""The calibration routes and their live updates, over a service with no snapserver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.web.app import make_app
from tests.unit.test_service import make_service


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    service, _made = make_service()
    async with TestClient(TestServer(make_app(service, publish=False))) as test_client:
        yield test_client


async def test_nothing_to_apply_undo_or_upload_before_a_run(
    client: TestClient[Any, Any],
) -> None:
    reply = await client.get("/api/calibration")
    assert reply.status == 200
    body = await reply.json()
    assert body["state"] == "idle"
    assert body["results"] == []
    for path in ("/api/calibration/apply", "/api/calibration/undo"):
        reply = await client.post(path, json={})
        assert reply.status == 400
        assert "calibration" in (await reply.json())["error"]
    reply = await client.post(
        "/api/calibration/recording?rate=48000",
        data=b"\0\0" * 10,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status == 400
    assert "waiting" in (await reply.json())["error"]


async def test_bad_starts_are_refused_in_one_line(client: TestClient[Any, Any]) -> None:
    reply = await client.post("/api/calibration", json={"stream": "nope"})
    assert reply.status == 404
    assert "nope" in (await reply.json())["error"]
    reply = await client.post("/api/calibration", json={"source": "$(rm -rf ~)"})
    assert reply.status == 400
    reply = await client.post("/api/calibration", data="x", headers={"Content-Type": "text/plain"})
    assert reply.status == 400


async def test_a_run_reports_its_failure_live_and_in_its_state(
    client: TestClient[Any, Any],
) -> None:
    async with client.ws_connect("/api/events") as ws:
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "state"
        reply = await client.post("/api/calibration", json={})  # the stream most rooms play
        assert reply.status == 202
        started = await reply.json()
        assert started["id"] == 1
        while True:
            message = await ws.receive_json(timeout=5)
            if message["type"] == "calibration" and message["calibration"]["state"] == "failed":
                break
    failed = message["calibration"]
    # No snapserver behind this service: the error says so, in one line.
    assert "snapserver" in failed["error"]
    assert "\n" not in failed["error"]
    reply = await client.get("/api/calibration")
    assert (await reply.json())["state"] == "failed"
