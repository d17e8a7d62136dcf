"""Who may use the HTTP API: host names, origins, the token; JSON error replies.

Every request passes, in order (docs/security.md says why each exists):

* **Host allow-list**: the ``Host`` must be a loopback name, an IP address,
  this machine's name (``NAME``, ``NAME.local``) or one of ``web.hosts``, in
  both modes: a page whose own domain name was rebound to this machine's
  address (DNS rebinding) is refused, with or without a token.
* **Origin**: a state-changing request (anything but GET/HEAD/OPTIONS) or a
  WebSocket upgrade that carries an ``Origin`` must come from the service's
  own origin; a page elsewhere is refused with 403.  Requests without
  ``Origin`` (the CLI, curl, scripts) pass: browsers always send it on these.
* **Token** (``web.token``, required when the service listens beyond
  loopback): every API request and WebSocket must carry it,
  ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (browsers cannot set
  headers on a WebSocket).  Only the page and its files (``/``,
  ``/static/...``) load without it; ``web.public_reads`` lets GET requests
  through too.  Without a token, bodies must still be ``application/json``
  (see ``api.json_body``), which another page cannot send without a CORS
  preflight that the service never grants.

Every reply carries ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'``:
no other site can frame the page and trick a tap.

:func:`error_middleware` turns every :class:`~broadcaster.errors.BroadcasterError`
into a JSON ``{"error": message}`` reply with a fitting status code, so
handlers just raise.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import (
    AmbiguousNameError,
    AnnounceError,
    BadNameError,
    BroadcasterError,
    BusyError,
    ConfigError,
    ControlConnectionError,
    ControlTimeoutError,
    NotFoundError,
    OutOfRangeError,
    ServerReplyError,
)

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BadRequest(BroadcasterError):
    """The request body or a parameter is malformed or out of range."""


def status_for(err: BroadcasterError) -> int:
    """The HTTP status for a library error."""
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(
        err,
        BadRequest
        | BadNameError
        | ConfigError
        | AmbiguousNameError
        | AnnounceError
        | OutOfRangeError,
    ):
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


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


PAGE_PATHS = ("/static/", "/player/")
"""The page's files: they hold no state, and the page takes the token from #token=."""


def needs_token(request: web.Request, *, public_reads: bool = False) -> bool:
    """With a token set: everything but the page, and reads if so configured."""
    if request.method not in SAFE_METHODS or is_websocket(request):
        return True
    if request.path in ("/", "/favicon.ico") or request.path.startswith(PAGE_PATHS):
        return False
    return not public_reads


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


_HOST = re.compile(r"\[(?P<ip6>[0-9a-f:.]+)\](?::\d+)?|(?P<name>[^:\[\]@/]+)(?::\d+)?")


def _host_name(host: str) -> str:
    """``Host`` without its port, IPv6 brackets and trailing dot, lower case;
    empty for anything else than NAME[:PORT] or [IPV6][:PORT]."""
    found = _HOST.fullmatch(host.strip().lower())
    if found is None:
        return ""
    return (found["ip6"] or found["name"]).rstrip(".")


class HostPolicy:
    """Which ``Host`` names the service answers to."""

    def __init__(self, extra: list[str]) -> None:
        own = socket.gethostname().lower()
        short = own.split(".")[0]
        self.any = "*" in extra
        configured = {name.lower().rstrip(".") for name in extra}
        self.names = LOOPBACK_NAMES | {own, short, f"{short}.local"} | configured

    def allows(self, host: str) -> bool:
        """Loopback names, IP addresses (nobody can rebind those), our name, the configured ones."""
        if self.any:
            return True
        name = _host_name(host)
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.names


def origin_ok(request: web.Request) -> bool:
    """True without ``Origin`` (not a browser) or when it is the service's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null": a sandboxed frame, a file, a redirect chain
    default = "443" if parts.scheme == "https" else "80"
    netloc = parts.netloc.removesuffix(f":{default}")
    return netloc == request.host.strip().lower().removesuffix(f":{default}")


def refuse_cross_origin(request: web.Request) -> web.Response | None:
    """403 for a change or WebSocket from another web site's page, else None."""
    if (request.method not in SAFE_METHODS or is_websocket(request)) and not origin_ok(request):
        return json_error(
            403,
            f"origin {request.headers.get('Origin')!r} refused: "
            "only the service's own page may change things or open its sockets",
        )
    return None


def auth_middleware(
    token: str, *, hosts: list[str] | None = None, public_reads: bool = False
) -> Middleware:
    policy = HostPolicy(hosts or [])

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not policy.allows(request.host):
            return json_error(
                403,
                f"host {request.host!r} refused: use this machine's name or address, "
                "or add the name to web.hosts",
            )
        refused = refuse_cross_origin(request)
        if refused is not None:
            return refused
        if (
            token
            and needs_token(request, public_reads=public_reads)
            and not token_ok(token, request)
        ):
            return json_error(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN' (or ?token=)"
            )
        return await handler(request)

    return check


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs each malformed request (no Host, a bad header line) at ERROR
    with a traceback: anyone who reaches the port could fill the log.  Such a
    record becomes one INFO line; everything else passes untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        err = record.exc_info[1] if record.exc_info else None
        if isinstance(err, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (peer, err.message)
            record.exc_info = record.exc_text = None
            if record.levelno > logging.INFO:  # aiohttp's DEBUG ones stay DEBUG
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


MALFORMED_REQUESTS = MalformedRequestFilter()


async def frame_guard(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no other site may frame the page."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


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
