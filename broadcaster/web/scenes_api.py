"""Scenes over HTTP: thin handlers over :mod:`broadcaster.scenes` (issue 3's library).

A scene is saved from snapserver's status read at that moment and restored
through the service's :class:`~broadcaster.control.SnapControl` connection,
the same operations as ``broadcaster scene save/restore/list/delete``.  The
scenes file is the CLI's (``$XDG_STATE_HOME/broadcaster/scenes.json``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..scenes import SCENE_NAME_MAX, Scene, SceneStore, scene_name
from .api import SERVICE, get_str, json_body

routes = web.RouteTableDef()

STORE: web.AppKey[SceneStore] = web.AppKey("scenes", SceneStore)


def _summary(scene: Scene) -> dict[str, Any]:
    return {
        "name": scene.name,
        "saved_at": scene.saved_at,
        "groups": len(scene.groups),
        "rooms": sum(len(g.rooms) for g in scene.groups),
    }


def _scene(request: web.Request) -> Scene:
    """The saved scene the path names (404 when there is none)."""
    return request.app[STORE].get(request.match_info["scene"])


@routes.get("/api/scenes")
async def list_scenes(request: web.Request) -> web.Response:
    scenes = request.app[STORE].load()
    return web.json_response([_summary(s) for s in sorted(scenes.values(), key=lambda s: s.name)])


@routes.get("/api/scenes/{scene}")
async def get_scene(request: web.Request) -> web.Response:
    scene = _scene(request)
    return web.json_response(scene.to_json())


@routes.post("/api/scenes")
async def save_scene(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = scene_name(get_str(body, "name", limit=SCENE_NAME_MAX))
    # Read snapserver now: the service's view follows its notifications a
    # moment late, and a change made just before saving belongs in the scene.
    scene = Scene.capture(name, await request.app[SERVICE].snap.control.status())
    request.app[STORE].save(scene)
    return web.json_response(_summary(scene), status=201)


@routes.put("/api/scenes/{scene}/restore")
async def restore_scene(request: web.Request) -> web.Response:
    from ..scenes import restore

    scene = _scene(request)
    snap = request.app[SERVICE].snap
    done = await restore(snap.control, scene)
    snap.refresh_soon()
    return web.json_response(
        {
            "restored": scene.name,
            "missing_rooms": list(done.missing_rooms),
            "missing_streams": list(done.missing_streams),
        }
    )


@routes.delete("/api/scenes/{scene}")
async def delete_scene(request: web.Request) -> web.Response:
    request.app[STORE].delete(request.match_info["scene"])
    return web.json_response({"deleted": request.match_info["scene"]})
