"""Recording the capture sink's monitor.

:class:`Recorder` runs ``pw-record`` on the sink (``--target SINK -P
stream.capture.sink=true``: the ``SINK.monitor`` spelling silently records the
default sink instead on PipeWire 0.3.65) and reads raw PCM from its stdout in
blocks.  PipeWire converts to the requested format itself, which is cheaper
than doing it in Python; whatever format is asked for is normalized later by
:class:`broadcaster.audio.Converter`.  ``node.dont-reconnect`` keeps pw-record
from falling back to the default sink (and broadcasting every other app) if the
capture sink disappears.  The child is restarted, with capped backoff, when it
exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from .audio import AudioFormat
from .errors import CaptureError
from .process import ChildProcess

_LOGGER = logging.getLogger(__name__)


def record_command(sink: str, audio_format: AudioFormat, latency_ms: int) -> list[str]:
    """The ``pw-record`` argument list that writes the sink's output to stdout."""
    return [
        "pw-record",
        "--target",
        sink,
        "-P",
        "stream.capture.sink=true",
        "-P",
        "node.dont-reconnect=true",
        "-P",
        "media.role=Production",
        "-P",
        f"node.name=broadcaster.capture.{sink}",
        "--latency",
        f"{latency_ms}ms",
        "--rate",
        str(audio_format.rate),
        "--channels",
        str(audio_format.channels),
        "--format",
        audio_format.sample,
        "-",
    ]


@dataclass
class CaptureStats:
    bytes_captured: int = 0
    restarts: int = 0
    running: bool = False


class Recorder:
    """Yields raw PCM blocks from the capture sink, restarting pw-record if it dies."""

    def __init__(
        self,
        sink: str,
        audio_format: AudioFormat,
        *,
        latency_ms: int = 40,
        env: Mapping[str, str] | None = None,
        block_bytes: int = 16384,
        restart_first: float = 0.2,
        restart_cap: float = 5.0,
    ) -> None:
        self.sink = sink
        self.format = audio_format
        self.stats = CaptureStats()
        self._argv = record_command(sink, audio_format, latency_ms)
        self._env = env
        self._block = block_bytes
        self._restart_first = restart_first
        self._restart_cap = restart_cap
        self._child: ChildProcess | None = None
        self._restart_now = False

    def restart(self) -> None:
        """Restart pw-record now (e.g. after the capture sink was recreated)."""
        self._restart_now = True
        if self._child is not None:
            self._child.terminate()

    async def blocks(self) -> AsyncIterator[bytes]:
        """Raw PCM in :attr:`format`, in blocks of at most ``block_bytes``, forever."""
        delay = self._restart_first
        first = True
        while True:
            child = ChildProcess(self._argv, name="pw-record", env=self._env, read_stdout=True)
            try:
                await child.start()
            except FileNotFoundError:
                raise CaptureError(
                    "pw-record is not installed (sudo apt-get install pipewire-bin)"
                ) from None
            if not first:
                self.stats.restarts += 1
            first = False
            started = time.monotonic()
            self._child = child
            self._restart_now = False
            self.stats.running = True
            try:
                while data := await child.stdout.read(self._block):
                    self.stats.bytes_captured += len(data)
                    yield data
            finally:
                self.stats.running = False
                self._child = None
                await child.stop()
            if self._restart_now:
                delay = self._restart_first
                continue
            if time.monotonic() - started > 10:
                delay = self._restart_first
            _LOGGER.warning(
                "pw-record stopped (status %s): %s; restarting in %.1f s",
                child.returncode,
                child.last_words(),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(self._restart_cap, delay * 2)
