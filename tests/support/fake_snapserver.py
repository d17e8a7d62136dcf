"""A scripted JSON-RPC stand-in for snapserver, only for faults the real one cannot produce.

Garbage lines, a reply cut mid-character across writes, a connection dropped
in the middle of a call, silence on connect.  Requests are recorded in
:attr:`FakeSnapserver.requests`; each method's answer comes from
:attr:`FakeSnapserver.handlers` (params -> an :class:`Answer`).  Listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def minimal_status(rooms: int = 1) -> dict[str, Any]:
    clients = [
        {
            "id": f"room{i}",
            "connected": True,
            "config": {"name": "", "latency": 0, "volume": {"percent": 50, "muted": False}},
            "host": {"name": f"host{i}", "ip": "127.0.0.1"},
        }
        for i in range(1, rooms + 1)
    ]
    return {
        "server": {
            "server": {"snapserver": {"version": "0.26.0", "name": "Snapserver"}, "host": {}},
            "groups": [
                {"id": "g1", "name": "", "muted": False, "stream_id": "s", "clients": clients}
            ],
            "streams": [{"id": "s", "status": "idle", "uri": {"scheme": "pipe", "query": {}}}],
        }
    }


NON_ASCII_NAME = "Küche 🎵"
"""A room name whose last character is four bytes of UTF-8."""


def status_cut_mid_character(
    fake: FakeSnapserver, request_id: int, before: list[bytes]
) -> dict[str, Any]:
    """Have ``fake`` answer ``Server.GetStatus`` (request ``request_id``) with a status
    whose room1 is :data:`NON_ASCII_NAME`, written after ``before`` and cut in two in
    the middle of that name's last character; return the status."""
    status = minimal_status()
    status["server"]["groups"][0]["clients"][0]["config"]["name"] = NON_ASCII_NAME
    reply = json.dumps({"id": request_id, "jsonrpc": "2.0", "result": status}, ensure_ascii=False)
    cut = reply.encode().index("🎵".encode()) + 1
    fake.handlers["Server.GetStatus"] = lambda _p: Answer(
        result=status, before=before, split_at=cut
    )
    return status


@dataclass
class Answer:
    """What to send back: a result, an error, raw bytes (in pieces), nothing, or hang up."""

    result: Any = None
    error: dict[str, Any] | None = None
    before: list[bytes] = field(default_factory=list)
    """Raw writes (each drained separately) before the reply: garbage, notifications."""
    split_at: int | None = None
    """Write the reply in two pieces, cut at this byte offset."""
    silent: bool = False
    hang_up: bool = False


Handler = Callable[[dict[str, Any]], Answer]


class FakeSnapserver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.handlers: dict[str, Handler] = {
            "Server.GetStatus": lambda _p: Answer(result=minimal_status())
        }
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def __aenter__(self) -> FakeSnapserver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def notify(
        self, method: str, params: dict[str, Any], split_at: int | None = None
    ) -> None:
        data = json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode() + b"\r\n"
        for writer in list(self._writers):
            await _write(writer, data, split_at)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                request = json.loads(line)
                self.requests.append(request)
                handler = self.handlers.get(request["method"])
                answer = (
                    handler(request.get("params") or {})
                    if handler
                    else Answer(error={"code": -32601, "message": "Method not found"})
                )
                for raw in answer.before:
                    await _write(writer, raw, None)
                if answer.hang_up:
                    return
                if answer.silent:
                    continue
                reply: dict[str, Any] = {"id": request["id"], "jsonrpc": "2.0"}
                if answer.error is not None:
                    reply["error"] = answer.error
                else:
                    reply["result"] = answer.result
                data = json.dumps(reply, ensure_ascii=False).encode() + b"\r\n"
                await _write(writer, data, answer.split_at)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _write(writer: asyncio.StreamWriter, data: bytes, split_at: int | None) -> None:
    pieces = [data] if split_at is None else [data[:split_at], data[split_at:]]
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
