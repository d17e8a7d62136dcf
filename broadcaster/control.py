"""Talking to snapserver's JSON-RPC control API.

(Minimal for now: what ``broadcaster run`` needs to find a running server and
its pipe streams.  The room-control client is built out in issue 3.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .errors import ControlConnectionError, ControlError, ControlTimeoutError, ServerReplyError


@dataclass(frozen=True)
class StreamInfo:
    """A stream (audio source) configured on snapserver."""

    id: str
    status: str
    scheme: str
    path: str
    query: dict[str, str]

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> StreamInfo:
        uri = data.get("uri") or {}
        query = uri.get("query") or {}
        if not isinstance(query, dict):
            query = {k: v[0] for k, v in parse_qs(str(query)).items()}
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            scheme=str(uri.get("scheme", "")),
            path=str(uri.get("path", "")),
            query={str(k): str(v) for k, v in query.items()},
        )


async def fetch_streams(host: str, port: int, timeout: float) -> list[StreamInfo]:
    """The streams of the snapserver at ``host:port`` (one Server.GetStatus call)."""
    status = await _call(host, port, "Server.GetStatus", {}, timeout)
    streams = (status.get("server") or {}).get("streams") or []
    return [StreamInfo.from_status(s) for s in streams if isinstance(s, dict)]


async def _call(host: str, port: int, method: str, params: dict[str, Any], timeout: float) -> Any:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = {"id": 1, "jsonrpc": "2.0", "method": method, "params": params}
                writer.write(json.dumps(request).encode() + b"\r\n")
                await writer.drain()
                while True:
                    line = await reader.readuntil(b"\n")
                    message = json.loads(line)
                    if isinstance(message, dict) and message.get("id") == 1:
                        break
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        raise ControlTimeoutError(
            f"snapserver at {host}:{port} did not answer within {timeout:g} s"
        ) from None
    except (OSError, asyncio.IncompleteReadError) as err:
        reason = getattr(err, "strerror", None) or "connection closed"
        raise ControlConnectionError(
            f"cannot reach snapserver at {host}:{port}: {reason}"
        ) from None
    except (ValueError, asyncio.LimitOverrunError):
        raise ControlError(f"snapserver at {host}:{port} sent a malformed reply") from None
    if "error" in message:
        error = message["error"]
        text = error.get("message", error) if isinstance(error, dict) else error
        raise ServerReplyError(f"snapserver refused {method}: {text}")
    return message.get("result") or {}
