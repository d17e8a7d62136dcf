"""One JSON-RPC request to snapserver, blocking: the quick commands' client.

``broadcaster status`` runs in a fresh process: importing asyncio alone costs
more than a whole bare JSON-RPC call (docs/performance.md), so a command that
makes one read uses this client instead of :class:`~broadcaster.control.SnapControl`.
It is the stdlib's socket and :mod:`broadcaster.jsonrpc`, nothing else: one
connection, one request, the reply with its id (notifications and anything
else skipped), closed.  One deadline covers it all: name resolution, connect,
send and every receive.  A name that is not an address is resolved in a
daemon thread, so a hung resolver cannot outlast the deadline (the thread
ends with the process).

The errors and their messages are those of the asyncio client (both come from
:mod:`broadcaster.jsonrpc`); when the server also sent something that is not
JSON-RPC (another service on that port), the error says what.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from . import jsonrpc
from .errors import ControlConnectionError, ControlTimeoutError
from .rooms import ServerStatus

REQUEST_ID = 1
RECEIVE_BYTES = 1 << 16

_AddrInfo = list[tuple[Any, Any, Any, Any, Any]]


def call(
    host: str, port: int, method: str, params: jsonrpc.Message | None = None, *, timeout: float
) -> Any:
    """``method``'s result from the snapserver at ``host:port`` within ``timeout`` s,
    or a :class:`~broadcaster.errors.ControlError`."""
    address = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    skipped: list[str] = []
    try:
        with _connect(host, port, deadline, address) as sock:
            try:
                _settimeout(sock, deadline)
                sock.sendall(jsonrpc.encode_request(REQUEST_ID, method, params))
                decoder = jsonrpc.LineDecoder(skipped.append)
                return _reply(sock, deadline, address, method, decoder)
            except TimeoutError:
                raise
            except OSError:  # reset by the server
                raise jsonrpc.hung_up(address, method) from None
    except TimeoutError:
        raise _saying(jsonrpc.no_answer(address, timeout), skipped) from None
    except ControlConnectionError as err:
        raise _saying(err, skipped) from None


def _reply(
    sock: socket.socket, deadline: float, address: str, method: str, decoder: jsonrpc.LineDecoder
) -> Any:
    while True:
        _settimeout(sock, deadline)
        data = sock.recv(RECEIVE_BYTES)
        if not data:
            raise jsonrpc.hung_up(address, method)
        for message in decoder.feed(data):
            if message.get("id") != REQUEST_ID:
                continue  # a notification
            if message.get("error") is not None:
                raise jsonrpc.refused(method, message["error"])
            return message.get("result")


def _settimeout(sock: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _connect(host: str, port: int, deadline: float, address: str) -> socket.socket:
    """Like :func:`socket.create_connection`, under the one deadline."""
    try:
        addresses = _resolve(host, port, deadline)
    except TimeoutError:
        raise
    except OSError as err:
        raise jsonrpc.unreachable(address, err) from None
    first_error: OSError | None = None
    for family, kind, proto, _name, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            _settimeout(sock, deadline)
            sock.connect(sockaddr)
        except TimeoutError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            first_error = first_error or err
            continue
        return sock
    raise jsonrpc.unreachable(address, first_error or OSError("no address"))


def _resolve(host: str, port: int, deadline: float) -> _AddrInfo:
    numeric = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    # An address given as bytes skips the IDNA codec (and its imports).
    literal = host.encode() if host.isascii() else host
    try:
        return socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM, flags=numeric)
    except socket.gaierror:
        pass  # a name: ask the resolver, which may hang
    import threading

    answer: list[_AddrInfo | OSError] = []

    def resolve() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            answer.append(err)

    worker = threading.Thread(target=resolve, name="resolve", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not answer:
        raise TimeoutError
    if isinstance(answer[0], OSError):
        raise answer[0]
    return answer[0]


def _saying(err: ControlConnectionError | ControlTimeoutError, skipped: list[str]) -> Exception:
    """``err``, naming the first thing the server sent that was not JSON-RPC, if any."""
    return type(err)(f"{err} ({skipped[0]})") if skipped else err


def read_status(host: str, port: int, *, timeout: float) -> ServerStatus:
    """The server's status (one ``Server.GetStatus``), checked as
    :meth:`~broadcaster.control.SnapControl.connect` checks it."""
    result = call(host, port, "Server.GetStatus", timeout=timeout)
    if not jsonrpc.is_status(result):
        raise jsonrpc.no_valid_status(f"{host}:{port}")
    return ServerStatus.from_json(result)
