"""The native data path: PipeWire writes snapserver's fifo itself.

When the audio goes into a snapserver pipe untouched (no effects, no explicit
capture format, no existing sink to capture from), the capture sink is not a
null sink recorded by pw-record and converted in Python: it is PipeWire's own
pipe sink (``libpipewire-module-pipe-tunnel``, ``tunnel.mode = sink``)
writing 48 kHz S16LE stereo straight into the fifo.  Python only routes the
app and supervises; no sample passes through it.

The module is loaded into a PipeWire client of broadcaster's own: a child
``pipewire -c CONFIG`` process (the config lists only the modules a client
needs and the pipe tunnel), started through ``setpriv --pdeathsig KILL`` so the
kernel kills it when broadcaster dies.  Its sink is the child's node, so
PipeWire removes it with the child, and the app falls back to its normal
output (measured: 40 ms after ``kill -9`` of its owner).  A pipe sink loaded
with ``pactl load-module module-pipe-sink`` instead lives in pipewire-pulse and
outlives a crashed broadcaster, leaving the app silent.

What :class:`PipeSink` also does, because the module does not:

* **Bounded backlog.**  The module writes non-blocking and drops what the
  fifo cannot take, so nothing blocks while no one reads; but a reader that
  comes back gets the whole kernel pipe first (64 KiB, 0.34 s, of stale
  audio).  broadcaster holds the fifo open read-write too and shrinks the pipe
  to ``pipe_bytes`` (16 KiB, 85 ms) with ``F_SETPIPE_SZ``.  Holding it also
  keeps snapserver 0.26's reader from cycling on EOF.
* **A fifo replaced on disk** (a restarted external snapserver in
  ``mode=create``): the module keeps writing into the deleted fifo.  The fifo's
  inode is checked every second; when it changes, a second sink with the other
  of two names (``NAME`` / ``NAME.b``) is created on the new fifo, the app is
  moved onto it by the Router, and only then is the old one removed, so the
  app never falls back onto the speakers in between.
* **PipeWire restarted**: the child survives with its node gone; the Router
  notices the sink missing and :meth:`PipeSink.create` starts a new child.

What can be known of delivery with no sample in Python (:class:`NativeStats`),
from the same once-a-second check: how full the fifo is (``FIONREAD`` on our
fd).  snapserver reading keeps it nearly empty; with no reader PipeWire fills
it (measured: 16384 of 16384 bytes within a second of playing) and drops the
rest.  The sink node's state (running, idle, suspended) comes with each look
the Router takes at the graph (its state changes are graph events).
PipeWire's ``pw-dump`` shows no counters for the node (0.3.65 and 1.4.2: its
state and error only), so seconds lost are counted here: checks that found
the fifo full while the sink was running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .audio import SNAPCAST_FORMAT
from .backoff import PIPE_REOPEN, SINK_RESTART, Backoff, Policy
from .config import Config
from .delivery import fifo_problem, open_fifo, pipe_fill, pipe_size, shrink_pipe
from .errors import PipeWireError
from .lifecycle import Resource
from .pipewire import PipeWire
from .process import ChildProcess

_LOGGER = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
"""Seconds between two looks at the fifo and the sink's client: once a second,
as :attr:`NativeStats.stalled_seconds` counts them."""


def python_path_reason(config: Config) -> str:
    """Why this run needs the Python data path, or "" when the native one fits."""
    if not config.capture.native:
        return "capture.native is false"
    if config.delivery.tcp:
        return "delivery is a tcp:// source"
    if config.processing.active:
        return "processing (--speed/--gain/--mono/--swap/--filter) runs in Python"
    if config.capture.format != "48000:s16:2":
        return f"capture.format {config.capture.format} is converted in Python"
    if config.capture.sink:
        return f"capture.sink {config.capture.sink} is an existing sink, recorded in Python"
    return ""


def _spa_string(text: str) -> str:
    """A quoted SPA-JSON string (JSON's quoting is valid SPA-JSON)."""
    return json.dumps(text)


def sink_config(name: str, description: str, fifo: str, *, latency_ms: int) -> str:
    """The ``pipewire -c`` client config that holds one pipe sink into ``fifo``."""
    fmt = SNAPCAST_FORMAT
    quantum = max(64, fmt.rate * latency_ms // 1000)
    return f"""\
context.properties = {{ log.level = 2 }}
context.spa-libs = {{
    audio.convert.* = audioconvert/libspa-audioconvert
    support.*       = support/libspa-support
}}
context.modules = [
    {{ name = libpipewire-module-rt args = {{ nice.level = -11 }} flags = [ ifexists nofail ] }}
    {{ name = libpipewire-module-protocol-native }}
    {{ name = libpipewire-module-client-node }}
    {{ name = libpipewire-module-adapter }}
    {{ name = libpipewire-module-pipe-tunnel
        args = {{
            tunnel.mode = sink
            pipe.filename = {_spa_string(fifo)}
            audio.format = S16LE
            audio.rate = {fmt.rate}
            audio.channels = {fmt.channels}
            audio.position = [ FL FR ]
            stream.props = {{
                node.name = {_spa_string(name)}
                node.description = {_spa_string(description)}
                node.latency = "{quantum}/{fmt.rate}"
            }}
        }}
    }}
]
"""


@dataclass
class NativeStats:
    """The native path's delivery figures, for status output and the API."""

    sink_state: str = ""
    """PipeWire's state of the sink node: running, idle, suspended ("" before the first look)."""
    pipe_bytes: int = 0
    """Audio waiting in the fifo at the last check."""
    pipe_capacity: int = 0
    reading: bool = True
    """snapserver takes the audio: the fifo was not full at the last check."""
    stalled_seconds: int = 0
    """Checks (one a second) that found the fifo full while the sink ran: audio dropped."""
    swaps: int = 0
    """How often the sink moved to a replaced fifo."""
    restarts: int = 0
    """How often the sink's PipeWire client was started again after it exited."""

    def observe(self, fill: int, capacity: int) -> bool | None:
        """Note one check of the fifo; return the new :attr:`reading` if it changed.

        Full means less room left than one atomic write (``PIPE_BUF``):
        PipeWire writes non-blocking and what does not fit is dropped.
        """
        if fill < 0:
            return None  # the fd could not be asked: keep what we knew
        self.pipe_bytes, self.pipe_capacity = fill, capacity
        full = capacity > 0 and capacity - fill < select.PIPE_BUF
        if full and self.sink_state == "running":
            self.stalled_seconds += 1
        reading = not full
        if reading == self.reading:
            return None
        self.reading = reading
        return reading


class _Host:
    """One ``pipewire -c`` child holding one pipe sink, and our fd on its fifo."""

    def __init__(self, name: str, fd: int, child: ChildProcess) -> None:
        self.name = name
        self.fd = fd
        self.child = child
        self.capacity = pipe_size(fd)

    def same_fifo(self, path: str) -> bool:
        try:
            now = os.stat(path)
        except OSError:
            return False
        held = os.fstat(self.fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    async def close(self) -> None:
        try:
            await self.child.stop()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)


class PipeSink(Resource):
    """The capture sink of the native path: a PipeWire pipe sink that dies with broadcaster.

    Used like :class:`~broadcaster.routing.VirtualSink` (``create``,
    ``remove``, ``async with``); :attr:`name` may change (see the module
    docstring) and ``on_renamed`` is called with the new name.
    """

    def __init__(
        self,
        pipewire: PipeWire,
        name: str,
        description: str,
        fifo: str,
        *,
        env: Mapping[str, str] | None = None,
        latency_ms: int = 100,
        pipe_bytes: int = 16384,
        reopen: Policy = PIPE_REOPEN,
        restart: Policy = SINK_RESTART,
    ) -> None:
        self._pw = pipewire
        self.base_name = name
        self._name = name
        self.description = description
        self.fifo = fifo
        self._env = dict(env) if env is not None else None
        self._latency_ms = latency_ms
        self._pipe_bytes = pipe_bytes
        self._reopen = reopen
        self._restart = Backoff(restart)
        self._host: _Host | None = None
        self._lock = asyncio.Lock()
        self._last_problem = ""
        self.stats = NativeStats()

    @property
    def name(self) -> str:
        """The sink's node name now: ``base_name``, or ``base_name.b`` after a swap."""
        return self._name

    @property
    def connected(self) -> bool:
        """A sink is up and writing into the fifo at the path."""
        return self._host is not None and self._host.child.running

    # --- life ------------------------------------------------------------------

    async def create(self) -> None:
        """Create the sink (again, after PipeWire restarted), waiting for its fifo."""
        async with self._lock:
            if self._host is not None:
                old, self._host = self._host, None
                await old.close()
            # Under its current name: the Router routes to that one.
            self._host = await self._start(self._name)

    async def remove(self) -> None:
        async with self._lock:
            if self._host is not None:
                host, self._host = self._host, None
                await host.close()
                _LOGGER.info("removed pipe sink %s", host.name)

    async def start(self) -> None:
        await self.create()

    async def stop(self) -> None:
        await asyncio.shield(self.remove())

    async def watch(self, on_renamed: Callable[[str], Awaitable[None]]) -> None:
        """Until cancelled: follow a replaced fifo, restart a child that died."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            host = self._host
            if host is None:
                continue
            if not host.child.running:
                self.stats.restarts += 1
                self._restart.ended()
                delay = await self._restart.wait()
                _LOGGER.warning(
                    "the pipe sink's PipeWire client exited (%s); started again after %.1f s",
                    host.child.last_words(),
                    delay,
                )
                await self._retrying(self.create())
                continue
            if not host.same_fifo(self.fifo):
                _LOGGER.info("%s was replaced; moving the app to a sink on the new one", self.fifo)
                await self._retrying(self._swap(on_renamed))
                continue
            self.check_pipe(host)

    def check_pipe(self, host: _Host) -> None:
        """Update :attr:`stats` from the fifo's fill level; say when snapserver stops reading."""
        changed = self.stats.observe(pipe_fill(host.fd), host.capacity)
        if changed is False and self.stats.sink_state == "running":
            _LOGGER.warning(
                "snapserver is not reading %s (the pipe is full): the app's audio is dropped "
                "until it does",
                self.fifo,
            )
        elif changed:
            _LOGGER.info("snapserver reads %s", self.fifo)

    @staticmethod
    async def _retrying(step: Awaitable[None]) -> None:
        """Run ``step``; a PipeWire that does not answer now is tried again next round."""
        try:
            await step
        except PipeWireError as err:
            _LOGGER.warning("the pipe sink: %s; trying again", err)

    async def _swap(self, on_renamed: Callable[[str], Awaitable[None]]) -> None:
        """A new sink on the new fifo under the other name; the app moves; the old goes."""
        async with self._lock:
            old = self._host
            if old is None:
                return
            other = self.base_name + ".b" if old.name == self.base_name else self.base_name
            try:
                self._host = await self._start(other)
            except BaseException:
                self._host = old
                raise
            self._name = other
            self.stats.swaps += 1
        try:
            await on_renamed(self._host.name)  # the Router moves the app onto it
        finally:
            await old.close()

    # --- one child ---------------------------------------------------------------

    async def _open(self) -> int:
        """Our fd on the fifo, once it exists (waiting with capped backoff)."""
        backoff = Backoff(self._reopen)
        while True:
            try:
                fd = open_fifo(self.fifo)
            except OSError as err:
                level, message = fifo_problem(self.fifo, err)
                if message != self._last_problem:
                    _LOGGER.log(level, "%s", message)
                    self._last_problem = message
                await backoff.wait()
                continue
            self._last_problem = ""
            shrink_pipe(fd, self._pipe_bytes)
            return fd

    async def _start(self, name: str) -> _Host:
        fd = await self._open()
        text = sink_config(name, self.description, self.fifo, latency_ms=self._latency_ms)
        directory = self._env.get("XDG_RUNTIME_DIR") if self._env else None
        directory = directory or os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        handle, conf = tempfile.mkstemp(prefix="broadcaster-sink-", suffix=".conf", dir=directory)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        child = ChildProcess(
            ["pipewire", "-c", conf],
            name=f"pipewire ({name})",
            env=self._env,
            die_with_parent=True,  # the sink goes with broadcaster, whatever kills it
        )
        try:
            try:
                await child.start()
            except FileNotFoundError:
                raise PipeWireError(
                    "setpriv or pipewire is not installed (sudo apt-get install util-linux "
                    "pipewire-bin)"
                ) from None
            await self._pw.wait_for_sink(name, child)
        except BaseException:
            await child.stop()
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(conf)
        _LOGGER.info("created pipe sink %s writing %s", name, self.fifo)
        self._restart.started()
        return _Host(name, fd, child)
