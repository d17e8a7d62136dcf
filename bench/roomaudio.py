"""What a room played: a steady tone followed window by window, its gaps counted.

The soak's app plays one sine; a room (snapclient's file player) writes what it
plays.  :class:`ToneWatch` reads that audio in 10 ms windows and fits the tone
in each (a sine, a cosine and a constant, least squares).  In a continuous
tone the amplitude stays put and the phase of each window is the previous one
advanced by the window's length; a window whose amplitude is off, whose fit
leaves much unexplained (a step inside it), or whose phase jumped is *bad*, and
each run of bad windows is one gap: silence inserted, audio dropped or
repeated, from two frames on (a one-frame slip, 0.13 rad, is below the
0.2 rad limit: snapclient may correct its sync by single frames).  1013 Hz
(a prime) hides no dropped or inserted stretch from the phase check unless it
is close to a whole number of seconds long (that one shows in the amplitude or
the fit); the lengths a graph or a server deals in (240, 480, 960, 1024, 2048
frames) all move its phase by 0.4 rad or more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RATE = 48000
BYTES_PER_FRAME = 4  # S16LE stereo
SHIFT_LIMIT = 0.2
"""rad: the most a window's phase may jump, and a gap may move the tone's
timeline, and still count as in place (a one-frame slip at 1013 Hz is
0.13 rad, two frames 0.27)."""


@dataclass
class Gap:
    at_s: float
    """Where in the room's audio (seconds since the tone was first heard)."""
    length_s: float
    why: str = ""
    """What its first window showed: the tone's amplitude, the fit's residual, the phase jump."""
    shift_rad: float = math.nan
    """How far the tone's phase moved across the whole gap (nan while it lasts)."""

    @property
    def timeline_kept(self) -> bool:
        """The tone went on where it would have been: something played *in place of* it.

        The room, late, played silence for audio it then skipped; no audio was
        lost or added on the way.  A gap that moved the timeline (or has not
        ended) lost or added audio: dropped writes, an xrun, a repeated chunk.
        """
        return self.shift_rad <= SHIFT_LIMIT


class ToneWatch:
    """Follows a room's S16LE stereo audio, checking that one tone plays without a gap."""

    def __init__(
        self,
        freq: float,
        *,
        rate: int = RATE,
        window: int = 480,
        heard_above: float = 0.05,
        settle_s: float = 1.0,
        amplitude_tolerance: float = 0.2,
        residual_limit: float = 0.05,
    ) -> None:
        self.freq = freq
        self.rate = rate
        self.window = window
        self._heard_above = heard_above
        self._settle = int(settle_s * rate / window)
        self._amplitude_tolerance = amplitude_tolerance
        self._residual_limit = residual_limit
        t = np.arange(window) / rate
        self._basis = np.column_stack(
            [np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones(window)]
        )
        self._pinv = np.linalg.pinv(self._basis)
        self._advance = 2 * np.pi * freq * window / rate
        self._pending = b""
        self._settling: list[float] = []
        self._reference = 0.0
        self._last_phase: float | None = None
        self._last_good = (0, 0.0)  # window number and phase of the last good window
        self._in_gap = False
        self.windows_before = 0
        """Windows before the tone was first heard (the room's silence at start)."""
        self.windows = 0
        """Windows since the tone was first heard."""
        self.good_windows = 0
        self.gaps: list[Gap] = []

    @property
    def heard(self) -> bool:
        return self.windows > 0

    @property
    def checking(self) -> bool:
        """Past the settling second: every window counts."""
        return self._reference > 0

    @property
    def room_s(self) -> float:
        """Audio the room played since the tone was first heard."""
        return self.windows * self.window / self.rate

    @property
    def tone_s(self) -> float:
        """Of that, audio that was the tone, whole and in phase."""
        return self.good_windows * self.window / self.rate

    @property
    def moved(self) -> list[Gap]:
        """The gaps that lost or added audio (or have not ended)."""
        return [gap for gap in self.gaps if not gap.timeline_kept]

    @property
    def checked_s(self) -> float:
        """Audio checked against the reference (after the settling second)."""
        return max(0, self.windows - self._settle) * self.window / self.rate

    def feed(self, raw: bytes) -> None:
        """More of the room's audio, in order; whole windows are checked, the rest kept."""
        data = self._pending + raw
        step = self.window * BYTES_PER_FRAME
        whole = len(data) - len(data) % step
        self._pending = data[whole:]
        if not whole:
            return
        left = np.frombuffer(data[:whole], dtype="<i2")[0::2].astype(np.float64) / 32768.0
        blocks = left.reshape(-1, self.window)
        coef = blocks @ self._pinv.T  # windows x (sin, cos, constant)
        amplitude = np.hypot(coef[:, 0], coef[:, 1])
        phase = np.arctan2(coef[:, 1], coef[:, 0])
        fitted = coef @ self._basis.T
        residual = np.sqrt(np.mean((blocks - fitted) ** 2, axis=1))
        for a, p, r in zip(amplitude, phase, residual, strict=True):
            self._one(float(a), float(p), float(r))

    def _one(self, amplitude: float, phase: float, residual: float) -> None:
        if not self.heard and amplitude < self._heard_above:
            self.windows_before += 1
            return
        self.windows += 1
        jump = 0.0
        if self._last_phase is not None:
            step = phase - self._last_phase - self._advance
            jump = abs((step + np.pi) % (2 * np.pi) - np.pi)
        self._last_phase = phase
        if not self.checking:
            self.good_windows += 1  # settling: the tone's start is not judged
            self._last_good = (self.windows, phase)
            self._settling.append(amplitude)
            if len(self._settling) >= self._settle:
                self._reference = float(np.median(self._settling))
            return
        bad = (
            abs(amplitude - self._reference) > self._amplitude_tolerance * self._reference
            or residual > self._residual_limit * self._reference
            or jump > SHIFT_LIMIT
        )
        if not bad:
            self.good_windows += 1
            if self._in_gap:
                number, before = self._last_good
                step = phase - before - (self.windows - number) * self._advance
                self.gaps[-1].shift_rad = abs((step + np.pi) % (2 * np.pi) - np.pi)
            self._last_good = (self.windows, phase)
            self._in_gap = False
            return
        seconds = self.window / self.rate
        if self._in_gap:
            self.gaps[-1].length_s += seconds
        else:
            why = (
                f"amplitude {amplitude / self._reference:.2f}x, residual "
                f"{residual / self._reference:.3f}x, phase jump {jump:.2f} rad"
            )
            self.gaps.append(Gap((self.windows - 1) * seconds, seconds, why))
        self._in_gap = True
