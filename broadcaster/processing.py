"""Real-time processing of the normalized audio: speed, channels, a user hook, gain, limiter.

:func:`build_processor` turns a :class:`~broadcaster.config.ProcessingConfig`
into a :class:`Chain`, the ``processor`` :class:`~broadcaster.audio.Converter`
runs on every frames x 2 float32 block at 48 kHz, after resampling and before
s16 quantization.  The stages, in order:

1. **speed** (``--speed 1.1``, nightcore): the block is played as if its sample
   rate were ``speed`` times higher and resampled back to 48 kHz (what ffmpeg's
   ``asetrate`` + ``aresample`` do), so tempo and pitch rise together.
2. **channels**: ``mono`` (both channels get their average) and ``swap``.
3. **filter** (``--filter module:function``): any callable taking and returning
   a frames x 2 float32 numpy block.
4. **gain** in dB and a **limiter**, always last (one multiplication), so
   nothing is ever clipped or wrapped.

A live source cannot be played faster than it arrives.  The speed stage
therefore keeps its own clock: for each block of ``n`` frames coming in it
hands exactly ``n`` frames on (the rooms keep receiving audio at the real-time
rate), taken from a buffer of sped-up audio, and the *speed policy* says what
happens when that buffer runs short:

``prebuffer`` (the default)
    Send silence until ``prebuffer_s`` seconds are buffered, play until the
    buffer is drained, then refill.  With ``speed`` s and prebuffer B the rooms
    hear B / (1 - 1/s) seconds of music, then B x s seconds of silence: at 1.1
    and 3 s, 33 s of music and 3.3 s of silence.  Few, long, predictable gaps.
``pad``
    Play whatever is buffered at once and pad the shortfall with silence: no
    added latency, but a short gap in nearly every block (a rough sound).

Below 1.0 the buffer grows instead: when it would exceed ``prebuffer_s``
plus one second (at least two seconds), the oldest audio is skipped back down
to ``prebuffer_s`` (``pad``: to nothing), in one audible jump.  Every gap and
skip is logged and counted in :class:`ProcessingStats` (``broadcaster run``'s
status and the service's capture status carry it).

numpy and soxr are imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .errors import ConfigError

if TYPE_CHECKING:
    from .blocks import FloatBlock
    from .config import ProcessingConfig

_LOGGER = logging.getLogger(__name__)

SPEED_POLICIES: Final = ("prebuffer", "pad")
LIMIT_CEILING: Final = 1.0
"""Peak level the limiter keeps every sample under (0 dBFS: s16 full scale)."""
LIMIT_RELEASE_DB_PER_S: Final = 12.0
"""How fast the limiter's gain comes back up once the peaks are gone."""


@dataclass
class ProcessingStats:
    """Counters of the processing chain, for logs, status and metrics."""

    chain: str = ""
    """What runs, e.g. ``speed 1.1 (prebuffer 3 s), gain -3 dB, limiter``."""
    speed_policy: str = ""
    buffered_ms: float = 0.0
    """Sped-up audio waiting in the speed buffer now."""
    underruns: int = 0
    """Times the speed buffer ran dry (``prebuffer``: each starts a refill)."""
    silence_ms: float = 0.0
    """Silence sent because the speed stage had no audio (first fill included)."""
    skipped_ms: float = 0.0
    """Audio skipped because the buffer overflowed (speed below 1.0)."""
    limited_blocks: int = 0
    """Blocks the limiter turned down."""
    filter_errors: int = 0
    """Blocks on which the user filter raised or returned a bad block (passed unfiltered)."""


def parse_gain(text: str) -> float:
    """``-3dB``, ``+6 dB``, ``-3`` -> decibels as a float; ConfigError otherwise."""
    match = re.fullmatch(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:db)?\s*", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"gain {text!r} is not a number of decibels such as -3dB or +2.5dB")
    return float(match.group(1))


def load_filter(spec: str) -> Callable[[Any], Any]:
    """Import the ``module:function`` a user named; ConfigError if it cannot be used."""
    module_name, _, attr = spec.partition(":")
    if not re.fullmatch(r"[A-Za-z_][\w.]*", module_name) or not re.fullmatch(r"[A-Za-z_]\w*", attr):
        raise ConfigError(f"filter {spec!r} is not module:function (e.g. myfilters:echo)")
    if os.getcwd() not in sys.path:  # like `python -m`: the current directory is importable
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a user's module can raise anything while importing
        raise ConfigError(f"filter {spec}: cannot import {module_name}: {err}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"filter {spec}: {module_name} has no function {attr}")
    return typing.cast(Callable[[Any], Any], func)


class _FrameFifo:
    """A ring buffer of stereo float32 frames with a fixed capacity."""

    def __init__(self, capacity: int) -> None:
        import numpy as np

        self._np = np
        self._data = np.zeros((capacity, 2), dtype=np.float32)
        self._start = 0
        self.size = 0

    @property
    def capacity(self) -> int:
        return len(self._data)

    def write(self, block: FloatBlock) -> None:
        """Append ``block``; the caller makes room first (see :meth:`discard`)."""
        count = len(block)
        assert self.size + count <= self.capacity, "speed buffer overflow"
        end = (self._start + self.size) % self.capacity
        first = min(count, self.capacity - end)
        self._data[end : end + first] = block[:first]
        self._data[: count - first] = block[first:]
        self.size += count

    def discard(self, count: int) -> None:
        count = min(count, self.size)
        self._start = (self._start + count) % self.capacity
        self.size -= count

    def read_into(self, out: FloatBlock) -> int:
        """Fill the start of ``out`` with the oldest frames; return how many."""
        count = min(len(out), self.size)
        first = min(count, self.capacity - self._start)
        out[:first] = self._data[self._start : self._start + first]
        out[first:count] = self._data[: count - first]
        self.discard(count)
        return count


class SpeedStage:
    """Resample-based speed change with a real-time clock and a buffering policy."""

    def __init__(
        self, speed: float, policy: str, prebuffer_s: float, rate: int, stats: ProcessingStats
    ) -> None:
        import numpy as np
        import soxr

        if policy not in SPEED_POLICIES:
            raise ConfigError(f"speed policy {policy!r} is not one of {', '.join(SPEED_POLICIES)}")
        self._np = np
        self.speed = speed
        self.policy = policy
        self.rate = rate
        self.stats = stats
        # Play the block as if it had speed x the rate, then bring it back to `rate`.
        self._resampler = soxr.ResampleStream(rate * speed, rate, 2, dtype="float32", quality="HQ")
        self._prebuffer = round(prebuffer_s * rate) if policy == "prebuffer" else 0
        capacity = self._prebuffer + max(rate, 2 * rate - self._prebuffer)
        self._fifo = _FrameFifo(capacity)
        self._filling = policy == "prebuffer"
        self._played_since_fill = 0

    def __call__(self, block: FloatBlock) -> FloatBlock:
        np = self._np
        frames = len(block)
        sped = self._resampler.resample_chunk(block)
        overflow = self._fifo.size + len(sped) - self._fifo.capacity
        if overflow > 0:
            skip = max(overflow, self._fifo.size + len(sped) - self._prebuffer)
            self._fifo.discard(skip)
            self.stats.skipped_ms += 1000 * skip / self.rate
            _LOGGER.info(
                "speed %g is below 1.0: the buffer is full, skipping %.1f s of audio",
                self.speed,
                skip / self.rate,
            )
        self._fifo.write(sped)
        out: FloatBlock = np.empty((frames, 2), dtype=np.float32)
        if self._filling and self._fifo.size >= max(self._prebuffer, 1):
            self._filling = False
            _LOGGER.info(
                "speed buffer holds %.1f s: playing (about %.0f s until it drains)",
                self._fifo.size / self.rate,
                self._fifo.size / self.rate / max(1e-9, 1 - 1 / self.speed),
            )
        got = 0 if self._filling else self._fifo.read_into(out)
        if got < frames:
            out[got:] = 0.0
            self.stats.silence_ms += 1000 * (frames - got) / self.rate
            if not self._filling:
                self.stats.underruns += 1
                if self.policy == "prebuffer":
                    self._filling = True
                    _LOGGER.info(
                        "speed buffer drained after %.1f s at speed %g; "
                        "silence for about %.1f s while %.1f s refill (policy prebuffer)",
                        (self._played_since_fill + got) / self.rate,
                        self.speed,
                        self._prebuffer * self.speed / self.rate,
                        self._prebuffer / self.rate,
                    )
                elif self.stats.underruns == 1:
                    _LOGGER.info(
                        "speed %g outruns the source: padding the shortfall with silence "
                        "(policy pad; counted in silence_ms)",
                        self.speed,
                    )
            self._played_since_fill = 0
        else:
            self._played_since_fill += got
        self.stats.buffered_ms = 1000 * self._fifo.size / self.rate
        return out


class ChannelStage:
    """Mono (both channels get their average) and/or swap left and right."""

    def __init__(self, *, mono: bool, swap: bool) -> None:
        self.mono = mono
        self.swap = swap

    def __call__(self, block: FloatBlock) -> FloatBlock:
        if self.mono:
            import numpy as np

            mixed = (block[:, 0] + block[:, 1]) * np.float32(0.5)
            out: FloatBlock = np.empty_like(block)
            out[:, 0] = mixed
            out[:, 1] = mixed
            return out
        if self.swap:
            return block[:, ::-1]
        return block


class FilterStage:
    """A user's ``module:function``; failures are logged and counted, audio passes unfiltered."""

    def __init__(self, spec: str, func: Callable[[Any], Any], stats: ProcessingStats) -> None:
        import numpy as np

        self._np = np
        self.spec = spec
        self._func = func
        self.stats = stats

    def check(self, rate: int) -> None:
        """Call the filter once on 20 ms of silence; ConfigError if it cannot be used."""
        probe = self._np.zeros((rate // 50, 2), dtype=self._np.float32)
        try:
            self._validate(self._func(probe.copy()))
        except Exception as err:  # anything a user's function raises
            raise ConfigError(f"filter {self.spec} failed on a block of silence: {err}") from None

    def _validate(self, result: Any) -> FloatBlock:
        np = self._np
        block: FloatBlock = np.asarray(result, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != 2:
            raise ValueError(f"it returned shape {block.shape}, not frames x 2")
        return block

    def __call__(self, block: FloatBlock) -> FloatBlock:
        try:
            return self._validate(self._func(block.copy()))
        except Exception as err:  # a user's function can raise anything; audio must go on
            self.stats.filter_errors += 1
            if self.stats.filter_errors == 1:
                _LOGGER.error(
                    "filter %s failed: %s; passing audio through unfiltered (counted in "
                    "filter_errors)",
                    self.spec,
                    err,
                )
            return block


class GainLimiter:
    """Gain in dB and a block-wise peak limiter: no sample leaves above :data:`LIMIT_CEILING`.

    Each block's limiter gain is the lower of ceiling/peak and the previous
    gain raised by at most :data:`LIMIT_RELEASE_DB_PER_S`; on the way back up
    it ramps linearly across the block, so it never exceeds ceiling/peak
    anywhere in it.  Attack is immediate (no look-ahead, no added latency).
    Gain and limiting are one multiplication: this runs on every block, and
    on a live path each numpy call counts (docs/performance.md).
    """

    def __init__(self, gain_db: float, rate: int, stats: ProcessingStats) -> None:
        import numpy as np

        self._np = np
        self._max = np.maximum.reduce
        self._min = np.minimum.reduce
        self.factor = 10 ** (gain_db / 20)
        self.rate = rate
        self.stats = stats
        self.gain = 1.0
        """The limiter's own gain (1.0: not limiting)."""

    def __call__(self, block: FloatBlock) -> FloatBlock:
        np = self._np
        frames = len(block)
        if not frames:
            return block
        peak = max(float(self._max(block, axis=None)), -float(self._min(block, axis=None)))
        peak *= self.factor
        target = min(1.0, LIMIT_CEILING / peak) if peak > 0 else 1.0
        if target < self.gain:  # attack: down at once
            self.gain = target
            self.stats.limited_blocks += 1
        elif self.gain < 1.0:  # release: ramp up, never above ceiling/peak
            step = 10 ** (LIMIT_RELEASE_DB_PER_S * frames / self.rate / 20)
            new = min(target, self.gain * step)
            ramp = np.linspace(self.gain * self.factor, new * self.factor, frames, dtype=np.float32)
            self.gain = new
            if new < 1.0:
                self.stats.limited_blocks += 1
            ramped: FloatBlock = block * ramp[:, None]
            return ramped
        if self.gain * self.factor == 1.0:
            return block
        out: FloatBlock = block * np.float32(self.gain * self.factor)
        return out


class Chain:
    """The stages in order; called by :class:`~broadcaster.audio.Converter` on each block."""

    def __init__(
        self, stages: list[Callable[[FloatBlock], FloatBlock]], stats: ProcessingStats
    ) -> None:
        self.stages = stages
        self.stats = stats

    def __call__(self, block: FloatBlock) -> FloatBlock:
        for stage in self.stages:
            block = stage(block)
        return block


def describe(config: ProcessingConfig) -> str:
    parts = []
    if config.speed != 1.0:
        if config.speed_policy == "prebuffer":
            parts.append(f"speed {config.speed:g} (prebuffer {config.prebuffer_s:g} s)")
        else:
            parts.append(f"speed {config.speed:g} ({config.speed_policy})")
    if config.mono:
        parts.append("mono")
    elif config.swap:
        parts.append("swap")
    if config.filter:
        parts.append(f"filter {config.filter}")
    if config.gain_db:
        parts.append(f"gain {config.gain_db:+g} dB")
    parts.append("limiter")
    return ", ".join(parts)


def build_processor(config: ProcessingConfig, rate: int = 48000) -> Chain | None:
    """The chain ``config`` asks for, or None when it asks for no processing."""
    if not config.active:
        return None
    stats = ProcessingStats(chain=describe(config))
    stages: list[Callable[[FloatBlock], FloatBlock]] = []
    if config.speed != 1.0:
        stats.speed_policy = config.speed_policy
        stages.append(
            SpeedStage(config.speed, config.speed_policy, config.prebuffer_s, rate, stats)
        )
    if config.mono or config.swap:
        stages.append(ChannelStage(mono=config.mono, swap=config.swap))
    if config.filter:
        stage = FilterStage(config.filter, load_filter(config.filter), stats)
        stage.check(rate)
        stages.append(stage)
    stages.append(GainLimiter(config.gain_db, rate, stats))
    _LOGGER.info("processing: %s", stats.chain)
    if config.speed > 1.0 and config.speed_policy == "prebuffer":
        cycle = config.prebuffer_s / (1 - 1 / config.speed)
        _LOGGER.info(
            "speed %g on a live source: %.0f s of music, then %.1f s of silence while "
            "%g s refill, and so on (policy prebuffer)",
            config.speed,
            cycle,
            config.prebuffer_s * config.speed,
            config.prebuffer_s,
        )
    return Chain(stages, stats)
