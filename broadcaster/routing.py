"""Isolating one application on a sink of its own, and putting it back.

* :class:`VirtualSink` owns the null sink a run creates (no root needed):
  created on enter (after removing a stale one a crashed run left behind),
  removed on exit.
* :class:`Router` moves every output stream of the target application to the
  capture sink, follows the streams it opens later (players open one per
  track), and on :meth:`Router.restore` moves them back where they were.  It
  reacts to ``pactl subscribe`` events and re-checks the graph shortly after
  each move, because WirePlumber 0.4 sometimes undoes a fresh move when another
  stream starts right after it; a slow periodic re-check covers lost events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass

from .errors import PipeWireError
from .lifecycle import Resource
from .pipewire import AppStream, Graph, PipeWire, TargetApp
from .process import ChildProcess, read_line

_LOGGER = logging.getLogger(__name__)

SINK_PREFIX = "broadcaster."
MAX_EVENT_LINE = 512
"""Bytes of a ``pactl subscribe`` line looked at (its events are ~60); the rest is skipped."""


def sink_name_for(target: TargetApp) -> str:
    """A node name for the capture sink of ``target`` (``broadcaster.spotify``)."""
    base = target.name or f"pid{target.pid}"
    return SINK_PREFIX + (re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_").lower() or "app")


class VirtualSink(Resource):
    """A PipeWire null sink that lives as long as the ``async with`` block, or broadcaster.

    The sink is held by a ``pw-cli`` child (:meth:`PipeWire.null_sink`) that the
    kernel kills with broadcaster, so even a crash leaves no sink behind and
    the app falls back to its normal output.
    """

    def __init__(self, pipewire: PipeWire, name: str, description: str) -> None:
        self._pw = pipewire
        self.name = name
        self.description = description
        self._child: ChildProcess | None = None

    async def create(self) -> None:
        """Create the sink (again, after PipeWire restarted)."""
        await self._remove_stale()
        await self._stop_child()
        child = self._pw.null_sink(self.name, self.description)
        try:
            await child.start()
        except FileNotFoundError:
            raise PipeWireError(
                "pw-cli or setpriv is not installed (sudo apt-get install pipewire-bin util-linux)"
            ) from None
        try:
            await self._pw.wait_for_sink(self.name, child)
        except BaseException:
            await child.stop()
            raise
        self._child = child
        _LOGGER.info("created virtual sink %s", self.name)

    async def _remove_stale(self) -> None:
        """A pulse null sink of this name, left by a version that made them with pactl."""
        for index, module, args in await self._pw.modules():
            if module == "module-null-sink" and f"sink_name={self.name}" in args.split():
                _LOGGER.info("removing stale sink %s left by an earlier run", self.name)
                with contextlib.suppress(PipeWireError):
                    await self._pw.unload_module(index)

    async def _stop_child(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            await child.stop()

    async def exists(self) -> bool:
        return (await self._pw.graph()).sink(self.name) is not None

    async def remove(self) -> None:
        if self._child is None:
            return
        await self._stop_child()
        _LOGGER.info("removed virtual sink %s", self.name)

    async def start(self) -> None:
        await self.create()

    async def stop(self) -> None:
        await self.remove()


@dataclass(frozen=True)
class Move:
    stream: AppStream
    to: str


def plan(
    graph: Graph,
    target: TargetApp,
    sink_name: str,
    origins: dict[int, str],
    app_origin: str = "",
    pending: Set[int] = frozenset(),
    matches: Callable[[TargetApp, AppStream], bool] = TargetApp.matches,
) -> list[Move]:
    """The moves that put every stream of ``target`` on ``sink_name``.

    Records in ``origins`` (serial -> sink name) where each newly seen stream
    played before, for :meth:`Router.restore`; streams that are gone are
    forgotten.  A stream found unrouted, or already on ``sink_name`` (the
    session manager remembers the app's last sink), gets ``app_origin``: where
    the app played before broadcaster touched it.  Streams in ``pending`` (serials
    moved a moment ago) are left alone while the move takes effect.  Pure apart
    from that bookkeeping.
    """
    present: set[int] = set()
    moves: list[Move] = []
    for stream in graph.streams:
        if not matches(target, stream):
            continue
        present.add(stream.serial)
        names = [sink.name for sink in graph.sinks_of(stream)]
        elsewhere = [name for name in names if name != sink_name]
        if stream.serial not in origins:
            # Unrouted, or routed to us by the session manager's memory: app_origin.
            origins[stream.serial] = elsewhere[0] if elsewhere else app_origin or graph.default_sink
        on_sink = sink_name in names and not elsewhere
        if not on_sink and not stream.dont_move and stream.serial not in pending:
            moves.append(Move(stream, sink_name))
    for serial in list(origins):
        if serial not in present:
            del origins[serial]
    return moves


class Router:
    """Keeps one application's streams on the capture sink."""

    def __init__(
        self,
        pipewire: PipeWire,
        target: TargetApp,
        sink_name: str,
        *,
        recheck_delay: float = 1.0,
        resync_interval: float = 60.0,
        on_sink_missing: Callable[[], Awaitable[None]] | None = None,
        on_sink_back: Callable[[], None] | None = None,
        on_playing: Callable[[bool], None] | None = None,
        on_graph: Callable[[Graph], None] | None = None,
    ) -> None:
        self._pw = pipewire
        self.target = target
        self.sink_name = sink_name
        self._origins: dict[int, str] = {}
        self._app_origin = ""
        self._recheck_delay = recheck_delay
        self._resync_interval = resync_interval
        self._on_sink_missing = on_sink_missing
        self._on_sink_back = on_sink_back
        self._on_playing = on_playing
        self._on_graph = on_graph
        self._sink_missing = False
        self._warned_dont_move: set[int] = set()
        self._moved_at: dict[int, float] = {}
        self.streams: tuple[AppStream, ...] = ()
        """The target's streams at the last check."""
        self.moves = 0
        self.found = asyncio.Event()
        """Set once the target has been seen playing."""

    async def reconcile(self) -> int:
        """Check the graph once and move what needs moving; return the number of moves."""
        graph = await self._pw.graph()
        if graph.sink(self.sink_name) is None:
            # PipeWire restarted (or someone removed the sink): nothing to move to.
            self.streams = ()
            if self._on_playing is not None:
                self._on_playing(False)
            if not self._sink_missing:
                _LOGGER.warning("sink %s is gone", self.sink_name)
            self._sink_missing = True
            if self._on_sink_missing is not None:
                await self._on_sink_missing()
                graph = await self._pw.graph()
            if graph.sink(self.sink_name) is None:
                return 0
        if self._sink_missing:
            _LOGGER.info("sink %s is back", self.sink_name)
            self._sink_missing = False
            if self._on_sink_back is not None:
                self._on_sink_back()
        now = time.monotonic()
        pending = {k for k, at in self._moved_at.items() if now - at < self._recheck_delay * 0.8}
        moves = plan(graph, self.target, self.sink_name, self._origins, self._app_origin, pending)
        self._moved_at = {k: at for k, at in self._moved_at.items() if k in pending}
        _LOGGER.debug(
            "graph: %s",
            "; ".join(
                f"{s.serial}->{','.join(x.name for x in graph.sinks_of(s)) or '?'}"
                for s in graph.streams
            ),
        )
        self.streams = tuple(s for s in graph.streams if s.serial in self._origins)
        if self.streams:
            self.found.set()
        if self._on_playing is not None:
            self._on_playing(bool(self.streams))
        if self._on_graph is not None:
            self._on_graph(graph)
        if not self._app_origin:
            self._app_origin = next(
                (o for o in self._origins.values() if o and o != self.sink_name), ""
            )
        done = 0
        for move in moves:
            try:
                await self._pw.move(move.stream, move.to)
                self._moved_at[move.stream.serial] = time.monotonic()
                done += 1
                _LOGGER.info("moved %s to %s", move.stream.describe(), move.to)
            except PipeWireError as err:  # the stream may have ended meanwhile
                _LOGGER.debug("could not move %s: %s", move.stream.describe(), err)
        for stream in self.streams:
            if stream.dont_move and stream.serial not in self._warned_dont_move:
                self._warned_dont_move.add(stream.serial)
                _LOGGER.warning("%s refuses to be moved (node.dont-move)", stream.describe())
        self.moves += done
        return done

    async def retarget(self, sink_name: str, *, settle: float = 10.0) -> None:
        """Move the app's streams onto ``sink_name``, the capture sink's replacement.

        Returns once every stream of the app plays there (or after ``settle``
        seconds); the old sink is still up meanwhile, so nothing plays elsewhere.
        The caller removes the old sink then: a stream still on it falls back
        to the speakers, so ``settle`` is generous (a loaded machine's
        WirePlumber can take seconds to carry out a move).
        """
        self.sink_name = sink_name
        deadline = time.monotonic() + settle
        while True:
            try:
                await self.reconcile()
                graph = await self._pw.graph()
            except PipeWireError as err:
                _LOGGER.warning("moving the app to %s failed: %s", sink_name, err)
                return
            away = [
                s
                for s in graph.streams
                if self.target.matches(s)
                and [x.name for x in graph.sinks_of(s)] != [sink_name]
                and not s.dont_move
            ]
            if not away or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)

    async def follow(self) -> None:
        """React to graph changes until cancelled."""
        while True:
            subscription = self._pw.subscribe()
            try:
                async with subscription:
                    await self._follow_events(subscription.stdout)
            except (PipeWireError, OSError) as err:
                _LOGGER.warning("watching PipeWire failed: %s", err)
            _LOGGER.debug("pactl subscribe ended; restarting it")
            await asyncio.sleep(1.0)

    async def _follow_events(self, events: asyncio.StreamReader) -> None:
        await self._check()
        next_resync = time.monotonic() + self._resync_interval
        while True:
            # The periodic re-check runs on its own clock: a steady trickle of
            # unrelated events (clients, sources) must not keep postponing it.
            wait = max(0.0, next_resync - time.monotonic())
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a
                # cancellation that arrives as the read completes (the follower
                # then never ends, and neither does broadcaster on SIGTERM).
                async with asyncio.timeout(wait):
                    line, _ = await read_line(events, MAX_EVENT_LINE)
            except TimeoutError:
                line = b"resync"
            else:
                if not line:
                    return
                if not _relevant(line):
                    continue
                # Let a burst of events (a new stream is several) settle, then look once.
                await _drain(events, 0.05)
            await self._check()
            next_resync = time.monotonic() + self._resync_interval

    async def _check(self, rounds: int = 5) -> None:
        """Reconcile; after moves, look again (and move again) until nothing moves.

        WirePlumber 0.4 sometimes undoes a fresh move when another stream
        starts right after it (the stream goes back, its target cleared), and
        a repeated move can meet the same fate: keep re-asserting, a bounded
        number of rounds, ``recheck_delay`` apart.
        """
        try:
            for _ in range(rounds):
                if not await self.reconcile():
                    return
                await asyncio.sleep(self._recheck_delay)
        except PipeWireError as err:
            _LOGGER.warning("checking the app's streams failed: %s", err)

    async def restore(
        self, *, settle: float = 4.0, quiet: float = 1.0, interval: float = 0.25
    ) -> None:
        """Move the target's streams that are on the capture sink back where they were.

        Like every move, a move back can be undone by WirePlumber when it comes
        right after another, so the graph is watched until the streams have
        stayed put for ``quiet`` seconds after the last move (at most ``settle``).
        """
        deadline = time.monotonic() + settle
        last_move = 0.0
        moved: set[int] = set()
        while True:
            try:
                graph = await self._pw.graph()
            except PipeWireError as err:
                _LOGGER.warning("cannot restore routing: %s", err)
                return
            pending = self._restore_moves(graph)
            now = time.monotonic()
            if now > deadline or (not pending and now - last_move >= quiet):
                for stream, _ in pending:
                    _LOGGER.warning("%s did not go back to its sink", stream.describe())
                return
            if pending:
                last_move = now
            for stream, origin in pending:
                try:
                    await self._pw.move(stream, origin)
                except PipeWireError as err:
                    _LOGGER.debug("could not move %s back: %s", stream.describe(), err)
                    continue
                if stream.serial not in moved:
                    moved.add(stream.serial)
                    _LOGGER.info("moved %s back to %s", stream.describe(), origin)
            await asyncio.sleep(interval)

    def _restore_moves(self, graph: Graph) -> list[tuple[AppStream, str]]:
        """The target's streams still on the capture sink, with where each goes back to."""
        fallback = self._app_origin or graph.default_sink
        moves = []
        for stream in graph.streams:
            if not self.target.matches(stream):
                continue
            if self.sink_name not in {sink.name for sink in graph.sinks_of(stream)}:
                continue
            origin = self._origins.get(stream.serial) or fallback
            if not origin or origin == self.sink_name or graph.sink(origin) is None:
                origin = graph.default_sink if graph.default_sink != self.sink_name else ""
            if origin:
                moves.append((stream, origin))
        return moves


_EVENT = re.compile(rb"Event '\w+' on ([\w-]+)")


def _relevant(line: bytes) -> bool:
    """Streams, sinks and the default sink matter; sources, cards, clients do not."""
    match = _EVENT.search(line)
    return match is not None and match.group(1) in (b"sink-input", b"sink", b"server")


async def _drain(events: asyncio.StreamReader, quiet: float, most: float = 0.25) -> None:
    """Consume lines until none arrives for ``quiet`` seconds, or ``most`` seconds pass.

    The bound matters: while streams play, pipewire-pulse can report changes
    more often than ``quiet``, and an unbounded drain would never let the
    Router look at the graph again.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(most):
            while True:
                async with asyncio.timeout(quiet):
                    line, _ = await read_line(events, MAX_EVENT_LINE)
                if not line:
                    return
