"""The long-running broadcaster service behind ``broadcaster serve``.

:class:`Service` owns, for the life of the process:

* the **captures**: any number of :class:`~broadcaster.pipeline.Broadcast`
  runs, started and stopped at run time, each feeding its own snapserver pipe
  stream (a *slot*), so each group of rooms can listen to a different app;
* the **snapserver**: a managed one with one pipe stream per slot
  (``snapcast/snapserver.conf.in``, ``web.slots`` of them) when none answers on the
  control port (``snapserver.mode``), else the running one, whose local
  ``pipe://`` streams are the slots.  When every slot is in use and the server
  can add streams at run time (``Stream.AddStream``, snapserver 0.31; 0.26
  answers "method not found"), a capture gets a pipe stream of its own, added
  beside the slots and removed when the capture ends;
* the **control plane**: a :class:`~broadcaster.snapstate.SnapState`
  connection that follows snapserver's notifications;
* a once-a-second **sampler** that turns capture counters into change events,
  level meters and underrun counts for the page and the metrics.

Changes of any of these call ``on_change(topic)`` (``"server"`` or
``"captures"``) so the web layer can push them to browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .backoff import CONTROL_RECONNECT, Policy
from .claims import held
from .config import Config, is_local_host
from .delivery import Delivery, DeliveryStats
from .errors import (
    BusyError,
    ConfigError,
    ControlConnectionError,
    ControlError,
    NotFoundError,
    ServerReplyError,
)
from .lifecycle import cancel_and_wait
from .net import port_answers
from .pipeline import Broadcast, BroadcastStatus, Destination
from .pipewire import TargetApp, refuse_broad_pid
from .process import ChildProcess
from .settings import parse_address
from .snapserver import ANNOUNCE_STREAM, EmbeddedSnapserver, Slot
from .snapstate import SnapState

_LOGGER = logging.getLogger(__name__)

_ENDED = ("stopped", "failed")
ENDED_KEPT = 8
"""Ended (stopped or failed) captures kept for the page and the API, newest first."""


# --- one capture --------------------------------------------------------------


@dataclass
class Level:
    """Signal level of the last second of a capture, in dBFS (-inf when silent)."""

    rms_db: float = -math.inf
    peak_db: float = -math.inf


class _LevelSum:
    """Running sums of s16 samples between two samplings; thread-safe."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._lock = threading.Lock()
        self._sum_squares = 0.0
        self._samples = 0
        self._peak = 0
        self.level = Level()

    def add(self, chunk: bytes) -> None:
        if len(chunk) < 2:
            return
        np = self._np
        samples = np.frombuffer(chunk, dtype="<i2", count=len(chunk) // 2)
        wide = samples.astype(np.float64)
        energy = float(np.dot(wide, wide))
        peak = max(int(samples.max()), -int(samples.min()))
        with self._lock:
            self._sum_squares += energy
            self._samples += int(samples.size)
            self._peak = max(self._peak, peak)

    def sample(self) -> Level:
        """The level since the last call (the sampler calls this once a second)."""
        with self._lock:
            sum_squares, samples, peak = self._sum_squares, self._samples, self._peak
            self._sum_squares, self._samples, self._peak = 0.0, 0, 0
        if samples:
            rms = math.sqrt(sum_squares / samples) / 32768
            self.level = Level(_db(rms), _db(peak / 32768))
        else:
            self.level = Level()
        return self.level


class Meter(Protocol):
    """What the sampler reads: the level since its last look."""

    def sample(self) -> Level: ...


class MeteredDelivery:
    """A :class:`Delivery` that also measures the level of what passes through.

    For the Python data path.  ``write`` runs in the capture thread, ``sample``
    in the event loop.  Only one block in :attr:`MEASURE_EVERY` is measured
    (about six a second at the default capture latency): plenty for a meter,
    and each numpy call on the data path costs tens of microseconds
    (docs/performance.md).
    """

    MEASURE_EVERY = 4

    def __init__(self, inner: Delivery) -> None:
        self._inner = inner
        self.stats: DeliveryStats = inner.stats
        self._sums = _LevelSum()
        self._writes = 0
        self.held = False
        """While set, captured audio is dropped (a room calibration has the pipe)."""

    @property
    def target(self) -> str:
        return self._inner.target

    @property
    def level(self) -> Level:
        return self._sums.level

    def write(self, chunk: bytes) -> None:
        if self.held:
            return
        if self._writes % self.MEASURE_EVERY == 0:
            self._sums.add(chunk)
        self._writes += 1
        self._inner.write(chunk)

    async def run(self) -> None:
        await self._inner.run()

    def sample(self) -> Level:
        return self._sums.sample()


class MonitorMeter:
    """The level of a native capture, from its sink's monitor.

    On the native path no sample passes through Python, so the meter records
    the capture sink's monitor itself: a ``pw-record`` (mono s16) that runs
    only while the app plays (recording an idle sink would keep PipeWire's
    graph awake), its output read :attr:`INTERVAL` apart from a non-blocking
    pipe, whole, in one go: four wakeups of the event loop a second, not one
    per PipeWire block.
    """

    INTERVAL = 0.25

    def __init__(
        self,
        sink: Callable[[], str],
        playing: Callable[[], bool],
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._sink = sink
        self._playing = playing
        self._env = env
        self._sums = _LevelSum()

    @property
    def level(self) -> Level:
        return self._sums.level

    def sample(self) -> Level:
        return self._sums.sample()

    async def run(self) -> None:
        """Meter while the app plays, until cancelled."""
        from .audio import AudioFormat
        from .capture import record_command
        from .pipewire import pw_cat_stdio_options

        while True:
            await asyncio.sleep(self.INTERVAL)
            if not self._playing():
                continue
            argv = record_command(
                self._sink(),
                AudioFormat(48000, 1, "s16"),
                100,
                role="meter",
                stdio=await pw_cat_stdio_options(self._env),
            )
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            child = ChildProcess(argv, name="pw-record (meter)", env=self._env, stdout_fd=write_fd)
            try:
                await child.start()
            except FileNotFoundError:
                os.close(read_fd)
                return  # run already needs pw-record only on the Python path: no meter
            finally:
                os.close(write_fd)
            try:
                while child.running and self._playing():
                    await asyncio.sleep(self.INTERVAL)
                    self._read(read_fd)
            finally:
                await child.stop()
                os.close(read_fd)

    def _read(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            self._sums.add(data[: len(data) & ~1])


def _db(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else -math.inf


class SlotBroadcast(Broadcast):
    """A :class:`Broadcast` that feeds a given slot's pipe (``delivery.pipe``), metered."""

    def __init__(
        self, target: TargetApp, config: Config, *, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(target, config, env=env)
        self.meter: Meter | None = None

    def wrap_delivery(self, delivery: Delivery) -> Delivery:
        meter = MeteredDelivery(delivery)
        self.meter = meter
        return meter

    async def run(self, stop: asyncio.Event) -> None:
        metering = asyncio.create_task(self._meter_native(), name="meter")
        try:
            await super().run(stop)
        finally:
            await cancel_and_wait(metering)

    async def _meter_native(self) -> None:
        await self.ready.wait()
        if self.native_sink is None:
            return  # the Python path: wrap_delivery meters
        meter = MonitorMeter(
            lambda: self.status.sink,
            lambda: self.status.state == "playing",
            env=self._env,
        )
        self.meter = meter
        await meter.run()


class Runner(Protocol):
    """What the service needs of a broadcast (a :class:`SlotBroadcast`, or a test stand-in)."""

    status: BroadcastStatus
    ready: asyncio.Event

    @property
    def meter(self) -> Meter | None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


RunnerFactory = Callable[[TargetApp, Config, "Mapping[str, str] | None"], Runner]


def _default_factory(
    target: TargetApp, config: Config, env: Mapping[str, str] | None
) -> SlotBroadcast:
    return SlotBroadcast(target, config, env=env)


@dataclass
class Capture:
    """One app being broadcast into one slot."""

    id: str
    target: TargetApp
    slot: Slot
    runner: Runner
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    error: str = ""
    started: float = field(default_factory=time.time)
    underruns: int = 0
    last_written: int = 0
    level: Level = field(default_factory=Level)
    announcer: str = ""
    """The announcer app this capture mixes in (announce.announcer), if it does."""

    @property
    def state(self) -> str:
        if self.error:
            return "failed"
        return self.runner.status.state

    def describe(self) -> dict[str, Any]:
        status = self.runner.status
        return {
            "id": self.id,
            "app": self.target.name,
            "pid": self.target.pid,
            "stream": self.slot.stream,
            "state": self.state,
            "error": self.error,
            "sink": status.sink,
            "path": status.path,
            "app_streams": list(status.streams),
            "level": {
                "rms_db": _json_db(self.level.rms_db),
                "peak_db": _json_db(self.level.peak_db),
            },
            "capture": dataclasses.asdict(status.capture),
            "delivery": dataclasses.asdict(status.delivery),
            "native": dataclasses.asdict(status.native) if status.native is not None else None,
            "processing": dataclasses.asdict(status.processing) if status.processing else None,
            "underruns": self.underruns,
            "started": self.started,
        }


def _json_db(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 1)


# --- the service -----------------------------------------------------------------


class Service:
    """Captures, the snapserver they feed, and the control connection to it."""

    SAMPLE_INTERVAL = 1.0
    """Seconds between two looks at the captures' levels and underruns."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        runner_factory: RunnerFactory = _default_factory,
        reconnect: Policy = CONTROL_RECONNECT,
    ) -> None:
        self.config = config
        self.env = env
        self._factory = runner_factory
        self._on_change: Callable[[str], None] = lambda topic: None
        self.captures: dict[str, Capture] = {}
        self._ids = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.managed: EmbeddedSnapserver | None = None
        #: Whether snapserver adds streams at run time (None: not asked yet).
        self.can_add_streams: bool | None = None
        host, port = parse_address(config.server or "127.0.0.1", config.snapserver.control_port)
        self.snap = SnapState(
            host,
            port,
            timeout=config.timeout,
            on_change=lambda: self._on_change("server"),
            backoff=reconnect,
        )
        self.started = time.time()

    def set_listener(self, on_change: Callable[[str], None]) -> None:
        """Tell ``on_change`` what changed, by topic ("captures", "server"), from now on."""
        self._on_change = on_change

    # --- life ------------------------------------------------------------------

    async def start(self, *, mdns: bool = False) -> None:
        """Find or start the snapserver and start following it.

        With ``mdns`` and a snapserver not managed here, the connection listens
        for the server's mDNS announcements while it waits to reconnect, and
        tries at once when the server announces itself again.
        """
        cfg = self.config
        mode = cfg.snapserver.mode
        if not cfg.server and (
            mode == "always"
            or (mode == "auto" and not await port_answers(self.snap.host, self.snap.port))
        ):
            managed = EmbeddedSnapserver(cfg.snapserver, slots=cfg.web.slots)
            await managed.start()
            self.managed = managed
            self._spawn(managed.supervise(), "snapserver")
        self._spawn(self.snap.run(mdns=mdns and self.managed is None), "snapstate")
        self._spawn(self._sample_loop(), "sampler")

    async def stop(self) -> None:
        """Stop every capture (restoring routing), then the control plane and snapserver."""
        await asyncio.gather(
            *(self.stop_capture(key) for key in list(self.captures)), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.managed is not None:
            await self.managed.stop()
            self.managed = None

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("task %s failed: %s", task.get_name(), task.exception())

    # --- slots -----------------------------------------------------------------

    def slots(self) -> list[Slot]:
        """Pipe streams captures can feed: the managed server's, else the server's local pipes."""
        if self.managed is not None:
            return list(self.managed.slots)
        if not is_local_host(self.snap.host):
            return []
        return [
            Slot(s.id, Path(s.path))
            for s in self.snap.view().streams
            if s.scheme == "pipe" and s.id != ANNOUNCE_STREAM  # announcements' own
        ]

    def _free_slot(self, wanted: str | None) -> Slot:
        slots = self.slots()
        if not slots and self.managed is None and self.snap.server is None:
            raise ControlConnectionError(
                f"snapserver at {self.snap.address} has not told its streams yet "
                "(no answer to Server.GetStatus); try again when GET /api/health is ok"
            )
        if not slots:
            raise BusyError("snapserver has no pipe stream on this machine to capture into")
        used = {c.slot.stream for c in self.captures.values() if c.state not in _ENDED}

        def elsewhere(slot: Slot) -> bool:
            """Fed by another broadcaster process (`broadcaster run`, a second serve)."""
            return held(Destination(pipe=str(slot.fifo)).key(), self.env)

        if wanted:
            for slot in slots:
                if slot.stream == wanted:
                    if slot.stream in used:
                        raise BusyError(f"stream {wanted!r} is already fed by another capture")
                    if elsewhere(slot):
                        raise BusyError(f"stream {wanted!r} is already fed by another broadcaster")
                    return slot
            raise NotFoundError(f"there is no pipe stream {wanted!r} to capture into")
        for slot in slots:
            if slot.stream not in used and not elsewhere(slot):
                return slot
        raise BusyError(
            f"all {len(slots)} capture streams are in use; stop a capture "
            "(or raise web.slots for the managed snapserver)"
        )

    async def _claim_slot(self, wanted: str | None) -> Slot:
        """A free slot, else a stream added to the server for this capture."""
        if self.managed is None:
            await self.snap.wait_known(self.snap.timeout)
        try:
            return self._free_slot(wanted)
        except BusyError:
            slots = self.slots()
            if wanted or not slots or (added := await self._add_stream(slots[0])) is None:
                raise
            return added

    async def _add_stream(self, beside: Slot) -> Slot | None:
        """Add a pipe stream like ``beside`` (fifo in the same directory); None if
        the server cannot add streams at run time."""
        if self.can_add_streams is False or not self.snap.connected:
            return None
        status = self.snap.status or {}
        taken = {str(s.get("id")) for s in status.get("streams", [])}
        taken |= {c.slot.stream for c in self.captures.values()}
        index, error = 2, None
        for _attempt in range(3):
            while f"{beside.stream}-{index}" in taken:
                index += 1
            slot = Slot(
                f"{beside.stream}-{index}",
                beside.fifo.with_name(f"{beside.fifo.name}-{index}"),
                added=True,
            )
            # No controlscript: snapserver 0.31 only runs one from its plug-ins
            # directory when a stream is added at run time.
            uri = (
                f"pipe://{slot.fifo}?name={slot.stream}&mode=create"
                f"&sampleformat=48000:16:2&codec={self.config.snapserver.codec}"
            )
            try:
                await self.snap.call("Stream.AddStream", {"streamUri": uri})
            except ServerReplyError as err:
                if err.code == ServerReplyError.METHOD_NOT_FOUND:
                    _LOGGER.info("snapserver cannot add streams at run time: slots only")
                    self.can_add_streams = False
                    return None
                error = err  # most likely the name was taken meanwhile: try the next
                taken.add(slot.stream)
                continue
            except ControlError as err:  # lost or hung: the slots stay the limit
                _LOGGER.warning("could not add a stream to snapserver: %s", err)
                return None
            self.can_add_streams = True
            self.snap.refresh_soon()
            _LOGGER.info("added stream %s to snapserver", slot.stream)
            return slot
        assert error is not None
        raise error

    async def _remove_stream(self, slot: Slot) -> None:
        if not slot.added:
            return
        try:
            await self.snap.call("Stream.RemoveStream", {"id": slot.stream})
        except ControlError as err:
            _LOGGER.warning("could not remove stream %s from snapserver: %s", slot.stream, err)
        else:
            _LOGGER.info("removed stream %s from snapserver", slot.stream)
            self.snap.refresh_soon()
        with contextlib.suppress(OSError):
            slot.fifo.unlink()

    # --- captures ------------------------------------------------------------------

    def capture(self, key: str) -> Capture:
        try:
            return self.captures[key]
        except KeyError:
            raise NotFoundError(f"there is no capture {key!r}") from None

    async def start_capture(
        self, app: str = "", pid: int | None = None, stream: str | None = None
    ) -> Capture:
        """Start broadcasting ``app`` (or ``pid``) into a free slot (or ``stream``)."""
        if bool(app) == (pid is not None):
            raise ConfigError("name the application to capture, or give a pid (not both)")
        if pid is not None:
            refuse_broad_pid(pid)
        target = TargetApp(name=app, pid=pid)
        for other in self.captures.values():
            if other.target == target and other.state not in _ENDED:
                raise BusyError(f"{target.describe()} is already captured ({other.id})")
        slot = await self._claim_slot(stream)
        cfg = self.config
        announcer = cfg.announce.announcer
        if any(c.announcer and c.state not in _ENDED for c in self.captures.values()):
            # One capture mixes the announcer app in: two would fight over its streams.
            announcer = ""
        config = dataclasses.replace(
            cfg,
            delivery=dataclasses.replace(
                cfg.delivery, pipe=str(slot.fifo), tcp="", stream=slot.stream
            ),
            snapserver=dataclasses.replace(cfg.snapserver, mode="never"),
            announce=dataclasses.replace(cfg.announce, announcer=announcer),
        )
        self._ids += 1
        key = str(self._ids)
        capture = Capture(
            key, target, slot, self._factory(target, config, self.env), announcer=announcer
        )
        self.captures[key] = capture
        self._prune()
        capture.task = self._spawn(self._run_capture(capture), f"capture-{key}")
        _LOGGER.info("capture %s: %s into stream %s", key, target.describe(), slot.stream)
        self._on_change("captures")
        return capture

    async def _run_capture(self, capture: Capture) -> None:
        try:
            await capture.runner.run(capture.stop_event)
        except Exception as err:
            capture.error = str(err) or type(err).__name__
            _LOGGER.error("capture %s failed: %s", capture.id, capture.error)
        finally:
            await self._remove_stream(capture.slot)
            self._prune()
            self._on_change("captures")

    def _prune(self) -> None:
        """Forget the oldest ended captures beyond :data:`ENDED_KEPT`."""
        ended = [key for key, c in self.captures.items() if c.state in _ENDED]
        for key in ended[: max(0, len(ended) - ENDED_KEPT)]:
            del self.captures[key]

    async def stop_capture(self, key: str, *, timeout: float = 15.0) -> None:
        """Stop a capture (its app goes back where it played) and forget it."""
        capture = self.capture(key)
        capture.stop_event.set()
        if capture.task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(capture.task)
            except TimeoutError:
                await cancel_and_wait(capture.task)
        self.captures.pop(key, None)
        self._on_change("captures")

    # --- sampling ------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self.SAMPLE_INTERVAL)
            if self.sample():
                self._on_change("captures")

    def sample(self) -> bool:
        """Update levels and underruns; True if anything the page shows changed."""
        changed = False
        for capture in self.captures.values():
            runner = capture.runner
            written = runner.status.delivery.chunks_written
            native = runner.status.native
            if native is not None:
                # PipeWire writes the pipe: the seconds it found the pipe full while playing.
                capture.underruns = native.stalled_seconds
            counted = native is None
            if isinstance(runner.meter, MeteredDelivery) and runner.meter.held:
                counted = False  # a calibration's turn
            if counted and capture.state == "playing" and written == capture.last_written:
                capture.underruns += 1
            capture.last_written = written
            before = capture.level
            capture.level = runner.meter.sample() if runner.meter is not None else Level()
            if capture.state == "playing" or capture.level != before:
                changed = True
        return changed

    def health(self) -> dict[str, Any]:
        managed = self.managed
        return {
            "ok": self.snap.connected,
            "snapserver": {
                "address": self.snap.address,
                "connected": self.snap.connected,
                "managed": managed is not None,
                "restarts": managed.restarts if managed is not None else 0,
            },
            "captures": {key: c.state for key, c in self.captures.items()},
            "uptime": round(time.time() - self.started, 1),
        }


def check_serving(config: Config) -> None:
    """Refuse settings ``serve`` cannot honour, before anything starts."""
    if config.delivery.tcp or config.delivery.pipe:
        raise ConfigError(
            "serve gives each capture its own snapserver pipe stream; "
            "unset delivery.pipe and delivery.tcp"
        )
    if config.capture.sink:
        raise ConfigError("capture.sink cannot be shared by several captures; unset it for serve")
