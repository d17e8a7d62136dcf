"""What an event loop costs: relaying pw-record's stream without converting anything.

The default live path converts nothing (PipeWire delivers 48 kHz s16 stereo).
Here 48 kHz s16 stereo arrives in 1024-frame writes at real time (what
pw-record hands over per quantum at 40 ms latency) and leaves in 20 ms chunks,
through: an asyncio loop (StreamReader, as broadcaster's capture first read
it), a plain blocking Python loop (the design of today's capture thread),
``ffmpeg`` (s16 -> s16) and ``cat``, all at once.  This measurement is why the
data path moved into a thread.

``python -m bench.relay asyncio|blocking`` is the Python side.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from pathlib import Path
from typing import IO

from bench import conversion

BLOCK_BYTES = 1024 * 4
CHUNK_BYTES = 960 * 4


def _feed(stdin: IO[bytes] | None, data: bytes, pace: float) -> None:
    """Write ``data`` as pw-record hands it over: 1024 frames a quantum, ``pace`` x real time."""
    conversion.feed(stdin, data, BLOCK_BYTES, 1024 / 48000 / pace)


def tools() -> dict[str, list[str]]:
    return {
        "python asyncio relay": [sys.executable, "-m", "bench.relay", "asyncio"],
        "python blocking relay": [sys.executable, "-m", "bench.relay", "blocking"],
        "ffmpeg s16 -> s16": ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "s16le", "-ar",
                              "48000", "-ac", "2", "-i", "pipe:0", "-f", "s16le", "-ar", "48000",
                              "-ac", "2", "pipe:1"],
        "cat": ["cat"],
    }  # fmt: skip


def measure(seconds: float, workdir: Path) -> dict[str, float]:
    """CPU ms per audio second of each relay, start-up subtracted."""
    data = bytes(int(seconds * 48000) * 4)
    result: dict[str, float] = {}

    def one(index: int, name: str, argv: list[str]) -> None:
        out = workdir / f"relay-{index}.raw"
        startup = conversion.run_tool(argv, b"", out, 0)
        cpu = conversion.run_tool(argv, data, out, 1.0, feed=_feed)
        result[name] = 1000 * max(0.0, cpu - startup) / seconds

    conversion.all_at_once(
        [functools.partial(one, i, name, argv) for i, (name, argv) in enumerate(tools().items())]
    )
    return {name: result[name] for name in tools()}


async def _asyncio_relay() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending = bytearray()
    while data := await reader.read(16384):
        pending += data
        while len(pending) >= CHUNK_BYTES:
            os.write(1, bytes(pending[:CHUNK_BYTES]))
            del pending[:CHUNK_BYTES]


def main(mode: str) -> int:
    if mode == "asyncio":
        asyncio.run(_asyncio_relay())
        return 0
    pending = bytearray()
    while data := os.read(0, 16384):
        pending += data
        while len(pending) >= CHUNK_BYTES:
            os.write(1, bytes(pending[:CHUNK_BYTES]))
            del pending[:CHUNK_BYTES]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
