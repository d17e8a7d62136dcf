"""The aiohttp application of ``broadcaster serve``.

The app owns everything that runs: its ``cleanup_ctx`` starts the
:class:`~broadcaster.service.Service` (snapserver, control connection,
captures) and the zeroconf announcements with the app and stops them, in
reverse order, when it shuts down.  Typed state lives under ``web.AppKey``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..service import Service
from . import api
from .auth import MALFORMED_REQUESTS, auth_middleware, error_middleware, frame_guard
from .events import EventHub

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PUBLISHER: web.AppKey[object] = web.AppKey("publisher", object)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask for /favicon.ico whatever the page says: a 404 is a console error."""
    return web.FileResponse(
        STATIC_DIR / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"},
    )


def make_app(service: Service, *, publish: bool | None = None) -> web.Application:
    """The web application around ``service`` (started and stopped with the app)."""
    config = service.config
    app = web.Application(
        middlewares=[
            error_middleware,
            auth_middleware(
                config.web.token,
                hosts=config.web.host_names(),
                public_reads=config.web.public_reads,
            ),
        ],
        client_max_size=64 * 1024,
    )
    app.on_response_prepare.append(frame_guard)
    logging.getLogger("aiohttp.server").addFilter(MALFORMED_REQUESTS)  # once: the same object
    hub = EventHub()
    app[api.SERVICE] = service
    app[api.HUB] = hub
    service.set_listener(hub.publish)
    app.router.add_get("/", _index)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_routes(api.routes)
    from ..paths import scenes_file
    from ..scenes import SceneStore
    from . import scenes_api

    app[scenes_api.STORE] = SceneStore(scenes_file(service.env))
    app.router.add_routes(scenes_api.routes)
    from . import transport_api

    app.router.add_routes(transport_api.routes)
    from . import announce_api

    app.router.add_routes(announce_api.routes)
    from . import calibration_api

    calibration_api.setup(app, service, hub)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    _mount_player(app, service)

    zeroconf = config.web.publish if publish is None else publish

    async def run_service(app: web.Application) -> AsyncIterator[None]:
        await service.start(mdns=zeroconf)
        try:
            yield
        finally:
            await service.stop()

    async def run_publisher(app: web.Application) -> AsyncIterator[None]:
        from .publish import Publisher

        publisher = Publisher(service)
        await publisher.start()
        app[PUBLISHER] = publisher
        try:
            yield
        finally:
            await publisher.stop()

    async def close_sockets(app: web.Application) -> None:
        await hub.close_all()

    app.cleanup_ctx.append(run_service)
    if zeroconf:
        app.cleanup_ctx.append(run_publisher)
    app.on_shutdown.append(close_sockets)
    return app


def _mount_player(app: web.Application, service: Service) -> None:
    """The browser room's stream relay (to snapserver's stream port), when it is installed."""
    try:
        from . import stream_proxy  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return
    factory = getattr(stream_proxy, "add_routes", None)
    if factory is None:
        _LOGGER.debug("stream_proxy has no add_routes(); browser room not mounted")
        return
    host = service.snap.host
    port = service.config.snapserver.stream_port
    factory(app, host, port)
