"""Added latency: a block entering broadcaster to its bytes entering snapserver's pipe.

Blocks (20 ms of 44.1 kHz f32 stereo, as the issue asks, and what pw-record
hands over in the default and the processing set-ups) are pushed at real time through the
live path's own pieces: :class:`~broadcaster.audio.Converter` (soxr) and
:class:`~broadcaster.delivery.PipeDelivery` writing a real fifo that a reader
process (``cat``, as prompt as snapserver) empties.  For each block, the
latency of its *last* sample is measured: from the moment the block is pushed
until the write holding that sample (at its output position, the resampler's
delay included) has gone into the fifo.  What the pipe and snapserver
hold afterwards is snapserver's buffer, not broadcaster's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.conversion import CHUNK_FRAMES, IN_RATE, OUT_RATE
from tests.support.procs import await_until


@dataclass
class Latency:
    blocks: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    resampler_delay_ms: float
    dropped: int


@dataclass(frozen=True)
class Case:
    """What enters broadcaster: sample rate, encoding, frames per block."""

    rate: int
    sample: str
    block_frames: int


LIVE_SPEC = Case(IN_RATE, "f32", CHUNK_FRAMES)
"""The issue's case: 44.1 kHz f32 in 20 ms blocks (soxr resamples)."""
PW_DEFAULT = Case(OUT_RATE, "s16", 1024)
"""What pw-record hands over by default: 48 kHz s16, a 1024-frame quantum per wakeup."""
PW_FLOAT = Case(OUT_RATE, "f32", 1024)
"""The same in f32, as captured when processing is on."""


def _signal(case: Case, seconds: float) -> bytes:
    t = np.arange(int(case.rate * seconds)) / case.rate
    mono = 0.5 * np.sin(2 * np.pi * 997.0 * t)
    dtype = "<i2" if case.sample == "s16" else "<f4"
    scale = 32767 if case.sample == "s16" else 1
    return np.repeat(np.round(mono * scale, 6).astype(dtype)[:, None], 2, axis=1).tobytes()


def resampler_delay_frames(case: Case) -> int:
    """Output frames between a sample going in and coming out (measured with an impulse)."""
    from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter

    conv = Converter(AudioFormat(case.rate, 2, case.sample), SNAPCAST_FORMAT)  # type: ignore[arg-type]
    impulse = np.zeros((case.rate, 2), dtype="<f4")
    impulse[case.rate // 2] = 0.9
    if case.sample == "s16":
        impulse = (impulse * 32767).astype("<i2")
    out = conv.push(impulse.tobytes()) + conv.flush()
    samples = np.frombuffer(out, dtype="<i2").reshape(-1, 2)[:, 0]
    return int(np.argmax(np.abs(samples))) - round(case.rate // 2 * OUT_RATE / case.rate)


def _ready(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def _measure(
    case: Case, seconds: float, fifo: Path, processing: dict[str, object]
) -> Latency:
    from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter
    from broadcaster.config import ProcessingConfig
    from broadcaster.delivery import PipeDelivery
    from broadcaster.processing import build_processor

    delay = resampler_delay_frames(case)
    processor = build_processor(ProcessingConfig(**processing))  # type: ignore[arg-type]
    source = AudioFormat(case.rate, 2, case.sample)  # type: ignore[arg-type]
    conv = Converter(source, SNAPCAST_FORMAT, processor=processor)
    delivery = PipeDelivery(str(fifo))
    ends: list[int] = []  # output frames delivered once each write is complete
    data = _signal(case, seconds)
    block_bytes = case.block_frames * source.bytes_per_frame
    period = case.block_frames / case.rate
    written_at: list[float] = []  # time each write entered the fifo

    def note_writes() -> None:
        now = time.perf_counter()
        while len(written_at) < delivery.stats.chunks_written:
            written_at.append(now)

    async def poll() -> None:  # what the pipe could not take at once is written later
        while True:
            await asyncio.sleep(0.001)
            note_writes()

    runner = asyncio.create_task(delivery.run())
    poller = asyncio.create_task(poll())
    pushed_at: list[float] = []
    try:
        await await_until(_ready(lambda: delivery.stats.connected), 10, "the fifo to open")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(data), block_bytes)):
            await asyncio.sleep(max(0.0, start + index * period - loop.time()))
            pushed_at.append(time.perf_counter())
            converted = conv.push(data[offset : offset + block_bytes])
            if converted:
                ends.append((ends[-1] if ends else 0) + len(converted) // 4)
                delivery.write(converted)
            note_writes()
        await await_until(
            _ready(lambda: len(written_at) >= delivery.stats.chunks_written), 5, "the last writes"
        )
    finally:
        for task in (runner, poller):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    latencies = []
    for index, pushed in enumerate(pushed_at):
        last_in = (index + 1) * case.block_frames - 1
        out_pos = round(last_in * OUT_RATE / case.rate) + delay
        holder = bisect.bisect_right(ends, out_pos)  # the write holding that sample
        if holder < len(written_at):
            latencies.append(written_at[holder] - pushed)
    values = np.array(latencies) * 1000
    return Latency(
        blocks=len(values),
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        max_ms=float(values.max()),
        resampler_delay_ms=1000 * delay / OUT_RATE,
        dropped=delivery.stats.chunks_dropped,
    )


def measure(case: Case, seconds: float, workdir: Path, **processing: object) -> Latency:
    fifo = workdir / "latency.fifo"
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    os.mkfifo(fifo)
    # The reader opens the fifo first (read-only open blocks until a writer comes).
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.DEVNULL)
    try:
        return asyncio.run(_measure(case, seconds, fifo, processing))
    finally:
        reader.kill()
        reader.wait()
