"""The native path's own figures: quality of a 44.1 kHz source, and capture -> fifo timing.

In the live bench's PipeWire session, broadcaster's pipe sink (the same
``pipewire -c`` config ``broadcaster run`` uses, :func:`broadcaster.native.sink_config`)
writes a fifo that this process reads, while ``pw-play`` plays the
conversion bench's 997 Hz sine (-6 dBFS, 44.1 kHz f32) onto it.

* **Quality**: the fifo's audio against the ideal sine (``conversion.quality``):
  PipeWire's resampler (in the playing app's stream, quality 4) against the
  soxr path and ffmpeg of the conversion part of the same run.
* **Capture -> fifo**: there is no block entering broadcaster to time, so each
  write PipeWire makes into the fifo is timed on arrival against the audio
  clock the writes themselves keep (bytes so far / byte rate, from the
  earliest-arriving write): how late each write's last sample reaches the
  fifo compared with the most prompt one.  PipeWire hands the sink one graph
  quantum per cycle (1024 frames, 21.3 ms, with the bench's app), so the
  first sample of a write is older by up to one quantum; that part is the
  graph's, as it is for pw-record on the Python path.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.conversion import IN_RATE, OUT_RATE, Quality, quality
from broadcaster.native import sink_config
from tests.support.pipewire import PipeWireSession
from tests.support.procs import wait_until

SINK = "broadcaster.bench"
BYTES_PER_S = OUT_RATE * 4


@dataclass
class Timing:
    writes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes_per_write: float


def _sine_wav(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", str(IN_RATE), "-c", "2", "-e", "floating-point", "-b", "32",
         str(path), "synth", str(seconds), "sine", "997", "vol", "0.5"],
        check=True,
    )  # fmt: skip
    return path


def measure(session: PipeWireSession, work: Path, seconds: float) -> tuple[Quality, Timing]:
    work.mkdir(parents=True, exist_ok=True)
    fifo = work / "native-fifo"
    os.mkfifo(fifo)
    conf = work / "native-sink.conf"
    conf.write_text(sink_config(SINK, "bench", str(fifo), latency_ms=100))
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    host = subprocess.Popen(
        ["pipewire", "-c", str(conf)], env=session.env, stderr=subprocess.DEVNULL
    )
    play: subprocess.Popen[bytes] | None = None
    arrivals: list[tuple[float, int]] = []
    data = bytearray()
    try:
        wait_until(lambda: SINK in session.sinks(), 10, "the bench's pipe sink")
        wav = _sine_wav(work / "native-sine.wav", seconds + 3)
        play = subprocess.Popen(
            ["pw-play", "--target", SINK, str(wav)], env=session.env, stderr=subprocess.DEVNULL
        )
        os.set_blocking(reader, True)
        end = time.monotonic() + seconds + 1
        while time.monotonic() < end:
            chunk = os.read(reader, 1 << 16)  # each write of PipeWire arrives whole
            if not chunk:
                break
            arrivals.append((time.monotonic(), len(chunk)))
            data += chunk
    finally:
        if play is not None:
            play.kill()
            play.wait()
        host.terminate()
        host.wait()
        os.close(reader)
    raw = work / "native.raw"
    raw.write_bytes(bytes(data))
    return quality("native (PipeWire)", raw), _timing(arrivals[len(arrivals) // 10 :])


def _timing(arrivals: list[tuple[float, int]]) -> Timing:
    """Lateness of each write's last sample against the writes' own audio clock."""
    times = np.array([t for t, _ in arrivals])
    sizes = np.array([n for _, n in arrivals], dtype=np.float64)
    due = np.cumsum(sizes) / BYTES_PER_S  # when each write's last sample is due, + offset
    late = (times - times[0]) - due
    late -= late.min()
    return Timing(
        writes=len(arrivals),
        p50_ms=float(np.percentile(late, 50) * 1000),
        p99_ms=float(np.percentile(late, 99) * 1000),
        max_ms=float(late.max() * 1000),
        bytes_per_write=float(sizes.mean()),
    )
