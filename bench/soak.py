"""Soak: broadcast a playing app for a long time and print what was lost.

Runs a private headless PipeWire, a real snapserver with one real snapclient
room, a tone-playing app and broadcaster's library (in this process), with a
busy loop hogging the other core.  Prints, every ``--every`` seconds and at
the end: seconds of audio captured and delivered, chunks (one per captured
block) written/dropped/discarded, pipe reopenings,
pw-record restarts and this process's RSS.  The figures, not an assertion, are
the result; ``tests/integration/test_soak.py`` runs it (``-m soak``).  It
runs the Python data path (``capture.native = false``), whose counters it
reads; the native path has no sample in Python to count.

    python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broadcaster.config import CaptureConfig, Config, DeliveryConfig  # noqa: E402
from broadcaster.pipeline import Broadcast  # noqa: E402
from broadcaster.pipewire import TargetApp  # noqa: E402
from tests.support.pipewire import PipeWireSession  # noqa: E402
from tests.support.procs import wait_until  # noqa: E402
from tests.support.snapserver import SnapClient, SnapServer, StreamSpec  # noqa: E402


@dataclass
class Sample:
    elapsed_s: float
    captured_s: float
    """Audio pw-record handed over (48 kHz s16 stereo: the default capture format)."""
    delivered_s: float
    """Audio the fifo took."""
    written: int
    dropped: int
    discarded: int
    reconnects: int
    recorder_restarts: int
    rss_mib: float
    cpu_ms_per_s: float
    """broadcaster's own CPU (this process, children excluded) per second of audio."""


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def burn() -> None:
    """Keep one core busy (the 'other core' of a 2-core box)."""
    while True:
        pass


async def soak(seconds: float, every: float, base: Path) -> list[Sample]:
    session = PipeWireSession(base / "pw")
    server = SnapServer(base / "snap", [StreamSpec("Main", path=base / "snap" / "fifo")])
    room = SnapClient(server, "room1", base / "room1.raw")
    hog = multiprocessing.Process(target=burn, daemon=True)
    samples: list[Sample] = []
    try:
        session.start()
        session.add_speakers()
        wav = base / "tone.wav"
        server.start()
        room.start()
        wait_until(lambda: len(server.clients()) == 1, 15, "the room to connect")
        session.play(wav, "SoakApp")
        hog.start()
        os.environ.update(session.env)  # the library runs pw-record/pactl in this session
        # The Python data path: its counters are what a soak reads (on the
        # native path no sample passes through broadcaster to count).
        config = Config(
            capture=CaptureConfig(native=False),
            delivery=DeliveryConfig(pipe=str(base / "snap" / "fifo")),
        )
        broadcast = Broadcast(TargetApp("SoakApp"), config, env=session.env)
        stop = asyncio.Event()
        task = asyncio.create_task(broadcast.run(stop))
        started = time.monotonic()
        while broadcast.status.state != "playing":
            if task.done():
                task.result()
            if time.monotonic() - started > 30:
                raise RuntimeError("the app never started playing")
            await asyncio.sleep(0.1)
        started = time.monotonic()
        cpu_start = time.process_time()
        base_written = broadcast.status.delivery.bytes_written
        base_captured = broadcast.status.capture.bytes_captured
        per_second = 48000 * 4
        while (elapsed := time.monotonic() - started) < seconds:
            await asyncio.sleep(min(every, seconds - elapsed))
            status = broadcast.status
            sample = Sample(
                elapsed_s=round(time.monotonic() - started, 1),
                captured_s=round((status.capture.bytes_captured - base_captured) / per_second, 3),
                delivered_s=round((status.delivery.bytes_written - base_written) / per_second, 3),
                written=status.delivery.chunks_written,
                dropped=status.delivery.chunks_dropped,
                discarded=status.delivery.chunks_discarded,
                reconnects=status.delivery.reconnects,
                recorder_restarts=status.capture.restarts,
                rss_mib=round(rss_mib(), 1),
                cpu_ms_per_s=round(
                    1000 * (time.process_time() - cpu_start) / (time.monotonic() - started), 2
                ),
            )
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
            if task.done():
                task.result()
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        if hog.is_alive():
            hog.kill()
            hog.join()
        room.stop()
        server.stop()
        session.stop()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args(argv)
    # SIGTERM (timeout, pkill) unwinds like Ctrl-C: the servers it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="broadcaster-soak-") as tmp:
        seconds = args.minutes * 60
        subprocess.run(
            ["sox", "-n", "-r", "44100", "-c", "2", f"{tmp}/tone.wav", "synth",
             str(int(seconds) + 60), "sine", "440", "vol", "0.5"],
            check=True,
        )  # fmt: skip
        samples = asyncio.run(soak(seconds, args.every, Path(tmp)))
    if not samples:
        return 1
    first, last = samples[0], samples[-1]
    summary = {
        "seconds": last.elapsed_s,
        "audio_captured_s": last.captured_s,
        "audio_delivered_s": last.delivered_s,
        "chunks_written": last.written,
        "chunks_dropped": last.dropped,
        "chunks_discarded": last.discarded,
        "pipe_reopens": last.reconnects,
        "recorder_restarts": last.recorder_restarts,
        "rss_first_mib": first.rss_mib,
        "rss_last_mib": last.rss_mib,
        "rss_max_mib": max(s.rss_mib for s in samples),
        "cpu_ms_per_s": last.cpu_ms_per_s,
    }
    print("summary " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
