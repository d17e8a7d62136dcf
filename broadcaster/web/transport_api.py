"""Transport and cover art over HTTP: thin handlers over :mod:`broadcaster.transport`.

``POST /api/streams/{stream}/control`` sends play/pause/next/... as
snapserver's ``Stream.Control`` (the way the Snapcast apps do), after
checking what the player allows: 409 when it cannot.
``GET /api/streams/{stream}/art`` serves the cover the stream's player
announced as a ``file://`` URL, and nothing else (see :mod:`broadcaster.cover`).
"""

from __future__ import annotations

import math

from aiohttp import web

from ..cover import read_cover
from ..errors import CoverError, CoverMissingError, NotFoundError
from ..mpris import MAX_MICROSECONDS
from ..rooms import StreamInfo
from ..transport import COMMANDS, prepare, send
from .api import SERVICE, get_str, json_body
from .auth import BadRequest, json_error

routes = web.RouteTableDef()


def _stream(request: web.Request) -> StreamInfo:
    return request.app[SERVICE].snap.stream(request.match_info["stream"])


@routes.post("/api/streams/{stream}/control")
async def control(request: web.Request) -> web.Response:
    body = await json_body(request)
    command = get_str(body, "command", limit=20)
    if command not in COMMANDS:
        raise BadRequest(f"command must be one of {', '.join(COMMANDS)}, not {command!r}")
    seconds = body.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
        raise BadRequest(f"seconds must be a number, not {seconds!r}")
    # The JSON parser lets NaN and Infinity through (snapserver cannot read them
    # back); MPRIS takes 64-bit microseconds.
    if seconds is not None and not (
        math.isfinite(seconds) and abs(seconds) * 1e6 < MAX_MICROSECONDS
    ):
        raise BadRequest(f"seconds must be a finite number of seconds, not {seconds!r}")
    if command == "position" and seconds is not None and seconds < 0:
        raise BadRequest(f"position needs seconds from 0 up, not {seconds!r}")
    stream = _stream(request)
    snap = request.app[SERVICE].snap
    value = None if seconds is None else float(seconds)
    _, params = prepare(stream, command, value, elapsed=snap.players.elapsed(stream.id))
    await send(snap.control, params)
    return web.json_response({"stream": stream.id, "command": command})


@routes.get("/api/streams/{stream}/art")
async def art(request: web.Request) -> web.StreamResponse:
    stream = _stream(request)
    url = stream.metadata.get("artUrl")
    if not isinstance(url, str) or not url.startswith("file://"):
        raise NotFoundError(f"the player of stream {stream.id!r} announced no local cover")
    try:
        cover = await read_cover(url)
    except CoverMissingError as err:
        return json_error(404, str(err))
    except CoverError as err:  # not an image, too large, not a file: refused
        return json_error(403, str(err))
    return web.Response(
        body=cover.data,
        content_type=cover.content_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
