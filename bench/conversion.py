"""The conversion alone: 44.1 kHz f32 stereo in 20 ms writes -> 48 kHz s16 stereo.

broadcaster's :class:`~broadcaster.audio.Converter` (in a child process reading
its stdin in 20 ms blocks, as the live path reads pw-record), ``ffmpeg`` and
``sox`` get the same input through a pipe, written in 20 ms chunks at
``pace`` x real time, and write to a file.  CPU is each child's utime+stime
(the cutime/cstime of this process in /proc/self/stat around the run); the
start-up cost (a run on empty input, median of three) is measured too, and
subtracted for the steady-state figure.  The outputs then give the quality
figures: a 997 Hz sine at -6 dBFS against the ideal one.

``python -m bench.conversion --child [--gain DB ...]`` is broadcaster's side.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
IN_RATE, OUT_RATE = 44100, 48000
CHUNK_FRAMES = IN_RATE // 50  # 20 ms
CHUNK_BYTES = CHUNK_FRAMES * 8  # f32 stereo
TONE_HZ, TONE_AMPLITUDE = 997.0, 0.5


BROADCASTER = [sys.executable, "-m", "bench.conversion", "--child"]


def tools() -> dict[str, list[str]]:
    """Each converter's command line: f32le 44.1k stereo on stdin, s16le 48k stereo on stdout."""
    return {
        "broadcaster": BROADCASTER,
        "broadcaster --gain -3dB": [*BROADCASTER, "--gain", "-3"],
        # The same conversion without libsoxr's direct path (numpy + python-soxr).
        "broadcaster, float path": [*BROADCASTER, "--float-path"],
        "ffmpeg": shlex.split(
            "ffmpeg -nostdin -loglevel error -f f32le -ar 44100 -ac 2 -i pipe:0 "
            "-f s16le -ar 48000 -ac 2 pipe:1"
        ),
        # -D: no dither, like the other two (sox dithers by default when going to 16 bits).
        "sox": shlex.split("sox -D -t f32 -r 44100 -c 2 - -t s16 -r 48000 -c 2 -"),
    }


def sine_f32(seconds: float) -> bytes:
    t = np.arange(int(IN_RATE * seconds)) / IN_RATE
    mono = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype("<f4")
    return np.repeat(mono[:, None], 2, axis=1).tobytes()


@dataclass
class ConversionResult:
    tool: str
    audio_s: float
    cpu_s: float
    startup_cpu_s: float

    @property
    def cpu_per_audio_s(self) -> float:
        """Steady state: CPU seconds per audio second, start-up subtracted."""
        return max(0.0, self.cpu_s - self.startup_cpu_s) / self.audio_s if self.audio_s else 0.0

    @property
    def cpu_per_audio_s_total(self) -> float:
        return self.cpu_s / self.audio_s if self.audio_s else 0.0


def feed(stdin: IO[bytes] | None, data: bytes, block_bytes: int, period: float) -> None:
    """Write ``data`` in ``block_bytes`` writes, one every ``period`` seconds (0: as
    fast as the reader takes them); close ``stdin`` at the end."""
    assert stdin is not None
    start = time.monotonic()
    try:
        for index, offset in enumerate(range(0, len(data), block_bytes)):
            delay = start + index * period - time.monotonic()
            if period and delay > 0:
                time.sleep(delay)
            stdin.write(data[offset : offset + block_bytes])
            stdin.flush()
    finally:
        stdin.close()


def _feed(stdin: IO[bytes] | None, data: bytes, pace: float) -> None:
    """Write ``data`` in 20 ms chunks, ``pace`` x faster than real time (0: unpaced)."""
    feed(stdin, data, CHUNK_BYTES, 0.02 / pace if pace > 0 else 0.0)


def all_at_once(jobs: Sequence[Callable[[], None]]) -> None:
    """Run each job in a thread of its own, all at once; wait for all, then raise the
    first failure (same conditions for every tool, in the same run)."""
    failures: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as err:  # raised below, in the caller's thread
            failures.append(err)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def run_tool(
    argv: list[str],
    data: bytes,
    out: Path,
    pace: float,
    feed: Callable[[IO[bytes] | None, bytes, float], None] | None = None,
) -> float:
    """Run one converter over ``data``; return its CPU seconds (utime + stime).

    The child is reaped with wait4(), whose rusage holds the same kernel
    counters as /proc/PID/stat's utime and stime, up to the very end.
    """
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.PIPE, cwd=ROOT
        )
        (feed or _feed)(proc.stdin, data, pace)
        assert proc.stderr is not None
        errors = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    if proc.returncode != 0:
        message = errors.decode(errors="replace")[-500:]
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {message}")
    return float(usage.ru_utime + usage.ru_stime)


def measure(
    seconds: float, pace: float, workdir: Path
) -> tuple[list[ConversionResult], dict[str, Path]]:
    """Every tool at once, each fed by its own thread (same conditions, same run)."""
    data = sine_f32(seconds)
    commands = tools()
    # Start-up CPU (Python importing numpy and soxr: ~0.4 s) varies by tens of
    # ms from run to run: take the median of three.
    startup = {
        name: statistics.median(run_tool(argv, b"", workdir / "empty.raw", 0) for _ in range(3))
        for name, argv in commands.items()
    }
    outputs = {name: workdir / f"{name.split()[0]}-{len(name)}.raw" for name in commands}
    cpu: dict[str, float] = {}

    def one(name: str) -> None:
        cpu[name] = run_tool(commands[name], data, outputs[name], pace)

    all_at_once([functools.partial(one, name) for name in commands])
    results = [ConversionResult(n, seconds, cpu[n], startup[n]) for n in commands]
    return results, outputs


# --- quality -------------------------------------------------------------------


@dataclass
class Quality:
    tool: str
    snr_db: float
    """Against the ideal sine (exact level, phase aligned): gain errors count too."""
    thd_n_db: float
    """Everything but the fitted sine (harmonics + noise), relative to it."""
    gain_db: float


def quality(tool: str, raw: Path, margin_s: float = 0.25) -> Quality:
    samples = np.frombuffer(raw.read_bytes(), dtype="<i2").reshape(-1, 2)[:, 0] / 32768.0
    cut = int(margin_s * OUT_RATE)
    x: npt.NDArray[np.float64] = samples[cut:-cut] if len(samples) > 3 * cut else samples
    if len(x) < OUT_RATE // 10:
        return Quality(tool, float("nan"), float("nan"), float("nan"))
    t = np.arange(len(x)) / OUT_RATE
    basis = np.stack(
        [np.sin(2 * np.pi * TONE_HZ * t), np.cos(2 * np.pi * TONE_HZ * t), np.ones_like(t)], 1
    )
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fitted = basis @ coef
    amplitude = float(np.hypot(coef[0], coef[1]))
    # The same phase, the exact level, no DC offset.
    ideal = (basis[:, :2] @ coef[:2]) * (TONE_AMPLITUDE / amplitude)
    power = float(np.mean(ideal**2))
    snr = 10 * np.log10(power / float(np.mean((x - ideal) ** 2)))
    thd_n = 10 * np.log10(float(np.mean((x - fitted) ** 2)) / float(np.mean(fitted**2)))
    return Quality(tool, float(snr), float(thd_n), float(20 * np.log10(amplitude / TONE_AMPLITUDE)))


# --- broadcaster's side ----------------------------------------------------------


def child(argv: list[str]) -> int:
    """Read stdin in 20 ms blocks through the Converter (and a processing chain) to stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.conversion --child")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--gain", type=float, default=0.0)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--float-path", action="store_true")
    args = parser.parse_args(argv)

    from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter
    from broadcaster.config import ProcessingConfig
    from broadcaster.processing import build_processor

    processor = build_processor(ProcessingConfig(gain_db=args.gain, speed=args.speed))
    converter = Converter(
        AudioFormat(IN_RATE, 2, "f32"),
        SNAPCAST_FORMAT,
        processor=processor,
        direct=not args.float_path,
    )
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while block := os.read(stdin, CHUNK_BYTES):
        if converted := converter.push(block):
            os.write(stdout, converted)
    os.write(stdout, converter.flush())
    return 0


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
