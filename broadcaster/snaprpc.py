"""The one adapter over python-snapcast: a control connection with deadlines,
errors and sound framing.

python-snapcast (tested: 2.3.8, pinned in pyproject.toml) is used through its
public surface only: :class:`snapcast.control.protocol.SnapcastProtocol`
numbers requests, matches replies and fails what is pending when the
connection drops.  What it lacks lives here:

* **Deadlines.**  Its ``request`` waits forever; :meth:`Connection.request`
  runs under ``asyncio.timeout`` and a hung server raises
  :class:`~broadcaster.errors.ControlTimeoutError` (also a ``TimeoutError``).
* **Errors.**  It returns ``(result, error)``; an error reply raises
  :class:`~broadcaster.errors.ServerReplyError`, a lost connection
  :class:`~broadcaster.errors.ControlConnectionError`.
* **Framing.**  Its ``data_received`` decodes each TCP read on its own (a
  UTF-8 character split across reads raises and drops the connection), only
  parses when a read happens to end in CRLF (a busy server can starve it), and
  lets one bad message kill the connection.  :class:`SnapserverProtocol`
  frames with :class:`~broadcaster.jsonrpc.LineDecoder` and isolates each
  message.

The messages and error classes are :mod:`broadcaster.jsonrpc`'s, shared with
the blocking one-shot client (:mod:`broadcaster.oneshot`).

python-snapcast's ``Snapserver`` (its model, its hidden ``Server.GetStatus``
at connect, its own reconnect) is not used: state is read as
:class:`~broadcaster.rooms.ServerStatus` and reconnecting belongs to
:class:`~broadcaster.control.Reconnector`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from snapcast.control.protocol import SERVER_ONDISCONNECT, SnapcastProtocol

from . import jsonrpc
from .jsonrpc import Message

_LOGGER = logging.getLogger(__name__)


class SnapserverProtocol(SnapcastProtocol):  # type: ignore[misc]
    """Incremental UTF-8, line framing; one bad message never drops the connection.

    Replies go to python-snapcast's request bookkeeping; notifications (no
    ``id``) to ``on_message``; a lost connection to ``on_lost``.
    """

    def __init__(
        self,
        on_message: Callable[[Message], None] = lambda _m: None,
        on_lost: Callable[[Exception | None], None] = lambda _e: None,
    ) -> None:
        super().__init__({SERVER_ONDISCONNECT: on_lost})
        self._on_message = on_message
        self._decoder = jsonrpc.LineDecoder(lambda text: _LOGGER.warning("%s", text))

    def data_received(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            try:
                if "id" in item:
                    self.handle_response(item)
                else:
                    self._on_message(item)
            except Exception:  # one odd message must not end the connection
                _LOGGER.debug("cannot handle %.200r", item, exc_info=True)


class Connection:
    """One open control connection (made by :meth:`open`)."""

    def __init__(
        self, address: str, transport: asyncio.BaseTransport, protocol: SnapserverProtocol
    ) -> None:
        self.address = address
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float,
        on_message: Callable[[Message], None],
        on_lost: Callable[[Connection], None],
    ) -> Connection:
        """Connect within ``timeout`` s; :class:`ControlError` if not."""
        address = f"{host}:{port}"
        connection: Connection | None = None

        def lost(_exc: Exception | None) -> None:
            if connection is not None:
                on_lost(connection)

        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    lambda: SnapserverProtocol(on_message, lost), host, port
                )
        except TimeoutError:
            raise jsonrpc.no_answer(address, timeout) from None
        except OSError as err:
            raise jsonrpc.unreachable(address, err) from None
        connection = cls(address, transport, protocol)
        return connection

    @property
    def closed(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    async def request(self, method: str, params: Message | None, timeout: float) -> Any:
        """One JSON-RPC request within ``timeout`` s: its ``result``, or a ControlError."""
        if self.closed:
            raise jsonrpc.not_connected(self.address)
        try:
            async with asyncio.timeout(timeout):
                result, error = await self._protocol.request(method, params or {})
        except TimeoutError:
            raise jsonrpc.no_reply(self.address, method, timeout) from None
        if error is not None:
            if self.closed or (isinstance(error, dict) and error.get("code") == -1):
                raise jsonrpc.hung_up(self.address, method)
            raise jsonrpc.refused(method, error)
        return result
