"""Room latency calibration: which room's sound reaches a microphone when.

Snapcast keeps its clients' clocks in step, but not what leaves their
speakers: a Bluetooth speaker or an HDMI receiver adds tens to hundreds of
milliseconds snapserver cannot see.  Calibration plays a short known signal
into the stream in one room at a time (the other rooms silenced for that moment),
records it with a microphone, finds when each room's signal arrived, and
computes the ``latency`` per room that makes every room play with the slowest.

**The clock is the stream itself.**  The signal is written into snapserver's
pipe as one continuous run of samples, so where each room's chirps sit in the
stream is known to the sample (:class:`Plan`).  snapserver stamps a
continuous pipe read with continuous timestamps, and every client plays a
stamp at the same server time plus its own delay; the recording is also one
continuous run of samples.  So for room *i*, ``arrival - position`` is one
constant (when recording started, unknown) plus that room's delay: the
differences between rooms are the rooms' relative delays, whatever the
microphone's own input latency or the phone's clock (both cancel).

**Detection.**  Each room gets its own chirp (:func:`code_signal`: up and down
sweeps of different lengths, 1.2-6 kHz), repeated ``repeats`` times.  The
recording is cross-correlated with each room's chirp (FFT); the room whose
repeats stand out most above the noise anchors the recording's timeline, and
every room is then looked for only where its chirps can be (``max_spread`` either
side).  Each repeat gives one estimate (its correlation peak, interpolated to
a fraction of a sample); estimates more than ``agree_ms`` from their median
are rejected; a room is *heard* when at least ``min_agree`` repeats stand
``min_snr_db`` above the noise and agree.  ``confidence`` is the fraction of
repeats that agreed.

This module is the engine (pure functions over numpy arrays) and the
orchestration (:class:`Calibration`: mute, write, record, restore), against
small protocols for the control connection, the pipe and the recorder so the
service, the command line and tests can each supply their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import BusyError, CalibrationError, ConfigError, NotFoundError, OutOfRangeError
from .pipewire import pw_cat_stdio_options
from .rooms import check_latency

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .rooms import Room, ServerStatus

    FloatArray = npt.NDArray[np.float64]

_LOGGER = logging.getLogger(__name__)

STREAM_RATE = 48000
"""The stream's sample rate (broadcaster's pipes are 48 kHz S16LE stereo)."""

_BAND = (1200.0, 6000.0)
_RESYNC_S = 0.04
"""Each repeat is looked for this far from where the pattern puts it: a snapclient
that resyncs mid-measurement jumps by 5-30 ms (seen here under load)."""
_PAIR_APART_MS = 25
"""In a pair turn, the room's copy is the one nearer where its own turn heard it
when the two are this much apart in that respect (more than the loop shifts in a
few seconds but for a rare xrun); otherwise levels must tell them apart."""
_CHIRPS = 8
"""Distinct chirps (:func:`code_signal`): codes ``c`` and ``c + 8`` play the same one."""


@dataclass(frozen=True)
class Settings:
    """How the calibration signal is laid out and judged."""

    repeats: int = 5
    """Chirps per room."""
    spacing_s: float = 0.25
    """From one chirp to the next within a room."""
    lead_s: float = 0.4
    """Silence after a room is unmuted, before its first chirp."""
    settle_s: float = 2.0
    """Silence before the first room: rooms whose stream was idle resync for a
    second or two when it starts playing (snapclient corrections of 5-7 ms seen)."""
    playout_s: float = 1.4
    """How long after it is written a sample is played: snapserver's buffer (1 s by
    default) plus the pipe; a room's mute changes wait this long for its chirps."""
    max_spread_s: float = 0.6
    """The largest difference between two rooms' delays that can be measured."""
    level: float = 0.25
    """Chirp amplitude (0.25 = -12 dBFS, before each room's volume)."""
    agree_ms: float = 2.0
    min_agree: int = 3
    min_snr_db: float = 15.0
    reference: bool = True
    """After each other room's own turn, a turn with it and the first room (the
    reference) both audible: that room is measured against the reference within
    the same chirps, so a shift of the whole loop between turns (a recording that
    lost input, a graph that skipped a cycle) cancels."""

    def check(self) -> None:
        if not 3 <= self.repeats <= 20:
            raise ConfigError("calibration repeats must be from 3 to 20")
        if not 0 < self.level <= 1:
            raise ConfigError("calibration level must be above 0 and at most 1")
        if not 0.1 <= self.playout_s <= 10:
            raise ConfigError("calibration playout must be from 0.1 to 10 s")
        if not self.spacing_s > max(code_duration(k) for k in range(8)):
            raise ConfigError("calibration spacing is shorter than a chirp")
        if self.min_agree > self.repeats:
            raise ConfigError("calibration min_agree exceeds repeats")


# --- the signal -----------------------------------------------------------------


def code_duration(code: int) -> float:
    """Length of room ``code``'s chirp in seconds."""
    return 0.05 + 0.03 * (code // 2 % 4)


def code_signal(code: int, rate: int) -> FloatArray:
    """Room ``code``'s chirp at ``rate``: a Hann-windowed linear sweep, peak 1.

    Even codes sweep up, odd ones down; the length (50-140 ms) grows with
    ``code // 2``: any two of the first eight correlate at most 0.22 of their
    own peaks.  (Rooms beyond eight reuse them; only the anchoring room's needs
    to stand out, the others are looked for where they must be.)
    """
    import numpy as np

    duration = code_duration(code)
    t = np.arange(round(duration * rate), dtype=np.float64) / rate
    low, high = _BAND
    f0, f1 = (low, high) if code % 2 == 0 else (high, low)
    phase = 2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) * t * t)
    result: FloatArray = np.sin(phase) * np.hanning(t.size)
    return result


@dataclass(frozen=True)
class RoomSlot:
    """One room's part of the signal: its chirp and where its repeats sit in the stream."""

    room_id: str
    name: str
    code: int
    start: int
    """Stream sample at which this room's part begins (its mutes change here)."""
    positions: tuple[int, ...]
    """Stream samples at which its chirps begin."""
    reference: str = ""
    """The room audible together with this one (a pair turn); empty: alone."""


def _chirp_offsets(repeats: int, spacing_s: float) -> list[float]:
    """Seconds from a turn's first chirp to each chirp: spaced ``spacing_s`` plus
    0-0.16 s more, unevenly, so that no chirp lies where another chirp's copy from a
    room up to ``max_spread`` later would (the two copies of a pair turn stay apart)."""
    offsets = [0.0]
    for k in range(1, repeats):
        offsets.append(offsets[-1] + spacing_s + 0.04 * ((3 * k) % 5))
    return offsets


@dataclass(frozen=True)
class Plan:
    """The whole signal: turns in order, then a tail for the last one to play out.

    ``rooms`` are the turns in which one room plays alone, one per room in order;
    ``pairs`` (with :attr:`Settings.reference`) the turns in which a room other than
    the first plays together with the first, each right after that room's own turn.
    """

    rooms: tuple[RoomSlot, ...]
    total: int
    settings: Settings
    pairs: tuple[RoomSlot, ...] = ()

    @property
    def turns(self) -> tuple[RoomSlot, ...]:
        """Every turn in the order it plays."""
        return tuple(sorted((*self.rooms, *self.pairs), key=lambda slot: slot.start))

    @property
    def duration_s(self) -> float:
        return self.total / STREAM_RATE

    @classmethod
    def build(cls, rooms: Sequence[tuple[str, str]], settings: Settings) -> Plan:
        """Lay out ``rooms`` (id, name) one after the other."""
        settings.check()
        if not rooms:
            raise NotFoundError("there is no connected room to calibrate")
        rate = STREAM_RATE
        offsets = _chirp_offsets(settings.repeats, settings.spacing_s)
        cursor = round(settings.settle_s * rate)

        def turn(room_id: str, name: str, code: int, reference: str = "") -> RoomSlot:
            nonlocal cursor
            first = cursor + round(settings.lead_s * rate)
            positions = tuple(first + round(offset * rate) for offset in offsets)
            slot = RoomSlot(room_id, name, code, cursor, positions, reference)
            end = positions[-1] + round(code_duration(code) * rate)
            # The next turn's volumes change only once these chirps have played everywhere.
            cursor = end + round((settings.playout_s + settings.max_spread_s + 0.1) * rate)
            return slot

        solo: list[RoomSlot] = []
        pairs: list[RoomSlot] = []
        for code, (room_id, name) in enumerate(rooms):
            solo.append(turn(room_id, name, code))
            if settings.reference and code > 0:
                # Its own code (after the rooms'): the turn is told apart from the others.
                pairs.append(turn(room_id, name, len(rooms) + code - 1, solo[0].room_id))
        return cls(tuple(solo), cursor, settings, tuple(pairs))

    def render(self) -> FloatArray:
        """The signal as mono float samples at the stream's rate."""
        import numpy as np

        out = np.zeros(self.total, dtype=np.float64)
        for slot in self.turns:
            chirp = code_signal(slot.code, STREAM_RATE) * self.settings.level
            for position in slot.positions:
                out[position : position + chirp.size] += chirp
        return out


def to_pcm(samples: FloatArray) -> bytes:
    """Mono float samples as the stream's 48 kHz S16LE stereo."""
    import numpy as np

    mono = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    return np.repeat(mono, 2).tobytes()


# --- detection --------------------------------------------------------------------


@dataclass(frozen=True)
class RoomResult:
    """What was measured for one room."""

    room_id: str
    name: str
    heard: bool
    delay_ms: float | None
    """Arrival after the earliest heard room (None when not heard)."""
    confidence: float
    """Fraction of the repeats that agreed (0 to 1)."""
    spread_ms: float | None
    """Largest distance of an agreeing repeat from their mean."""
    snr_db: float
    repeats_used: int
    offset_ms: float | None = None
    """Arrival minus stream position (recording's own timeline): for diagnostics."""
    note: str = ""
    """Why there is no delay: "not heard", or the room's timing moved while measured."""
    reference: str = ""
    """The room this one was measured against in the same chirps (empty: the delay
    comes from the two rooms' own turns, or this is the reference)."""

    def to_json(self) -> dict[str, Any]:
        return {
            key: (round(value, 2) if isinstance(value, float) else value)
            for key, value in dataclasses.asdict(self).items()
        }


def _correlate(recording: FloatArray, template: FloatArray) -> FloatArray:
    """Cross-correlation of ``recording`` with ``template``; index = where it starts."""
    import numpy as np

    size = recording.size + template.size
    n = 1 << max(1, (size - 1).bit_length())
    spectrum = np.fft.rfft(recording, n) * np.conj(np.fft.rfft(template, n))
    result: FloatArray = np.fft.irfft(spectrum, n)[: recording.size]
    return result


def _envelope(corr: FloatArray, block: int, reach: int) -> FloatArray:
    """|correlation| per ``block`` samples (its maximum), widened by a running maximum
    over ``reach`` blocks either side: chirps that moved a little still line up."""
    import numpy as np

    usable = corr.size // block * block
    coarse = np.abs(corr[:usable]).reshape(-1, block).max(axis=1)
    out: FloatArray = coarse.copy()
    for shift in range(1, reach + 1):
        out[:-shift] = np.maximum(out[:-shift], coarse[shift:])
        out[shift:] = np.maximum(out[shift:], coarse[:-shift])
    return out


def _pattern(env: FloatArray, offsets: Sequence[int], lo: int, hi: int) -> tuple[int, float]:
    """Best start in [lo, hi) for chirps at ``offsets`` from it: (start, summed envelope)."""
    import numpy as np

    size = env.size
    lo = max(0, lo)
    hi = min(hi, size - offsets[-1])
    if hi <= lo:
        return lo, 0.0
    total = np.zeros(hi - lo, dtype=np.float64)
    for offset in offsets:
        total += env[lo + offset : hi + offset]
    best = int(np.argmax(total))
    return lo + best, float(total[best])


def _peak(corr: FloatArray, around: int, radius: int) -> tuple[float, float]:
    """The largest |corr| within ``radius`` of ``around``: (fractional index, value)."""
    import numpy as np

    lo = max(0, around - radius)
    hi = min(corr.size, around + radius + 1)
    if hi - lo < 3:
        return float(around), 0.0
    mag = np.abs(corr[lo:hi])
    i = int(np.argmax(mag))
    value = float(mag[i])
    shift = 0.0
    if 0 < i < mag.size - 1:
        a, b, c = float(mag[i - 1]), value, float(mag[i + 1])
        denom = a - 2 * b + c
        if denom < 0:
            shift = 0.5 * (a - c) / denom
    return lo + i + shift, value


def analyze(recording: FloatArray, rate: int, plan: Plan) -> list[RoomResult]:
    """Each room of ``plan`` found (or not) in a mono ``recording`` made at ``rate``."""
    import numpy as np

    settings = plan.settings
    recording = np.asarray(recording, dtype=np.float64)
    if recording.size < rate * 0.5:
        raise CalibrationError("the recording is too short to hold the calibration signal")
    recording = recording - float(np.mean(recording))
    scale = rate / STREAM_RATE
    block = max(1, rate // 1000)  # the pattern search works in 1 ms blocks
    reach = round(_RESYNC_S * 1000)
    spread = round(settings.max_spread_s * 1000)
    chirps = [slot.code % _CHIRPS for slot in plan.turns]
    correlations = []
    anchors = []
    for slot in plan.rooms:
        template = code_signal(slot.code, rate)
        corr = _correlate(recording, template)
        env = _envelope(corr, block, reach)
        offsets = [round((p - slot.positions[0]) * scale / block) for p in slot.positions]
        start, score = _pattern(env, offsets, 0, env.size)
        energy = float(np.sum(template * template))
        # (At least -80 dB below a full-scale chirp's peak, as for the noise below: over
        # digital silence any faint match, another turn's chirp, would stand out
        # without bound and could anchor the timeline a turn away.)
        floor = (float(np.median(env)) + 1e-4 * energy) * len(offsets)
        correlations.append((corr, env, offsets, energy))
        # Only a chirp no other turn plays can anchor the timeline.
        unique = chirps.count(slot.code % _CHIRPS) == 1
        anchors.append(
            (score / floor if unique else 0.0, start * block - slot.positions[0] * scale)
        )
    best = max(range(len(anchors)), key=lambda i: anchors[i][0])
    origin = anchors[best][1]  # recording sample where stream sample 0 would arrive (+ delay)

    solo: dict[str, _Heard] = {}
    for slot, (corr, env, offsets, energy) in zip(plan.rooms, correlations, strict=True):
        expected = round((origin + slot.positions[0] * scale) / block)
        start, _ = _pattern(env, offsets, expected - spread, expected + spread + 1)
        noise = _noise(corr, expected, offsets[-1], spread, block, energy)
        heard = _Heard([], [], [])
        for offset, position in zip(offsets, slot.positions, strict=True):
            where, value = _peak(corr, (start + offset) * block, (reach + 2) * block)
            snr = 20 * math.log10(max(value, 1e-30) / noise)
            heard.snrs.append(snr)
            if snr >= settings.min_snr_db and value > 1e-6 * energy:
                heard.found.append(where / rate - position / STREAM_RATE)
                heard.levels.append(value / energy)  # the chirp's amplitude
        heard.agreeing = _largest_cluster(heard.found, settings.agree_ms)
        solo[slot.room_id] = heard

    # Each room's arrival after the reference's: measured in the same chirps where a
    # pair turn allows, else from the two rooms' own turns.
    ok = {rid for rid, h in solo.items() if len(h.agreeing) >= settings.min_agree}
    relative = {rid: float(np.mean(solo[rid].agreeing)) for rid in ok}
    # A room heard in its own turn can be measured in its pair turn even if its own
    # turn's chirps moved (a shift of the whole loop while they played moves both
    # copies of a pair turn's chirp alike): its own turn only says where to look.
    audible = {rid for rid, h in solo.items() if len(h.found) >= settings.min_agree}
    paired: dict[str, list[float]] = {}
    unpaired: set[str] = set()
    for slot in plan.pairs:
        if slot.room_id in audible and slot.reference in audible:
            room, reference = solo[slot.room_id], solo[slot.reference]
            where = float(np.median(room.agreeing or room.found))
            together = _pair(recording, rate, slot, room, reference, where, settings)
            if together is None:
                _LOGGER.info("calibration: %s too near the reference to tell apart", slot.name)
            elif len(together) >= settings.min_agree:
                paired[slot.room_id] = together
            else:
                # Its own turn and the reference's, if both held still, still give a
                # delay (``reference`` stays empty: a shift of the loop between the
                # turns goes into it).
                unpaired.add(slot.room_id)
    if paired:
        reference_id = plan.rooms[0].room_id
        base = relative.get(reference_id)
        if base is None:  # the reference's own turn moved: the pairs still hold
            base = float(np.median(solo[reference_id].found))
            relative = {reference_id: base}
        for rid, together in paired.items():
            relative[rid] = base + float(np.mean(together))
    earliest = min(relative.values()) if relative else 0.0
    results = []
    for slot in plan.rooms:
        heard = solo[slot.room_id]
        # (The reference's own turn may have moved while pairs still measured it.)
        agreeing = paired.get(slot.room_id) or heard.agreeing or heard.found
        found = heard.found
        is_heard = len(found) >= settings.min_agree
        is_ok = slot.room_id in relative
        centre = float(np.mean(agreeing)) if is_ok else 0.0
        note = ""
        if not is_heard:
            note = "not heard"
        elif slot.room_id in unpaired and not is_ok:
            note = (
                f"heard, but not together with {plan.rooms[0].name}: a room's timing moved "
                "while it was measured (a resync, or the recording lost sound); measure again"
            )
        elif not is_ok:
            note = (
                f"heard, but its timing moved by {(max(found) - min(found)) * 1000:.0f} ms "
                "while it was measured (the room resynced); measure again"
            )
        snrs = heard.snrs
        results.append(
            RoomResult(
                room_id=slot.room_id,
                name=slot.name,
                heard=is_heard,
                delay_ms=(relative[slot.room_id] - earliest) * 1000 if is_ok else None,
                confidence=len(agreeing) / settings.repeats if is_ok else 0.0,
                spread_ms=max(abs(e - centre) for e in agreeing) * 1000 if is_ok else None,
                snr_db=float(np.median(snrs)) if snrs else 0.0,
                repeats_used=len(agreeing) if is_ok else 0,
                offset_ms=float(np.mean(heard.agreeing or found)) * 1000 if is_ok else None,
                note=note,
                reference=plan.rooms[0].room_id if slot.room_id in paired else "",
            )
        )
    return results


@dataclass
class _Heard:
    """One room's chirps in its own turn."""

    found: list[float]
    """Arrival minus stream position (s) of each chirp heard."""
    levels: list[float]
    """Their amplitudes (correlation peak over the chirp's energy)."""
    snrs: list[float]
    agreeing: list[float] = field(default_factory=list)


def _noise(
    corr: FloatArray, expected: int, length: int, spread: int, block: int, energy: float
) -> float:
    """The correlation's level over a turn, away from its chirps' peaks (its median)."""
    import numpy as np

    lo = max(0, (expected - spread) * block)
    hi = min(corr.size, (expected + length + spread) * block)
    mag = np.abs(corr[lo:hi] if hi > lo else corr)
    # (At least -80 dB below a full-scale chirp's peak: digital silence has no floor.)
    return float(np.median(mag)) + 1e-4 * energy + 1e-12


def _pair(
    recording: FloatArray,
    rate: int,
    slot: RoomSlot,
    room: _Heard,
    reference: _Heard,
    offset: float,
    settings: Settings,
) -> list[float] | None:
    """A pair turn: per chirp, the room's arrival minus the reference's (s).

    Both rooms play every chirp of the turn, so each chirp arrives twice; a shift
    of the whole loop moves both copies alike.  The room's copy is the one near
    where its own turn, just before, heard it (``offset``: arrival minus stream
    position, s); when both copies are that near, the one whose level matches
    the room's own turn rather than the reference's.
    """
    import numpy as np

    block = max(1, rate // 1000)
    reach = round(_RESYNC_S * 1000)
    span = round(settings.max_spread_s * 1000) + reach
    template = code_signal(slot.code, rate)
    corr = _correlate(recording, template)
    energy = float(np.sum(template * template))
    coarse = _envelope(corr, block, 0)
    centres = [round((p / STREAM_RATE + offset) * rate / block) for p in slot.positions]
    if centres[0] - span < 0 or centres[-1] + span >= coarse.size:
        return []
    # The turn's chirps summed, lined up where the room's copy should be.
    profile = np.zeros(2 * span + 1)
    for c in centres:
        profile += coarse[c - span : c + span + 1]
    profile /= len(centres) * energy  # the copies' amplitudes
    noise = _noise(corr, centres[0], centres[-1] - centres[0], span, block, energy) / energy
    if 20 * math.log10(max(float(np.max(profile)), 1e-30) / noise) < settings.min_snr_db:
        return []
    level_room = float(np.median(room.levels))
    level_ref = float(np.median(reference.levels))

    def misfit(index: int, level: float) -> float:  # log10 of the amplitudes' ratio
        return abs(math.log10(max(float(profile[index]), 1e-30) / level))

    if abs(math.log10(level_room / level_ref)) > 0.3:
        # Their own turns' levels 6 dB apart or more tell the copies apart: the room's
        # is the arrival at its level nearest where its own turn heard it; the
        # reference's the strongest at its level (a strong copy's sidelobes or
        # echoes are weaker).
        inner = profile[1:-1]
        tops = 1 + np.flatnonzero((inner >= profile[:-2]) & (inner >= profile[2:]))
        mine = [int(i) for i in tops if misfit(int(i), level_room) <= 0.3]
        if not mine:
            return []
        own = min(mine, key=lambda i: abs(i - span))
        theirs = [int(i) for i in tops if misfit(int(i), level_ref) <= 0.3 and abs(i - own) > 3]
        if not theirs:
            return []
        other = max(theirs, key=lambda i: float(profile[i]))
    else:
        # The turn's two strongest arrivals, at least 3 ms apart; the room's is the one
        # nearer where its own turn heard it, unless the loop may have shifted that
        # far since; then the one whose level matches.
        own = int(np.argmax(profile))
        rest = profile.copy()
        rest[max(0, own - 3) : own + 4] = 0.0
        other = int(np.argmax(rest))
        if 20 * math.log10(max(float(profile[other]), 1e-30) / noise) < settings.min_snr_db:
            return []
        nearer = abs(other - span) - abs(own - span)  # ms; > 0: own is nearer
        as_is = misfit(own, level_room) + misfit(other, level_ref)
        swapped = misfit(other, level_room) + misfit(own, level_ref)
        by_level = swapped - as_is  # > 0: the levels say own is the room's
        if abs(nearer) >= _PAIR_APART_MS and abs(by_level) < 0.3:
            if nearer < 0:
                own, other = other, own
        elif abs(by_level) >= 0.15:  # 3 dB
            if by_level < 0:
                own, other = other, own
        else:
            return None  # too close to tell apart: the rooms' own turns stand
    # Per chirp: both copies together, moved alike by a shift of the whole loop (followed
    # from chirp to chirp), then each to a fraction of a sample.
    radius = 2 * block
    result = []
    moved = 0
    for c in centres:
        lo = c - span
        shifts = np.arange(moved - reach, moved + reach + 1)
        if lo + min(own, other) + shifts[0] < 0 or lo + max(own, other) + shifts[-1] >= coarse.size:
            continue
        both = coarse[lo + own + shifts] + coarse[lo + other + shifts]
        moved = int(shifts[int(np.argmax(both))])
        t_room, v_room = _peak(corr, (lo + own + moved) * block, radius)
        t_ref, v_ref = _peak(corr, (lo + other + moved) * block, radius)
        if min(v_room, v_ref) >= noise * energy * 10 ** (settings.min_snr_db / 20):
            result.append((t_room - t_ref) / rate)
        else:
            moved = 0
    return _largest_cluster(result, settings.agree_ms)


def _largest_cluster(estimates: Sequence[float], agree_ms: float) -> list[float]:
    """The most estimates that lie within ``agree_ms`` of one of them (outliers rejected)."""
    best: list[float] = []
    for centre in estimates:
        near = [e for e in estimates if abs(e - centre) * 1000 <= agree_ms]
        if len(near) > len(best):
            best = near
    return best


def plan_latencies(results: Sequence[RoomResult], current: Mapping[str, int]) -> dict[str, int]:
    """New ``latency`` per heard room so that every heard room plays with the slowest.

    A snapclient plays ``latency`` ms earlier than the stream says; a room
    ``d`` ms ahead of the slowest is therefore given ``d`` ms less (possibly
    below zero: snapserver accepts down to :data:`~broadcaster.rooms.LATENCY_MIN_MS`;
    :meth:`Calibration.apply` refuses a plan beyond it).
    """
    heard = [r for r in results if r.delay_ms is not None]
    if not heard:
        return {}
    slowest = max(r.delay_ms for r in heard if r.delay_ms is not None)
    return {
        r.room_id: current.get(r.room_id, 0) - round(slowest - (r.delay_ms or 0.0)) for r in heard
    }


# --- the outside world ----------------------------------------------------------


class Controls(Protocol):
    """What calibration needs of snapserver's control API (a ``SnapControl``)."""

    async def status(self) -> ServerStatus: ...
    async def set_room_volume(
        self, room_id: str, percent: int, muted: bool | None = None
    ) -> None: ...
    async def set_room_latency(self, room_id: str, latency_ms: int) -> object: ...


class FifoWriter:
    """Writes the signal into snapserver's pipe at the pace it is played.

    The pipe is opened read-write and non-blocking (see :mod:`.delivery`), and
    writing never runs more than ``ahead_s`` ahead of real time: the samples
    must reach snapserver as one continuous run (no gap, nothing dropped), or
    the stream positions the measurement rests on would move.  (Under load a
    stall of the event loop can still let the pipe run dry; snapserver then
    restarts the stream's timestamps, "onResync" in its log: a shift of the
    whole loop, which the pair turns cancel.  0.25 s ahead did not help.)
    """

    def __init__(self, path: str, *, ahead_s: float = 0.08, block_s: float = 0.02) -> None:
        self.path = path
        self._ahead = ahead_s
        self._block = round(block_s * STREAM_RATE) * 4
        self._fd: int | None = None
        self._written = 0
        self._t0 = 0.0

    async def __aenter__(self) -> FifoWriter:
        import stat

        try:
            if not stat.S_ISFIFO(os.stat(self.path).st_mode):
                raise CalibrationError(f"{self.path} is not a pipe snapserver reads")
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            raise CalibrationError(f"cannot open the stream's pipe {self.path}: {err}") from None
        self._t0 = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def write(self, pcm: bytes, *, deadline_s: float = 5.0) -> None:
        """Write ``pcm`` (48 kHz S16LE stereo), paced; waits while the pipe is full."""
        assert self._fd is not None
        view = memoryview(pcm)
        stalled = time.monotonic()
        while view:
            ahead = self._written / (STREAM_RATE * 4) - (time.monotonic() - self._t0)
            if ahead > self._ahead:
                await asyncio.sleep(min(ahead - self._ahead + 0.002, 0.02))
                continue
            try:
                count = os.write(self._fd, view[: self._block])
            except BlockingIOError:
                if time.monotonic() - stalled > deadline_s:
                    raise CalibrationError(
                        f"snapserver stopped reading {self.path} during calibration"
                    ) from None
                await asyncio.sleep(0.005)
                continue
            stalled = time.monotonic()
            self._written += count
            view = view[count:]


class SignalOut(Protocol):
    """Where the signal goes: paced writes of 48 kHz S16LE stereo."""

    async def write(self, pcm: bytes) -> None: ...


async def _start_pw_cat(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    *,
    stdin: int = asyncio.subprocess.DEVNULL,
    stdout: int = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """Start ``pw-play`` or ``pw-record`` (stderr discarded); CalibrationError if it cannot run."""
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.DEVNULL, env=env
        )
    except OSError as err:
        raise CalibrationError(f"cannot run {argv[0]}: {err}") from None


async def _reap(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Give ``proc`` ``timeout`` seconds to exit, then kill it; it is reaped either way."""
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class SinkWriter:
    """Plays the signal into a capture sink with ``pw-play`` reading its stdin.

    For a capture on the native data path, whose pipe PipeWire itself writes:
    the signal is mixed into the capture sink as an announcement
    (``application.name`` of :mod:`.announce`), so the broadcast ducks the
    music under it meanwhile.  One ``pw-play`` stream plays its samples
    contiguously, which is all the measurement needs; it is kept
    ``ahead_s`` ahead so it never runs dry (a dry stream would be a gap).
    """

    def __init__(
        self, sink: str, *, env: Mapping[str, str] | None = None, ahead_s: float = 0.3
    ) -> None:
        self.sink = sink
        self._env = dict(env) if env is not None else None
        self._ahead = ahead_s
        self._proc: asyncio.subprocess.Process | None = None
        self._written = 0
        self._t0 = 0.0
        self._stdio: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        from .announce import ANNOUNCE_APP

        return [
            "pw-play",
            "--target",
            self.sink,
            "-P",
            f"{{ application.name = {ANNOUNCE_APP} node.dont-reconnect = true }}",
            "--rate",
            str(STREAM_RATE),
            "--channels",
            "2",
            "--format",
            "s16",
            *self._stdio,
            "-",
        ]

    async def __aenter__(self) -> SinkWriter:
        self._stdio = await pw_cat_stdio_options(self._env)
        self._proc = await _start_pw_cat(self.argv(), self._env, stdin=asyncio.subprocess.PIPE)
        self._t0 = time.monotonic()
        return self

    async def write(self, pcm: bytes) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        block = round(0.02 * STREAM_RATE) * 4
        view = memoryview(pcm)
        while view:
            ahead = self._written / (STREAM_RATE * 4) - (time.monotonic() - self._t0)
            if ahead > self._ahead:
                await asyncio.sleep(min(ahead - self._ahead + 0.002, 0.02))
                continue
            if proc.returncode is not None:
                raise CalibrationError(f"pw-play into {self.sink} stopped during calibration")
            proc.stdin.write(view[:block])
            try:
                async with asyncio.timeout(5):
                    await proc.stdin.drain()
            except (TimeoutError, ConnectionError):
                raise CalibrationError(
                    f"pw-play into {self.sink} stopped taking the signal"
                ) from None
            self._written += min(block, len(view))
            view = view[block:]

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        await _reap(proc, 3)


class Recording(Protocol):
    """A microphone's samples, from before the signal starts to after it ends."""

    async def start(self) -> None: ...
    async def finish(self) -> tuple[FloatArray, int]:
        """Stop and return (mono samples, sample rate)."""
        ...


class LocalRecording:
    """A capture source on this machine recorded with ``pw-record`` (a USB microphone).

    ``SOURCE`` is a PipeWire source's node name; ``SINK.monitor`` records what
    a sink plays.
    """

    def __init__(self, source: str, *, env: Mapping[str, str] | None = None) -> None:
        self.source = source
        self._env = dict(env) if env is not None else None
        self._proc: asyncio.subprocess.Process | None = None
        self._chunks: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._stdio: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        argv = ["pw-record"]
        if self.source.endswith(".monitor"):
            argv += ["--target", self.source.removesuffix(".monitor")]
            argv += ["-P", "stream.capture.sink=true"]
        else:
            argv += ["--target", self.source]
        argv += ["-P", "node.dont-reconnect=true", "--rate", str(STREAM_RATE)]
        argv += ["--channels", "1", "--format", "s16", "--latency", "20ms"]
        return [*argv, *self._stdio, "-"]

    async def start(self) -> None:
        self._stdio = await pw_cat_stdio_options(self._env)
        self._proc = await _start_pw_cat(self.argv(), self._env, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read(), name="calibration-record")
        try:
            async with asyncio.timeout(5):
                await self._first.wait()
        except TimeoutError:
            await self._stop()
            raise CalibrationError(
                f"nothing recorded from {self.source} within 5 s (is it a PipeWire source?)"
            ) from None

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        while chunk := await self._proc.stdout.read(65536):
            self._chunks.append(chunk)
            self._first.set()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await _reap(proc, 2)
        if self._reader is not None:
            try:
                async with asyncio.timeout(2):
                    await self._reader
            except TimeoutError:
                self._reader.cancel()
            except Exception as err:  # the pipe broke: what was read still counts
                _LOGGER.debug("recording reader ended: %s", err)

    async def finish(self) -> tuple[FloatArray, int]:
        import numpy as np

        await self._stop()
        data = b"".join(self._chunks)
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        return samples.astype(np.float64) / 32768, STREAM_RATE


class UploadedRecording:
    """The recording a browser makes and sends when told the signal has ended."""

    def __init__(self) -> None:
        self._result: asyncio.Future[tuple[FloatArray, int]] | None = None

    async def start(self) -> None:
        self._result = asyncio.get_running_loop().create_future()

    def deliver(self, samples: FloatArray, rate: int) -> None:
        if self._result is None or self._result.done():
            raise BusyError("calibration is not waiting for a recording")
        self._result.set_result((samples, rate))

    @property
    def waiting(self) -> bool:
        return self._result is not None and not self._result.done()

    async def finish(self, timeout: float = 30.0) -> tuple[FloatArray, int]:
        assert self._result is not None
        try:
            async with asyncio.timeout(timeout):
                return await self._result
        except TimeoutError:
            raise CalibrationError(
                f"the browser sent no recording within {timeout:g} s of the signal's end"
            ) from None


# --- one calibration --------------------------------------------------------------


class State(enum.Enum):
    IDLE = "idle"
    PLAYING = "playing"
    WAITING = "waiting"  # for the recording
    ANALYZING = "analyzing"
    DONE = "done"
    FAILED = "failed"
    APPLIED = "applied"


@dataclass
class Progress:
    """What the page shows while a calibration runs and after."""

    id: int = 0
    state: State = State.IDLE
    stream: str = ""
    room: str = ""
    """The room playing now."""
    index: int = 0
    rooms: int = 0
    duration_s: float = 0.0
    error: str = ""
    results: list[RoomResult] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)
    """Latencies before Apply (what Undo restores)."""
    proposed: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "stream": self.stream,
            "room": self.room,
            "index": self.index,
            "rooms": self.rooms,
            "duration_s": round(self.duration_s, 2),
            "error": self.error,
            "results": [r.to_json() for r in self.results],
            "latency_before": self.before,
            "latency_proposed": self.proposed,
        }


@dataclass(frozen=True)
class Saved:
    volume: int
    muted: bool


def rooms_to_calibrate(status: ServerStatus, stream: str) -> list[Room]:
    """Connected rooms whose group plays ``stream``, in the server's order."""
    return [r for r in status.rooms if r.connected and r.stream_id == stream]


NOT_CONNECTED = "not heard: not connected when the calibration started"


def absent_results(status: ServerStatus, stream: str) -> list[RoomResult]:
    """A result for each room of ``stream`` that is not connected: "not heard", with why.

    Such a room gets no turn (it can play nothing), but it is reported, not left
    out: a snapclient that is restarting (snapclient 0.26 was seen to abort in
    libpulse when a muted room's idle player let go of PulseAudio) is a room the
    user expects to see.
    """
    return [
        RoomResult(r.id, r.name, False, None, 0.0, None, 0.0, 0, note=NOT_CONNECTED)
        for r in status.rooms
        if not r.connected and r.stream_id == stream
    ]


class Calibration:
    """Runs calibrations one at a time and keeps the last result, Apply and Undo.

    ``hold(stream)`` is an async context manager the owner supplies: while it
    is entered, a capture feeding that stream stops writing (its audio is
    dropped) so the signal has the pipe to itself, and the music comes back
    when it exits; or, for a capture PipeWire writes itself (the native
    path), it yields a :class:`SinkWriter` that mixes the signal into the
    capture sink.  Yielding None means: write the stream's pipe.
    """

    def __init__(
        self,
        controls: Callable[[], Controls],
        *,
        on_change: Callable[[], None] = lambda: None,
        hold: Callable[[str], contextlib.AbstractAsyncContextManager[SignalOut | None]]
        | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._controls = controls
        self._on_change = on_change
        self._hold = hold
        self.settings = settings or Settings()
        self.progress = Progress()
        self.recording: Recording | None = None
        self._lock = asyncio.Lock()
        self._ids = 0

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.progress, key, value)
        self._on_change()

    async def run(self, stream: str, fifo: str, recording: Recording) -> Progress:
        """One calibration of ``stream``'s rooms through its pipe ``fifo``."""
        if self._lock.locked():
            raise BusyError("a calibration is already running")
        async with self._lock:
            self._ids += 1
            self.progress = Progress(id=self._ids, stream=stream, state=State.PLAYING)
            self.recording = recording
            try:
                await self._run(stream, fifo, recording)
            except asyncio.CancelledError:
                self._set(state=State.FAILED, error="calibration was cancelled", room="")
                raise
            except Exception as err:
                self._set(state=State.FAILED, error=str(err) or type(err).__name__, room="")
                raise
            finally:
                self.recording = None
            return self.progress

    async def _run(self, stream: str, fifo: str, recording: Recording) -> None:
        import numpy as np

        controls = self._controls()
        status = await controls.status()
        rooms = rooms_to_calibrate(status, stream)
        if not rooms:
            raise NotFoundError(f"no connected room plays stream {stream!r}")
        # The reference (first) is the room most likely heard: unmuted, loudest.
        reference = max(rooms, key=lambda r: (not r.muted, r.volume))
        rooms = [reference, *(r for r in rooms if r is not reference)]
        plan = Plan.build([(r.id, r.name) for r in rooms], self.settings)
        saved = {r.id: Saved(r.volume, r.muted) for r in status.rooms if r.connected}
        self._set(rooms=len(rooms), duration_s=plan.duration_s)
        signal = plan.render()
        hold: contextlib.AbstractAsyncContextManager[SignalOut | None] = (
            self._hold(stream) if self._hold is not None else contextlib.nullcontext()
        )
        await recording.start()
        try:
            async with hold as out, contextlib.AsyncExitStack() as stack:
                writer: SignalOut
                if out is None:
                    writer = await stack.enter_async_context(FifoWriter(fifo))
                else:
                    writer = out
                turns = plan.turns
                bounds = [0] + [slot.start for slot in turns[1:]] + [plan.total]
                names = {slot.room_id: slot.name for slot in plan.rooms}
                order = [slot.room_id for slot in plan.rooms]
                for index, slot in enumerate(turns):
                    audible = {slot.room_id, slot.reference} - {""}
                    await self._solo(controls, saved, audible)
                    shown = slot.name
                    if slot.reference:
                        shown = f"{slot.name} with {names[slot.reference]}"
                    self._set(room=shown, index=order.index(slot.room_id) + 1)
                    part = signal[bounds[index] : bounds[index + 1]]
                    await writer.write(to_pcm(part))
                await writer.write(to_pcm(np.zeros(round(0.2 * STREAM_RATE))))
        finally:
            await self._restore(controls, saved)
        self._set(state=State.WAITING, room="")
        samples, rate = await recording.finish()
        self._set(state=State.ANALYZING)
        results = await asyncio.to_thread(analyze, samples, rate, plan)
        results += absent_results(status, stream)
        current = {r.id: r.latency for r in rooms}
        self._set(
            state=State.DONE,
            results=results,
            before=current,
            proposed=plan_latencies(results, current),
        )
        _LOGGER.info(
            "calibration %d of %s: %s",
            self.progress.id,
            stream,
            ", ".join(
                f"{r.name} {r.delay_ms:.1f} ms" if r.delay_ms is not None else f"{r.name}: {r.note}"
                for r in results
            ),
        )

    async def _solo(
        self, controls: Controls, saved: Mapping[str, Saved], audible: set[str]
    ) -> None:
        """Only the rooms in ``audible`` heard (at their own volume); every other at volume 0.

        Volume 0, not mute: snapserver sends a muted client nothing (unless
        ``send_to_muted``), and a snapclient muted a few seconds drops its
        audio stream and resyncs when unmuted; seen here to miss its whole
        turn.  At volume 0 it keeps playing, in sync, silently.
        """
        calls = []
        for other, was in saved.items():
            volume = was.volume if other in audible else 0
            calls.append(controls.set_room_volume(other, volume, False))
        await asyncio.gather(*calls)

    async def _restore(self, controls: Controls, saved: Mapping[str, Saved]) -> None:
        errors = []
        for room_id, was in saved.items():
            try:
                await controls.set_room_volume(room_id, was.volume, was.muted)
            except Exception as err:
                errors.append(f"{room_id}: {err}")
        if errors:
            raise CalibrationError(f"could not restore volume and mute of {'; '.join(errors)}")

    async def apply(self) -> dict[str, int]:
        """Set the proposed latencies (those measured last); returns them."""
        progress = self.progress
        if progress.state not in (State.DONE, State.APPLIED) or not progress.proposed:
            raise CalibrationError("there is no calibration result to apply")
        for room_id, latency in progress.proposed.items():
            try:
                check_latency(latency)
            except OutOfRangeError as err:  # before any room changes
                raise CalibrationError(f"cannot apply the latency of {room_id}: {err}") from None
        controls = self._controls()
        for room_id, latency in progress.proposed.items():
            await controls.set_room_latency(room_id, latency)
        self._set(state=State.APPLIED)
        return dict(progress.proposed)

    async def undo(self) -> dict[str, int]:
        """Put back the latencies from before Apply."""
        progress = self.progress
        if progress.state != State.APPLIED:
            raise CalibrationError("nothing to undo: the last calibration was not applied")
        controls = self._controls()
        for room_id, latency in progress.before.items():
            await controls.set_room_latency(room_id, latency)
        self._set(state=State.DONE)
        return dict(progress.before)


__all__ = [
    "Calibration",
    "FifoWriter",
    "LocalRecording",
    "Plan",
    "RoomResult",
    "Settings",
    "SinkWriter",
    "UploadedRecording",
    "analyze",
    "code_signal",
    "plan_latencies",
]
