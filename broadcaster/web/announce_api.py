"""Announcements over HTTP: ``POST /api/announce`` (a sound file, or text to say).

A thin handler over :func:`broadcaster.announce.announce` (every capture's
sink) and :func:`broadcaster.announce_rooms.announce_in_rooms` (chosen
rooms), the same as ``broadcaster announce``.  The reply comes when the
announcement has played; a client that goes away stops it (the music comes
back up).  See docs/api.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from ..announce import AnnounceResult, announce
from ..files import scratch_dir
from .api import SERVICE, json_body
from .auth import BadRequest

routes = web.RouteTableDef()

SOUND_TYPES = ("audio/", "application/octet-stream", "application/ogg")


class TooLarge(BadRequest):
    """The uploaded sound is larger than ``announce.max_upload_mb`` (413)."""


def _rooms(value: Any) -> list[str]:
    """The rooms named (``[]``: every room, when ``rooms`` is left out or null)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [r for r in value.split(",") if r.strip()]
    if not isinstance(value, list) or not all(
        isinstance(r, str) and 0 < len(r.strip()) <= 200 for r in value
    ):
        raise BadRequest("rooms must be a list of room names")
    if not value:  # not every room: the caller chose rooms and named none
        raise BadRequest("rooms names no room: name at least one, or leave it out for every room")
    if len(value) > 64:
        raise BadRequest("at most 64 rooms")
    return [r.strip() for r in value]


async def _save_upload(request: web.Request, path: Path, limit: int) -> None:
    """Stream the body into ``path``; refuse it past ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the sound is larger than {limit / (1024 * 1024):g} MB")
    size = 0
    with path.open("wb") as out:
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the sound is larger than {limit / (1024 * 1024):g} MB")
            out.write(chunk)
    if not size:
        raise BadRequest("the body is empty: send a sound file, or JSON with text")


@routes.post("/api/announce")
async def post_announce(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    config = service.config
    cfg = config.announce
    kind = request.content_type
    with scratch_dir("broadcaster-upload") as tmp:
        sound: Path | None = None
        text = ""
        if kind == "application/json":
            body = await json_body(request)
            said = body.get("text")
            if not isinstance(said, str) or not said.strip() or len(said) > 2000:
                raise BadRequest("text must be a non-empty string of at most 2000 characters")
            text = said
            rooms = _rooms(body.get("rooms"))
        elif kind.startswith(SOUND_TYPES):
            sound = tmp / "upload"
            try:
                await _save_upload(request, sound, int(cfg.max_upload_mb * 1024 * 1024))
            except TooLarge as err:
                return web.json_response({"error": str(err)}, status=413)
            rooms = _rooms(request.query.get("rooms"))
        else:
            raise BadRequest('send a sound file (Content-Type audio/...) or JSON {"text": ...}')
        result: AnnounceResult
        if rooms:
            from ..announce_rooms import announce_in_rooms

            result = await announce_in_rooms(
                config, rooms, sound_file=sound, text=text, env=service.env
            )
        else:
            result = await announce(
                sound_file=sound,
                text=text,
                lead_ms=cfg.lead_ms,
                max_seconds=cfg.max_seconds,
                voice=cfg.voice,
                env=service.env,
            )
    return web.json_response(
        {
            "seconds": round(result.seconds, 3),
            "waited": round(result.waited, 3),
            "sinks": list(result.sinks),
            "rooms": list(result.rooms),
        }
    )
