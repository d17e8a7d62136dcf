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

The data path runs in a thread of its own: a blocking ``os.read`` on
pw-record's stdout, then the consumer (conversion and delivery, also
synchronous and non-blocking) in the same thread, block after block.  The event
loop only starts, stops and restarts pw-record.  Measured (docs/performance.md),
this costs a fraction of the same loop driven by asyncio: one wakeup per
PipeWire quantum instead of the event loop's two, and no loop machinery around
each block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .audio import AudioFormat
from .backoff import CAPTURE_RESTART, Backoff, Policy
from .errors import CaptureError
from .pipewire import pw_cat_stdio_options
from .process import ChildProcess

_LOGGER = logging.getLogger(__name__)


def record_command(
    sink: str,
    audio_format: AudioFormat,
    latency_ms: int,
    role: str = "capture",
    stdio: Sequence[str] = (),
) -> list[str]:
    """The ``pw-record`` argument list that writes the sink's output to stdout.

    ``stdio`` is what this PipeWire needs for headerless PCM on ``-``
    (:func:`pipewire.pw_cat_stdio_options`: ``--raw`` from PipeWire 1.0 on,
    where ``-`` alone would get an AU header).
    """
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
        f"node.name=broadcaster.{role}.{sink}",
        "--latency",
        f"{latency_ms}ms",
        "--rate",
        str(audio_format.rate),
        "--channels",
        str(audio_format.channels),
        "--format",
        audio_format.sample,
        *stdio,
        "-",
    ]


@dataclass
class CaptureStats:
    bytes_captured: int = 0
    restarts: int = 0
    running: bool = False


class Recorder:
    """Hands raw PCM from the capture sink to a consumer, restarting pw-record if it dies.

    pw-record runs only while capture is *wanted* (the app has a stream on the
    sink): :meth:`set_wanted` starts it at once, and stops it ``idle_stop``
    seconds after the app's last stream went away.  An idle broadcaster thus
    keeps neither the capture sink nor PipeWire's graph awake.
    """

    def __init__(
        self,
        sink: str,
        audio_format: AudioFormat,
        *,
        latency_ms: int = 100,
        env: Mapping[str, str] | None = None,
        block_bytes: int = 16384,
        restart: Policy = CAPTURE_RESTART,
        idle_stop: float = 10.0,
    ) -> None:
        self.sink = sink
        self.format = audio_format
        self.stats = CaptureStats()
        self._latency_ms = latency_ms
        self._argv: list[str] | None = None  # made at the first run (asks pw-record)
        self._env = env
        self._block = block_bytes
        self._backoff = Backoff(restart)
        self._idle_stop = idle_stop
        self._child: ChildProcess | None = None
        self._restart_now = False
        self._wanted = asyncio.Event()
        self._idle_timer: asyncio.TimerHandle | None = None

    def set_wanted(self, wanted: bool) -> None:
        """Capture while ``wanted``; stop pw-record once it has been unwanted a while."""
        if wanted:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._wanted.set()
        elif self._wanted.is_set() and self._idle_timer is None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self._idle_stop, self._go_idle)

    def _go_idle(self) -> None:
        self._idle_timer = None
        self._wanted.clear()
        if self._child is not None:
            _LOGGER.info("the app stopped playing; pausing capture")
            self._child.terminate()

    def restart(self) -> None:
        """Restart pw-record now (e.g. after the capture sink was recreated)."""
        self._restart_now = True
        if self._child is not None:
            self._child.terminate()

    def _read(
        self,
        fd: int,
        consume: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop,
        ended: asyncio.Future[None],
    ) -> None:
        """The data path thread: read pw-record's output and consume it until EOF."""
        error: BaseException | None = None
        stats = self.stats
        size = self._block
        try:
            while True:
                try:
                    data = os.read(fd, size)
                except OSError:
                    break  # like EOF: pw-record is gone
                if not data:
                    break
                stats.bytes_captured += len(data)
                consume(data)
        except Exception as err:  # a bug downstream: end the run loudly, not per block
            error = err
        finally:
            os.close(fd)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_settle, ended, error)

    async def run(
        self, consume: Callable[[bytes], None], on_start: Callable[[], None] | None = None
    ) -> None:
        """Hand raw PCM in :attr:`format` to ``consume`` as it arrives, until cancelled.

        ``on_start`` is called (in the event loop, no capture thread running)
        before each pw-record run's first block: a new run is a new stream
        (e.g. a partial frame of the previous one must not be carried over).

        ``consume`` is called in the capture thread (see the module
        docstring), once per block read; it must not block, and whatever it
        shares with the event loop must be safe to share.  An exception it
        raises ends the run with that exception.
        """
        loop = asyncio.get_running_loop()
        backoff = self._backoff
        backoff.reset()
        started_once = False
        if self._argv is None:
            stdio = await pw_cat_stdio_options(self._env)
            self._argv = record_command(self.sink, self.format, self._latency_ms, stdio=stdio)
        argv = self._argv
        try:
            while True:
                await self._wanted.wait()
                read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
                child = ChildProcess(argv, name="pw-record", env=self._env, stdout_fd=write_fd)
                # A restart() or idle stop while pw-record starts must not be lost.
                self._restart_now = False
                try:
                    await child.start()
                except BaseException as err:
                    os.close(read_fd)
                    if isinstance(err, FileNotFoundError):
                        raise CaptureError(
                            "pw-record is not installed (sudo apt-get install pipewire-bin)"
                        ) from None
                    raise
                finally:
                    os.close(write_fd)
                if started_once:
                    self.stats.restarts += 1
                started_once = True
                backoff.started()
                self._child = child
                if self._restart_now or not self._wanted.is_set():
                    child.terminate()  # asked for while it started: EOF comes at once
                self.stats.running = True
                if on_start is not None:
                    on_start()
                ended: asyncio.Future[None] = loop.create_future()
                reader = threading.Thread(
                    target=self._read,
                    args=(read_fd, consume, loop, ended),
                    name=f"capture {self.sink}",
                    daemon=True,
                )
                reader.start()  # owns read_fd from here
                exited = asyncio.ensure_future(child.wait())
                waiting: set[asyncio.Future[Any]] = {ended, exited}
                try:
                    # The thread ends at pw-record's EOF; if pw-record exits and the
                    # thread does not follow (a consumer stuck), _join bounds the wait.
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if ended.done():
                        ended.result()  # the consumer's exception, if it raised
                finally:
                    exited.cancel()
                    self.stats.running = False
                    self._child = None
                    await child.stop()  # EOF for the thread, if it still reads
                    stuck = not await _join(ended, reader)
                if stuck:  # never two threads on one converter
                    raise CaptureError(
                        "the capture thread did not stop within 2 s of pw-record "
                        "(a --filter function that never returns?)"
                    )
                backoff.ended()
                if self._restart_now or not self._wanted.is_set():
                    backoff.reset()
                    continue
                delay = backoff.next()
                _LOGGER.warning(
                    "pw-record stopped (status %s): %s; restarting in %.1f s",
                    child.returncode,
                    child.last_words(),
                    delay,
                )
                await backoff.sleep(delay)
        finally:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None


def _settle(ended: asyncio.Future[None], error: BaseException | None) -> None:
    if ended.done():
        return
    if error is None:
        ended.set_result(None)
    else:
        ended.set_exception(error)


async def _join(ended: asyncio.Future[None], reader: threading.Thread) -> bool:
    """Wait (briefly) for the capture thread, once pw-record is gone; False if it hangs."""
    done, _ = await asyncio.wait({ended}, timeout=2.0)
    if done and not ended.cancelled():
        ended.exception()  # seen (raised by run(), or moot after a cancel)
    elif not done:  # a --filter hook that hangs, say: leave the daemon thread be
        _LOGGER.warning("the capture thread %r did not stop within 2 s", reader.name)
    return bool(done)
