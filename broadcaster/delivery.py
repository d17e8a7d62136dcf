"""Delivery: normalized audio into snapserver, never blocking capture.

Two destinations share one small interface (:class:`Delivery`):

* :class:`PipeDelivery` writes snapserver's named pipe (a ``pipe://`` source).
  snapserver 0.26 does not keep the pipe open while no writer has it: it opens
  it, reads EOF, closes it and tries again every 100 ms, so a non-blocking
  write-only open nearly always fails with ``ENXIO``.  The pipe is therefore
  opened read-write and non-blocking: that never blocks and never fails for
  want of a reader, and once broadcaster holds it, snapserver's reads stop
  seeing EOF and it keeps the pipe open.  The kernel pipe is shrunk to at most
  ``buffer_ms`` of audio.  A pipe that does not exist yet, or that is not a
  fifo, only delays delivery; the connection side keeps retrying and says once
  what it waits for.  If the path is replaced (a restarted snapserver made a
  new fifo), it notices within a second and reopens it.
* :class:`TcpDelivery` connects to a ``tcp://`` source in server mode on
  another machine, with the same bounds and reconnect loop.

Each has two sides.  ``write()`` is the data path's: it is called from the
capture thread (see :mod:`broadcaster.capture`) for every block, and is a
non-blocking write into the pipe or socket.  What the kernel has no room for
waits in a queue of up to ``buffer_ms`` (capture bursts, snapserver's
scheduling hiccups cost no audio) and goes out as soon as there is room (the
event loop watches for it while anything is queued); beyond
that the oldest audio is dropped and counted, so a snapserver that stopped
reading (gone, hung, restarting) costs neither memory nor a blocked capture.
``run()`` is the connection's side, an asyncio task that opens, watches and
reopens the pipe or socket until cancelled.  The two meet in
:class:`_Writer`, under a lock: the data path never writes into a descriptor
the connection side has closed.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .audio import SNAPCAST_FORMAT, AudioFormat
from .backoff import PIPE_REOPEN, TCP_SOURCE, Backoff, Policy

_LOGGER = logging.getLogger(__name__)

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class DeliveryStats:
    """Counters a delivery keeps for status output and metrics.

    A *chunk* is one ``write()``: one captured block, converted (about 20 ms).
    """

    chunks_written: int = 0
    bytes_written: int = 0
    """Audio the pipe or socket took (chunks partly written count their part)."""
    chunks_dropped: int = 0
    """Dropped because snapserver did not read fast enough (queue full)."""
    chunks_discarded: int = 0
    """Arrived while no snapserver was connected."""
    reconnects: int = 0
    connected: bool = False


class Delivery(Protocol):
    """Where audio goes.  ``run`` owns the connection; ``write`` never blocks."""

    stats: DeliveryStats

    @property
    def target(self) -> str: ...

    def write(self, chunk: bytes) -> None: ...

    async def run(self) -> None: ...


def open_fifo(path: str) -> int:
    """Open the fifo at ``path`` read-write and non-blocking (never blocks, never ENXIO).

    Raises :class:`OSError` (``ENOENT`` when it is not there yet) or
    :class:`NotAFifoError`.
    """
    # No symbolic links: one planted by another user could point anywhere.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotAFifoError(errno.EINVAL, "not a named pipe", path)
    return fd


class NotAFifoError(OSError):
    """The path exists but is not a named pipe."""


def fifo_problem(path: str, err: OSError) -> tuple[int, str]:
    """The log level and one-line message for a fifo that cannot be opened."""
    if isinstance(err, NotAFifoError):
        return logging.ERROR, (
            f"{path} is not a named pipe (a regular file?); remove it so "
            "snapserver can create its fifo; retrying"
        )
    if err.errno == errno.ELOOP:
        return (
            logging.ERROR,
            f"{path} is a symbolic link, not snapserver's pipe; remove it; retrying",
        )
    if err.errno == errno.ENOENT:
        return logging.WARNING, f"waiting for snapserver to create the pipe {path}"
    if err.errno in (errno.EACCES, errno.EPERM):
        return logging.ERROR, f"no permission to write {path}; retrying"
    return logging.ERROR, f"cannot open {path}: {err.strerror}; retrying"


def shrink_pipe(fd: int, size: int) -> None:
    """Bound what the kernel pipe holds (refused above the user's limit: then it stays)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)


def pipe_fill(fd: int) -> int:
    """Bytes waiting in the pipe ``fd`` is open on (``FIONREAD``); -1 if it cannot be read."""
    held = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, held)
    except OSError:
        return -1
    return held[0]


def pipe_size(fd: int) -> int:
    """The kernel pipe's capacity in bytes (``F_GETPIPE_SZ``); 0 if it cannot be read."""
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 0


def pipe_capacity_for(limit_bytes: int) -> int:
    """The largest kernel pipe size (a power-of-two number of pages) within ``limit_bytes``."""
    size = _PAGE
    while size * 2 <= limit_bytes:
        size *= 2
    return size


class _Writer:
    """Non-blocking writes into one descriptor with a bounded queue; thread-safe.

    The connection side attaches and detaches the descriptor (and closes it);
    the data path calls :meth:`write`.  After a write error, writes are
    discarded until the descriptor is detached, and ``on_error`` is called
    (from the data path's thread).  When audio starts to queue up,
    ``on_backlog`` is called (from the data path's thread too), so that the
    owner can :meth:`flush` as soon as there is room instead of waiting for
    the next block.
    """

    def __init__(self, stats: DeliveryStats, limit_bytes: int) -> None:
        self.stats = stats
        self._limit = limit_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._failed = False
        self._queue: collections.deque[memoryview] = collections.deque()
        self._queued = 0
        self._head_started = False
        """The queue's head is partly written: dropping it would split a frame."""
        self._on_error: Callable[[str], None] | None = None
        self._on_backlog: Callable[[], None] | None = None

    def attach(
        self, fd: int, on_error: Callable[[str], None], on_backlog: Callable[[], None]
    ) -> None:
        with self._lock:
            self._fd, self._on_error, self._on_backlog = fd, on_error, on_backlog

    @property
    def fd(self) -> int | None:
        return self._fd

    def flush(self) -> bool:
        """Write what is queued as far as the kernel takes it; True if some is left."""
        with self._lock:
            if self._fd is not None and not self._failed:
                self._flush()
            return bool(self._queue)

    def detach(self) -> int | None:
        """Stop writing; return the descriptor (the caller closes it)."""
        with self._lock:
            fd, self._fd = self._fd, None
            self._failed = False
            self.stats.chunks_discarded += len(self._queue)
            self._queue.clear()
            self._queued = 0
            self._head_started = False
            return fd

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._fd is None or self._failed:
                self.stats.chunks_discarded += 1
                return
            if not self._queue:  # the usual case: straight into the kernel
                try:
                    written = os.write(self._fd, chunk)
                except BlockingIOError:
                    written = 0
                except OSError as err:
                    self.stats.chunks_discarded += 1
                    self._fail(err)
                    return
                self.stats.bytes_written += written
                if written == len(chunk):
                    self.stats.chunks_written += 1
                    return
                self._queue.append(memoryview(chunk)[written:])
                self._queued = len(chunk) - written
                self._head_started = written > 0
                if self._on_backlog is not None:
                    self._on_backlog()
                return
            self._queue.append(memoryview(chunk))
            self._queued += len(chunk)
            self._flush()  # room may have come since: write before dropping anything
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest whole chunks while the queue holds more than the limit."""
        queue = self._queue
        while self._queued > self._limit and len(queue) > 1:
            victim = queue.popleft()
            if self._head_started:  # keep the partly written one: frames stay whole
                kept, victim = victim, queue.popleft()
                queue.appendleft(kept)
            self._queued -= len(victim)
            self.stats.chunks_dropped += 1

    def _flush(self) -> None:
        fd = self._fd
        queue = self._queue
        while queue and fd is not None:
            head = queue[0]
            try:
                written = os.write(fd, head)
            except BlockingIOError:
                return
            except OSError as err:
                self._fail(err)
                return
            self._queued -= written
            self.stats.bytes_written += written
            if written == len(head):
                queue.popleft()
                self._head_started = False
                self.stats.chunks_written += 1
            else:
                queue[0] = head[written:]
                self._head_started = True

    def _fail(self, err: OSError) -> None:
        # Called with the lock held: stop writing, let the owner reconnect.
        self._failed = True
        self.stats.chunks_discarded += len(self._queue)
        self._queue.clear()
        self._queued = 0
        self._head_started = False
        if self._on_error is not None:
            self._on_error(os.strerror(err.errno or 0))


class _Connection:
    """What both deliveries share: the writer, the stats, a 'broken' signal and
    the loop that opens, holds and reopens the pipe or socket.

    A delivery says how to open its descriptor (:meth:`_open`, None while it
    cannot: retried with ``backoff``) and how long the open one stays good
    (:meth:`_hold`).
    """

    def __init__(self, limit_bytes: int, backoff: Policy) -> None:
        self.stats = DeliveryStats()
        self._backoff = Backoff(backoff)
        self._writer = _Writer(self.stats, limit_bytes)
        self._broken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: int | None = None
        """The descriptor watched for room while audio is queued."""
        self._last_problem: str | None = None
        self._ever_connected = False
        self._error = ""

    @property
    def target(self) -> str:
        raise NotImplementedError

    def write(self, chunk: bytes) -> None:
        """Hand one block to snapserver; never blocks.  Safe from any thread."""
        self._writer.write(chunk)

    async def run(self) -> None:
        """Open the pipe or socket and keep it open (reopening it when lost) until cancelled."""
        try:
            while True:
                fd = await self._open()
                if fd is None:
                    await self._backoff.wait()
                    continue
                self._backoff.reset()
                self._attach(fd)
                _LOGGER.info("delivering into %s", self.target)
                try:
                    await self._hold(fd)
                finally:
                    self._detach()
        finally:
            self._detach()

    async def _open(self) -> int | None:
        """A descriptor to write into, or None (the problem logged) to retry later."""
        raise NotImplementedError

    async def _hold(self, fd: int) -> None:
        """Return when ``fd`` is no longer the one to write into (the loop reopens)."""
        raise NotImplementedError

    @property
    def queued_bytes(self) -> int:
        """Audio waiting for room in the pipe or socket (at most ``buffer_ms``)."""
        return self._writer.queued_bytes

    def _attach(self, fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._broken.clear()
        self._writer.attach(fd, self._on_write_error, self._on_backlog)
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self._last_problem = None
        self.stats.connected = True

    def _detach(self) -> None:
        self._stop_draining()
        fd = self._writer.detach()
        self.stats.connected = False
        if fd is not None:
            self._close(fd)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def _on_write_error(self, reason: str) -> None:
        # The data path's thread: only tell the loop.
        self._error = reason
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._broken.set)

    def _on_backlog(self) -> None:
        # The data path's thread: the kernel is full and audio queues up.  Let
        # the loop write it out the moment there is room (rare: snapserver late).
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._drain_when_writable)

    def _drain_when_writable(self) -> None:
        fd = self._writer.fd
        if fd is None or self._draining is not None or self._loop is None:
            return
        self._loop.add_writer(fd, self._on_writable)
        self._draining = fd

    def _on_writable(self) -> None:
        if not self._writer.flush():
            self._stop_draining()

    def _stop_draining(self) -> None:
        if self._draining is not None and self._loop is not None:
            self._loop.remove_writer(self._draining)
        self._draining = None

    def _problem(self, message: str, level: int = logging.WARNING) -> None:
        if message != self._last_problem:
            _LOGGER.log(level, "%s", message)
            self._last_problem = message


class PipeDelivery(_Connection):
    """Writes audio into a named pipe read by snapserver."""

    def __init__(
        self,
        path: str,
        *,
        audio_format: AudioFormat = SNAPCAST_FORMAT,
        buffer_ms: int = 100,
        reopen: Policy = PIPE_REOPEN,
        check_interval: float = 1.0,
    ) -> None:
        limit = audio_format.bytes_in(buffer_ms)
        super().__init__(limit, reopen)
        self.path = path
        self._check_interval = check_interval
        self._pipe_size = pipe_capacity_for(limit)

    @property
    def target(self) -> str:
        return f"pipe {self.path}"

    async def _hold(self, fd: int) -> None:
        """Until the path names another fifo (or none), or a write fails."""
        while self._still_same_pipe(fd):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_interval):
                    await self._broken.wait()
            if self._broken.is_set():
                # Not expected on a pipe we also read; reopen it.
                self._problem(f"writing {self.path} failed: {self._error}")
                return

    def _still_same_pipe(self, fd: int) -> bool:
        """False once the path no longer names the fifo we hold."""
        try:
            now = os.stat(self.path)
        except OSError:
            self._problem(f"{self.path} disappeared; waiting for it to come back")
            return False
        held = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            _LOGGER.info("%s was replaced; reopening it", self.path)
            return False
        return True

    async def _open(self) -> int | None:
        try:
            # Read-write: never blocks, never ENXIO (see the module docstring).
            fd = open_fifo(self.path)
        except OSError as err:
            level, message = fifo_problem(self.path, err)
            self._problem(message, level)
            return None
        shrink_pipe(fd, self._pipe_size)
        return fd


class TcpDelivery(_Connection):
    """Writes audio to a snapserver ``tcp://`` source in server mode."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        audio_format: AudioFormat = SNAPCAST_FORMAT,
        buffer_ms: int = 100,
        connect_timeout: float = 5.0,
        reconnect: Policy = TCP_SOURCE,
    ) -> None:
        limit = audio_format.bytes_in(buffer_ms)
        super().__init__(limit, reconnect)
        self.host, self.port = host, port
        self._sndbuf = limit
        self._sock: socket.socket | None = None
        self._connect_timeout = connect_timeout

    @property
    def target(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def _open(self) -> int | None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._sock = await self._connect()
        except (OSError, TimeoutError) as err:
            reason = "timed out" if isinstance(err, TimeoutError) else err.strerror
            self._problem(f"cannot connect to {self.target}: {reason}; retrying")
            return None
        return self._sock.fileno()

    async def _hold(self, fd: int) -> None:
        """Until snapserver closes the connection or a write fails."""
        assert self._sock is not None
        await self._until_closed(self._sock)
        self._last_problem = f"{self.target} closed the connection"
        _LOGGER.warning("%s; reconnecting", self._last_problem)

    def _close(self, fd: int) -> None:
        if self._sock is not None and self._sock.fileno() == fd:
            self._sock.close()
            self._sock = None

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(errno.EHOSTUNREACH, "no address")
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            # Bound what the kernel holds for a peer that stopped reading
            # (Linux doubles the value for its bookkeeping).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(4096, self._sndbuf // 2))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _until_closed(self, sock: socket.socket) -> None:
        """Wait for EOF or an error on the socket, or a failed write."""
        loop = asyncio.get_running_loop()
        reading = asyncio.ensure_future(self._drain_reads(loop, sock))
        broken = asyncio.ensure_future(self._broken.wait())
        try:
            await asyncio.wait({reading, broken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            broken.cancel()
            await asyncio.gather(reading, broken, return_exceptions=True)

    @staticmethod
    async def _drain_reads(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        # snapserver sends nothing on a source socket: EOF means it went away.
        with contextlib.suppress(OSError):
            while await loop.sock_recv(sock, 4096):
                pass
