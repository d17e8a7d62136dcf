"""Delivery: normalized audio chunks into snapserver, never blocking capture.

Two destinations share one small interface (:class:`Delivery`):

* :class:`PipeDelivery` writes snapserver's named pipe (a ``pipe://`` source).
  snapserver 0.26 does not keep the pipe open while no writer has it: it opens
  it, reads EOF, closes it and tries again every 100 ms, so a non-blocking
  write-only open nearly always fails with ``ENXIO``.  The pipe is therefore
  opened read-write and non-blocking: that never blocks and never fails for
  want of a reader, and once broadcaster holds it, snapserver's reads stop
  seeing EOF and it keeps the pipe open.  The kernel pipe is shrunk to at most
  ``buffer_ms`` of audio, so its back-pressure paces the writer; a queue of
  up to ``buffer_ms`` more absorbs capture bursts and snapserver's scheduling
  hiccups, and when snapserver stops reading (gone, hung, restarting),
  the oldest audio is dropped (and counted) instead of growing without bound:
  capture never waits.  A pipe that does not exist yet, or that is not a fifo,
  only delays delivery; the writer keeps retrying and says once what it waits
  for.  If the path is replaced (a restarted snapserver made a new fifo), the
  writer notices within a second and reopens it.
* :class:`TcpDelivery` connects to a ``tcp://`` source in server mode on
  another machine, with the same queue bound and reconnect loop.

``write()`` is synchronous and cheap: the capture loop calls it for every chunk.
``run()`` is the owner task that (re)connects until cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from typing import Protocol

from .audio import CHUNK_MS, SNAPCAST_FORMAT, AudioFormat

_LOGGER = logging.getLogger(__name__)

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class DeliveryStats:
    """Counters a delivery keeps for status output and metrics."""

    chunks_written: int = 0
    chunks_dropped: int = 0
    """Dropped because snapserver did not read fast enough (queue full)."""
    chunks_discarded: int = 0
    """Arrived while no snapserver was connected."""
    reconnects: int = 0
    connected: bool = False


class Delivery(Protocol):
    """Where chunks go.  ``run`` owns the connection; ``write`` never blocks."""

    stats: DeliveryStats

    @property
    def target(self) -> str: ...

    def write(self, chunk: bytes) -> None: ...

    async def run(self) -> None: ...


class _Backoff:
    """Capped exponential delay between reconnect attempts."""

    def __init__(self, first: float, cap: float) -> None:
        self._first, self._cap = first, cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay


def pipe_capacity_for(limit_bytes: int) -> int:
    """The largest kernel pipe size (a power-of-two number of pages) within ``limit_bytes``."""
    size = _PAGE
    while size * 2 <= limit_bytes:
        size *= 2
    return size


class PipeDelivery:
    """Writes chunks into a named pipe read by snapserver."""

    def __init__(
        self,
        path: str,
        *,
        audio_format: AudioFormat = SNAPCAST_FORMAT,
        buffer_ms: int = 100,
        chunk_ms: int = CHUNK_MS,
        retry_first: float = 0.05,
        retry_cap: float = 0.5,
        check_interval: float = 1.0,
    ) -> None:
        self.path = path
        self._check_interval = check_interval
        self.stats = DeliveryStats()
        limit = audio_format.bytes_in(buffer_ms)
        self._pipe_size = pipe_capacity_for(limit)
        chunk_bytes = audio_format.bytes_in(chunk_ms)
        # Up to buffer_ms more may wait here while snapserver is late reading
        # (a busy box): capture bursts and scheduling hiccups cost no audio.
        self._max_queue = max(2, -(-limit // chunk_bytes))
        self._queue: collections.deque[memoryview] = collections.deque()
        self._fd: int | None = None
        self._waiting_writable = False
        self._broken = asyncio.Event()
        self._backoff = _Backoff(retry_first, retry_cap)
        self._last_problem: str | None = None
        self._ever_connected = False

    @property
    def target(self) -> str:
        return f"pipe {self.path}"

    # --- the capture side ------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        if self._fd is None:
            self.stats.chunks_discarded += 1
            return
        self._queue.append(memoryview(chunk))
        while len(self._queue) > self._max_queue:
            self._queue.popleft()
            self.stats.chunks_dropped += 1
        if not self._waiting_writable:
            self._flush()

    def _flush(self) -> None:
        fd = self._fd
        while self._queue and fd is not None:
            head = self._queue[0]
            try:
                written = os.write(fd, head)
            except BlockingIOError:
                self._wait_writable(fd)
                return
            except OSError as err:  # not expected on a pipe we also read; reopen it
                self._lost(f"writing {self.path} failed: {os.strerror(err.errno or 0)}")
                return
            if written == len(head):
                self._queue.popleft()
                self.stats.chunks_written += 1
            else:  # partial write (chunks larger than PIPE_BUF)
                self._queue[0] = head[written:]

    def _wait_writable(self, fd: int) -> None:
        if not self._waiting_writable:
            self._waiting_writable = True
            asyncio.get_running_loop().add_writer(fd, self._on_writable)

    def _on_writable(self) -> None:
        self._stop_waiting()
        self._flush()

    def _stop_waiting(self) -> None:
        if self._waiting_writable and self._fd is not None:
            asyncio.get_running_loop().remove_writer(self._fd)
        self._waiting_writable = False

    # --- the connection side ---------------------------------------------------

    async def run(self) -> None:
        """Open the pipe and keep it open (reopening it if replaced) until cancelled."""
        try:
            while True:
                if not self._try_open():
                    await asyncio.sleep(self._backoff.next())
                    continue
                self._backoff.reset()
                while self._fd is not None and self._still_same_pipe():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._broken.wait(), self._check_interval)
                    if self._broken.is_set():
                        break
                self._broken.clear()
                self._close()
        finally:
            self._close()

    def _still_same_pipe(self) -> bool:
        """False once the path no longer names the fifo we hold."""
        assert self._fd is not None
        try:
            now = os.stat(self.path)
        except OSError:
            self._problem(f"{self.path} disappeared; waiting for it to come back")
            return False
        held = os.fstat(self._fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            _LOGGER.info("%s was replaced; reopening it", self.path)
            return False
        return True

    def _try_open(self) -> bool:
        try:
            # Read-write: never blocks, never ENXIO (see the module docstring).
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            if err.errno == errno.ENOENT:
                self._problem(f"waiting for snapserver to create the pipe {self.path}")
            elif err.errno in (errno.EACCES, errno.EPERM):
                self._problem(f"no permission to write {self.path}; retrying", level=logging.ERROR)
            else:
                self._problem(f"cannot open {self.path}: {err.strerror}; retrying", logging.ERROR)
            return False
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            self._problem(
                f"{self.path} is not a named pipe (a regular file?); remove it so "
                "snapserver can create its fifo; retrying",
                level=logging.ERROR,
            )
            return False
        with contextlib.suppress(OSError):  # may be refused above the user limit
            fcntl.fcntl(fd, _F_SETPIPE_SZ, self._pipe_size)
        self._fd = fd
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self.stats.connected = True
        _LOGGER.info("delivering into %s", self.path)
        self._last_problem = None
        return True

    def _problem(self, message: str, level: int = logging.WARNING) -> None:
        if message != self._last_problem:
            _LOGGER.log(level, "%s", message)
            self._last_problem = message

    def _lost(self, reason: str) -> None:
        self._problem(reason)
        self._close()
        self._broken.set()

    def _close(self) -> None:
        self._stop_waiting()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self.stats.chunks_discarded += len(self._queue)
        self._queue.clear()
        self.stats.connected = False


class TcpDelivery:
    """Writes chunks to a snapserver ``tcp://`` source in server mode."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        audio_format: AudioFormat = SNAPCAST_FORMAT,
        buffer_ms: int = 100,
        connect_timeout: float = 5.0,
        retry_first: float = 0.1,
        retry_cap: float = 2.0,
    ) -> None:
        self.host, self.port = host, port
        self.stats = DeliveryStats()
        self._limit = audio_format.bytes_in(buffer_ms)
        self._writer: asyncio.StreamWriter | None = None
        self._connect_timeout = connect_timeout
        self._backoff = _Backoff(retry_first, retry_cap)
        self._last_problem: str | None = None
        self._ever_connected = False

    @property
    def target(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def write(self, chunk: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            self.stats.chunks_discarded += 1
            return
        if writer.transport.get_write_buffer_size() + len(chunk) > self._limit:
            self.stats.chunks_dropped += 1
            return
        writer.write(chunk)
        self.stats.chunks_written += 1

    async def run(self) -> None:
        try:
            while True:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self._connect_timeout
                    )
                except (OSError, TimeoutError) as err:
                    reason = "timed out" if isinstance(err, TimeoutError) else err.strerror
                    message = f"cannot connect to {self.target}: {reason}; retrying"
                    if message != self._last_problem:
                        _LOGGER.warning("%s", message)
                        self._last_problem = message
                    await asyncio.sleep(self._backoff.next())
                    continue
                if self._ever_connected:
                    self.stats.reconnects += 1
                self._ever_connected = True
                self._last_problem = None
                self._backoff.reset()
                self._writer = writer
                self.stats.connected = True
                _LOGGER.info("delivering into %s", self.target)
                try:
                    # snapserver sends nothing on a source socket: EOF means it went away.
                    while await reader.read(4096):
                        pass
                except OSError:
                    pass
                finally:
                    self._writer = None
                    self.stats.connected = False
                    # abort, not close: unsent audio is stale, and a stalled peer
                    # would make a graceful close wait forever.
                    writer.transport.abort()
                self._last_problem = f"{self.target} closed the connection"
                _LOGGER.warning("%s; reconnecting", self._last_problem)
        finally:
            if self._writer is not None:
                self._writer.transport.abort()
                self._writer = None
