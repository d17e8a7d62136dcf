"""Announcements over the music: mixed in by PipeWire, the music ducked meanwhile.

Everything happens in the PipeWire graph, so it works the same whichever data
path carries the capture sink's audio into snapserver, and no sample of the
music passes through Python for it:

* **Mixing.**  An announcement is a ``pw-play`` stream played into the
  capture sink (``application.name`` :data:`ANNOUNCE_APP`); PipeWire mixes it
  with the music there.  An *announcer app* (``announce.announcer``) is moved
  onto the capture sink like the captured app, by a Router of its own.
* **Ducking.**  The broadcast that owns a capture sink sees an announcement
  (or the announcer app) play on it and lowers the music streams' *soft
  volumes* (:meth:`PipeWire.set_soft_volumes`) in steps, :class:`Ducker`; the
  user's own volume (``channelVolumes``) is never written, so a change the
  user makes meanwhile is kept and nothing is remembered by WirePlumber.
* **Announcing** (:func:`announce`): the sound is decoded and checked first
  (:mod:`broadcaster.sndfile`; speech comes from ``espeak-ng``), given a
  lead-in of silence during which the music goes down and short fades, and
  played into every capture sink at once.  One announcement plays at a time:
  the others wait for a lock file (:class:`AnnounceQueue`).

The interface to the broadcast is small on purpose: the capture sink's node
name and the music streams its Router moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import AnnounceError, PipeWireError
from .files import scratch_dir
from .pipewire import AppStream, Graph, PipeWire
from .process import run_command
from .routing import SINK_PREFIX
from .sndfile import Sound, read_sound

_LOGGER = logging.getLogger(__name__)

ANNOUNCE_APP = "broadcaster-announce"
"""``application.name`` of the streams :func:`announce` plays."""

FADE_MS = 5.0
"""Raised-cosine fade at both ends of an announcement: no click where it starts or stops."""

TAIL_MS = 150.0
"""Silence after an announcement: pw-play 0.3.65 may cut a stream's last buffer
short, and a cut into the fade-out would be a click."""

MIN_STEP_MS = 20.0
"""Shortest interval between two volume steps: one ``pw-cli`` call each (~20 ms),
and PipeWire applies a new volume once per graph cycle (21-43 ms) anyway."""

MAX_STEPS = 12
MAX_TEXT = 2000


# --- ducking ------------------------------------------------------------------


class VolumeControl(Protocol):
    """What the :class:`Ducker` needs of PipeWire."""

    async def set_soft_volumes(self, node_id: int, volumes: Sequence[float]) -> None: ...


def gain_of(duck_db: float) -> float:
    return float(10 ** (-duck_db / 20))


def ramp_steps(ramp_ms: float) -> int:
    """How many volume steps a ramp of ``ramp_ms`` takes (each a small jump)."""
    return max(1, min(MAX_STEPS, int(ramp_ms // MIN_STEP_MS)))


@dataclass
class _Ducked:
    base: tuple[float, ...]
    """The stream's own (user's) channel volumes when last seen."""
    gain: float = 1.0
    """Our factor on top of them: 1 is untouched."""


@dataclass
class DuckStats:
    ducks: int = 0
    """Times the music went down."""
    restores: int = 0
    """Times it came back up."""
    last_ramp_s: float = 0.0
    """How long the last ramp took (the pw-cli calls included)."""


class Ducker:
    """Lowers the music streams while any reason to (an announcement playing) holds.

    Feed it the music streams (:meth:`set_music`, after every look at the
    graph) and the reasons (:meth:`set_reason`); :meth:`run` moves the
    streams' gains towards the goal in short ramps, one at a time.  A stream
    whose own volume changed (the user moved a slider) has its new volume
    kept: PipeWire then plays it in full again, and it is ducked from there.
    """

    def __init__(
        self,
        control: VolumeControl,
        *,
        duck_db: float = 12.0,
        ramp_ms: float = 250.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._control = control
        self.gain = gain_of(duck_db)
        self.ramp_ms = ramp_ms
        self._sleep = sleep
        self._clock = clock
        self._reasons: set[str] = set()
        self._music: dict[int, AppStream] = {}
        self._streams: dict[int, _Ducked] = {}
        self._wake = asyncio.Event()
        self.stats = DuckStats()
        self.settled = asyncio.Event()
        """Set while every music stream is at the goal (ducked or not)."""
        self.settled.set()

    @property
    def wanted(self) -> bool:
        return bool(self._reasons)

    def set_reason(self, reason: str, active: bool) -> None:
        before = self.wanted
        if active:
            self._reasons.add(reason)
        else:
            self._reasons.discard(reason)
        if self.wanted != before:
            _LOGGER.info("%s the music (%s)", "ducking" if self.wanted else "restoring", reason)
            self._poke()

    def set_music(self, streams: Iterable[AppStream]) -> None:
        music = {s.node_id: s for s in streams}
        if music != self._music:
            self._music = music
            self._poke()

    def _poke(self) -> None:
        self.settled.clear()
        self._wake.set()

    async def run(self) -> None:
        """Apply changes until cancelled."""
        while True:
            await self._wake.wait()
            await self.apply()
            if not self._wake.is_set():
                self.settled.set()

    async def apply(self) -> None:
        """Bring every music stream to the goal: ducked if a reason holds, else untouched."""
        self._wake.clear()
        goal = self.gain if self.wanted else 1.0
        for node in [n for n in self._streams if n not in self._music]:
            del self._streams[node]
        moving: dict[int, float] = {}
        for node, stream in self._music.items():
            base = stream.volumes or (1.0, 1.0)
            state = self._streams.get(node)
            if state is None:
                state = self._streams[node] = _Ducked(base)
            elif stream.volumes and not _same(stream.volumes, state.base):
                # The user (or the app) set a new volume: PipeWire plays it in
                # full again; keep it, and duck from there.
                _LOGGER.info("%s changed its volume; keeping it", stream.describe())
                state.base, state.gain = base, 1.0
            if not math.isclose(state.gain, goal, abs_tol=1e-4):
                moving[node] = state.gain
        if not moving:
            return
        if goal < 1.0 and any(g >= 1.0 for g in moving.values()):
            self.stats.ducks += 1
        elif goal >= 1.0:
            self.stats.restores += 1
        await self._ramp(moving, goal)

    async def _ramp(self, moving: Mapping[int, float], goal: float) -> None:
        """Step every stream in ``moving`` (node -> its gain now) to ``goal``.

        Linear in amplitude: equal jumps, the largest being the smallest
        possible.  A full ramp takes ``ramp_ms``, a part of one its part; a
        step that comes late (a busy machine) catches up by at most one more
        step, so a ramp takes at most about half again as long with jumps at
        most twice as large.
        """
        started = self._clock()
        distance = max(abs(goal - gain) for gain in moving.values())
        duration = self.ramp_ms / 1000 * distance / max(1e-9, 1.0 - self.gain)
        steps = ramp_steps(duration * 1000)
        done = 0.0
        step = 0
        while done < 1.0:
            step += 1
            if step > 1:
                await self._sleep(max(0.0, started + (step - 1) * duration / steps - self._clock()))
                if self._wake.is_set():
                    break  # the goal changed mid-ramp: the next apply() goes on from here
            elapsed = (self._clock() - started) / duration if duration > 0 else 1.0
            # Late (a busy machine): catch up, but never more than two steps at once.
            done = min(1.0, done + 2 / steps, max(done + 1 / steps, elapsed + 1 / steps))
            await asyncio.gather(
                *(self._set(node, gain + (goal - gain) * done) for node, gain in moving.items())
            )
        self.stats.last_ramp_s = self._clock() - started

    async def _set(self, node: int, gain: float) -> None:
        state = self._streams.get(node)
        if state is None:
            return
        try:
            await self._control.set_soft_volumes(node, [v * gain for v in state.base])
        except PipeWireError as err:  # the stream ended meanwhile
            _LOGGER.debug("cannot set the volume of stream %d: %s", node, err)
        state.gain = gain

    async def release(self) -> None:
        """Bring the music back up now, whatever the reasons (the broadcast ends)."""
        self._reasons.clear()
        with contextlib.suppress(PipeWireError):
            await self.apply()


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b, strict=True))


def announcements_on(graph: Graph, sink_name: str) -> list[AppStream]:
    """The announcement streams (:data:`ANNOUNCE_APP`) playing on ``sink_name``."""
    return [
        s
        for s in graph.streams
        if s.app_name == ANNOUNCE_APP and sink_name in {x.name for x in graph.sinks_of(s)}
    ]


def capture_sinks(graph: Graph) -> list[str]:
    """The capture sinks of every running broadcast (``broadcaster.APP``)."""
    return sorted(s.name for s in graph.sinks if s.name.startswith(SINK_PREFIX))


# --- preparing the sound ---------------------------------------------------------


async def speak(text: str, path: Path, *, voice: str = "", timeout: float = 30.0) -> None:
    """Say ``text`` into the WAV file ``path`` with espeak-ng."""
    text = text.strip()
    if not text:
        raise AnnounceError("there is nothing to say: the text is empty")
    if len(text) > MAX_TEXT:
        raise AnnounceError(f"the text is {len(text)} characters long; at most {MAX_TEXT}")
    argv = ["espeak-ng", "-w", str(path)]
    if voice:
        argv += ["-v", voice]
    argv.append("--stdin")
    try:
        result = await run_command(argv, timeout=timeout, stdin=text.encode("utf-8"))
    except FileNotFoundError:
        raise AnnounceError(
            "speech needs espeak-ng, which is not installed (sudo apt-get install espeak-ng)"
        ) from None
    except TimeoutError:
        raise AnnounceError(f"espeak-ng did not finish within {timeout:.0f} s") from None
    if not result.ok:
        raise AnnounceError(result.describe_failure())


def _shaped(sound: Sound, lead_ms: float) -> np.ndarray:
    """``sound`` in stereo with a silent lead-in, fades and a silent tail (floats)."""
    samples = sound.samples.astype(np.float64)
    if sound.channels == 1:
        samples = np.repeat(samples, 2, axis=1)
    elif sound.channels > 2:
        samples = np.repeat(samples.mean(axis=1, keepdims=True), 2, axis=1)
    fade = min(len(samples) // 2, int(sound.rate * FADE_MS / 1000))
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
        samples[:fade] *= ramp[:, None]
        samples[-fade:] *= ramp[::-1, None]
    lead = np.zeros((int(sound.rate * lead_ms / 1000), 2))
    tail = np.zeros((int(sound.rate * TAIL_MS / 1000), 2))
    return np.concatenate([lead, samples, tail])


def _s16(samples: np.ndarray) -> bytes:
    return bytes(np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes())


def prepare(sound: Sound, path: Path, *, lead_ms: float) -> float:
    """Write ``sound`` as a 16-bit stereo WAV with a silent lead-in, fades and a silent tail.

    Returns the seconds it lasts.  Mono is played on both channels, more than
    two channels are mixed down; PipeWire converts the rate on the way.
    """
    shaped = _shaped(sound, lead_ms)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sound.rate)
        out.writeframes(_s16(shaped))
    return len(shaped) / sound.rate


def prepare_pcm(sound: Sound, *, lead_ms: float) -> bytes:
    """``sound`` shaped as :func:`prepare` does, as snapserver's 48 kHz S16LE stereo."""
    shaped = _shaped(sound, lead_ms)
    if sound.rate != 48000:
        import soxr

        shaped = soxr.resample(shaped, sound.rate, 48000, quality="HQ")
    return _s16(shaped)


# --- one at a time ---------------------------------------------------------------


class AnnounceQueue:
    """Announcements play one after the other, across processes: a lock file."""

    def __init__(self, path: Path, *, timeout: float = 600.0, poll: float = 0.05) -> None:
        self.path = path
        self._timeout = timeout
        self._poll = poll

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> AnnounceQueue:
        from .paths import runtime_dir

        return cls(runtime_dir(env) / "announce.lock")

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[float]:
        """Wait for our turn; yields the seconds waited."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        started = time.monotonic()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - started > self._timeout:
                        raise AnnounceError(
                            f"another announcement has been playing for {self._timeout:.0f} s; "
                            "giving up"
                        ) from None
                    await asyncio.sleep(self._poll)
            yield time.monotonic() - started
        finally:
            os.close(fd)  # releases the lock


# --- playing -----------------------------------------------------------------------


@dataclass(frozen=True)
class AnnounceResult:
    sinks: tuple[str, ...]
    seconds: float
    """How long the announcement lasted, its lead-in included."""
    waited: float = 0.0
    """Seconds spent waiting for earlier announcements."""
    rooms: tuple[str, ...] = field(default=())


async def play_into(
    path: Path,
    sinks: Sequence[str],
    *,
    seconds: float,
    env: Mapping[str, str] | None = None,
) -> None:
    """Play the WAV ``path`` into every sink at once; return when all have finished."""
    from .process import ChildProcess

    children = [
        ChildProcess(
            [
                "pw-play",
                "--target",
                sink,
                "-P",
                f"{{ application.name = {ANNOUNCE_APP} node.dont-reconnect = true "
                "media.role = Notification }",
                str(path),
            ],
            name=f"pw-play {sink}",
            env=env,
            # A killed announce command takes its announcement along: the music
            # comes back up at once instead of after the sound has played out.
            die_with_parent=True,
        )
        for sink in sinks
    ]
    async with contextlib.AsyncExitStack() as stack:
        for child in children:
            try:
                await stack.enter_async_context(child)
            except FileNotFoundError:
                raise AnnounceError(
                    "pw-play is not installed (sudo apt-get install pipewire-bin)"
                ) from None
        try:
            async with asyncio.timeout(seconds + 15):
                codes = await asyncio.gather(*(child.wait() for child in children))
        except TimeoutError:
            raise AnnounceError(
                f"the announcement did not finish within {seconds + 15:.0f} s; is PipeWire hung?"
            ) from None
        for child, code in zip(children, codes, strict=True):
            if code != 0:
                raise AnnounceError(f"{child.name} failed: {child.last_words()}")


async def announce(
    *,
    sound_file: str | os.PathLike[str] | None = None,
    text: str = "",
    sinks: Sequence[str] = (),
    lead_ms: float = 300.0,
    max_seconds: float = 120.0,
    voice: str = "",
    env: Mapping[str, str] | None = None,
    queue: AnnounceQueue | None = None,
    pipewire: PipeWire | None = None,
) -> AnnounceResult:
    """Play a sound file, or speak ``text``, over the music of every broadcast.

    ``sinks``: the capture sinks to play into; empty: every broadcast's.
    The broadcasts duck their music while it plays (see :class:`Ducker`).
    """
    pw = pipewire or PipeWire(env=env)
    with scratch_dir("broadcaster-announce") as tmp:
        source = tmp / "speech.wav"
        if sound_file is None:
            await speak(text, source, voice=voice)
        else:
            source = Path(sound_file)
        sound = read_sound(source, max_seconds=max_seconds)
        playable = tmp / "announcement.wav"
        seconds = prepare(sound, playable, lead_ms=lead_ms)
        targets = list(sinks) or capture_sinks(await pw.graph())
        if not targets:
            raise AnnounceError(
                "nothing is broadcasting here: start `broadcaster run APP` or "
                "`broadcaster serve` (with a capture) first"
            )
        missing = [s for s in targets if (await pw.graph()).sink(s) is None] if sinks else []
        if missing:
            raise AnnounceError(f"there is no sink {missing[0]!r}")
        queue = queue or AnnounceQueue.default(env)
        async with queue.turn() as waited:
            _LOGGER.info("announcing %.1f s into %s", seconds, ", ".join(targets))
            await play_into(playable, targets, seconds=seconds, env=env)
    return AnnounceResult(tuple(targets), seconds, waited)
