"""The web layer against the pages and names a hostile site can use
(docs/security.md): Origin on changes and WebSockets, the Host allow-list,
reads behind the token, framing, and bodies that would crash a parser."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.config import Config, WebConfig
from broadcaster.errors import ConfigError
from broadcaster.web.app import make_app
from tests.unit.test_service import pipes_status
from tests.unit.test_web import AUTH, TOKEN, make_service

EVIL = "http://evil.example"


def with_web(token: str = TOKEN, **web: Any) -> TestServer:
    service = make_service(token)
    service.config = dataclasses.replace(
        service.config, web=dataclasses.replace(service.config.web, **web)
    )
    return TestServer(make_app(service))


@pytest.mark.parametrize("token", ["", TOKEN])
async def test_cross_origin_changes_and_sockets_are_refused(token: str) -> None:
    auth = AUTH if token else {}
    async with TestClient(with_web(token)) as client:
        port = client.port
        assert port is not None
        own = f"http://{client.host}:{port}"
        for origin in (EVIL, "null", f"http://{client.host}:{port + 1}"):
            reply = await client.post(
                "/api/captures", json={"app": "x"}, headers={**auth, "Origin": origin}
            )
            assert reply.status == 403, origin
            assert "origin" in (await reply.json())["error"]
            for path in ("/api/events", "/stream"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await client.ws_connect(f"{path}?token={TOKEN}", headers={"Origin": origin})
                assert refused.value.status == 403, (path, origin)
        # The page's own origin, and no Origin at all (the CLI, curl), still work.
        for headers in ({"Origin": own}, {}):
            reply = await client.post(
                "/api/captures", json={"app": "x"}, headers={**auth, **headers}
            )
            assert reply.status == 503, headers  # past the checks: no snapserver to capture into
            ws = await client.ws_connect(f"/api/events?token={TOKEN}", headers=headers)
            assert (await ws.receive_json(timeout=5))["type"] == "state"
            await ws.close()


@pytest.mark.parametrize("token", ["", TOKEN])
async def test_only_allowed_host_names_are_answered(token: str) -> None:
    """A DNS-rebinding page reaches the service under its own name: refused in both modes."""
    auth = AUTH if token else {}
    async with TestClient(with_web(token)) as client:
        for path in ("/api/state", "/metrics"):
            reply = await client.get(path, headers={**auth, "Host": "evil.example:1788"})
            assert reply.status == 403, path
    async with TestClient(with_web(token, hosts="music.home")) as client:
        for host in ("evil.example", "evil.example:1788", "music.home.evil.example"):
            for path in ("/api/state", "/metrics", "/"):
                reply = await client.get(path, headers={**auth, "Host": host})
                assert reply.status == 403, (host, path)
        for host in (
            "127.0.0.1:1788",
            "localhost",
            "[::1]:1788",
            "192.168.1.20:1788",
            "[fe80::1]",
            "music.home",
            "MUSIC.home:1788",
        ):
            reply = await client.get("/api/state", headers={**auth, "Host": host})
            assert reply.status == 200, host
    async with TestClient(with_web(token, hosts="*")) as client:
        reply = await client.get("/api/state", headers={**auth, "Host": "anything.example"})
        assert reply.status == 200


async def test_host_names_are_compared_as_names() -> None:
    """A name listed with its trailing dot (the DNS root) is the same name; a
    Host that is not NAME[:PORT] (a browser never sends one) is no address."""
    async with TestClient(with_web(TOKEN, hosts="Music.Home.")) as client:
        for host in ("music.home", "music.home.:1788", "MUSIC.HOME"):
            reply = await client.get("/api/state", headers={**AUTH, "Host": host})
            assert reply.status == 200, host
        for host in ("127.0.0.1:1788@evil.example", "127.0.0.1:evil", "[::1]evil", "[::1"):
            reply = await client.get("/api/state", headers={**AUTH, "Host": host})
            assert reply.status == 403, host


async def test_a_malformed_request_is_one_log_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anyone who reaches the port can send a request without Host: a 400
    and one line, not a traceback at ERROR for each (aiohttp's default)."""
    import asyncio

    async with TestClient(with_web(TOKEN)) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"GET / HTTP/1.1\r\nX: y\r\n\r\n")
        await writer.drain()
        assert b" 400 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records
    for record in records:
        assert record.exc_info is None
        assert record.levelno < logging.WARNING
        assert "Host" in record.getMessage()


async def test_with_a_token_reads_need_it_too_unless_configured() -> None:
    async with TestClient(with_web(TOKEN)) as client:
        for path in ("/api/state", "/api/rooms", "/api/captures", "/api/health", "/metrics"):
            assert (await client.get(path)).status == 401, path
            assert (await client.get(path, headers=AUTH)).status in (200, 503), path
        # The page itself loads without it (it takes the token from #token=...).
        assert (await client.get("/")).status == 200
        assert (await client.get("/static/app.js")).status == 200
    async with TestClient(with_web(TOKEN, public_reads=True)) as client:
        assert (await client.get("/api/state")).status == 200
        assert (await client.get("/metrics")).status == 200
        assert (await client.post("/api/captures", json={"app": "x"})).status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/api/events")
        assert refused.value.status == 401


async def test_the_page_cannot_be_framed() -> None:
    async with TestClient(with_web("")) as client:
        for path in ("/", "/static/app.js", "/api/state", "/api/nothing"):
            reply = await client.get(path)
            assert reply.headers.get("X-Frame-Options") == "DENY", path
            assert "frame-ancestors 'none'" in reply.headers.get("Content-Security-Policy", "")


async def test_deeply_nested_json_is_a_400() -> None:
    async with TestClient(with_web(TOKEN)) as client:
        for path in ("/api/scenes", "/api/captures"):
            reply = await client.post(
                path,
                data=b"[" * 30_000 + b"]" * 30_000,  # deep, yet within the 64 KiB body limit
                headers={**AUTH, "Content-Type": "application/json"},
            )
            assert reply.status == 400, path
            assert "not valid JSON" in (await reply.json())["error"]


@pytest.mark.parametrize("hosts", ["a b", "évil", "host/path", "x" * 300])
def test_bad_host_lists_are_refused(hosts: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.hosts"):
        Config(web=WebConfig(hosts=hosts)).validate()


async def test_capturing_pid_1_is_a_400() -> None:
    """init is in every process's ancestry: {"pid": 1} would capture every app."""
    service = make_service(TOKEN)
    service.snap.status = pipes_status("Main")
    async with TestClient(TestServer(make_app(service))) as client:
        reply = await client.post("/api/captures", json={"pid": 1}, headers=AUTH)
        assert reply.status == 400
        assert "pid 1 is init" in (await reply.json())["error"]
        assert service.captures == {}
