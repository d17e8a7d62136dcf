"""How the control commands print: tables, one-line summaries, JSON."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..control import Event
    from ..rooms import Group, Room, ServerStatus


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(char: str, keep: str = "\n\t") -> bool:
    """Control characters (ESC, BEL, 8-bit CSI, ...) but those in ``keep``, and bidi overrides."""
    import unicodedata

    if char in keep:
        return False
    return (
        unicodedata.category(char) == "Cc"
        or "\u202a" <= char <= "\u202e"
        or ("\u2066" <= char <= "\u2069")
    )


def terminal_safe(text: str) -> str:
    """``text`` with its control characters shown escaped (``\\x1b``).

    Room and host names (any snapclient on the network announces its own),
    titles (any app, any web page playing in a browser) and error messages
    quoting them reach the terminal: an escape sequence there could rewrite
    the screen or, with OSC 52, the clipboard.
    """
    if text.isprintable():
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def one_line(text: str) -> str:
    """:func:`terminal_safe` for a table cell or a name in a line of output:
    line breaks and tabs escaped too, so a name cannot forge a row or a line."""
    if text.isprintable():
        return text
    return "".join(_escape(c) if _unsafe(c, keep="") else c for c in text)


def safe_json(data: Any, indent: int | None = None) -> str:
    """JSON (UTF-8 text) for the terminal: json escapes C0 controls itself;
    the C1 and bidi ones are escaped as ``\\uXXXX`` too."""
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return "".join(f"\\u{ord(c):04x}" if _unsafe(c) else c for c in text)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """``data`` as JSON with ``--json``, else ``text``."""
    if args.json:
        print(safe_json(data, indent=2))
    elif text:
        print(terminal_safe(text))


def _width(text: str) -> int:
    """Terminal columns: wide (East Asian, emoji) characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[one_line(str(c)) for c in row] for row in [headers, *rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def format_status(status: ServerStatus) -> str:
    streams = {s.id: s for s in status.streams}
    parts = [f"{status.server.name} {status.server.version} on {status.server.host}", ""]
    parts.append(
        table(
            ["GROUP", "STREAM", "MUTED", "VOLUME", "ROOMS"],
            [
                (
                    g.label,
                    streams[g.stream_id].name if g.stream_id in streams else g.stream_id,
                    "yes" if g.muted else "no",
                    g.volume,
                    len(g.rooms),
                )
                for g in status.groups
            ],
        )
    )
    parts.append("")
    parts.append(
        table(
            ["ROOM", "HOST", "ID", "CONNECTED", "VOLUME", "MUTED", "LATENCY", "GROUP", "STREAM"],
            [
                (
                    r.name,
                    r.host,
                    r.id,
                    "yes" if r.connected else "no",
                    r.volume,
                    "yes" if r.muted else "no",
                    f"{r.latency} ms",
                    status.group_of(r).label,
                    r.stream_id,
                )
                for r in status.rooms
            ],
        )
    )
    parts.append("")
    parts.append(
        table(
            ["STREAM", "STATUS", "CODEC", "FORMAT", "SOURCE", "NOW PLAYING"],
            [
                (s.id, s.status, s.codec, s.format, f"{s.scheme}://{s.path}", s.now_playing)
                for s in status.streams
            ],
        )
    )
    return "\n".join(parts)


def room_line(room: Room) -> str:
    return (
        f"{one_line(room.name)}: volume {room.volume}{' (muted)' if room.muted else ''}, "
        f"latency {room.latency} ms"
    )


def group_line(group: Group) -> str:
    rooms = ", ".join(f"{one_line(r.name)} {r.volume}" for r in group.rooms)
    return (
        f"{one_line(group.label)}: stream {one_line(group.stream_id)}, volume {group.volume}"
        f"{' (muted)' if group.muted else ''}; rooms: {rooms}"
    )


def format_event(event: Event) -> str:
    """One line for a notification: time, method, then the interesting params."""
    params = dict(event.params)
    bits: list[str] = []
    if "id" in params:
        bits.append(str(params.pop("id")))
    for key, value in params.items():
        if isinstance(value, dict) and key in ("volume",):
            bits += [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, dict | list):
            bits.append(f"{key}={json.dumps(value, ensure_ascii=False)[:120]}")
        else:
            bits.append(f"{key}={value}")
    return one_line(f"{time.strftime('%H:%M:%S')} {event.method} {' '.join(bits)}".rstrip())
