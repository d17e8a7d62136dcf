"""Token checks and JSON error replies for the HTTP API.

With ``web.token`` set (required when the service listens beyond loopback),
every state-changing request (anything but GET/HEAD/OPTIONS) and the
live-updates socket must carry it: ``Authorization: Bearer TOKEN``, or
``?token=TOKEN`` (browsers cannot set headers on a WebSocket).  Without a
token (loopback only), requests must name a loopback host (no DNS rebinding),
and bodies must be ``application/json`` (see ``api.json_body``), which other
web pages cannot send without a CORS preflight that the service never grants.

:func:`error_middleware` turns every :class:`~broadcaster.errors.BroadcasterError`
into a JSON ``{"error": message}`` reply with a fitting status code, so
handlers just raise.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import (
    AmbiguousNameError,
    BroadcasterError,
    BusyError,
    ConfigError,
    ControlConnectionError,
    ControlTimeoutError,
    NotFoundError,
    ServerReplyError,
)

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EVENTS_PATH = "/api/events"


class BadRequest(BroadcasterError):
    """The request body or a parameter is malformed or out of range."""


def status_for(err: BroadcasterError) -> int:
    """The HTTP status for a library error."""
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, BadRequest | ConfigError | AmbiguousNameError):
        return 400
    if isinstance(err, BusyError):
        return 409
    if isinstance(err, ControlTimeoutError):
        return 504
    if isinstance(err, ControlConnectionError):
        return 503
    if isinstance(err, ServerReplyError):
        return 502
    return 500


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def presented_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token", "")


def token_ok(expected: str, request: web.Request) -> bool:
    if not expected:
        return True
    return hmac.compare_digest(presented_token(request).encode(), expected.encode())


def needs_token(request: web.Request) -> bool:
    return request.method not in SAFE_METHODS or request.path == EVENTS_PATH


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def host_ok(request: web.Request) -> bool:
    """Without a token, only loopback names in Host: a web page cannot rebind
    its own domain name to 127.0.0.1 and drive the service from the browser."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return host.lower() in LOOPBACK_NAMES


def auth_middleware(token: str) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not token and not host_ok(request):
            return json_error(
                403,
                f"host {request.host!r} refused: without a token only loopback names are served",
            )
        if token and needs_token(request) and not token_ok(token, request):
            return json_error(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN' (or ?token=)"
            )
        return await handler(request)

    return check


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BroadcasterError as err:
        status = status_for(err)
        if status >= 500:
            _LOGGER.warning("%s %s: %s", request.method, request.path, err)
        return json_error(status, str(err))
    except web.HTTPException as err:
        if err.status >= 400 and request.path.startswith("/api/"):
            return json_error(err.status, err.reason)
        raise
