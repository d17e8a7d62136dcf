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
  decodes incrementally, splits lines itself, isolates each message and skips
  one longer than :data:`MAX_MESSAGE_CHARS`.

python-snapcast's ``Snapserver`` (its model, its hidden ``Server.GetStatus``
at connect, its own reconnect) is not used: state is read as
:class:`~broadcaster.rooms.ServerStatus` and reconnecting belongs to
:class:`~broadcaster.control.Reconnector`.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
from collections.abc import Callable
from typing import Any

from snapcast.control.protocol import SERVER_ONDISCONNECT, SnapcastProtocol

from .errors import ControlConnectionError, ControlTimeoutError, ServerReplyError

_LOGGER = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 16 << 20
"""The longest message taken from snapserver (a status of hundreds of rooms is
well under 1 MiB); anything longer is skipped, so memory stays bounded."""

Message = dict[str, Any]


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
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._skipping = False
        """Inside a message over MAX_MESSAGE_CHARS: drop until its line ends."""

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if self._skipping:
            end = text.find("\n")
            if end < 0:
                return
            text, self._skipping = text[end + 1 :], False
        if "\n" not in text:  # a long message arriving: no rescan of what came before
            self._text += text
        else:
            *lines, self._text = (self._text + text).split("\n")
            for line in lines:
                if line.strip():
                    self._line(line)
        if len(self._text) > MAX_MESSAGE_CHARS:
            _LOGGER.warning(
                "snapserver sent a message of more than %d MiB; skipping it",
                MAX_MESSAGE_CHARS >> 20,
            )
            self._text, self._skipping = "", True

    def _line(self, line: str) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            _LOGGER.warning("snapserver sent a line that is not JSON: %.80r", line)
            return
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
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
            raise ControlTimeoutError(
                f"snapserver at {address} did not answer within {timeout:g} s"
            ) from None
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise ControlConnectionError(
                f"cannot reach snapserver at {address}: {reason}"
            ) from None
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
            raise ControlConnectionError(f"not connected to snapserver at {self.address}")
        try:
            async with asyncio.timeout(timeout):
                result, error = await self._protocol.request(method, params or {})
        except TimeoutError:
            raise ControlTimeoutError(
                f"snapserver at {self.address} did not answer {method} within "
                f"{timeout:g} s (is it hung?)"
            ) from None
        if error is not None:
            if self.closed or (isinstance(error, dict) and error.get("code") == -1):
                raise ControlConnectionError(
                    f"lost the connection to snapserver at {self.address} during {method}"
                )
            text = error.get("message", error) if isinstance(error, dict) else error
            code = error.get("code") if isinstance(error, dict) else None
            detail = error.get("data") if isinstance(error, dict) else None
            if isinstance(detail, str) and detail and detail != text:
                text = f"{text} ({detail})"  # 0.31 says why there ("Adding ... not allowed")
            raise ServerReplyError(
                f"snapserver refused {method}: {text}",
                code=code if isinstance(code, int) else None,
            )
        return result
