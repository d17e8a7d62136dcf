"""The HTTP API: thin handlers over :class:`~broadcaster.service.Service`.

Every body is JSON; every reply is JSON (``/metrics`` excepted).  Handlers
validate their input and raise library errors; :mod:`.auth` turns those into
``{"error": "..."}`` with 400 (bad input), 401 (token), 404 (unknown id),
409 (busy), 502/503/504 (snapserver refused / unreachable / too slow).
docs/api.md describes each route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import transport
from ..rooms import LATENCY_MAX_MS, LATENCY_MIN_MS, Group, Room, StreamInfo, new_name
from ..service import Service
from ..snapstate import SnapState
from . import metrics
from .auth import BadRequest
from .events import EventHub

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
HUB: web.AppKey[EventHub] = web.AppKey("hub", EventHub)

routes = web.RouteTableDef()


# --- input -----------------------------------------------------------------------


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or :class:`BadRequest`.

    Only ``application/json``: a form or ``text/plain`` post from another web
    page (which needs no CORS preflight) is refused.
    """
    if request.content_type != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("the request body is not valid JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def get_int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key} must be an integer from {low} to {high}, not {value!r}")
    return value


def need_int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    """:func:`get_int` of a key the body must hold."""
    value = get_int(body, key, low, high)
    if value is None:
        raise BadRequest(f"the body needs {key}")
    return value


def get_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false, not {value!r}")
    return value


def need_bool(body: dict[str, Any], key: str) -> bool:
    """:func:`get_bool` of a key the body must hold (``null`` is not false)."""
    value = get_bool(body, key)
    if value is None:
        raise BadRequest(f"the body needs {key}")
    return value


def get_str(body: dict[str, Any], key: str, *, required: bool = True, limit: int = 200) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequest(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def require(body: dict[str, Any], *keys: str) -> None:
    """At least one of ``keys`` is in the body with a value (``null`` counts as absent)."""
    if all(body.get(key) is None for key in keys):
        raise BadRequest(f"the body needs {' or '.join(keys)}")


# --- views -----------------------------------------------------------------------


def room_json(room: Room) -> dict[str, Any]:
    """A room as the API shows it (docs/api.md)."""
    return {
        "id": room.id,
        "name": room.name,
        "connected": room.connected,
        "volume": room.volume,
        "muted": room.muted,
        "group": room.group_id,
        "latency": room.latency,
    }


def group_json(group: Group) -> dict[str, Any]:
    """A group as the API shows it: its rooms by id."""
    return {
        "id": group.id,
        "name": group.name,
        "stream": group.stream_id,
        "muted": group.muted,
        "rooms": [room.id for room in group.rooms],
    }


def stream_json(stream: StreamInfo) -> dict[str, Any]:
    return {
        "id": stream.id,
        "status": stream.status,
        "uri": stream.uri,
        "title": stream.title,
        "artist": stream.artist,
    }


def server_view(service: Service) -> dict[str, Any]:
    snap = service.snap
    view = snap.view()
    fed = {c.slot.stream: c.id for c in service.captures.values()}
    streams = []
    for info in view.streams:
        stream = stream_json(info)
        stream["capture"] = fed.get(info.id)
        player = snap.players.player(info.id, info.properties)
        stream["player"] = transport.to_json(player, info.id)
        streams.append(stream)
    return {
        "connected": snap.connected,
        "rooms": [room_json(room) for room in view.rooms],
        "groups": [group_json(group) for group in view.groups],
        "streams": streams,
    }


def captures_view(service: Service) -> dict[str, Any]:
    return {
        "captures": [c.describe() for c in service.captures.values()],
        "slots": [slot.stream for slot in service.slots()],
    }


def snapshot(service: Service, topic: str) -> dict[str, Any]:
    """The body of ``GET /api/state`` and of each live-update message."""
    if topic == "server":
        return {"type": "server", **server_view(service)}
    if topic == "captures":
        return {"type": "captures", **captures_view(service)}
    return {"type": "state", **server_view(service), **captures_view(service)}


async def room_changed(
    request: web.Request, change: Callable[[SnapState, str], Awaitable[Room]]
) -> web.Response:
    """Apply ``change`` to the room the path names; reply with the room as it is now."""
    room = await change(request.app[SERVICE].snap, request.match_info["room"])
    return web.json_response(room_json(room))


async def group_changed(
    request: web.Request, change: Callable[[SnapState, str], Awaitable[Group]]
) -> web.Response:
    """Apply ``change`` to the group the path names; reply with the group as it is now."""
    group = await change(request.app[SERVICE].snap, request.match_info["group"])
    return web.json_response(group_json(group))


# --- routes ----------------------------------------------------------------------


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    report = request.app[SERVICE].health()
    return web.json_response(report, status=200 if report["ok"] else 503)


@routes.get("/api/state")
async def state(request: web.Request) -> web.Response:
    return web.json_response(snapshot(request.app[SERVICE], "state"))


@routes.get("/api/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    return await request.app[HUB].serve(request, lambda topic: snapshot(service, topic))


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    text = metrics.render(request.app[SERVICE])
    return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})


# rooms


@routes.get("/api/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    return web.json_response(server_view(request.app[SERVICE])["rooms"])


@routes.get("/api/rooms/{room}")
async def get_room(request: web.Request) -> web.Response:
    room = request.app[SERVICE].snap.room(request.match_info["room"])
    return web.json_response(room_json(room))


@routes.put("/api/rooms/{room}/volume")
async def set_volume(request: web.Request) -> web.Response:
    body = await json_body(request)
    require(body, "percent", "muted")
    percent = get_int(body, "percent", 0, 100)
    muted = get_bool(body, "muted")
    return await room_changed(request, lambda snap, room: snap.set_volume(room, percent, muted))


@routes.put("/api/rooms/{room}/mute")
async def set_room_mute(request: web.Request) -> web.Response:
    body = await json_body(request)
    muted = need_bool(body, "muted")
    return await room_changed(request, lambda snap, room: snap.set_volume(room, None, muted))


@routes.put("/api/rooms/{room}/latency")
async def set_room_latency(request: web.Request) -> web.Response:
    body = await json_body(request)
    latency = need_int(body, "latency_ms", LATENCY_MIN_MS, LATENCY_MAX_MS)
    return await room_changed(request, lambda snap, room: snap.set_room_latency(room, latency))


@routes.put("/api/rooms/{room}/name")
async def set_room_name(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = new_name(get_str(body, "name"))
    return await room_changed(request, lambda snap, room: snap.set_room_name(room, name))


# groups


@routes.get("/api/groups")
async def list_groups(request: web.Request) -> web.Response:
    return web.json_response(server_view(request.app[SERVICE])["groups"])


@routes.put("/api/groups/{group}/stream")
async def set_group_stream(request: web.Request) -> web.Response:
    body = await json_body(request)
    stream = get_str(body, "stream")
    return await group_changed(request, lambda snap, group: snap.set_group_stream(group, stream))


@routes.put("/api/groups/{group}/volume")
async def set_group_volume(request: web.Request) -> web.Response:
    body = await json_body(request)
    percent = need_int(body, "percent", 0, 100)
    return await group_changed(request, lambda snap, group: snap.set_group_volume(group, percent))


@routes.post("/api/party")
async def party(request: web.Request) -> web.Response:
    body = await json_body(request)
    group = await request.app[SERVICE].snap.party(get_str(body, "stream"))
    return web.json_response(group_json(group))


@routes.put("/api/groups/{group}/mute")
async def set_group_mute(request: web.Request) -> web.Response:
    body = await json_body(request)
    muted = need_bool(body, "muted")
    return await group_changed(request, lambda snap, group: snap.set_group_mute(group, muted))


@routes.put("/api/groups/{group}/rooms")
async def set_group_rooms(request: web.Request) -> web.Response:
    body = await json_body(request)
    rooms = body.get("rooms")
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise BadRequest("rooms must be a list of room ids or names")
    return await group_changed(request, lambda snap, group: snap.set_group_rooms(group, rooms))


# streams


@routes.get("/api/streams")
async def list_streams(request: web.Request) -> web.Response:
    return web.json_response(server_view(request.app[SERVICE])["streams"])


# captures


@routes.get("/api/captures")
async def list_captures(request: web.Request) -> web.Response:
    return web.json_response(captures_view(request.app[SERVICE]))


@routes.get("/api/captures/{capture}")
async def get_capture(request: web.Request) -> web.Response:
    capture = request.app[SERVICE].capture(request.match_info["capture"])
    return web.json_response(capture.describe())


@routes.post("/api/captures")
async def start_capture(request: web.Request) -> web.Response:
    body = await json_body(request)
    require(body, "app", "pid")
    app = get_str(body, "app", required=False)
    pid = get_int(body, "pid", 1, 2**22)
    stream = get_str(body, "stream", required=False) or None
    capture = await request.app[SERVICE].start_capture(app, pid, stream)
    return web.json_response(capture.describe(), status=201)


@routes.delete("/api/captures/{capture}")
async def stop_capture(request: web.Request) -> web.Response:
    await request.app[SERVICE].stop_capture(request.match_info["capture"])
    return web.json_response({"stopped": request.match_info["capture"]})
