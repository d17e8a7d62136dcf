"""snapserver's JSON-RPC on the wire, without I/O: framing, requests, replies, errors.

A leaf module (json and codecs only, no asyncio) shared by the two clients:
the asyncio one (:mod:`broadcaster.snaprpc`, for the service and for commands
that make several calls) and the blocking one-shot one
(:mod:`broadcaster.oneshot`, for commands that make one read and must start
fast).  What each fact is, is said here once:

* **Framing.**  Messages are UTF-8 JSON, one per line (snapserver ends them
  with CRLF).  :class:`LineDecoder` decodes incrementally (a character split
  across reads is fine), splits lines itself, skips a line that is not JSON
  and one longer than :data:`MAX_MESSAGE_CHARS` (memory stays bounded),
  saying so to its caller, and unpacks batches.
* **Requests.**  :func:`encode_request`.
* **Errors.**  The one-line messages of a server that cannot be reached, that
  does not answer in time, that hangs up or refuses a request, and the
  :mod:`broadcaster.errors` class each raises.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import Any

from .errors import ControlConnectionError, ControlTimeoutError, ServerReplyError

MAX_MESSAGE_CHARS = 16 << 20
"""The longest message taken from snapserver (a status of hundreds of rooms is
well under 1 MiB); anything longer is skipped, so memory stays bounded."""

DEFAULT_TIMEOUT = 5.0
"""Seconds every request to snapserver may take unless configured (``timeout``)."""

Message = dict[str, Any]


class LineDecoder:
    """Bytes as they arrive -> the JSON-RPC messages (dicts) complete so far.

    ``on_skip`` hears, in one line, about each thing skipped.
    """

    def __init__(self, on_skip: Callable[[str], None] = lambda _text: None) -> None:
        self._on_skip = on_skip
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._skipping = False
        """Inside a message over MAX_MESSAGE_CHARS: drop until its line ends."""

    @property
    def pending_chars(self) -> int:
        """Characters held for a line not complete yet."""
        return len(self._text)

    def feed(self, data: bytes) -> list[Message]:
        text = self._decoder.decode(data)
        if self._skipping:
            end = text.find("\n")
            if end < 0:
                return []
            text, self._skipping = text[end + 1 :], False
        messages: list[Message] = []
        if "\n" not in text:  # a long message arriving: no rescan of what came before
            self._text += text
        else:
            *lines, self._text = (self._text + text).split("\n")
            for line in lines:
                if line.strip():
                    messages += self._parse(line)
        if len(self._text) > MAX_MESSAGE_CHARS:
            self._on_skip(
                f"snapserver sent a message of more than {MAX_MESSAGE_CHARS >> 20} MiB; skipping it"
            )
            self._text, self._skipping = "", True
        return messages

    def _parse(self, line: str) -> list[Message]:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            self._on_skip(f"snapserver sent a line that is not JSON: {repr(line.strip())[:80]}")
            return []
        items = message if isinstance(message, list) else [message]
        return [item for item in items if isinstance(item, dict)]


def encode_request(identifier: int, method: str, params: Message | None = None) -> bytes:
    """One request, framed."""
    request = {"id": identifier, "jsonrpc": "2.0", "method": method, "params": params or {}}
    return json.dumps(request).encode() + b"\r\n"


# -- errors ----------------------------------------------------------------------


def unreachable(address: str, err: OSError) -> ControlConnectionError:
    reason = err.strerror or str(err) or type(err).__name__
    return ControlConnectionError(f"cannot reach snapserver at {address}: {reason}")


def no_answer(address: str, timeout: float) -> ControlTimeoutError:
    """No connection, or no status at connect, within the deadline."""
    return ControlTimeoutError(f"snapserver at {address} did not answer within {timeout:g} s")


def no_reply(address: str, method: str, timeout: float) -> ControlTimeoutError:
    """A request on an open connection was not answered within the deadline."""
    return ControlTimeoutError(
        f"snapserver at {address} did not answer {method} within {timeout:g} s (is it hung?)"
    )


def hung_up(address: str, method: str) -> ControlConnectionError:
    return ControlConnectionError(f"lost the connection to snapserver at {address} during {method}")


def not_connected(address: str) -> ControlConnectionError:
    return ControlConnectionError(f"not connected to snapserver at {address}")


def no_valid_status(address: str) -> ControlConnectionError:
    return ControlConnectionError(f"cannot reach snapserver at {address}: it sent no valid status")


def is_status(result: Any) -> bool:
    """Whether a ``Server.GetStatus`` result has the shape of a status: a
    ``server`` object whose ``groups`` and ``streams`` (where present) are lists."""
    server = result.get("server") if isinstance(result, dict) else None
    return isinstance(server, dict) and all(
        isinstance(server.get(key, []), list) for key in ("groups", "streams")
    )


def refused(method: str, error: Any) -> ServerReplyError:
    """The exception for an ``error`` member of a reply to ``method``."""
    text = error.get("message", error) if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    detail = error.get("data") if isinstance(error, dict) else None
    if isinstance(detail, str) and detail and detail != text:
        text = f"{text} ({detail})"  # 0.31 says why there ("Adding ... not allowed")
    return ServerReplyError(
        f"snapserver refused {method}: {text}", code=code if isinstance(code, int) else None
    )
