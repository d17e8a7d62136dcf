"""One broadcast: an application's audio, captured, normalized and delivered.

:class:`Broadcast` wires the steps together and owns every task and child they
need.  On the native path (:mod:`broadcaster.native`)::

    app streams --Router--> PipeSink (PipeWire writes snapserver's pipe)

and on the Python path (effects, tcp, an explicit capture format)::

    app streams --Router--> capture sink --Recorder (pw-record)--> Converter
        --> Delivery (snapserver pipe / tcp source)

and, when no snapserver is configured or reachable, an
:class:`~broadcaster.snapserver.EmbeddedSnapserver`.  ``run()`` returns when
``stop`` is set; on the way out it moves the app back where it played, removes
the virtual sink and stops the children, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .announce import Ducker, announcements_on
from .audio import SNAPCAST_FORMAT, AudioFormat, Converter
from .capture import CaptureStats, Recorder
from .claims import claim
from .config import Config, is_local_host, parse_tcp_url
from .control import StreamInfo, fetch_streams
from .delivery import Delivery, DeliveryStats, PipeDelivery, TcpDelivery, pipe_capacity_for
from .errors import BroadcasterError, ControlError, DeliveryError, PipeWireError, UnsafePathError
from .native import NativeStats, PipeSink, python_path_reason
from .nowplaying import PlayerMatch, write_target
from .pipewire import Graph, PipeWire, TargetApp
from .processing import Chain, ProcessingStats, build_processor
from .routing import Router, VirtualSink, sink_name_for
from .settings import parse_address
from .snapserver import ANNOUNCE_STREAM, EmbeddedSnapserver

_LOGGER = logging.getLogger(__name__)


@dataclass
class BroadcastStatus:
    """A snapshot of one broadcast for status output and the API."""

    target: str
    state: str = "starting"
    """starting, waiting (for the app to play), playing, stopped."""
    sink: str = ""
    destination: str = ""
    streams: list[str] = field(default_factory=list)
    capture: CaptureStats = field(default_factory=CaptureStats)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    embedded_server: bool = False
    processing: ProcessingStats | None = None
    """Counters of the processing chain (speed gaps, limiter), when one runs."""
    path: str = ""
    """The data path: "native" (PipeWire writes the fifo) or "python"."""
    native: NativeStats | None = None
    """The native path's delivery figures (None on the Python path)."""


@dataclass(frozen=True)
class Destination:
    """Where the audio goes: a fifo path or a ``tcp://`` URL."""

    pipe: str = ""
    tcp: str = ""

    def __str__(self) -> str:
        return self.tcp or self.pipe

    def key(self) -> str:
        """What two broadcasts must not share (:mod:`broadcaster.claims`)."""
        return f"to {self.tcp or os.path.realpath(self.pipe)}"


def pick_stream(streams: list[StreamInfo], wanted: str) -> StreamInfo:
    """The pipe stream to feed: the one named ``wanted``, else the first pipe stream."""
    pipes = [s for s in streams if s.scheme == "pipe" and s.id != ANNOUNCE_STREAM]
    if wanted:
        for stream in streams:
            if wanted in (stream.id, stream.query.get("name")):
                if stream.scheme != "pipe":
                    raise DeliveryError(
                        f"stream {wanted!r} is a {stream.scheme}:// source, not a pipe; "
                        "use --tcp for tcp sources"
                    )
                return stream
        names = ", ".join(s.id for s in streams) or "none"
        raise DeliveryError(f"snapserver has no stream {wanted!r} (streams: {names})")
    if not pipes:
        names = ", ".join(f"{s.id} ({s.scheme})" for s in streams) or "none"
        raise DeliveryError(
            f"snapserver has no pipe:// stream to feed (streams: {names}); "
            "add one to snapserver.conf or use --tcp"
        )
    return pipes[0]


class Broadcast:
    """Captures ``target`` and plays it on snapserver until stopped."""

    def __init__(
        self,
        target: TargetApp,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self._env = env
        self._pw = PipeWire(env=env, timeout=config.timeout)
        self.status = BroadcastStatus(target=target.describe())
        self._router: Router | None = None
        self.native_sink: PipeSink | None = None
        """The capture sink, on the native path (None on the Python path)."""
        self._embedded: EmbeddedSnapserver | None = None
        self._stream_id = ""
        """The snapserver stream fed, when known (for its now-playing controlscript)."""
        self.ready = asyncio.Event()
        """Set once capture and delivery are running."""
        self._sources: set[str] = set()
        """What plays on the capture sink now: the app, announcements, the announcer app."""
        self.ducker: Ducker | None = None

    # --- destination -------------------------------------------------------

    def wrap_delivery(self, delivery: Delivery) -> Delivery:
        """Hook for subclasses: wrap where the audio goes (e.g. to meter it).

        The returned delivery's ``write`` runs in the capture thread.
        """
        return delivery

    async def _destination(self, stack: contextlib.AsyncExitStack) -> Destination:
        cfg = self.config
        if cfg.delivery.tcp:
            return Destination(tcp=cfg.delivery.tcp)
        if cfg.delivery.pipe:
            return Destination(pipe=cfg.delivery.pipe)
        mode = cfg.snapserver.mode
        if mode != "always":
            host, port = parse_address(cfg.server or "127.0.0.1", cfg.snapserver.control_port)
            try:
                streams = await fetch_streams(host, port, cfg.timeout)
            except ControlError as err:
                if cfg.server or mode == "never":
                    raise DeliveryError(f"{err}; cannot find its pipe to feed") from None
                _LOGGER.info("no snapserver answers on %s:%d; starting one", host, port)
            else:
                stream = pick_stream(streams, cfg.delivery.stream)
                if not is_local_host(host):
                    raise DeliveryError(
                        f"snapserver at {host} runs on another machine, so its pipe "
                        f"{stream.path} cannot be written from here; give it a tcp source "
                        "in server mode and use --tcp tcp://HOST:PORT"
                    )
                _LOGGER.info("feeding stream %s of the snapserver at %s:%d", stream.id, host, port)
                self._stream_id = stream.id
                return Destination(pipe=stream.path)
        # With the announcements' stream: `announce --rooms` works out of the box.
        server = EmbeddedSnapserver(cfg.snapserver, announce=True)
        await stack.enter_async_context(server)
        self._embedded = server
        self._stream_id = cfg.snapserver.stream_name
        self.status.embedded_server = True
        return Destination(pipe=str(server.fifo))

    def _delivery(self, where: Destination) -> Delivery:
        buffer_ms = self.config.delivery.buffer_ms
        if where.tcp:
            host, port = parse_tcp_url(where.tcp)
            return TcpDelivery(host, port, buffer_ms=buffer_ms, connect_timeout=self.config.timeout)
        return PipeDelivery(where.pipe, buffer_ms=buffer_ms)

    # --- the run -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Broadcast until ``stop`` is set; raise a :class:`BroadcasterError` on failure."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._run(stack, stop)
        except* BroadcasterError as group:
            raise group.exceptions[0] from None
        finally:
            self.status.state = "stopped"

    async def _run(self, stack: contextlib.AsyncExitStack, stop: asyncio.Event) -> None:
        cfg = self.config
        # Built first: a bad --filter fails before anything is started.
        processor = build_processor(cfg.processing, SNAPCAST_FORMAT.rate)
        self.status.processing = processor.stats if processor is not None else None
        await self._pw.check()
        # Another broadcaster of this app (or into this pipe) would fight over it.
        app = self.target.describe()
        stack.enter_context(
            claim(f"app {sink_name_for(self.target)}", f"{app} is already captured", self._env)
        )
        where = await self._destination(stack)
        stack.enter_context(claim(where.key(), f"{where} is already fed", self._env))
        stream_id = self._stream_id or cfg.delivery.stream
        if stream_id:
            # The stream's controlscript (now playing, remote control) follows our app.
            _announce(stream_id, self.target)
            stack.callback(_announce, stream_id, None)
        reason = python_path_reason(cfg)
        if where.pipe and not reason:
            _LOGGER.info("data path: native (PipeWire writes %s itself)", where.pipe)
            self.status.path = "native"
            await self._run_native(stack, stop, where.pipe)
        else:
            _LOGGER.info("data path: Python (%s)", reason)
            self.status.path = "python"
            delivery = self.wrap_delivery(self._delivery(where))
            await self._run_python(stack, stop, delivery, processor)

    async def _run_native(
        self, stack: contextlib.AsyncExitStack, stop: asyncio.Event, fifo: str
    ) -> None:
        cfg = self.config
        limit = SNAPCAST_FORMAT.bytes_in(cfg.delivery.buffer_ms)
        sink = PipeSink(
            self._pw,
            sink_name_for(self.target),
            f"broadcaster: {self.target.describe()}",
            fifo,
            env=self._env,
            latency_ms=cfg.capture.latency_ms,
            pipe_bytes=pipe_capacity_for(limit),
        )
        self.status.destination = f"pipe {fifo}"
        await stack.enter_async_context(sink)
        self.native_sink = sink
        self.status.sink = sink.name
        self.status.native = sink.stats
        self.status.delivery.connected = True
        ducker, on_announcements, announcer = self._announcements(sink.name, None)

        def on_graph(graph: Graph) -> None:
            node = graph.sink(sink.name)
            sink.stats.sink_state = node.state if node is not None else ""
            on_announcements(graph)

        router = Router(
            self._pw,
            self.target,
            sink.name,
            on_sink_missing=sink.create,
            on_playing=lambda playing: self._playing("app", playing, None),
            on_graph=on_graph,
        )
        self._own_routing(stack, router, ducker, announcer)

        async def renamed(name: str) -> None:
            self.status.sink = name
            await router.retarget(name)
            if announcer is not None:
                await announcer.retarget(name)

        async with asyncio.TaskGroup() as tasks:
            owned = [
                tasks.create_task(router.follow(), name="router"),
                tasks.create_task(sink.watch(renamed), name="pipe-sink"),
            ]
            owned += self._announcement_tasks(tasks, ducker, announcer)
            await self._running(tasks, owned, stop, sink.name, f"pipe {fifo}")

    # --- announcements (broadcaster/announce.py) ------------------------------

    def _announcements(
        self, sink_name: str, recorder: Recorder | None
    ) -> tuple[Ducker, Callable[[Graph], None], Router | None]:
        """The ducker, the music Router's look at each graph, the announcer app's Router.

        Announcements played into the sink (``broadcaster announce``) and the
        announcer app duck the music streams the Router moved, and count as
        something playing on the sink.
        """
        cfg = self.config
        ducker = Ducker(self._pw, duck_db=cfg.announce.duck_db, ramp_ms=cfg.announce.ramp_ms)
        self.ducker = ducker

        def on_graph(graph: Graph) -> None:
            router = self._router
            if router is None:
                return
            ducker.set_music(router.streams)
            announcing = bool(announcements_on(graph, router.sink_name))
            ducker.set_reason("announcement", announcing)
            self._playing("announcement", announcing, recorder)

        announcer: Router | None = None
        if cfg.announce.announcer:

            def announcer_playing(playing: bool) -> None:
                ducker.set_reason("announcer", playing)
                self._playing("announcer", playing, recorder)

            announcer = Router(
                self._pw,
                TargetApp(name=cfg.announce.announcer),
                sink_name,
                on_playing=announcer_playing,
            )
        return ducker, on_graph, announcer

    def _own_routing(
        self,
        stack: contextlib.AsyncExitStack,
        router: Router,
        ducker: Ducker,
        announcer: Router | None,
    ) -> None:
        """``router`` is this run's; ``stack`` puts back what the routing changed.

        The stack is LIFO: the music's own volume is back, and the announcer app
        back where it played, before the music moves back; and all of it before
        the sink (pushed earlier) is removed.
        """
        self._router = router
        if self.config.capture.restore:
            stack.push_async_callback(router.restore)
            if announcer is not None:
                stack.push_async_callback(announcer.restore)
        stack.push_async_callback(ducker.release)

    def _announcement_tasks(
        self, tasks: asyncio.TaskGroup, ducker: Ducker, announcer: Router | None
    ) -> list[asyncio.Task[None]]:
        owned = [tasks.create_task(ducker.run(), name="ducker")]
        if announcer is not None:
            owned.append(tasks.create_task(announcer.follow(), name="announcer"))
        return owned

    async def _running(
        self,
        tasks: asyncio.TaskGroup,
        owned: list[asyncio.Task[None]],
        stop: asyncio.Event,
        sink_name: str,
        destination: str,
    ) -> None:
        """Run the owned tasks (and the embedded snapserver's supervisor) until ``stop``."""
        if self._embedded is not None:
            owned.append(tasks.create_task(self._embedded.supervise(), name="snapserver"))
        self.ready.set()
        _LOGGER.info(
            "broadcasting %s from sink %s into %s", self.target.describe(), sink_name, destination
        )
        await stop.wait()
        for task in owned:
            task.cancel()

    async def _run_python(
        self,
        stack: contextlib.AsyncExitStack,
        stop: asyncio.Event,
        delivery: Delivery,
        processor: Chain | None,
    ) -> None:
        cfg = self.config
        self.status.destination = delivery.target
        self.status.delivery = delivery.stats
        if cfg.capture.sink:
            sink_name = cfg.capture.sink
            graph = await self._pw.graph()
            if graph.sink(sink_name) is None:
                names = ", ".join(s.name for s in graph.sinks) or "none"
                raise PipeWireError(f"there is no sink {sink_name!r} (sinks: {names})")
        else:
            sink_name = sink_name_for(self.target)
            virtual = VirtualSink(self._pw, sink_name, f"broadcaster: {self.target.describe()}")
            await stack.enter_async_context(virtual)
        self.status.sink = sink_name

        capture_format = AudioFormat.parse(cfg.capture.format)
        if processor is not None and capture_format == SNAPCAST_FORMAT:
            # Processing runs on floats: have PipeWire hand them over, not s16.
            capture_format = AudioFormat(SNAPCAST_FORMAT.rate, 2, "f32")
        recorder = Recorder(
            sink_name,
            capture_format,
            latency_ms=cfg.capture.latency_ms,
            idle_stop=cfg.capture.idle_stop,
            env=self._env,
        )
        self.status.capture = recorder.stats

        async def recreate_sink() -> None:
            # PipeWire (pipewire-pulse) restarted and took the virtual sink with it.
            await virtual.create()

        ducker, on_graph, announcer = self._announcements(sink_name, recorder)
        router = Router(
            self._pw,
            self.target,
            sink_name,
            on_sink_missing=None if cfg.capture.sink else recreate_sink,
            # pw-record does not re-link by itself (node.dont-reconnect): restart it.
            on_sink_back=recorder.restart,
            on_playing=lambda playing: self._playing("app", playing, recorder),
            on_graph=on_graph,
        )
        self._own_routing(stack, router, ducker, announcer)

        converter = Converter(capture_format, SNAPCAST_FORMAT, processor=processor)

        async with asyncio.TaskGroup() as tasks:
            owned = [
                tasks.create_task(router.follow(), name="router"),
                tasks.create_task(delivery.run(), name="delivery"),
                tasks.create_task(self._pump(recorder, converter, delivery), name="pump"),
            ]
            owned += self._announcement_tasks(tasks, ducker, announcer)
            await self._running(tasks, owned, stop, sink_name, delivery.target)

    def _playing(self, source: str, active: bool, recorder: Recorder | None) -> None:
        """Something (the app, an announcement) started or stopped playing on the sink."""
        if active:
            self._sources.add(source)
        else:
            self._sources.discard(source)
        playing = bool(self._sources)
        if recorder is not None:
            # Record only while something plays: idle, neither we nor PipeWire wake up.
            recorder.set_wanted(playing)
        router = self._router
        if playing and router is not None:
            self.status.streams = [s.describe() for s in router.streams]
        if playing and self.status.state != "playing":
            _LOGGER.info("%s is playing", self.target.describe())
            self.status.state = "playing"
        elif not playing and self.status.state != "waiting":
            _LOGGER.info("waiting for %s to play", self.target.describe())
            self.status.state = "waiting"
            self.status.streams = []

    async def _pump(self, recorder: Recorder, converter: Converter, delivery: Delivery) -> None:
        status = self.status

        def consume(block: bytes) -> None:
            # The capture thread, for every block: convert and hand over.
            converted = converter.push(block)
            # While the app has no stream (pw-record lingers a few seconds), send
            # nothing: snapserver marks the stream idle instead of playing silence.
            if converted and status.state == "playing":
                delivery.write(converted)

        # A new pw-record run is a new stream: no partial frame carried over.
        await recorder.run(consume, on_start=converter.reset)


def _announce(stream_id: str, target: TargetApp | None) -> None:
    """Tell ``stream_id``'s controlscript which app it now plays (None: none)."""
    match = PlayerMatch(app=target.name or None, pid=target.pid) if target is not None else None
    try:
        write_target(stream_id, match)
    except (OSError, UnsafePathError) as err:
        _LOGGER.warning("cannot tell the now-playing plugin about %s: %s", stream_id, err)
